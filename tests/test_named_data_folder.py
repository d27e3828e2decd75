"""The data folder a user names is the one used, or the command stops naming what is wrong there."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from runfolders import one_line_error, read_only

from fmnist import cli, data


def _broken_copies(small_data: Path, root: Path) -> dict[str, tuple[Path, str]]:
    """Folders that do not hold the four files, each with what the error must say about it."""
    names = [f.name for f in data.FILES.values()]
    cases = {}
    for case in ("three of four", "a folder in place of a file", "decompressed"):
        folder = root / case.replace(" ", "-")
        shutil.copytree(small_data, folder)
        victim = folder / names[3]
        victim.unlink()
        if case == "a folder in place of a file":
            victim.mkdir()
        elif case == "decompressed":
            victim.with_suffix("").write_bytes(b"\0\0\x08\x01\0\0\0\x00")
        problem = {"three of four": "is missing", "a folder in place of a file": "is a folder",
                   "decompressed": "is there only decompressed"}[case]  # fmt: skip
        cases[case] = (folder, f"{names[3]} {problem}")
    cases["a path that does not exist"] = (root / "nowhere", "does not exist")
    return cases


@pytest.mark.parametrize("how", ["--data-dir", "FMNIST_DATA"])
def test_a_named_data_folder_is_the_one_used_or_the_command_stops(small_data, tmp_path, capsys, monkeypatch, how):
    for case, (folder, problem) in _broken_copies(small_data, tmp_path / "data").items():
        out = tmp_path / f"run-{case}"
        args = ["train", "--out", str(out), "--epochs", "1"]
        if how == "--data-dir":
            args += ["--data-dir", str(folder)]
        else:
            monkeypatch.setenv("FMNIST_DATA", str(folder))
        assert cli.main(args) == 1, case
        err = capsys.readouterr().err
        one_line_error(err)
        assert str(folder) in err and problem in err, err
        assert f"fmnist download --data-dir={folder}" in err
        assert not (out / "config.json").exists()  # no run was made from another folder's data


def test_a_damaged_file_in_a_named_folder_names_that_folder(small_data, capsys):
    victim = small_data / data.FILES["test_labels"].name
    victim.write_bytes(victim.read_bytes()[:-4])
    assert cli.main(["show", "--data-dir", str(small_data)]) == 1
    err = capsys.readouterr().err
    assert str(victim) in err and f"fmnist download --data-dir={small_data}" in err


@pytest.mark.slow
def test_download_verifies_a_complete_folder_it_cannot_write(small_data):
    done = read_only(small_data, "download", "--data-dir", str(small_data))  # a shared read-only copy
    assert done.returncode == 0 and f"ready in {small_data}" in done.stdout, done.stderr
    (small_data / data.FILES["test_labels"].name).unlink()
    done = read_only(small_data, "download", "--data-dir", str(small_data))
    assert done.returncode == 1 and f"cannot write into {small_data}" in done.stderr
