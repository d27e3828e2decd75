"""Fashion-MNIST on disk and in memory: find, download, verify, parse, batch.

The four official files are gzip-compressed IDX files. Different sources compress
them differently (Debian re-compresses them), so a file is verified by the SHA-256
of its decompressed content, never by the bytes of the .gz.
"""

from __future__ import annotations

import hashlib
import http.client
import math
import os
import socket
import stat
import threading
import urllib.error
import urllib.request
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from .errors import UserError, command
from .fileio import NotRegularFile, PathError, TooLarge, atomic_writer, read_bounded, writable, write_atomic

LABELS = (
    "t-shirt", "trouser", "pullover", "dress", "coat",
    "sandal", "shirt", "sneaker", "bag", "ankle boot",
)  # fmt: skip

MIRRORS = (
    "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
)
SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")


class DataError(UserError):
    """A data file is missing, damaged or cannot be fetched; the message says what to do."""


class IDXFormatError(DataError):
    """Bytes that are not a well-formed IDX file of unsigned bytes; problem says what is wrong."""

    def __init__(self, name: str, problem: str) -> None:
        super().__init__(f"{name} {problem}.")
        self.problem = problem


class DamagedFile(DataError):
    """A data file whose bytes are not the official content; problem says how (a phrase)."""

    def __init__(self, path: Path, problem: str) -> None:
        super().__init__(f"{path} {problem}; {repair_advice(path.parent)}.")
        self.problem = problem


@dataclass(frozen=True)
class DataFile:
    """One of the four official files: its name, content checksum and IDX shape."""

    name: str
    sha256: str  # of the decompressed IDX content
    shape: tuple[int, ...]

    @property
    def size(self) -> int:
        """Bytes of the decompressed content: the IDX header (4, and 4 per dimension), one byte per value."""
        return 4 + 4 * len(self.shape) + math.prod(self.shape)

    @property
    def packed_limit(self) -> int:
        """The most bytes a .gz of the content may take. Deflate never needs more than the content and 5 bytes
        per 65,535 (stored blocks); even fixed Huffman codes spend at most 9 bits per byte; 64 KiB more covers
        the gzip header and its optional name and comment."""
        return self.size + self.size // 8 + (1 << 16)


FILES = {
    "train_images": DataFile(
        "train-images-idx3-ubyte.gz",
        "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
        (60000, 28, 28),
    ),
    "train_labels": DataFile(
        "train-labels-idx1-ubyte.gz",
        "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
        (60000,),
    ),
    "test_images": DataFile(
        "t10k-images-idx3-ubyte.gz",
        "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
        (10000, 28, 28),
    ),
    "test_labels": DataFile(
        "t10k-labels-idx1-ubyte.gz",
        "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
        (10000,),
    ),
}


# ---------------------------------------------------------------- IDX parsing


def parse_idx(raw: bytes, name: str = "data") -> np.ndarray:
    """Parse IDX bytes of unsigned bytes (type code 0x08) into a read-only uint8 array.

    The header is two zero bytes, the type code, the number of dimensions, then one
    big-endian uint32 per dimension; the body must hold exactly their product of bytes.
    """
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise IDXFormatError(name, "is not an IDX file of unsigned bytes (wrong magic number)")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if ndim == 0 or len(raw) < header:
        raise IDXFormatError(name, "has a truncated or invalid IDX header")
    shape = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    if len(raw) - header != int(np.prod(shape, dtype=np.int64)):
        raise IDXFormatError(name, f"holds {len(raw) - header} bytes of data but its header promises shape {shape}")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def read_data_file(path: Path, expected: DataFile) -> np.ndarray:
    """Read one .gz IDX file, check its content checksum and shape; uint8 array.

    Nothing larger than the official content is read or unpacked (see DataFile.size and packed_limit),
    and only regular files are read (symbolic links followed). The decompressed content is kept in
    the user cache under the SHA-256 of the .gz bytes, so later reads of the same file skip
    decompression; it is verified on every read too.
    """
    try:
        packed = read_bounded(path, expected.packed_limit)
    except FileNotFoundError:
        raise DataError(f"{path} is missing; {repair_advice(path.parent)}.") from None
    except NotRegularFile as e:
        fix = repair_advice(path.parent)
        raise DataError(f"{path} is {e.kind}, not a regular file; remove it, then {fix}.") from None
    except TooLarge:
        raise DamagedFile(path, f"is larger than a .gz of the official content can be ({expected.packed_limit:,} "
                                "bytes)") from None  # fmt: skip
    except OSError as e:
        raise DataError(f"{path} cannot be read ({e.strerror}); check its permissions or pass --data-dir.") from None
    copy = _copy_path(packed)
    raw = None if copy is None else _read_verified_copy(copy, expected)
    if raw is None:
        raw = _unpack(packed, path, expected.size)
        if hashlib.sha256(raw).hexdigest() != expected.sha256:
            array = _parse(raw, path)  # a clearer message when the structure is broken
            raise DamagedFile(path, f"does not have the official content (SHA-256 mismatch, shape {array.shape})")
        if copy is not None:
            _keep_copy(copy, raw)
    array = _parse(raw, path)
    if array.shape != expected.shape:  # only reachable with a changed FILES table
        raise DamagedFile(path, f"has shape {array.shape}, expected {expected.shape}")
    return array


