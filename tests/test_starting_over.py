"""Starting over (--force) and starting at all: the run being replaced stays whole until the new run has an
epoch to replace it with, nothing is written before the first epoch, and an epoch's files are written so
that the checkpoint, last, commits it (issue 18, item 1)."""

from __future__ import annotations

import csv
import signal
from pathlib import Path

import pytest
from runfolders import RESULTS, copy_run, no_results, snapshot

from fmnist import cli, data, errors, fileio, metrics, rundir
from fmnist import train as train_module
from fmnist.rundir import CHECKPOINT

NEW_RUN = ["--epochs", "1", "--batch-size", "50", "--seed", "5"]  # the run that --force starts


class Killed(BaseException):
    """The process dies here (kill -9, power loss): nothing after this point runs, no handler sees it."""


def _stop_in_first_epoch(how: str) -> BaseException:
    if how == "SIGTERM":
        return errors.Stopped(signal.SIGTERM)  # what fmnist.cli's handler raises for SIGTERM
    return Killed() if how == "kill -9" else KeyboardInterrupt()


def _raise(error: BaseException):
    def stop(*args, **kwargs):
        raise error

    return stop


@pytest.mark.parametrize("where, how, code", [
    ("data.load", "Ctrl-C", 130),  # while the new run's data loads
    ("train_epoch", "Ctrl-C", 130),  # in the new run's first epoch
    ("train_epoch", "SIGTERM", 143),
    ("metrics.evaluate", "Ctrl-C", 130),  # while the first epoch is scored, the last step before its files
    ("train_epoch", "kill -9", None),  # a process that dies leaves what the files were at that moment
])  # fmt: skip
def test_force_leaves_the_old_run_whole_until_the_new_one_has_an_epoch(small_data, trained, tmp_path, capsys,
                                                                       monkeypatch, where, how, code):  # fmt: skip
    out = copy_run(trained("sgd2"), tmp_path / "old run")
    (out / "notes.txt").write_text("mine")
    before = snapshot(out)
    target = {"data.load": (data, "load"), "train_epoch": (train_module, "train_epoch"),
              "metrics.evaluate": (metrics, "evaluate")}[where]  # fmt: skip
    args = ["train", f"--out={out}", "--force", *NEW_RUN]
    with monkeypatch.context() as patched:
        patched.setattr(*target, _raise(_stop_in_first_epoch(how)))
        if how == "kill -9":
            with pytest.raises(Killed):
                cli.main(args)
        else:
            assert cli.main(args) == code
    err = capsys.readouterr().err
    assert snapshot(out) == before  # every byte of the old run, and nothing new
    if how != "kill -9":
        assert err.count("\n") == 1 and "Traceback" not in err, err
        assert ("interrupted" if how == "Ctrl-C" else "stopped by SIGTERM") in err
        assert ("before the first epoch had finished; the run that --force was to replace is untouched, so start "
                "again with the same command.") in err, err  # fmt: skip
    if where == "train_epoch" and how == "Ctrl-C":  # the way on the message gives works
        no_results(monkeypatch)
        assert cli.main(args) == 0
        assert len(rundir.read_metrics(out / "metrics.csv")) == 1 and rundir.RunDir(out).config().seed == 5
        assert (out / "notes.txt").read_text() == "mine"


@pytest.mark.parametrize("folder", ["new", "empty"])
def test_a_run_stopped_before_its_first_epoch_leaves_nothing(small_data, tmp_path, capsys, monkeypatch, folder):
    out = tmp_path / "run"
    if folder == "empty":
        out.mkdir()
    with monkeypatch.context() as patched:
        patched.setattr(train_module, "train_epoch", _raise(KeyboardInterrupt()))
        assert cli.main(["train", f"--out={out}", *NEW_RUN]) == 130
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "before the first epoch had finished, so start again" in err, err
    assert "--force" not in err  # there was no run to replace
    assert sorted(p.name for p in out.iterdir()) == []


def test_an_epochs_files_are_written_checkpoint_last(small_data, trained, tmp_path, monkeypatch):
    out = copy_run(trained("sgd2"), tmp_path / "run")
    results = set(RESULTS)
    assert results <= set(snapshot(out))  # the old run's results are there to be replaced
    writes: list[tuple[str, set[str]]] = []  # each file written, with what the folder held just before
    write = fileio.write_atomic

    def spy(path, content):
        writes.append((path.name, {p.name for p in out.iterdir()}))
        return write(path, content)

    monkeypatch.setattr(fileio, "write_atomic", spy)
    no_results(monkeypatch)  # the results are another test's
    assert cli.main(["train", f"--out={out}", "--force", "--epochs", "2", "--batch-size", "50", "--seed", "5"]) == 0
    names = [name for name, _ in writes]
    assert names == ["config.json", "metrics.csv", "model.safetensors", CHECKPOINT,  # epoch 1: the settings too
                     "metrics.csv", "model.safetensors", CHECKPOINT]  # fmt: skip
    held_at_first_write = writes[0][1]
    assert not (results | {CHECKPOINT}) & held_at_first_write  # the old run's commit and results go first
    assert "metrics.csv" in held_at_first_write  # and not before the new run had an epoch to write


def _rows(out: Path) -> list[dict]:
    with open(out / "metrics.csv") as f:
        return [{k: v for k, v in row.items() if k != "seconds"} for row in csv.DictReader(f)]


@pytest.mark.parametrize("killed_before, occurrence", [
    ("model.safetensors", 2),  # epoch 2's metrics.csv written: one epoch ahead of the checkpoint
    (CHECKPOINT, 2),  # all of epoch 2 but the checkpoint that commits it
    ("model.safetensors", 1),  # a new run's first epoch: its config.json and metrics.csv, no checkpoint
    (CHECKPOINT, 1),  # all of the first epoch but its checkpoint
    ("config.json", 1),  # nothing of the new run yet
])  # fmt: skip
def test_a_kill_between_an_epochs_writes_is_gone_on_from_bit_identically(small_data, trained, tmp_path, capsys,
                                                                        monkeypatch, killed_before,
                                                                        occurrence):  # fmt: skip
    out = tmp_path / "run"
    args = ["train", f"--out={out}", "--epochs", "2", "--batch-size", "50"]  # the template sgd2's settings
    seen: list[str] = []
    write = fileio.write_atomic

    def dies(path, content):
        seen.append(path.name)
        if path.name == killed_before and seen.count(path.name) == occurrence:
            raise Killed
        return write(path, content)

    with monkeypatch.context() as patched:
        patched.setattr(fileio, "write_atomic", dies)
        with pytest.raises(Killed):
            cli.main(args)
    capsys.readouterr()
    # What a user does next: go on from the kept epochs, or, with none kept, run the same command again.
    again = [*args, "--resume"] if (out / CHECKPOINT).exists() else args
    no_results(monkeypatch)
    assert cli.main(again) == 0, capsys.readouterr().err
    whole = trained("sgd2")
    assert (out / "model.safetensors").read_bytes() == (whole / "model.safetensors").read_bytes()
    assert _rows(out) == _rows(whole)
