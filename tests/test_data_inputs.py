"""What fmnist.data reads from outside: bounded in size, only regular files, and a cache where one may be."""

from __future__ import annotations

import gzip
import os
import pwd
import re
import shutil
import subprocess
import sys
import tempfile
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import gzip_bomb

from fmnist import data

STRANGER = 12345  # a user id without an entry in the user database


def _peak_bytes(action) -> int:
    """The most memory Python objects held while action() ran, in bytes."""
    tracemalloc.start()
    try:
        action()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def _refused(folder: Path, message: str) -> None:
    with pytest.raises(data.DataError, match=message):
        data.load(folder)


# ---------------------------------------------------------------- bounded in size


@pytest.mark.parametrize("members", [1, 32])
def test_a_gzip_bomb_is_refused_without_unpacking_it(small_data, members):
    """32 MB of zeros in one gzip member, or in 32 of 1 MB (gzip reads every member of a file)."""
    bomb = gzip_bomb() if members == 1 else gzip.compress(bytes(1 << 20), 9) * members
    (small_data / data.FILES["train_images"].name).write_bytes(bomb)
    limit = data.FILES["train_images"].size
    peak = _peak_bytes(lambda: _refused(small_data, f"unpacks to more than the {limit:,} bytes of the official"))
    assert peak < 4e6


def test_a_gz_larger_than_a_gz_of_the_content_can_be_is_refused_unread(small_data):
    expected = data.FILES["test_labels"]
    (small_data / expected.name).write_bytes(os.urandom(expected.packed_limit + 1))
    _refused(small_data, f"is larger than a .gz of the official content can be \\({expected.packed_limit:,} bytes\\)")


def test_the_cache_copies_are_read_within_the_content_size(small_data):
    data.load(small_data)
    copy = next(c for c in (data.cache_dir() / "idx").iterdir() if c.stat().st_size == data.FILES["train_images"].size)
    with open(copy, "r+b") as f:
        f.truncate(256 << 20)  # the official content, then zeros: a sparse file of 256 MB
    data._load_folder.cache_clear()
    assert _peak_bytes(lambda: data.load(small_data)) < 8e6
    assert copy.stat().st_size == data.FILES["train_images"].size  # mended


# ---------------------------------------------------------------- only regular files


def _special(path: Path, kind: str) -> None:
    """Put a FIFO or (a symbolic link to) a character device at path."""
    path.unlink()
    if kind == "FIFO":
        os.mkfifo(path)
    else:
        path.symlink_to("/dev/zero")  # read, it never ends


@pytest.mark.parametrize("kind", ["FIFO", "character device"])
def test_a_data_file_that_is_not_a_regular_file_is_named_and_never_read(small_data, kind):
    victim = small_data / data.FILES["train_labels"].name
    _special(victim, kind)
    _refused(small_data, re.escape(f"{victim} is a {kind}, not a regular file; remove it, then run `fmnist download "
                                   f"--data-dir={small_data}`"))  # fmt: skip


@pytest.mark.parametrize("kind", ["FIFO", "character device"])
def test_a_cache_copy_that_is_not_a_regular_file_is_passed_over(small_data, kind):
    expected = data.load(small_data).train_labels.tolist()
    for copy in (data.cache_dir() / "idx").iterdir():
        _special(copy, kind)
    data._load_folder.cache_clear()
    assert data.load(small_data).train_labels.tolist() == expected


def test_a_symbolic_link_to_a_good_file_is_accepted(small_data, tmp_path):
    victim = small_data / data.FILES["train_images"].name
    victim.rename(tmp_path / "elsewhere.gz")
    victim.symlink_to(tmp_path / "elsewhere.gz")
    assert data.load(small_data).train_images.shape == (200, 1, 28, 28)


# ---------------------------------------------------------------- as a user without a home, or access


@pytest.fixture
def shared_copy(small_data) -> Iterator[Path]:
    """A copy of the small dataset in a folder every user may read and write (tmp_path is root's alone)."""
    top = Path(tempfile.mkdtemp(prefix="fmnist-shared-"))
    try:
        top.chmod(0o777)
        shutil.copytree(small_data, top / "data")
        for path in (top / "data", *(top / "data").iterdir()):
            path.chmod(0o755 if path.is_dir() else 0o644)
        yield top / "data"
    finally:
        shutil.rmtree(top)


