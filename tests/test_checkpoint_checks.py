"""A run's checkpoint, config.json and metrics.csv are checked, and checked against each other, before
--resume, eval or compare use them and before anything in the folder is rewritten; a finished run that lost
a file gets it back from its checkpoint (issue 18, item 4, and item 5's misleading sentences)."""

from __future__ import annotations

import csv
import io
import json
import math
import shlex
from pathlib import Path

import pytest
import torch
from runfolders import (
    ADAM_STEPS_PER_EPOCH,
    RESULTS,
    copy_run,
    no_results,
    one_line_error,
    read_checkpoint_file,
    snapshot,
    write_checkpoint_file,
)

from fmnist import cli, rundir
from fmnist import train as train_module
from fmnist.rundir import CHECKPOINT

NAN = float("nan")


def _set(key, value):
    def edit(tensors, groups, rows):
        groups[0][key] = value

    return edit


def _tensor(key, make):
    def edit(tensors, groups, rows):
        tensors[key] = make(tensors[key])

    return edit


def _nan_at(key):
    def poison(t):
        t = t.clone()
        t.view(-1)[3] = NAN
        return t

    return _tensor(key, poison)


def _without(*prefixes):
    def edit(tensors, groups, rows):
        for key in [k for k in tensors if k.startswith(prefixes)]:
            del tensors[key]

    return edit


def _add(key, value):
    def edit(tensors, groups, rows):
        tensors[key] = value

    return edit


def _one_more_epoch(tensors, groups, rows):
    rows.append({**rows[-1], "epoch": len(rows) + 1})


CRAFTED = {  # template, how its checkpoint is changed, what the one sentence must say
    "momentum 'abc'": ("momentum", _set("momentum", "abc"), "momentum 'abc', not 0.9"),
    "another weight decay": ("momentum", _set("weight_decay", 0.5), "weight_decay 0.5, not 0.0"),
    "no momentum buffer": ("momentum", _without("optimizer."), "optimizer state missing where the run keeps"),
    "betas 'xy'": ("adam", _set("betas", "xy"), "betas 'xy', not [0.9, 0.999]"),
    "Adam eps -1": ("adam", _set("eps", -1), "eps -1, not 1e-08"),
    "params not matching": ("adam", _set("params", [0, 1, 2]), "params [0, 1, 2], not [0, 1]"),
    "exp_avg of another shape": ("adam", _tensor("optimizer.0.exp_avg", lambda t: t[:5]),
                                 "optimizer.0.exp_avg is torch.float32 (5, 784), not torch.float32 (10, 784)"),
    "step -3": ("adam", _tensor("optimizer.0.step", lambda t: torch.tensor(-3.0)),
                f"optimizer.0.step does not fit {2 * ADAM_STEPS_PER_EPOCH} steps of training"),
    "step of another type": ("adam", _tensor("optimizer.1.step", lambda t: t.long()),
                             "optimizer.1.step is torch.int64 (), not torch.float32 ()"),
    "negative exp_avg_sq": ("adam", _tensor("optimizer.1.exp_avg_sq", lambda t: -t - 1),
                            "optimizer.1.exp_avg_sq holds negative values"),
    "a momentum buffer in an Adam run": ("adam", _add("optimizer.0.momentum_buffer", torch.zeros(10, 784)),
                                         "optimizer state ['optimizer.0.momentum_buffer'] where the run keeps none"),
    "NaN in the weights": ("adam", _nan_at("model.weight"),
                           "holds values that are not finite numbers (in model.weight)"),
    "NaN in the optimizer state": ("adam", _nan_at("optimizer.0.exp_avg_sq"),
                                   "holds values that are not finite numbers (in optimizer.0.exp_avg_sq)"),
    "3 epochs where metrics.csv has 2": ("adam", _one_more_epoch,
                                         "the checkpoint holds 3 epochs but metrics.csv only 2"),
}  # fmt: skip


