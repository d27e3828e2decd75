"""Your files are yours, fmnist's leftovers are fmnist's to clean: a file that only looks like fmnist's
temporary file is not taken for one, a folder or link of such a name is never touched, and the temporary
files of a killed train, eval or compare --out are removed by the next command on that folder, under its
lock (issue 18, item 8)."""

from __future__ import annotations

import os

import pytest
from runfolders import copy_run, no_results, one_line_error, snapshot

from fmnist import cli, fileio
from fmnist.rundir import CHECKPOINT

IN_USE = "is in use by another fmnist command"


@pytest.mark.parametrize("name", [".metrics.csv.abcd1234.tmp", ".config.json.tmp", ".report.html.mine.tmp"])
def test_a_folder_holding_only_a_file_named_like_a_leftover_is_not_empty(small_data, tmp_path, capsys, name):
    out = tmp_path / "mine"
    out.mkdir()
    (out / name).write_text("my notes")
    before = snapshot(out)
    assert cli.main(["train", f"--out={out}", "--epochs", "1"]) == 1
    err = capsys.readouterr().err
    one_line_error(err)
    assert f"{out} is not empty (it holds {name})" in err and "--force" in err
    assert snapshot(out) == before


@pytest.mark.parametrize("how", ["--force", "--resume"])
def test_only_regular_files_named_as_fmnists_temporary_files_are_removed(small_data, trained, tmp_path, capsys,
                                                                        monkeypatch, how):  # fmt: skip
    run = copy_run(trained("sgd"), tmp_path / "run")
    outside = tmp_path / "elsewhere.txt"
    outside.write_text("the link's target")
    leftover = run / ".metrics.csv.k3x_9a0b.tmp"  # as tempfile.mkstemp names a write of metrics.csv
    leftover.write_text("half an epoch")
    (run / ".model.safetensors.abcd1234.tmp").mkdir()  # a folder of that name, and what it holds
    (run / ".model.safetensors.abcd1234.tmp" / "inside.txt").write_text("mine")
    (run / f".{CHECKPOINT}.abcd1234.tmp").symlink_to(outside)  # a link of that name
    yours = {".metrics.csv.mine.tmp": b"not 8 characters", ".notes.txt.abcd1234.tmp": b"not fmnist's file name",
             ".metrics.csv.ABCD1234.tmp": b"mkstemp writes no capitals", ".metrics.csv.abcd1234.tmp.bak": b"a copy"}
    for name, content in yours.items():
        (run / name).write_bytes(content)
    no_results(monkeypatch)  # the pictures are another test's
    args = ["--force", "--epochs", "1", "--seed", "4"] if how == "--force" else ["--resume", "--epochs", "2"]
    assert cli.main(["train", f"--out={run}", *args]) == 0, capsys.readouterr().err
    assert not leftover.exists()
    assert (run / ".model.safetensors.abcd1234.tmp" / "inside.txt").read_text() == "mine"
    assert os.readlink(run / f".{CHECKPOINT}.abcd1234.tmp") == str(outside)
    assert outside.read_text() == "the link's target"
    assert {name: (run / name).read_bytes() for name in yours} == yours


LEFTOVERS = {  # a killed command's temporary files, by the folder they are left in
    "eval": [".report.html.abcd1234.tmp", ".summary.json.q_w3e4r5.tmp", ".weights.png.zz9y8x7w.tmp"],
    "compare --out": [".compare.png.abcd1234.tmp", ".compare.html.abcd1234.tmp"],
}


@pytest.mark.parametrize("command", list(LEFTOVERS))
def test_eval_and_compare_remove_the_leftovers_of_their_own_killed_writes(small_data, trained, tmp_path, capsys,
                                                                         command):  # fmt: skip
    run = copy_run(trained("sgd"), tmp_path / "run")
    folder = run if command == "eval" else tmp_path / "compared"
    folder.mkdir(exist_ok=True)
    for name in LEFTOVERS[command]:
        (folder / name).write_bytes(b"cut short by kill -9")
    (folder / ".report.html.mine.tmp").write_text("mine")
    args = ["eval", str(run)] if command == "eval" else ["compare", str(run), str(run), f"--out={folder}"]
    assert cli.main(args) == 0, capsys.readouterr().err
    held = {p.name for p in folder.iterdir()}
    assert not held & set(LEFTOVERS[command]) and ".report.html.mine.tmp" in held


def test_compare_takes_the_lock_of_its_out_folder(small_data, trained, tmp_path, capsys):
    run, folder = copy_run(trained("sgd"), tmp_path / "run"), tmp_path / "compared"
    folder.mkdir()
    with fileio.exclusive(folder):  # another compare writing there
        assert cli.main(["compare", str(run), str(run), f"--out={folder}"]) == 1
    err = capsys.readouterr().err
    one_line_error(err)
    assert f"{folder} {IN_USE}" in err
    assert list(folder.iterdir()) == []
