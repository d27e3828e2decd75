"""Runs survive accidents: resume, Ctrl-C, kills, divergence, changed settings, damaged data."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from conftest import quiet_train, small_fmnist, stop_in_epoch, wait_for_line, write_dataset

from fmnist import cli, data, fileio, rundir
from fmnist import train as train_module
from fmnist.rundir import CHECKPOINT
from fmnist.settings import Config


def _metrics(out) -> list[dict]:
    with open(out / "metrics.csv") as f:
        return [{k: v for k, v in row.items() if k != "seconds"} for row in csv.DictReader(f)]


def test_resumed_run_ends_bit_identical_to_an_uninterrupted_one(small_data, tmp_path):
    config = Config(epochs=4, batch_size=32, lr=0.2, seed=3)
    quiet_train(config, tmp_path / "whole")
    quiet_train(Config(**{**config.__dict__, "epochs": 2}), tmp_path / "parts")
    assert len(_metrics(tmp_path / "parts")) == 2
    summary = quiet_train(config, tmp_path / "parts", resume=True)
    weights = [(tmp_path / run / "model.safetensors").read_bytes() for run in ("parts", "whole")]
    assert weights[0] == weights[1]
    parts, whole = (rundir.read_checkpoint(tmp_path / run / CHECKPOINT).tensors for run in ("parts", "whole"))
    assert parts.keys() == whole.keys() and all(torch.equal(parts[k], whole[k]) for k in parts)
    assert _metrics(tmp_path / "parts") == _metrics(tmp_path / "whole")
    assert summary["epochs"] == 4


def test_resume_restores_the_generators_not_just_the_weights(small_data, tmp_path):
    # The shuffle generator's state after epoch 1 is the seed's generator after one shuffle of the training
    # set, computed here on its own; without it, epoch 2 of a resumed run would see epoch 1's order again.
    quiet_train(Config(epochs=1, batch_size=32, seed=7), tmp_path / "run")
    saved = rundir.read_checkpoint(tmp_path / "run" / CHECKPOINT)
    after_one_epoch = torch.Generator().manual_seed(7)
    torch.randperm(len(data.load().train_labels), generator=after_one_epoch)
    assert torch.equal(saved.tensors["rng.shuffle"], after_one_epoch.get_state())
    assert not torch.equal(saved.tensors["rng.shuffle"], torch.Generator().manual_seed(7).get_state())


def test_resume_refuses_changed_settings_and_says_which(small_data, tmp_path, capsys):
    quiet_train(Config(epochs=1, batch_size=32), tmp_path / "run")
    before = (tmp_path / "run" / CHECKPOINT).read_bytes()
    code = cli.main(["train", "--out", str(tmp_path / "run"), "--resume", "--epochs", "2", "--lr", "0.5",
                     "--batch-size", "64"])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 1 and "--batch-size 32 -> 64" in err and "--lr 0.1 -> 0.5" in err and "epochs" not in err
    assert (tmp_path / "run" / CHECKPOINT).read_bytes() == before


def test_resume_uses_the_runs_own_settings(small_data, tmp_path, capsys):
    quiet_train(Config(epochs=1, batch_size=32, lr=0.3), tmp_path / "run")
    assert cli.main(["train", "--out", str(tmp_path / "run"), "--resume", "--epochs", "2"]) == 0
    assert "resuming" in capsys.readouterr().out
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert (config["batch_size"], config["lr"], config["epochs"]) == (32, 0.3, 2)
    assert len(_metrics(tmp_path / "run")) == 2


def test_resume_with_nothing_left_to_do(small_data, tmp_path, capsys):
    quiet_train(Config(epochs=1), tmp_path / "run")
    assert cli.main(["train", "--out", str(tmp_path / "run"), "--resume"]) == 1
    assert "has already trained 1 epochs; pass --epochs with more than 1" in capsys.readouterr().err


def test_resume_without_a_checkpoint(small_data, tmp_path, capsys):
    (tmp_path / "run").mkdir()
    rundir.write_json(tmp_path / "run" / "config.json", {"model": "softmax"})
    assert cli.main(["train", "--out", str(tmp_path / "run"), "--resume"]) == 1
    assert "checkpoint.safetensors is missing, so there is nothing to resume" in capsys.readouterr().err


def test_a_damaged_checkpoint_is_refused(small_data, tmp_path, capsys):
    quiet_train(Config(epochs=1), tmp_path / "run")
    path = tmp_path / "run" / CHECKPOINT
    path.write_bytes(path.read_bytes()[:-100])
    assert cli.main(["train", "--out", str(tmp_path / "run"), "--resume", "--epochs", "2"]) == 1
    assert "not a valid safetensors file" in capsys.readouterr().err


@pytest.mark.slow
def test_ctrl_c_keeps_the_last_epoch_and_resume_finishes_identically(small_data, tmp_path):
    args = ["--epochs", "80", "--batch-size", "10", "--seed", "1"]  # enough that Ctrl-C comes before the end
    run = small_fmnist("train", "--out", str(tmp_path / "run"), *args)
    wait_for_line(run, "epoch   2/")
    run.send_signal(signal.SIGINT)
    stdout, stderr = run.communicate(timeout=60)
    assert run.returncode == 130
    assert stderr.count("\n") == 1 and "Traceback" not in stderr
    assert f"Continue with: fmnist train --out={tmp_path / 'run'} --resume" in stderr
    done = len(_metrics(tmp_path / "run"))
    assert 2 <= done < 80 and f"keeps {done} finished epoch(s)" in stderr
    assert len(rundir.read_checkpoint(tmp_path / "run" / CHECKPOINT).rows) == done

    resumed = small_fmnist("train", "--out", str(tmp_path / "run"), "--resume")
    assert resumed.wait(timeout=120) == 0, resumed.stderr.read()
    quiet_train(Config(epochs=80, batch_size=10, seed=1), tmp_path / "whole")
    weights = [(tmp_path / run / "model.safetensors").read_bytes() for run in ("run", "whole")]
    assert weights[0] == weights[1]
    assert _metrics(tmp_path / "run") == _metrics(tmp_path / "whole")


@pytest.mark.slow
def test_a_kill_at_any_moment_leaves_a_usable_checkpoint(small_data, tmp_path):
    out = tmp_path / "run"
    for delay in (0.0, 0.003, 0.011):  # an epoch, checkpoint included, takes a few milliseconds
        again = ["--resume"] if (out / CHECKPOINT).exists() else []
        run = small_fmnist("train", "--out", str(out), "--epochs", "1000", "--batch-size", "20", *again)
        wait_for_line(run, "epoch")
        time.sleep(delay)
        run.kill()
        run.wait()
        rows = rundir.read_checkpoint(out / CHECKPOINT).rows
        assert [r["epoch"] for r in rows] == list(range(1, len(rows) + 1))
    resumed = small_fmnist("train", "--out", str(out), "--resume", "--epochs", str(len(rows) + 1))
    assert resumed.wait(timeout=120) == 0, resumed.stderr.read()
    assert [p.name for p in out.iterdir() if p.name.startswith(".")] == []  # a killed write's temporary file


def test_an_interrupted_write_leaves_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "file"
    path.write_bytes(b"good")

    def cut(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", cut)
    with pytest.raises(KeyboardInterrupt):
        fileio.write_atomic(path, b"new content")
    assert path.read_bytes() == b"good" and list(tmp_path.iterdir()) == [path]


def test_divergence_stops_with_advice_and_keeps_the_last_good_epoch(small_arrays, tmp_path, monkeypatch, capsys):
    # Random labels keep the gradient from vanishing. Weight decay 1 at lr 100 multiplies the weights by
    # -99 at each of the 8 steps per epoch: the loss is finite for two epochs and not in the third.
    noise = dict(small_arrays, train_labels=np.random.default_rng(0).integers(0, 10, 200).astype(np.uint8))
    monkeypatch.setattr(data, "FILES", write_dataset(tmp_path / "data", noise))
    out = tmp_path / "run"
    code = cli.main(["train", "--data-dir", str(tmp_path / "data"), "--out", str(out), "--epochs", "5",
                     "--batch-size", "25", "--lr", "100", "--weight-decay", "1"])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 1 and "the training loss became nan in epoch 3; try a smaller learning rate" in err
    assert len(rundir.read_checkpoint(out / CHECKPOINT).rows) == 2 and len(_metrics(out)) == 2
    net, _ = rundir.RunDir(out).load_model()
    assert all(torch.isfinite(p).all() for p in net.parameters())


def test_damaged_data_through_the_command_line_is_one_sentence(small_data, tmp_path):
    victim = small_data / data.FILES["train_images"].name
    victim.write_bytes(victim.read_bytes()[:-10])
    # A subprocess does not see the patched FILES table, so use the checksum error it does see.
    done = subprocess.run([sys.executable, "-m", "fmnist", "train", "--data-dir", str(small_data), "--out",
                           str(tmp_path / "run")], capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 1 and done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert str(victim) in done.stderr and f"fmnist download --data-dir={small_data}" in done.stderr


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a GPU")
def test_cuda_without_a_gpu_fails_before_any_work(tmp_path):
    done = subprocess.run([sys.executable, "-m", "fmnist", "train", "--device", "cuda", "--out", str(tmp_path / "r")],
                          capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 1 and done.stderr.count("\n") == 1 and "use --device cpu" in done.stderr
    assert not (tmp_path / "r").exists()


def test_starting_over_leaves_nothing_of_the_old_run(small_data, tmp_path):
    quiet_train(Config(epochs=3, batch_size=32), tmp_path / "run")
    (tmp_path / "run" / "report.html").write_text("old")
    quiet_train(Config(epochs=1, batch_size=50), tmp_path / "run", force=True)
    assert len(rundir.read_checkpoint(tmp_path / "run" / CHECKPOINT).rows) == 1
    assert len(_metrics(tmp_path / "run")) == 1
    assert (tmp_path / "run" / "report.html").read_text() != "old"


def test_a_run_stopped_before_its_first_epoch_can_simply_be_run_again(small_data, tmp_path, capsys, monkeypatch):
    def ctrl_c(*args, **kwargs):
        raise KeyboardInterrupt

    with monkeypatch.context() as patched:
        patched.setattr(train_module, "train_epoch", ctrl_c)
        assert cli.main(["train", "--out", str(tmp_path / "run"), "--epochs", "1"]) == 130
    assert "start again with the same command" in capsys.readouterr().err
    assert [p.name for p in (tmp_path / "run").iterdir()] == []  # nothing is written before the first epoch
    assert cli.main(["train", "--out", str(tmp_path / "run"), "--epochs", "1"]) == 0


def test_a_scheduled_run_cannot_be_stretched_on_resume(small_data, tmp_path, capsys):
    quiet_train(Config(epochs=2, optimizer="adam", lr=0.01, schedule="cosine"), tmp_path / "run")
    assert cli.main(["train", "--out", str(tmp_path / "run"), "--resume", "--epochs", "4"]) == 1
    assert "cosine learning-rate schedule" in capsys.readouterr().err


@pytest.mark.parametrize("damage, message", [
    (lambda run: rundir.write_json(run / "config.json", []), "not a JSON object as fmnist writes it"),
    (lambda run: (run / "config.json").write_text('{"model": "mlp", "normalize": "pixel"}'), "holds model 'softmax'"),
])  # fmt: skip
def test_a_damaged_run_directory_is_one_sentence(small_data, tmp_path, capsys, damage, message):
    quiet_train(Config(epochs=1), tmp_path / "run")
    damage(tmp_path / "run")
    assert cli.main(["eval", str(tmp_path / "run")]) == 1
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_eval_of_an_interrupted_run_uses_its_metrics(small_data, tmp_path, capsys, monkeypatch):
    # A run of 4 epochs stopped after its second: eval summarises the 2 kept epochs and the model they left.
    out = tmp_path / "run"
    with monkeypatch.context() as patched:
        stop_in_epoch(patched, 3)
        assert cli.main(["train", f"--out={out}", "--epochs", "4", "--quiet"]) == 130
    assert not (out / "summary.json").exists()
    capsys.readouterr()
    assert cli.main(["eval", str(out), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    rows = rundir.read_metrics(out / "metrics.csv")
    summary = json.loads((out / "summary.json").read_text())
    assert len(rows) == 2 and summary["epochs"] == 2 and summary["train_loss"] == rows[-1]["train_loss"]
    assert result["test_acc"] == rows[-1]["test_acc"]  # the weights of epoch 2, scored again


@pytest.mark.parametrize("args, message", [
    (["--model", "cnn", "--normalize", "pixel"], "model cnn cannot apply --normalize pixel (only none, global)"),
    (["--model", "lenet", "--dropout", "0.5"], "model lenet cannot apply --dropout 0.5 (only 0)"),
])  # fmt: skip
def test_settings_a_model_cannot_apply_are_refused(small_data, tmp_path, capsys, args, message):
    assert cli.main(["train", "--out", str(tmp_path / "run"), *args]) == 1
    assert message in capsys.readouterr().err and not (tmp_path / "run").exists()


def test_file_system_errors_are_one_sentence(small_data, tmp_path, capsys):
    assert cli.main(["show", "--out", str(tmp_path / "no" / "such" / "folder.png")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("fmnist: error: ") and "its folder" in err and "does not exist" in err
    assert err.count("\n") == 1
