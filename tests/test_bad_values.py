"""No traceback from any value: extreme numbers on the command line, damaged settings and metrics."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest
from runfolders import one_line_error, rewrite_config, snapshot
from safetensors.torch import save_file

from fmnist import cli, rundir
from fmnist.rundir import CHECKPOINT

EXTREME = ["inf", "-inf", "nan", "1e39", "-1e39", "1e400", "12345678901234567890", "-12345678901234567890",
           "1" + "0" * 400, "0x10", ""]  # fmt: skip


NUMERIC = [["train", "--epochs"], ["train", "--batch-size"], ["train", "--lr"], ["train", "--weight-decay"],
           ["train", "--label-smoothing"], ["train", "--dropout"], ["train", "--val-size"], ["train", "--seed"],
           ["train", "--threads"], ["predict", "run", "--top"], ["predict", "run", "--test-index"],
           ["show", "--n"]]  # fmt: skip


@pytest.mark.parametrize("option", NUMERIC, ids=lambda o: o[-1])
def test_extreme_numbers_are_refused_in_one_line_before_any_work(option, capsys):
    for value in EXTREME:
        with pytest.raises(SystemExit) as stop:
            cli.main([*option[:-1], f"{option[-1]}={value}"])  # "=": so that "-inf" is not taken for an option
        err = capsys.readouterr().err
        assert stop.value.code == 2 and err.count("\n") == 1 and f"argument {option[-1]}:" in err, (value, err)
        assert "must be" in err or "is not a number" in err
        assert len(err) < 250  # a 400-digit number is not echoed whole


def test_threads_are_bounded_by_the_cores_this_process_may_use(capsys):
    cores = len(os.sched_getaffinity(0))
    for threads in (cores + 1, 2000, 3000):
        with pytest.raises(SystemExit):
            cli.main(["train", "--threads", str(threads)])
        assert f"--threads: must be a whole number from 1 to {cores} (the CPU cores" in capsys.readouterr().err


def test_extreme_numbers_through_the_real_command_give_no_traceback(tmp_path):
    for args in (["train", "--val-size", "inf"], ["train", "--seed", "1e39"], ["predict", "r", "--test-index", "nan"],
                 ["train", "--threads", "3000"], ["train", "--lr", "1e39"]):  # fmt: skip
        done = subprocess.run([sys.executable, "-m", "fmnist", *args], capture_output=True, text=True, timeout=60)
        assert done.returncode == 2 and done.stderr.count("\n") == 1 and "Traceback" not in done.stderr


@pytest.mark.parametrize("changes, problem", [
    ({"batch_size": 0}, "batch_size must be a whole number from 1 to 60000, got 0"),
    ({"lr": "0.1"}, "lr must be a number greater than 0 and at most 100, got '0.1'"),
    ({"epochs": 1.5}, "epochs must be a whole number"),
    ({"device": "tpu"}, "device must be one of auto, cpu, cuda, got 'tpu'"),
    ({"optimizer": None}, "optimizer must be one of sgd, momentum, adam, got None"),
    ({"seed": 10**30}, "seed must be a whole number from 0 to"),
])  # fmt: skip
def test_a_damaged_config_is_refused_before_anything_is_rewritten(run_dir, capsys, changes, problem):
    rewrite_config(run_dir, **changes)
    before = snapshot(run_dir)
    assert cli.main(["train", "--out", str(run_dir), "--resume", "--epochs", "3"]) == 1
    err = capsys.readouterr().err
    one_line_error(err)
    assert f"{run_dir / 'config.json'} is damaged ({problem}" in err
    assert snapshot(run_dir) == before


@pytest.mark.parametrize("rows, problem", [
    ([{"epoch": 1, "train_loss": 0.5}], "epoch 1 has no column train_acc, test_acc, seconds"),
    ([[1, 0.5, 0.8, 0.8, 1.0]], "epoch 1 is not a row of named values"),
    ({"epoch": 1}, "not a list of epochs"),
    ([{"epoch": 2, "train_loss": 0.5, "train_acc": 0.8, "test_acc": 0.8, "seconds": 1.0}], "row 1 is numbered 2"),
    ([{"epoch": 1, "train_loss": 0.5, "train_acc": 8, "test_acc": 0.8, "seconds": 1.0}], "a value out of range"),
])  # fmt: skip
def test_checkpoint_metrics_of_the_wrong_shape_are_refused(run_dir, capsys, rows, problem):
    path = run_dir / CHECKPOINT
    tensors, metadata = rundir.read_safetensors(path)
    save_file(tensors, str(path), metadata={**metadata, "metrics": json.dumps(rows)})
    before = snapshot(run_dir)
    assert cli.main(["train", "--out", str(run_dir), "--resume", "--epochs", "3"]) == 1
    err = capsys.readouterr().err
    one_line_error(err)
    assert problem in err and str(path) in err
    assert snapshot(run_dir) == before


@pytest.mark.parametrize("edit, problem", [
    (lambda text: "".join(line + (",note\n" if i == 0 else ",x\n") for i, line in enumerate(text.splitlines())),
     "columns note that fmnist does not write"),
    (lambda text: text.replace("train_acc,", "", 1), "epoch 1 has more values than the header has columns"),
    (lambda text: text.replace(",test_acc", ",val_acc,test_acc", 1), "epoch 1 has fewer values than the header has"),
    (lambda text: text.replace("train_acc", "train_accuracy", 1), "columns train_accuracy that fmnist does not"),
    (lambda text: text.replace("\n1,", "\none,", 1), "could not convert"),
    (lambda text: text + "3,0.1,0.2,0.3,0.4\n", "row 2 is numbered 3"),
    (lambda text: re.sub(r"\n1,[^,]*,", "\n1,nan,", text), "out of range"),
])  # fmt: skip
def test_eval_refuses_a_metrics_file_it_did_not_write(run_dir, capsys, edit, problem):
    path = run_dir / "metrics.csv"
    path.write_text(edit(path.read_text()))
    before = snapshot(run_dir)
    assert cli.main(["eval", str(run_dir)]) == 1
    err = capsys.readouterr().err
    one_line_error(err)
    assert f"{path} does not hold fmnist's metrics" in err and problem in err, err
    assert snapshot(run_dir) == before
