"""Files on disk that are never left half-written, never replace what is not a file, and one owner per folder."""

from __future__ import annotations

import errno
import fcntl
import json
import os
import re
import signal
import stat
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from .errors import STOP_SIGNALS, UserError


class PathError(UserError):
    """A path the user gave cannot be written or used as asked; the message says why and what to do."""


def check_output(path: Path) -> None:
    """Refuse path when it exists and is not a regular file (a folder, a device, a FIFO, a symbolic link),
    or when its folder does not exist: writing there would replace or feed something that is not ours."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        if not path.parent.is_dir():
            raise PathError(f"{path} cannot be written: its folder {path.parent} does not exist.") from None
        return
    except OSError as e:
        raise PathError(f"{path} cannot be used ({e.strerror}).") from None
    if not stat.S_ISREG(mode):
        raise PathError(f"{path} exists and is {_kind(mode)}, not a regular file; fmnist only replaces regular "
                        "files, so remove it or choose another name.")  # fmt: skip


class NotRegularFile(PathError):
    """An input path is not a regular file (a folder, a FIFO, a device, a socket); kind names what it is."""

    def __init__(self, path: Path, kind: str) -> None:
        super().__init__(f"{path} is {kind}, not a regular file.")
        self.path, self.kind = path, kind


class TooLarge(PathError):
    """An input file is larger than anything fmnist writes under its name; limit is the bound in bytes."""

    def __init__(self, path: Path, limit: int) -> None:
        super().__init__(f"{path} is larger than {limit:,} bytes.")
        self.path, self.limit = path, limit


def read_bounded(path: Path, limit: int) -> bytes:
    """The whole content of the regular file path (symbolic links followed), at most limit bytes.

    NotRegularFile for a folder, FIFO, device or socket (opened without blocking, never read),
    TooLarge beyond limit (also when the file grows while it is read); OSError as open() raises it
    (FileNotFoundError, PermissionError...).
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)  # a FIFO's open would wait for a writer
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise NotRegularFile(path, _kind(mode))
        chunks, size = [], 0
        while size <= limit and (chunk := os.read(fd, min(limit + 1 - size, 1 << 24))):
            chunks.append(chunk)
            size += len(chunk)
    finally:
        os.close(fd)
    if size > limit:
        raise TooLarge(path, limit)
    return b"".join(chunks)


def _kind(mode: int) -> str:
    kinds = ((stat.S_ISDIR, "a folder"), (stat.S_ISLNK, "a symbolic link"), (stat.S_ISFIFO, "a FIFO"),
             (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
             (stat.S_ISSOCK, "a socket"))  # fmt: skip
    return next((name for test, name in kinds if test(mode)), "not a regular file")


@contextmanager
def atomic_writer(path: Path, check: Callable[[Path], None] | None = None) -> Iterator[BinaryIO]:
    """An open binary file whose content replaces path only when the with-block ends without error.

    The content goes to a temporary file in path's folder, made with the permissions of any new
    file, flushed to disk, optionally checked by check(temporary path), then renamed onto path.
    File-system errors name path, never the temporary file.
    """
    check_output(path)
    fd, tmp_name = _on_path(path, tempfile.mkstemp, prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(fd, 0o666 & ~_UMASK)  # mkstemp makes 0600; give the usual permissions of a new file
            yield f
            _on_path(path, f.flush)
            _on_path(path, os.fsync, f.fileno())
        if check is not None:
            check(tmp)
        check_output(path)  # it may have changed while we wrote
        _on_path(path, os.replace, tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _on_path(path, _fsync_folder, path.parent)  # so that the rename itself survives a crash


def _temporary_name(path: Path) -> re.Pattern:
    """The names atomic_writer's temporary files for path take (tempfile.mkstemp's 8 random characters)."""
    return re.compile(rf"\.{re.escape(path.name)}\.[a-z0-9_]{{8}}\.tmp")


def remove_leftovers(folder: Path, names: Iterable[str]) -> None:
    """Remove from folder the temporary files of writes of the files names that a kill cut short: regular files
    named as atomic_writer names them, never a folder or a link of that name. Call it only while holding the
    folder's lock (exclusive), so that no write in progress loses its file."""
    patterns = [_temporary_name(folder / name) for name in names]
    for entry in os.scandir(folder):
        if entry.is_file(follow_symlinks=False) and any(p.fullmatch(entry.name) for p in patterns):
            _on_path(Path(entry.path), os.unlink, entry.path)


def writable(folder: Path) -> bool:
    """True when a file can be created in folder (tried for real: permissions alone do not tell for root,
    nor on a read-only mount)."""
    try:
        with tempfile.TemporaryFile(dir=folder):
            return True
    except OSError:
        return False


def write_atomic(path: Path, data: bytes) -> None:
    """Write data to path via a temporary file in the same folder, fsync, then rename (see atomic_writer)."""
    with atomic_writer(path) as f:
        _on_path(path, f.write, data)


def check_out_folder(path: Path) -> None:
    """PathError when path, named by --out, exists and is not a folder."""
    if path.exists() and not path.is_dir():
        raise PathError(f"{path} exists and is not a folder; choose a folder for --out.")


def make_out_folder(path: Path) -> None:
    """Make the folder path named by --out (and its parents); PathError as check_out_folder says."""
    check_out_folder(path)
    path.mkdir(parents=True, exist_ok=True)


def write_json(path: Path, obj: object) -> None:
    """Write obj as indented JSON (no NaN or infinity), atomically."""
    write_atomic(path, (json.dumps(obj, indent=2, allow_nan=False) + "\n").encode())


def _on_path(path: Path, operation: Callable, *args: object, **kwargs: object) -> object:
    """operation(*args, **kwargs), with an OSError re-raised as one about path."""
    try:
        return operation(*args, **kwargs)
    except OSError as e:
        raise OSError(e.errno, e.strerror, str(path)) from None


def _fsync_folder(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def exclusive(folder: Path) -> Iterator[None]:
    """Hold an exclusive lock on the existing folder (an flock on the folder itself, which the system
    releases when the process ends, even by kill -9); PathError at once when another process holds it."""
    try:
        fd = _on_path(folder, os.open, folder, os.O_RDONLY | os.O_DIRECTORY)
    except NotADirectoryError:
        raise PathError(f"{folder} is not a folder; choose a folder for the run directory.") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise OSError(e.errno, e.strerror, str(folder)) from None
            raise PathError(f"{folder} is in use by another fmnist command (train, tune, eval or compare writing into "
                            "it); wait until it ends, or choose another folder.") from None  # fmt: skip
        yield
    finally:
        os.close(fd)


@contextmanager
def uninterrupted() -> Iterator[None]:
    """Hold back Ctrl-C, SIGTERM and SIGHUP during the block, for steps that must be done together (files that
    change together, imports that must not be left half done): the first is noted, and handled as it would have been
    once the block ends. Signal handlers belong to the main thread, so elsewhere this does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[tuple[int, object]] = []
    previous = {signum: signal.signal(signum, lambda signum, frame: caught.append((signum, frame)))
                for signum in STOP_SIGNALS}  # fmt: skip
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, signal.SIG_DFL if handler is None else handler)
    if caught:
        signum, frame = caught[0]
        if callable(previous[signum]):
            previous[signum](signum, frame)
        elif previous[signum] in (signal.SIG_DFL, None):
            os.kill(os.getpid(), signum)


def _read_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _read_umask()  # read once at import: setting it briefly is not safe once threads run
