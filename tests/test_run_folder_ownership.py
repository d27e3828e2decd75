"""One owner at a time, and nothing that is not fmnist's is replaced: the run folder's lock, and which
folders a run may take."""

from __future__ import annotations

import json
import signal
import threading
from pathlib import Path

import pytest
from conftest import quiet_train, small_fmnist, wait_for_line
from runfolders import one_line_error, rewrite_config, snapshot

from fmnist import cli, fileio, rundir
from fmnist.rundir import CHECKPOINT
from fmnist.settings import Config

IN_USE = "is in use by another fmnist command"



@pytest.mark.slow
def test_a_run_directory_has_one_owner_at_a_time(small_data, tmp_path):
    out = tmp_path / "run"
    owner = small_fmnist("train", "--out", str(out), "--epochs", "5000", "--batch-size", "10", "--seed", "0")
    wait_for_line(owner, "epoch   2/")
    drain = threading.Thread(target=owner.stdout.read, daemon=True)  # its epoch lines must not fill the pipe
    drain.start()
    for args in (["train", "--out", str(out), "--seed", "1"], ["train", "--out", str(out), "--force", "--seed", "1"],
                 ["train", "--out", str(out), "--resume", "--epochs", "6000"], ["eval", str(out)]):  # fmt: skip
        second = small_fmnist(*args)
        _, err = second.communicate(timeout=120)
        assert second.returncode == 1 and IN_USE in err, err
        one_line_error(err)
    owner.send_signal(signal.SIGINT)
    assert owner.wait(timeout=60) == 130
    drain.join(timeout=60)
    saved = rundir.read_checkpoint(out / CHECKPOINT)
    assert json.loads((out / "config.json").read_text())["seed"] == 0  # nothing of seed 1 got in
    assert rundir.read_metrics(out / "metrics.csv") == saved.rows

    # The lock goes with its process, even one killed without warning.
    owner = small_fmnist("train", "--out", str(out), "--resume")
    wait_for_line(owner, "epoch")
    owner.kill()
    owner.wait()
    assert cli.main(["eval", str(out)]) == 0


def test_the_lock_is_taken_by_the_library_too(run_dir):
    with fileio.exclusive(run_dir):
        with pytest.raises(fileio.PathError, match=IN_USE):
            quiet_train(Config(epochs=2), run_dir, resume=True)


@pytest.mark.parametrize("name", ["report.html", "summary.json", "metrics.csv", "curves.png", "notes.txt", ".hidden"])
def test_a_folder_holding_anything_is_not_taken_without_force(small_data, tmp_path, capsys, name):
    out = tmp_path / "finished"
    out.mkdir()
    (out / name).write_text("mine")
    assert cli.main(["train", "--out", str(out), "--epochs", "1"]) == 1
    err = capsys.readouterr().err
    one_line_error(err)
    assert f"{out} is not empty (it holds {name})" in err and "--force" in err
    assert (out / name).read_bytes() == b"mine" and [p.name for p in out.iterdir()] == [name]


def test_the_current_folder_is_not_taken_and_force_replaces_only_fmnists_files(small_data, tmp_path, capsys,
                                                                               monkeypatch):  # fmt: skip
    monkeypatch.chdir(tmp_path)
    Path("notes.txt").write_text("mine")
    Path("report.html").write_text("an old report")
    assert cli.main(["train", "--out", ".", "--epochs", "1"]) == 1
    assert "is not empty (it holds notes.txt, report.html" in capsys.readouterr().err
    assert cli.main(["train", "--out", ".", "--epochs", "1", "--force"]) == 0
    assert Path("notes.txt").read_text() == "mine" and Path("report.html").read_text() != "an old report"
    assert rundir.read_metrics(Path("metrics.csv"))[0]["epoch"] == 1


def test_an_empty_folder_is_taken(small_data, tmp_path):
    (tmp_path / "empty").mkdir()
    assert cli.main(["train", "--out", str(tmp_path / "empty"), "--epochs", "1"]) == 0
    assert sorted(p.name for p in (tmp_path / "empty").iterdir()) == sorted(rundir.RUN_FILES)


def test_a_run_made_with_more_threads_than_this_machine_has_still_evaluates_and_compares(run_dir, capsys):
    rewrite_config(run_dir, threads=64)  # as a 64-core machine records it
    assert cli.main(["eval", str(run_dir), "--json"]) == 0
    capsys.readouterr()
    assert rundir.RunDir(run_dir).config().threads == 64
    assert cli.main(["compare", str(run_dir), str(run_dir)]) == 0


def test_force_keeps_the_old_run_when_the_new_one_cannot_load_its_data(run_dir, tmp_path, capsys):
    before = snapshot(run_dir)
    args = ["train", "--out", str(run_dir), "--force", "--data-dir", str(tmp_path / "no-data")]
    assert cli.main(args) == 1
    assert "does not exist" in capsys.readouterr().err
    assert snapshot(run_dir) == before