@pytest.mark.parametrize("case", list(CRAFTED))
def test_a_crafted_checkpoint_is_refused_before_anything_is_rewritten(small_data, trained, tmp_path, capsys, case):
    template, edit, problem = CRAFTED[case]
    run = copy_run(trained(template), tmp_path / "run")
    original = (run / CHECKPOINT).read_bytes()
    tensors, groups, rows = read_checkpoint_file(run / CHECKPOINT)
    edit(tensors, groups, rows)
    write_checkpoint_file(run / CHECKPOINT, tensors, groups, rows)
    before = snapshot(run)
    assert before[CHECKPOINT] != original
    assert cli.main(["train", f"--out={run}", "--resume", "--epochs", "4"]) == 1
    err = capsys.readouterr().err
    one_line_error(err)
    assert problem in err, err
    assert "lr" not in err.replace(str(run), "") and "learning rate" not in err  # damage, not a setting to lower
    assert snapshot(run) == before


@pytest.mark.slow
def test_a_checkpoint_fmnist_wrote_is_taken(small_data, trained, tmp_path, monkeypatch):
    # The checks above must not refuse what fmnist writes: Adam's steps counted over uneven batches and a
    # validation split (the template adam's settings); resume ends bit-identical to the uninterrupted run.
    args = ["--optimizer", "adam", "--lr", "0.01", "--batch-size", "64", "--val-size", "10"]
    no_results(monkeypatch)
    assert cli.main(["train", f"--out={tmp_path / 'parts'}", "--epochs", "1", *args]) == 0
    assert cli.main(["train", f"--out={tmp_path / 'parts'}", "--resume", "--epochs", "2"]) == 0
    whole = trained("adam")
    assert (tmp_path / "parts" / "model.safetensors").read_bytes() == (whole / "model.safetensors").read_bytes()


def _metrics_text(rows: list[dict]) -> str:
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return text.getvalue()


def _read_rows(run: Path) -> list[dict]:
    with open(run / "metrics.csv", newline="") as f:
        return list(csv.DictReader(f))


def _config(run: Path, **changes) -> None:
    config = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps({**config, **changes}))


def _lr_nan(run):
    _config(run, lr=NAN)  # json writes NaN, and Python's json reads it
    return f"{run / 'config.json'} is damaged (lr must be a number greater than 0 and at most 100, got nan"


def _more_rows(run):  # the case had 100,000 rows: the kind is any number above the plan
    rows = _read_rows(run)
    (run / "metrics.csv").write_text(_metrics_text([*rows, {**rows[-1], "epoch": "3"}]))
    return "metrics.csv holds 3 epochs but config.json plans 2"


def _val_without_val_size(run):
    (run / "metrics.csv").write_text(_metrics_text([{**row, "val_acc": "0.5"} for row in _read_rows(run)]))
    return "metrics.csv has a validation score, but config.json has --val-size 0"


def _val_size_without_val(run):
    _config(run, val_size=10)
    return "metrics.csv lacks a validation score, but config.json has --val-size 10"


def _checkpoint_ahead(run):
    (run / "metrics.csv").write_text(_metrics_text(_read_rows(run)[:1]))
    return "the checkpoint holds 2 epochs but metrics.csv only 1"


def _metrics_two_ahead(run):
    _config(run, epochs=3)
    rows = _read_rows(run)
    (run / "metrics.csv").write_text(_metrics_text([*rows, {**rows[-1], "epoch": "3"}]))
    tensors, groups, saved = read_checkpoint_file(run / CHECKPOINT)
    write_checkpoint_file(run / CHECKPOINT, tensors, groups, saved[:1])
    return "metrics.csv holds 3 epochs, more than one beyond the checkpoint's 1"


def _other_history(run):
    rows = _read_rows(run)
    rows[0]["train_loss"] = "0.123"
    (run / "metrics.csv").write_text(_metrics_text(rows))
    return "the checkpoint's 2 epochs differ from the first 2 in metrics.csv"


