"""Downloads against a local HTTP server on 127.0.0.1: good, missing, refused, cut and wrong files."""

from __future__ import annotations

import errno
import gzip
import os
import re
import shlex
import shutil
import signal
import socket
import ssl
import stat
import subprocess
import threading
import time
import tracemalloc
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from conftest import gzip_bomb, small_fmnist

from fmnist import cli, data


class Mirror:
    """Serves files under /good/, a 404 under /missing/, half of each under /cut/
    (Content-Length promises all of it) and other valid gzip content under /bad/. Hostile ones:
    /bomb/ a small .gz that unpacks to 32 MB, /endless/ zeros without Content-Length,
    /toolong/ a Content-Length of a terabyte, /slow/ one byte of the file every 50 ms and
    /slowstart/ the same from the status line on; the last three give up after 10 s, so that a
    client without a time limit fails rather than hangs."""

    def __init__(self, files: dict[str, bytes], tls: ssl.SSLContext | None = None) -> None:
        self.files, self.requests, self.trickled = files, [], 0
        mirror = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                mirror.requests.append(self.path)
                _, kind, name = self.path.split("/", 2)
                body = mirror.files.get(name)
                if kind == "missing" or body is None:
                    self.send_error(404)
                    return
                try:
                    self.send(kind, body)
                except OSError:  # the client hung up, as it should on hostile mirrors
                    pass

            def send(self, kind: str, body: bytes) -> None:
                if kind == "slowstart":
                    self.trickle(b"HTTP/1.0 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
                    return
                body = {"bad": gzip.compress(b"\0\0\x08\x01\0\0\0\x01\x07"), "bomb": gzip_bomb()}.get(kind, body)
                self.send_response(200)
                if kind != "endless":
                    self.send_header("Content-Length", str(10**12 if kind == "toolong" else len(body)))
                self.end_headers()
                if kind == "endless":
                    for _ in range(1024):  # 64 MB
                        self.wfile.write(bytes(1 << 16))
                elif kind == "slow":
                    self.trickle(body)
                else:
                    self.wfile.write(body[: len(body) // 2] if kind == "cut" else body)

            def trickle(self, data: bytes) -> None:
                started = time.monotonic()
                for i in range(len(data)):
                    if time.monotonic() - started > 10:
                        return
                    self.wfile.write(data[i : i + 1])
                    self.wfile.flush()
                    mirror.trickled += 1
                    time.sleep(0.05)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        if tls is not None:
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{self.server.server_port}"
        # serve_forever checks for shutdown every poll_interval: its default, 0.5 s, was paid by every test
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _serve(monkeypatch, folder: Path, *kinds: str) -> Mirror:
    mirror = Mirror({f.name: (folder / f.name).read_bytes() for f in data.FILES.values()})
    monkeypatch.setenv("FMNIST_MIRRORS", " ".join(f"{mirror.url}/{k}/" for k in kinds))
    return mirror


@pytest.fixture
def mirror_of_small(small_data, monkeypatch):
    """Yields a function that starts a mirror of the small dataset with the given mirror kinds."""
    mirrors = []
    yield lambda *kinds: mirrors.append(_serve(monkeypatch, small_data, *kinds)) or mirrors[-1]
    for m in mirrors:
        m.close()


def _refused_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/"  # nothing listens there any more


def test_download_fetches_and_verifies_all_files(mirror_of_small, small_arrays, tmp_path):
    mirror_of_small("good")
    target = data.download(tmp_path / "dl")
    assert sorted(p.name for p in target.iterdir()) == sorted(f.name for f in data.FILES.values())
    assert data.load(target).train_labels.tolist() == small_arrays["train_labels"].tolist()


def test_download_moves_on_from_missing_and_refused_mirrors(mirror_of_small, monkeypatch, tmp_path):
    mirror = mirror_of_small("missing", "good")
    monkeypatch.setenv("FMNIST_MIRRORS", f"{_refused_url()} {mirror.url}/missing/ {mirror.url}/good/")
    data.download(tmp_path / "dl")
    assert data.has_all_files(tmp_path / "dl")
    assert sum(r.startswith("/missing/") for r in mirror.requests) == 4


@pytest.mark.parametrize("kind, reason", [("cut", "cut off"), ("bad", "does not have the official content")])
def test_broken_transfers_leave_nothing_behind(mirror_of_small, tmp_path, kind, reason):
    mirror_of_small(kind)
    with pytest.raises(data.DataError, match=reason) as info:
        data.download(tmp_path / "dl")
    assert "train-images-idx3-ubyte.gz" in str(info.value) and "--data-dir" in str(info.value)
    assert list((tmp_path / "dl").iterdir()) == []


def test_verified_files_are_not_fetched_again_unless_forced(mirror_of_small, tmp_path):
    mirror = mirror_of_small("good")
    data.download(tmp_path / "dl")
    data.download(tmp_path / "dl")
    assert len(mirror.requests) == 4
    data.download(tmp_path / "dl", force=True)
    assert len(mirror.requests) == 8


def test_a_damaged_file_is_replaced(mirror_of_small, tmp_path):
    mirror_of_small("good")
    folder = data.download(tmp_path / "dl")
    victim = folder / data.FILES["test_labels"].name
    victim.write_bytes(b"garbage")
    data.download(folder)
    assert data.load(folder).test_labels.shape == (100,)


def test_locate_downloads_into_the_cache_when_no_folder_has_the_files(mirror_of_small, monkeypatch, tmp_path):
    mirror_of_small("good")
    monkeypatch.delenv("FMNIST_DATA")
    monkeypatch.setattr(data, "SYSTEM_DIR", tmp_path / "no-such-dir")
    assert data.locate() == data.cache_dir()
    assert data.has_all_files(data.cache_dir())


def test_cli_download_reports_the_folder(mirror_of_small, tmp_path, capsys):
    mirror_of_small("good")
    assert cli.main(["download", "--data-dir", str(tmp_path / "dl")]) == 0
    assert str(tmp_path / "dl") in capsys.readouterr().out


def test_cli_download_failure_is_one_line(mirror_of_small, tmp_path, capsys):
    mirror_of_small("cut")
    assert cli.main(["download", "--data-dir", str(tmp_path / "dl")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("fmnist: error: could not download") and err.count("\n") == 1


def test_download_of_the_real_files_verifies_against_the_official_checksums(real_dir, monkeypatch, tmp_path):
    mirror = _serve(monkeypatch, real_dir, "good")
    try:
        folder = data.download(tmp_path / "dl")
    finally:
        mirror.close()
    for f in data.FILES.values():
        assert (folder / f.name).read_bytes() == (real_dir / f.name).read_bytes()
    assert data.load(folder).train_images.shape == (60000, 1, 28, 28)


def test_a_full_disk_leaves_nothing_behind(mirror_of_small, tmp_path, monkeypatch):
    mirror_of_small("good")

    class FullDisk:
        def __init__(self, file):
            self.file = file

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.file.close()

        def write(self, chunk):
            raise OSError(errno.ENOSPC, "No space left on device")

    real_fdopen = os.fdopen
    monkeypatch.setattr(os, "fdopen", lambda fd, mode: FullDisk(real_fdopen(fd, mode)))
    with pytest.raises(data.DataError, match="No space left on device"):
        data.download(tmp_path / "dl")
    assert list((tmp_path / "dl").iterdir()) == []


def test_two_processes_downloading_into_one_folder_both_succeed(mirror_of_small, tmp_path):
    mirror = mirror_of_small("good")
    runs = [small_fmnist("download", "--data-dir", str(tmp_path / "dl")) for _ in range(2)]
    for run in runs:
        stdout, stderr = run.communicate(timeout=120)
        assert run.returncode == 0, stderr
    assert len(mirror.requests) >= 4
    assert sorted(p.name for p in (tmp_path / "dl").iterdir()) == sorted(f.name for f in data.FILES.values())
    data.load(tmp_path / "dl")  # every file verifies


def test_a_malformed_mirror_address_is_a_clean_error(small_data, tmp_path, monkeypatch):
    monkeypatch.setenv("FMNIST_MIRRORS", "not-a-url/")
    with pytest.raises(data.DataError, match="could not download"):
        data.download(tmp_path / "dl")


def test_downloaded_files_get_the_permissions_of_any_new_file(mirror_of_small, tmp_path):
    mirror_of_small("good")
    folder = data.download(tmp_path / "dl")
    with open(tmp_path / "made-by-open", "w"):
        pass
    expected = stat.S_IMODE((tmp_path / "made-by-open").stat().st_mode)
    assert expected & 0o044  # readable by others under the usual umask, unlike mkstemp's 0600
    assert {stat.S_IMODE(p.stat().st_mode) for p in folder.iterdir()} == {expected}


@pytest.mark.parametrize("how", ["--data-dir", "FMNIST_DATA"])
@pytest.mark.parametrize("damage", ["missing", "truncated", "a folder"])
def test_the_advice_for_a_named_folder_repairs_that_folder(mirror_of_small, small_data, tmp_path, capsys,
                                                          monkeypatch, how, damage):  # fmt: skip
    mirror_of_small("good")
    folder = tmp_path / "my data"
    shutil.copytree(small_data, folder)
    victim = folder / data.FILES["train_images"].name
    if damage == "truncated":
        victim.write_bytes(victim.read_bytes()[:-10])
    else:
        victim.unlink()
        if damage == "a folder":
            victim.mkdir()
    named = ["--data-dir", str(folder)] if how == "--data-dir" else []
    if how == "FMNIST_DATA":
        monkeypatch.setenv("FMNIST_DATA", str(folder))
    show = ["show", "--n", "2", "--out", str(tmp_path / "grid.png"), *named]
    assert cli.main(show) == 1
    err = capsys.readouterr().err
    advice = re.search(r"`(fmnist download [^`]*)`", err).group(1)
    if damage == "a folder":  # nothing replaces a folder silently: the message says to remove it first
        assert f"{victim.name} is a folder (remove it)" in err
        victim.rmdir()
    assert cli.main(shlex.split(advice)[1:]) == 0
    assert str(folder) in capsys.readouterr().out
    assert cli.main(show) == 0
    assert victim.is_file() and not data.has_all_files(data.cache_dir())  # repaired there, not in the cache


# ---------------------------------------------------------------- hostile mirrors: bounded in size and time


def _refused(folder: Path, reason: str) -> str:
    """download(folder), which must fail for reason, leaving folder empty; returns the message."""
    with pytest.raises(data.DataError, match=reason) as info:
        data.download(folder)
    assert list(folder.iterdir()) == []  # no temporary file left behind
    return str(info.value)


def test_a_mirror_offering_more_than_a_gz_can_take_is_refused_before_reading(mirror_of_small, tmp_path):
    mirror_of_small("toolong")
    limit = data.FILES["train_images"].packed_limit
    assert f"it offers 1,000,000,000,000 bytes, more than a .gz of this file can take ({limit:,})" in _refused(
        tmp_path / "dl", "offers")


def test_a_mirror_sending_more_than_a_gz_can_take_is_cut_off(mirror_of_small, tmp_path):
    mirror_of_small("endless")  # 64 MB of zeros, no Content-Length
    _refused(tmp_path / "dl", f"sent more than the {data.FILES['train_images'].packed_limit:,} bytes")


def test_a_gzip_bomb_from_a_mirror_is_refused_without_unpacking_it(mirror_of_small, tmp_path):
    mirror_of_small("bomb")
    gzip_bomb()  # made before measuring
    tracemalloc.start()
    try:
        _refused(tmp_path / "dl", f"the file unpacks to more than the {data.FILES['train_images'].size:,} bytes")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4e6  # the bomb unpacks to 32 MB


@pytest.mark.parametrize("kind", ["slow", "slowstart"])
def test_a_slow_mirror_is_given_up_at_the_time_limit(mirror_of_small, tmp_path, monkeypatch, kind):
    mirror_of_small(kind)  # one byte every 50 ms: of the file, or from the status line on
    monkeypatch.setenv("FMNIST_DOWNLOAD_SECONDS", "0.3")
    started = time.monotonic()
    _refused(tmp_path / "dl", re.escape("not done within 0.3 s (the limit of $FMNIST_DOWNLOAD_SECONDS)"))
    assert time.monotonic() - started < 2


@pytest.mark.parametrize("value", ["soon", "0", "-1", "nan", "inf", "1e7"])
def test_a_download_time_limit_that_is_not_a_time_is_one_sentence(mirror_of_small, tmp_path, monkeypatch, value):
    mirror = mirror_of_small("good")
    monkeypatch.setenv("FMNIST_DOWNLOAD_SECONDS", value)
    message = _refused(tmp_path / "dl", re.escape(f"$FMNIST_DOWNLOAD_SECONDS is {value!r}; set it to a number"))
    assert message.count(";") == 1 and mirror.requests == []


def test_only_http_and_https_mirrors_are_read(small_data, tmp_path, monkeypatch):
    """A file: mirror would be read with no time limit (a FIFO there never ends)."""
    (tmp_path / "local").mkdir()
    shutil.copy(small_data / data.FILES["train_images"].name, tmp_path / "local")
    monkeypatch.setenv("FMNIST_MIRRORS", (tmp_path / "local").as_uri() + "/")
    _refused(tmp_path / "dl", "unknown url type: file")


@pytest.fixture
def https_mirror(small_data, tmp_path, monkeypatch) -> Iterator:
    """Yields a function that starts an https mirror of the small dataset, with a certificate trusted for the
    test (made by the openssl command), with the given mirror kinds."""
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command makes the test's certificate")
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                    "-keyout", key, "-out", cert, "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True)  # fmt: skip
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(cert, key)
    mirrors = []

    def start(*kinds: str) -> Mirror:
        mirrors.append(Mirror({f.name: (small_data / f.name).read_bytes() for f in data.FILES.values()}, tls))
        monkeypatch.setenv("FMNIST_MIRRORS", " ".join(f"{mirrors[-1].url}/{k}/" for k in kinds))
        return mirrors[-1]

    yield start
    for m in mirrors:
        m.close()


def test_https_mirrors_are_read_and_given_up_at_the_time_limit_too(https_mirror, tmp_path, monkeypatch):
    https_mirror("good")
    assert data.has_all_files(data.download(tmp_path / "dl"))
    https_mirror("slow")
    monkeypatch.setenv("FMNIST_DOWNLOAD_SECONDS", "0.3")
    _refused(tmp_path / "dl2", re.escape("not done within 0.3 s"))


def test_ctrl_c_during_a_download_leaves_no_temporary_file(mirror_of_small, tmp_path):
    mirror = mirror_of_small("slow")
    folder = tmp_path / "dl"
    run = small_fmnist("download", "--data-dir", str(folder))
    try:
        deadline = time.monotonic() + 60
        # Interrupted while the temporary file fills.
        while not (mirror.trickled > 5 and any(folder.iterdir())):
            assert run.poll() is None and time.monotonic() < deadline, run.stderr.read()
            time.sleep(0.02)
        run.send_signal(signal.SIGINT)
        stdout, stderr = run.communicate(timeout=30)
    finally:
        run.kill()
    assert run.returncode == 130 and stderr.count("\n") == 1, stderr
    assert list(folder.iterdir()) == []


# ---------------------------------------------------------------- hints that work when pasted


@pytest.mark.parametrize("name", ["-dash", "two words", "it's", 'say "hi"', "$HOME", "back\\slash", "naïve ☃",
                                  "~tilde", "--data-dir=x"])  # fmt: skip
def test_the_repair_command_works_when_pasted_for_any_folder_name(mirror_of_small, small_data, tmp_path,
                                                                   monkeypatch, name):  # fmt: skip
    """The command in the message, run by bash as pasted, repairs the folder named relative to the current one."""
    mirror_of_small("good")
    monkeypatch.chdir(tmp_path)
    shutil.copytree(small_data, tmp_path / name)
    (tmp_path / name / data.FILES["test_labels"].name).unlink()
    with pytest.raises(data.DataError) as info:
        data.load(f"./{name}")
    pasted = re.search(r"`(fmnist download [^`]*)`", str(info.value)).group(1)
    as_bash_reads_it = subprocess.run(["bash", "-c", 'fmnist() { printf "%s\\0" "$@"; }; ' + pasted],
                                      capture_output=True, text=True, check=True).stdout.split("\0")[:-1]  # fmt: skip
    assert as_bash_reads_it == shlex.split(pasted)[1:]
    assert cli.main(as_bash_reads_it) == 0
    assert data.load(f"./{name}").test_labels.shape == (100,)