def _unpack(packed: bytes, path: Path, limit: int) -> bytes:
    """The content of the gzip members in packed, stopped as soon as it would pass limit bytes: a .gz of a
    megabyte can unpack to gigabytes, and nothing longer than the official content can be it."""
    parts, size = [], 0
    while True:
        member = zlib.decompressobj(16 + zlib.MAX_WBITS)  # gzip: header and trailer (CRC-32, length) checked
        try:
            part = member.decompress(packed, limit + 1 - size)
        except zlib.error:
            raise DamagedFile(path, "is not a complete gzip file") from None
        parts.append(part)
        size += len(part)
        if size > limit:
            raise DamagedFile(path, f"unpacks to more than the {limit:,} bytes of the official content")
        if not member.eof:
            raise DamagedFile(path, "is not a complete gzip file")
        packed = member.unused_data  # the next member, as gzip itself reads them
        if not packed:
            return b"".join(parts)


def _parse(raw: bytes, path: Path) -> np.ndarray:
    try:
        return parse_idx(raw, str(path))
    except IDXFormatError as e:
        raise DamagedFile(path, e.problem) from None


def repair_advice(folder: Path) -> str:
    """What to run so that folder holds the four verified files (a phrase, for error messages). The command
    works when pasted into a shell, whatever the folder's name (spaces, quotes, a leading dash)."""
    if folder == SYSTEM_DIR:
        return ("reinstall the Debian package dataset-fashion-mnist, or run `fmnist download --force` to fetch a "
                "copy into the user cache, which is looked in first")  # fmt: skip
    shown = f"./{folder}" if str(folder).startswith("~") else str(folder)  # a folder called ~x, not a home
    return f"run `{command('fmnist', 'download', f'--data-dir={shown}')}` to fetch fresh copies into that folder"


def _copy_path(packed: bytes) -> Path | None:
    """Where the verified decompressed copy of packed is kept; None when there is no user cache."""
    try:
        return cache_dir() / "idx" / f"{hashlib.sha256(packed).hexdigest()}.idx"
    except DataError:
        return None  # each read decompresses


def _read_verified_copy(copy: Path, expected: DataFile) -> bytes | None:
    try:
        raw = read_bounded(copy, expected.size)
    except (OSError, PathError):  # missing, or not a regular file, or too long: decompress again
        return None
    return raw if hashlib.sha256(raw).hexdigest() == expected.sha256 else None


def _keep_copy(copy: Path, raw: bytes) -> None:
    try:
        copy.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(copy, raw)
    except (OSError, PathError):
        pass  # a cache that cannot be written only costs speed


# ---------------------------------------------------------------- where the files are