DISAGREE = {"lr NaN in config.json": _lr_nan, "more epochs of metrics than planned": _more_rows,
            "val_acc without --val-size": _val_without_val_size, "--val-size without val_acc": _val_size_without_val,
            "checkpoint ahead of metrics.csv": _checkpoint_ahead, "metrics.csv two epochs ahead": _metrics_two_ahead,
            "another history in metrics.csv": _other_history}  # fmt: skip


@pytest.mark.parametrize("case", list(DISAGREE))
def test_eval_compare_and_resume_refuse_files_that_do_not_tell_of_one_run(small_data, trained, tmp_path, capsys, case):
    run, good = copy_run(trained("sgd2"), tmp_path / "run"), copy_run(trained("sgd2"), tmp_path / "good")
    problem = DISAGREE[case](run)
    before = snapshot(run)
    for args in (["eval", str(run)], ["eval", str(run), "--json"], ["compare", str(run), str(good), str(good)],
                 ["train", f"--out={run}", "--resume", "--epochs", "4"]):  # fmt: skip
        assert cli.main(args) == 1, args
        out, err = capsys.readouterr()
        one_line_error(err)
        assert problem in err, (args, err)
        assert snapshot(run) == before, args  # summary.json above all: never rewritten from such files
        if "--json" in args:
            assert out == ""


def _checkpoint_content(run: Path) -> tuple:
    tensors, groups, rows = read_checkpoint_file(run / CHECKPOINT)
    return {k: (v.dtype, v.shape, v.numpy().tobytes()) for k, v in tensors.items()}, groups, rows


MISSING = ["model.safetensors", "metrics.csv", "confusion.png"]


@pytest.mark.parametrize("name", MISSING)
def test_a_finished_run_that_lost_a_file_gets_it_back_from_its_checkpoint(small_data, trained, tmp_path, capsys,
                                                                          monkeypatch, name):  # fmt: skip
    run = copy_run(trained("sgd2"), tmp_path / "run")
    kept = {n: (run / n).read_bytes() for n in ("model.safetensors", "metrics.csv")}
    saved = _checkpoint_content(run)
    (run / name).unlink()
    hint = f"fmnist train --out={run} --resume"
    if name in ("model.safetensors", "metrics.csv"):  # what eval says about it
        assert cli.main(["eval", str(run)]) == 1
        err = capsys.readouterr().err
        one_line_error(err)
        assert f"{run / name} is missing; `{hint}` writes it again from the run's checkpoint." in err, err
        hint = err.split("`")[1]
    monkeypatch.setattr(train_module, "train_epoch", lambda *args: pytest.fail("an epoch was trained again"))
    if name.endswith(".safetensors") or name.endswith(".csv"):
        no_results(monkeypatch)  # the pictures are drawn again as well: seen with confusion.png
    assert cli.main(shlex.split(hint)[1:]) == 0, capsys.readouterr().err
    for n, content in kept.items():
        assert (run / n).read_bytes() == content, n  # the weights bit for bit, the metrics as they were
    assert _checkpoint_content(run) == saved  # written again (safetensors orders its metadata as it likes)
    assert all((run / n).is_file() for n in RESULTS)
    capsys.readouterr()
    assert cli.main(["predict", str(run), "--test-index", "0", "--json"]) == 0  # the run is whole again
    assert json.loads(capsys.readouterr().out, parse_constant=lambda c: pytest.fail(c))[0]["top"]


def test_resuming_with_more_threads_than_cores_says_so(small_data, trained, tmp_path, capsys, monkeypatch):
    run = copy_run(trained("sgd"), tmp_path / "run")
    _config(run, threads=256)  # as a 256-core machine records it
    no_results(monkeypatch)
    threads = torch.get_num_threads()
    try:
        assert cli.main(["train", f"--out={run}", "--resume", "--epochs", "2"]) == 0
    finally:
        torch.set_num_threads(threads)
    out = capsys.readouterr().out
    assert f"note: {run} was trained with 256 CPU threads and this process may use" in out, out
    assert rundir.RunDir(run).config().threads == 256 and not math.isnan(rundir.summarize(
        rundir.read_metrics(run / "metrics.csv"))["test_acc"])  # fmt: skip
