"""Every output of eval and compare --out is checked before any work, so before any is written: one that is
not a regular file (here a symbolic link) is refused with every file as it was (issue 18, item 10)."""

from __future__ import annotations

from pathlib import Path

import pytest
from runfolders import copy_run, one_line_error, snapshot

from fmnist import cli


def _link(path: Path, target: Path) -> None:
    path.unlink(missing_ok=True)
    target.write_text("the link's target")
    path.symlink_to(target)


@pytest.mark.parametrize("output", ["report.html", "weights.png", "summary.json"])
def test_eval_checks_every_output_before_it_writes_one(small_data, trained, tmp_path, capsys, output):
    run = copy_run(trained("sgd"), tmp_path / "run")
    target = tmp_path / "target"
    _link(run / output, target)
    before = snapshot(run)
    assert cli.main(["eval", str(run)]) == 1
    err = capsys.readouterr().err
    one_line_error(err)
    assert f"{run / output} exists and is a symbolic link, not a regular file" in err
    assert snapshot(run) == before and target.read_text() == "the link's target"


@pytest.mark.parametrize("output", ["compare.html", "compare.png"])
def test_compare_checks_both_outputs_before_it_writes_one(small_data, trained, tmp_path, capsys, output):
    run, folder = copy_run(trained("sgd"), tmp_path / "run"), tmp_path / "compared"
    folder.mkdir()
    target = tmp_path / "target"
    _link(folder / output, target)
    before = snapshot(folder)
    assert cli.main(["compare", str(run), str(run), f"--out={folder}"]) == 1
    out, err = capsys.readouterr()
    one_line_error(err)
    assert f"{folder / output} exists and is a symbolic link, not a regular file" in err
    assert out == ""  # refused before the runs were scored and their tables printed
    assert snapshot(folder) == before and target.read_text() == "the link's target"


def test_compare_refuses_an_out_that_is_not_a_folder_before_any_work(small_data, trained, tmp_path, capsys):
    run, mine = copy_run(trained("sgd"), tmp_path / "run"), tmp_path / "notes.txt"
    mine.write_text("mine")
    assert cli.main(["compare", str(run), str(run), f"--out={mine}"]) == 1
    out, err = capsys.readouterr()
    one_line_error(err)
    assert f"{mine} exists and is not a folder" in err and out == ""
    assert mine.read_text() == "mine"