def cache_dir() -> Path:
    """The user cache folder for downloads: $XDG_CACHE_HOME/fmnist, else ~/.cache/fmnist.

    A relative $XDG_CACHE_HOME is ignored, as the XDG Base Directory spec asks (it would put the cache in
    whatever folder the command runs in). DataError when there is no home folder to fall back on: HOME
    relative, or unset with no home in the user database.
    """
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    if os.path.isabs(xdg):
        return Path(xdg) / "fmnist"
    try:
        home = Path.home()
    except RuntimeError:  # HOME unset and no passwd entry for this user
        home = None
    if home is None or not home.is_absolute():
        why = "is not an absolute path" if os.environ.get("HOME") else "is not set and this user has no home folder"
        raise DataError(f"fmnist has no cache folder: $XDG_CACHE_HOME is not an absolute path and $HOME {why}; set "
                        "either to an absolute path, or pass --data-dir.")  # fmt: skip
    return home / ".cache" / "fmnist"


def chosen_dir(data_dir: str | Path | None = None) -> Path | None:
    """The folder the user named: data_dir, else $FMNIST_DATA (a str may start with ~); None when neither is set."""
    chosen = data_dir if data_dir is not None else os.environ.get("FMNIST_DATA") or None
    return None if chosen is None else _expand(chosen)


def _expand(folder: str | Path) -> Path:
    """folder as a Path; a str (as a user writes it) with a leading ~ or ~user replaced by that home folder,
    DataError when there is none. A Path is taken as it is: Path("./~x") has forgotten its "./", and ./~x
    names a folder called ~x."""
    if isinstance(folder, Path):
        return folder
    expanded = os.path.expanduser(folder)
    if expanded.startswith("~"):
        raise DataError(f"{folder} starts with a ~ that names no home folder (HOME is not set, or no such user); "
                        f"give the full path, or ./{folder} for a folder of that name.")  # fmt: skip
    return Path(expanded)


def has_all_files(folder: Path) -> bool:
    """True when folder holds all four files (not yet verified)."""
    try:
        return all((folder / f.name).is_file() for f in FILES.values())
    except OSError:  # a folder that may not be searched holds nothing usable
        return False


def locate(data_dir: str | Path | None = None, download_missing: bool = True) -> Path:
    """The folder to read the four files from.

    A folder the user named (data_dir, $FMNIST_DATA) is the one used: DataError naming what it
    lacks when it does not hold the four files. Otherwise the user cache, then the Debian
    package's folder; when neither holds them, they are downloaded into the cache (DataError
    when there is no cache folder).
    """
    chosen = chosen_dir(data_dir)
    if chosen is not None:
        check_folder(chosen)
        return chosen
    try:
        cache = cache_dir()
    except DataError:
        cache = None  # the Debian package's folder may still hold the files
    for folder in (cache, SYSTEM_DIR):
        if folder is not None and has_all_files(folder):
            return folder
    if not download_missing:
        raise DataError(f"Fashion-MNIST was not found in {cache_dir()} or {SYSTEM_DIR}; run `fmnist download`.")
    return download(cache_dir())  # cache_dir() says so when there is no cache


def check_folder(folder: Path) -> None:
    """DataError naming what is wrong when folder does not hold the four .gz files (their content, and
    what kind of file each is, are checked when they are read): a missing folder, a file in its place,
    a folder that may not be read, folders or decompressed copies instead of the .gz files, missing files."""
    fix = repair_advice(folder)
    mode = _mode(folder, folder)
    if mode is None:
        raise DataError(f"the data folder {folder} does not exist; {fix}, or correct the path.")
    if not stat.S_ISDIR(mode):
        raise DataError(f"the data folder {folder} is not a folder; pass the folder that holds the four .gz files.")
    problems = []
    for f in FILES.values():
        mode = _mode(folder / f.name, folder)
        if mode is not None and stat.S_ISDIR(mode):
            problems.append(f"{f.name} is a folder (remove it)")
        elif mode is None and (folder / f.name.removesuffix(".gz")).is_file():
            problems.append(f"{f.name} is there only decompressed (compress it with gzip)")
        elif mode is None:
            problems.append(f"{f.name} is missing")
    if problems:
        raise DataError(f"the data folder {folder} does not hold the four Fashion-MNIST files ({'; '.join(problems)});"
                        f" {fix}.")  # fmt: skip


def _mode(path: Path, folder: Path) -> int | None:
    """path's type and permissions (symbolic links followed); None when nothing is there. DataError when the
    data folder, folder, or one above it, may not be read."""
    try:
        return path.stat().st_mode
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as e:
        raise DataError(f"the data folder {folder} cannot be read ({e.strerror}); check its permissions, or pass "
                        "another folder with --data-dir.") from None  # fmt: skip