def _as_stranger(*args: str) -> tuple[int, str, str]:
    """`fmnist ARGS` on the small dataset as a user without a passwd entry, without HOME or XDG_CACHE_HOME.

    The child starts as root and imports fmnist first, then changes user: the interpreter here lives under
    /root, which no other user may enter."""
    if os.getuid() != 0:
        pytest.skip("changing to another user needs root")
    assert STRANGER not in {entry.pw_uid for entry in pwd.getpwall()}
    script = Path(__file__).with_name("small_fmnist.py")
    change_user = (f"import json, os, runpy, sys, fmnist.cli, fmnist.data; os.setgroups([]); os.setgid({STRANGER}); "
                   f"os.setuid({STRANGER}); sys.argv[0] = {str(script)!r}; runpy.run_path(sys.argv[0], "
                   "run_name='__main__')")  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k not in ("HOME", "XDG_CACHE_HOME", "FMNIST_DATA")}
    run = subprocess.run([sys.executable, "-c", change_user, *args], env=env, capture_output=True, text=True,
                         timeout=120)  # fmt: skip
    return run.returncode, run.stdout, run.stderr


def test_a_user_without_home_or_passwd_entry_uses_the_data_folder_named(shared_copy):
    code, stdout, stderr = _as_stranger("download", "--data-dir", str(shared_copy))
    assert code == 0 and f"ready in {shared_copy}" in stdout, stderr


def test_a_data_folder_that_may_not_be_read_is_named_so(shared_copy):
    shared_copy.chmod(0o000)
    code, stdout, stderr = _as_stranger("download", "--data-dir", str(shared_copy))
    assert code == 1 and stderr == (f"fmnist: error: the data folder {shared_copy} cannot be read (Permission denied);"
                                    " check its permissions, or pass another folder with --data-dir.\n")  # fmt: skip


@pytest.fixture
def no_home(monkeypatch):
    """No HOME, no XDG_CACHE_HOME, and no entry in the user database (as in a container run with a bare uid)."""
    monkeypatch.delenv("HOME", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)

    def no_entry(uid):
        raise KeyError(f"getpwuid(): uid not found: {uid}")

    monkeypatch.setattr(pwd, "getpwuid", no_entry)


def test_without_a_cache_folder_the_system_folder_is_still_used(no_home, small_data, monkeypatch):
    monkeypatch.delenv("FMNIST_DATA")
    monkeypatch.setattr(data, "SYSTEM_DIR", small_data)
    assert data.load().folder == small_data.resolve()


def test_without_a_cache_folder_or_system_files_the_message_says_so(no_home, small_data, tmp_path, monkeypatch):
    monkeypatch.delenv("FMNIST_DATA")
    monkeypatch.setattr(data, "SYSTEM_DIR", tmp_path / "nothing")
    message = ("fmnist has no cache folder: $XDG_CACHE_HOME is not an absolute path and $HOME is not set and this user "
               "has no home folder; set either to an absolute path, or pass --data-dir.")  # fmt: skip
    for action in (data.load, data.cache_dir, lambda: data.locate(download_missing=False)):
        with pytest.raises(data.DataError, match=re.escape(message)):
            action()


def test_a_relative_home_gives_no_cache_folder(small_data, tmp_path, monkeypatch):
    (tmp_path / "work").mkdir()
    monkeypatch.chdir(tmp_path / "work")
    monkeypatch.setenv("XDG_CACHE_HOME", "cache")
    monkeypatch.setenv("HOME", "home")
    with pytest.raises(data.DataError, match=re.escape("$XDG_CACHE_HOME is not an absolute path and $HOME is not an "
                                                       "absolute path; set either")):  # fmt: skip
        data.cache_dir()
    assert data.load(small_data).folder == small_data.resolve()  # a named folder needs no cache
    assert list((tmp_path / "work").iterdir()) == []


def test_a_tilde_without_a_home_is_one_sentence(no_home, small_data):
    with pytest.raises(data.DataError, match=re.escape("~/data starts with a ~ that names no home folder")):
        data.load("~/data")


def test_a_relative_xdg_cache_home_is_ignored(small_data, tmp_path, monkeypatch):
    """The XDG Base Directory spec: a relative path is invalid, and ignored."""
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/cache")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    (tmp_path / "work").mkdir()
    monkeypatch.chdir(tmp_path / "work")
    data.load(small_data)
    assert list((tmp_path / "work").iterdir()) == []
    assert len(list((tmp_path / "home" / ".cache" / "fmnist" / "idx").iterdir())) == 4

