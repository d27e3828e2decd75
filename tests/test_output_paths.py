"""Outputs are regular files in the formats their names say, written atomically; errors name the user's path."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from runfolders import one_line_error, snapshot

from fmnist import cli


def _make(kind: str, path: Path, target: Path) -> None:
    if kind == "a FIFO":
        os.mkfifo(path)
    elif kind == "a symbolic link":
        target.write_bytes(b"the link's target")
        path.symlink_to(target)
    elif kind == "a folder":
        path.mkdir()
    else:  # a character device: a copy of /dev/null's node (root only)
        try:
            os.mknod(path, stat.S_IFCHR | 0o666, os.makedev(1, 3))
        except PermissionError:
            pytest.skip("making a device node needs root")


def _unchanged(kind: str, path: Path, target: Path) -> None:
    mode = os.lstat(path).st_mode
    tests = {"a FIFO": stat.S_ISFIFO, "a symbolic link": stat.S_ISLNK, "a folder": stat.S_ISDIR,
             "a character device": stat.S_ISCHR}  # fmt: skip
    assert tests[kind](mode)
    if kind == "a symbolic link":
        assert target.read_bytes() == b"the link's target"


KINDS = ["a FIFO", "a symbolic link", "a folder", "a character device"]


@pytest.mark.parametrize("kind", KINDS)
def test_show_and_predict_refuse_an_output_that_is_not_a_regular_file(run_dir, tmp_path, capsys, kind):
    path, target = tmp_path / "picture.png", tmp_path / "target.png"
    _make(kind, path, target)
    for args in (["show", "--out", str(path)], ["predict", str(run_dir), "--test-index", "0", "--plot", str(path)]):
        assert cli.main(args) == 1
        out, err = capsys.readouterr()
        one_line_error(err)
        assert f"{path} exists and is {kind}, not a regular file" in err and out == ""
        _unchanged(kind, path, target)


@pytest.mark.parametrize("kind", KINDS)
def test_run_files_that_are_not_regular_files_are_refused_before_any_work(run_dir, tmp_path, capsys, kind):
    path, target = run_dir / "curves.png", tmp_path / "target.png"
    path.unlink()
    _make(kind, path, target)
    before = snapshot(run_dir)
    for args in (["eval", str(run_dir)], ["train", "--out", str(run_dir), "--force"],
                 ["train", "--out", str(run_dir), "--resume", "--epochs", "2"]):  # fmt: skip
        assert cli.main(args) == 1
        err = capsys.readouterr().err
        one_line_error(err)
        assert f"{path} exists and is {kind}, not a regular file" in err
        _unchanged(kind, path, target)
        assert snapshot(run_dir) == before


@pytest.mark.parametrize("suffix, magic", [(".png", b"\x89PNG"), (".jpg", b"\xff\xd8\xff"), (".JPEG", b"\xff\xd8\xff"),
                                           (".pdf", b"%PDF"), (".svg", b"<?xml")])  # fmt: skip
def test_pictures_are_written_in_the_format_their_name_says(small_data, tmp_path, suffix, magic):
    path = tmp_path / f"grid{suffix}"
    assert cli.main(["show", "--n", "4", "--out", str(path)]) == 0
    assert path.read_bytes().startswith(magic)


@pytest.mark.parametrize("name", ["grid.txt", "grid", "grid.png.bak", "grid.gif"])
def test_a_picture_name_without_a_format_matplotlib_writes_is_refused(small_data, tmp_path, capsys, name):
    with pytest.raises(SystemExit) as stop:
        cli.main(["show", "--out", str(tmp_path / name)])
    assert stop.value.code == 2 and "does not end in .png" in capsys.readouterr().err
    assert not (tmp_path / name).exists()


def test_file_system_errors_name_the_users_path_not_a_temporary_one(small_data, tmp_path, capsys, monkeypatch):
    def full(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    path = tmp_path / "grid.png"
    assert cli.main(["show", "--out", str(path)]) == 1
    err = capsys.readouterr().err
    assert err == f"fmnist: error: {path}: No space left on device; check the path and the free space.\n"
    assert list(tmp_path.glob(".*")) == []  # the temporary file is gone too


def test_predict_plot_draws_at_most_100_rows(run_dir, capsys):
    indices = [str(i) for i in range(101)]
    assert cli.main(["predict", str(run_dir), "--test-index", *indices, "--plot", "p.png"]) == 2
    assert "--plot draws at most 100 images" in capsys.readouterr().err
