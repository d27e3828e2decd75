"""Every output of eval and compare --out is checked before any is written: one that is not a regular file
(here a symbolic link) is refused with every file as it was (issue 18, item 10)."""

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
    err = capsys.readouterr().err
    one_line_error(err)
    assert f"{folder / output} exists and is a symbolic link, not a regular file" in err
    assert snapshot(folder) == before and target.read_text() == "the link's target"
