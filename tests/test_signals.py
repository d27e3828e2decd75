"""SIGTERM (timeout, systemd) and SIGHUP (a closed terminal) are answered as Ctrl-C: the same one line on how
to go on, the epochs kept, exit 128 + the signal, and an epoch's files are never cut apart by any of them
(issue 18, item 9)."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import quiet_train, wait_for_line
from runfolders import copy_run, no_results, shell_words, snapshot

from fmnist import cli, fileio, rundir
from fmnist.rundir import CHECKPOINT
from fmnist.settings import Config

# `fmnist ARGS` on the small dataset (as tests/small_fmnist.py), whose first epoch can be made to stall.
CHILD = """
import json, os, sys, time
from fmnist import data, train
from fmnist.cli import main
data.FILES = {key: data.DataFile(name, sha256, tuple(shape))
              for key, (name, sha256, shape) in json.loads(os.environ["FMNIST_TEST_FILES"]).items()}
if os.environ.get("STALL_FIRST_EPOCH"):
    def stall(*args, **kwargs):
        print("in the first epoch", flush=True)
        time.sleep(600)
    train.train_epoch = stall
sys.exit(main(sys.argv[1:]))
"""


def _fmnist(*args: str, stall: bool = False) -> subprocess.Popen:
    env = {**os.environ, **({"STALL_FIRST_EPOCH": "1"} if stall else {})}
    return subprocess.Popen([sys.executable, "-c", CHILD, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env)  # fmt: skip


def _rows(out: Path) -> list[dict]:
    with open(out / "metrics.csv") as f:
        return [{k: v for k, v in row.items() if k != "seconds"} for row in csv.DictReader(f)]


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
def test_a_stop_signal_keeps_the_epochs_and_resume_ends_bit_identical(small_data, tmp_path, monkeypatch, signum):
    out = tmp_path / "run"
    run = _fmnist("train", "--out", str(out), "--epochs", "5000", "--batch-size", "10", "--seed", "0")
    try:
        wait_for_line(run, "epoch   2/")
        run.send_signal(signum)
        _, err = run.communicate(timeout=120)
    finally:
        run.kill()
    name = signal.Signals(signum).name
    assert run.returncode == 128 + signum, err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    done = len(_rows(out))
    assert err.startswith(f"fmnist: stopped by {name}; {out} keeps {done} finished epoch(s). Continue with: "), err
    assert 2 <= done < 5000 and len(rundir.read_checkpoint(out / CHECKPOINT).rows) == done

    no_results(monkeypatch)  # the pictures are not compared
    hint = shell_words(err.split("Continue with: ")[1])
    assert hint[:3] == ["fmnist", "train", f"--out={out}"] and "--resume" in hint
    assert cli.main([*hint[1:], "--epochs", str(done + 1)]) == 0
    quiet_train(Config(epochs=done + 1, batch_size=10, seed=0), tmp_path / "whole")
    assert (out / "model.safetensors").read_bytes() == (tmp_path / "whole" / "model.safetensors").read_bytes()
    assert _rows(out) == _rows(tmp_path / "whole")


@pytest.mark.slow
def test_sigterm_before_the_first_epoch_leaves_the_run_force_was_to_replace(small_data, trained, tmp_path):
    out = copy_run(trained("sgd2"), tmp_path / "run")
    before = snapshot(out)
    run = _fmnist("train", "--out", str(out), "--force", "--epochs", "3", "--seed", "9", stall=True)
    try:
        wait_for_line(run, "in the first epoch")
        run.send_signal(signal.SIGTERM)
        _, err = run.communicate(timeout=120)
    finally:
        run.kill()
    assert run.returncode == 143, err
    assert err == ("fmnist: stopped by SIGTERM before the first epoch had finished; the run that --force was to "
                   "replace is untouched, so start again with the same command.\n")  # fmt: skip
    assert snapshot(out) == before


class _Caught(Exception):
    pass


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP], ids=["SIGINT", "SIGTERM", "SIGHUP"])
def test_every_stop_signal_waits_while_an_epochs_files_are_written(signum):
    def handler(signum, frame):
        raise _Caught(signum)

    previous = signal.signal(signum, handler)
    reached = []
    try:
        with pytest.raises(_Caught):
            with fileio.uninterrupted():
                os.kill(os.getpid(), signum)
                for _ in range(1000):  # a signal is handled between bytecodes: give it every chance to cut in
                    reached.append(1)
            reached.append("after the block")
        assert signal.getsignal(signum) is handler  # given back as it was
    finally:
        signal.signal(signum, previous)
    assert len(reached) == 1000  # the block ran to its end, and the signal was answered right after it