# ---------------------------------------------------------------- download


def mirrors() -> list[str]:
    """Base URLs (http or https) tried in order; $FMNIST_MIRRORS (space-separated) replaces the official ones."""
    env = os.environ.get("FMNIST_MIRRORS")
    return env.split() if env else list(MIRRORS)


READ_TIMEOUT = 30.0  # seconds a mirror may stay silent
MIN_RATE = 32 * 1024  # bytes per second: the slowest transfer the default time limit waits for


def download_seconds(expected: DataFile) -> float:
    """Seconds one file's download may take in all, connection included: $FMNIST_DOWNLOAD_SECONDS, else the
    time to receive the decompressed size (more than any honest .gz of it) at MIN_RATE, and at least a minute:
    about 24 minutes for the training images."""
    text = os.environ.get("FMNIST_DOWNLOAD_SECONDS")
    if text is None:
        return float(max(60, math.ceil(expected.size / MIN_RATE)))
    try:
        seconds = float(text)
    except ValueError:
        seconds = math.nan
    if not 0 < seconds <= 1e6:
        raise DataError(f"$FMNIST_DOWNLOAD_SECONDS is {text!r}; set it to a number of seconds above 0 and at most "
                        "1000000, or unset it.")  # fmt: skip
    return seconds


def download(folder: str | Path, force: bool = False, progress: bool = True) -> Path:
    """Make all four files present and verified in folder (a str may start with ~), fetching what is missing or
    bad.

    Each file is fetched to a temporary file in the same folder, verified, then renamed,
    so a broken transfer never leaves a file under the real name.
    """
    folder = _expand(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DataError(f"cannot create {folder} ({e.strerror}); choose another folder with --data-dir.") from None
    for expected in FILES.values():
        target = folder / expected.name
        if not force and stat.S_ISREG(_mode(target, folder) or 0):
            try:
                read_data_file(target, expected)
                continue
            except DataError:
                pass  # damaged: fetch it again
        if not writable(folder):  # checked only now: a complete read-only folder is fine
            raise DataError(f"cannot write into {folder}; choose another folder with --data-dir.")
        _fetch_verified(expected, target, download_seconds(expected), progress)
    return folder


def _fetch_verified(expected: DataFile, target: Path, seconds: float, progress: bool) -> None:
    failures = []
    for base in mirrors():
        url = base.rstrip("/") + "/" + expected.name
        try:
            _fetch(url, target, expected, seconds, progress)
            return
        except (OSError, ValueError, http.client.HTTPException, DataError) as e:  # ValueError: a malformed URL
            failures.append(f"{url}: {_reason(e)}")
    raise DataError(
        f"could not download {expected.name} ({'; '.join(failures)}); check the network, "
        "or put the four files in a folder and pass --data-dir."
    )


def _fetch(url: str, target: Path, expected: DataFile, seconds: float, progress: bool) -> None:
    """Fetch url into target through a temporary file that replaces it once verified: at most
    expected.packed_limit bytes, within seconds in all. OSError for a transfer that is cut, too long or too slow
    (the next mirror is tried). The temporary file is made once the mirror has answered and the progress bar
    exists, and removed after any stop."""
    limit = expected.packed_limit
    deadline = _Deadline(seconds)
    try:
        with deadline, _opener(deadline).open(url, timeout=min(READ_TIMEOUT, seconds)) as response:
            total = _content_length(response)
            if total is not None and total > limit:
                raise OSError(f"it offers {total:,} bytes, more than a .gz of this file can take ({limit:,})")
            bar = tqdm(total=total, unit="B", unit_scale=True, desc=expected.name, disable=None if progress else True,
                       leave=False)  # fmt: skip
            with bar, atomic_writer(target, check=lambda tmp: read_data_file(tmp, expected)) as out:
                received = 0
                while chunk := response.read1(1 << 16):
                    received += len(chunk)
                    if received > limit:
                        raise OSError(f"it sent more than the {limit:,} bytes a .gz of this file can take")
                    out.write(chunk)
                    bar.update(len(chunk))
                if deadline.expired:  # the shut connection may have looked like a complete transfer
                    raise TimeoutError
                if total is not None and received != total:
                    raise OSError(f"transfer cut off after {received} of {total} bytes")
    except (OSError, http.client.HTTPException):
        if not deadline.expired:
            raise
        raise TimeoutError(f"not done within {seconds:g} s (the limit of $FMNIST_DOWNLOAD_SECONDS)") from None


def _content_length(response: http.client.HTTPResponse) -> int | None:
    """The Content-Length header as a number of bytes; None when there is none, or not a plain number."""
    text = (response.headers.get("Content-Length") or "").strip()
    return int(text) if text.isascii() and text.isdigit() else None


class _Deadline:
    """A download's time limit: when it passes, the connections opened under it are shut down, so that a read
    waiting on one ends at once (a socket's timeout bounds each read, never their total)."""

    def __init__(self, seconds: float) -> None:
        self.expired = False
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True

    def __enter__(self) -> _Deadline:
        self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._timer.cancel()
        with self._lock:
            for sock in self._sockets:
                sock.close()
            self._sockets.clear()

    def watch(self, sock: socket.socket) -> None:
        """Shut sock's connection down when time is up, or now if it is."""
        copy = sock.dup()  # TLS takes over sock's descriptor; a copy reaches the same connection
        with self._lock:
            self._sockets.append(copy)
            if self.expired:
                _shut(copy)

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            for sock in self._sockets:
                _shut(sock)


def _shut(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:  # already closed by the other side
        pass


def _opener(deadline: _Deadline) -> urllib.request.OpenerDirector:
    """urllib for http and https only (no file: or ftp: mirror or redirect, which no deadline would reach),
    with every connection watched by deadline from the moment it connects, before a TLS handshake."""

    class Plain(http.client.HTTPConnection):
        def connect(self) -> None:
            super().connect()
            deadline.watch(self.sock)

    class Secure(http.client.HTTPSConnection, Plain):  # HTTPSConnection.connect calls Plain.connect, then TLS
        pass

    class Handler(urllib.request.HTTPHandler, urllib.request.HTTPSHandler):
        def http_open(self, request: urllib.request.Request) -> http.client.HTTPResponse:
            return self.do_open(Plain, request)

        def https_open(self, request: urllib.request.Request) -> http.client.HTTPResponse:
            return self.do_open(Secure, request)

    opener = urllib.request.OpenerDirector()
    for handler in (urllib.request.ProxyHandler(), urllib.request.UnknownHandler(), Handler(),
                    urllib.request.HTTPDefaultErrorHandler(), urllib.request.HTTPRedirectHandler(),
                    urllib.request.HTTPErrorProcessor()):  # fmt: skip
        opener.add_handler(handler)
    return opener


def _reason(error: Exception) -> str:
    if isinstance(error, urllib.error.HTTPError):
        return f"HTTP {error.code}"
    if isinstance(error, urllib.error.URLError):
        return str(error.reason)
    if isinstance(error, DamagedFile):
        return f"the file {error.problem}"
    if isinstance(error, DataError):  # its message would name the temporary file
        return "the downloaded file could not be read back"
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    return str(error) or type(error).__name__


# ---------------------------------------------------------------- in memory


@dataclass(frozen=True)
class FashionMNIST:
    """The whole dataset in memory: images float32 [N, 1, 28, 28] in [0, 1], labels int64 [N]."""

    train_images: torch.Tensor
    train_labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor
    folder: Path

    def to(self, device: torch.device | str) -> FashionMNIST:
        """The same data on another device."""
        moved = {k: getattr(self, k).to(device) for k in FILES}
        return FashionMNIST(**moved, folder=self.folder)


def load(data_dir: str | Path | None = None) -> FashionMNIST:
    """Locate (downloading if needed), verify and parse the four files into tensors on the CPU."""
    return _load_folder(locate(data_dir).resolve())


@lru_cache(maxsize=2)
def _load_folder(folder: Path) -> FashionMNIST:
    arrays = {key: read_data_file(folder / f.name, f) for key, f in FILES.items()}
    for split in ("train", "test"):
        n_images, n_labels = len(arrays[f"{split}_images"]), len(arrays[f"{split}_labels"])
        if n_images != n_labels:
            raise DataError(f"the {split} set in {folder} has {n_images} images but {n_labels} labels; "
                            f"{repair_advice(folder)}.")  # fmt: skip
        if arrays[f"{split}_labels"].max() > 9:
            raise DataError(f"the {split} labels in {folder} hold values outside 0-9; {repair_advice(folder)}.")
    tensors = {}
    for key, array in arrays.items():
        t = torch.from_numpy(array.copy())
        if key.endswith("images"):
            t = t.unsqueeze(1).float().div_(255)
        else:
            t = t.long()
        tensors[key] = t
    return FashionMNIST(**tensors, folder=folder)


class Batches:
    """Mini-batches (X, y) sliced from in-memory tensors; X [B, 1, H, W], y [B].

    With shuffle, each pass draws a new permutation from generator (the global RNG when
    None). The last batch may be smaller. len() is the number of batches. resize, an int n
    (for (n, n)) or (height, width), scales each batch bilinearly, with antialiasing, on the
    device that holds the images.
    """

    def __init__(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        batch_size: int,
        shuffle: bool = False,
        generator: torch.Generator | None = None,
        resize: int | tuple[int, int] | None = None,
        shift: int = 0,
    ) -> None:
        self.images, self.labels = images, labels
        self.batch_size, self.shuffle, self.generator = batch_size, shuffle, generator
        self.resize = None if resize is None else self.image_size(resize)
        self.shift = shift
        self._copies: dict[torch.device, Batches] = {}

    @staticmethod
    def image_size(size: int | Sequence[int]) -> tuple[int, int]:
        """(height, width) from an int n (a square n x n) or a pair; ValueError unless positive integers."""
        pair = (size, size) if isinstance(size, int) else tuple(size) if isinstance(size, Sequence) else ()
        if len(pair) != 2 or not all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in pair):
            raise ValueError(f"resize must be a positive int or a (height, width) pair of them, not {size!r}")
        return pair

    def __len__(self) -> int:
        return -(-len(self.labels) // self.batch_size)

    def to(self, device: torch.device | str) -> Batches:
        """The same batches made on device: the tensors are copied there on the first call only,
        so later passes slice, shuffle and resize there. Shuffling still draws from generator
        (or the global RNG), so the order of the batches does not depend on the device."""
        device = torch.empty(0, device=device).device  # 'cuda' -> 'cuda:0', as tensors report it
        if device == self.labels.device:
            return self
        if device not in self._copies:
            self._copies[device] = Batches(self.images.to(device), self.labels.to(device), self.batch_size,
                                           self.shuffle, self.generator, self.resize, self.shift)  # fmt: skip
        return self._copies[device]

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        n, size = len(self.labels), self.batch_size
        order = None
        if self.shuffle:
            order = torch.randperm(n, generator=self.generator).to(self.labels.device)
        for start in range(0, n, size):
            if order is None:
                X, y = self.images[start : start + size], self.labels[start : start + size]
            else:
                index = order[start : start + size]
                # index_select copies whole rows; X[index] takes a generic path 2-3x slower here.
                X, y = self.images.index_select(0, index), self.labels.index_select(0, index)
            if self.shift:
                X = random_shift(X, self.shift, self.generator)
            if self.resize is not None:
                X = torch.nn.functional.interpolate(X, size=self.resize, mode="bilinear", antialias=True)
            yield X, y


def random_shift(images: torch.Tensor, max_shift: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Each image [B, 1, H, W] moved by its own random offset of up to max_shift pixels in
    each direction, filling with 0 (the background); same shape."""
    n, _, height, width = images.shape
    padded = torch.nn.functional.pad(images, (max_shift,) * 4)
    dy, dx = torch.randint(0, 2 * max_shift + 1, (2, n, 1, 1), generator=generator).to(images.device)
    rows = dy + torch.arange(height, device=images.device).view(1, height, 1)
    cols = dx + torch.arange(width, device=images.device).view(1, 1, width)
    return padded[torch.arange(n, device=images.device).view(n, 1, 1), 0, rows, cols].unsqueeze(1)


def text_labels(labels: Sequence[int] | torch.Tensor) -> list[str]:
    """The class names of numeric labels 0-9."""
    return [LABELS[int(i)] for i in labels]
