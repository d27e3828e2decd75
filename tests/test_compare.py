"""fmnist compare on small data: runs of two models, and runs that are missing, damaged or unfinished."""

from __future__ import annotations

import base64
import html
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from runfolders import copy_run
from safetensors.numpy import load_file

from fmnist import cli, data


@pytest.fixture
def runs(small_data, trained, tmp_path, monkeypatch) -> dict:
    """A softmax and an mlp run, a damaged and an unfinished copy of the softmax run, and a missing one,
    under runs/ in the current folder, as a user names them."""
    monkeypatch.chdir(tmp_path)
    root = Path("runs")
    copy_run(trained("soft3"), root / "soft")
    copy_run(trained("mlp"), root / "mlp")
    shutil.copytree(root / "soft", root / "damaged")
    (root / "damaged" / "model.safetensors").write_bytes(b"\x00" * 100)
    shutil.copytree(root / "soft", root / "unfinished")  # as `train --resume --epochs 5` leaves it, stopped at once
    config = json.loads((root / "unfinished" / "config.json").read_text())
    (root / "unfinished" / "config.json").write_text(json.dumps({**config, "epochs": 5}))
    return {name: root / name for name in ("soft", "mlp", "damaged", "unfinished", "missing")}


def test_compares_two_models_and_names_each_run_left_out(runs, small_arrays, tmp_path, capsys, drawn):
    out = tmp_path / "comparison"
    args = [str(runs[name]) for name in ("soft", "damaged", "mlp", "unfinished", "missing")]
    assert cli.main(["compare", *args, "--json", "--out", str(out)]) == 1
    captured = capsys.readouterr()
    result = json.loads(captured.out)
    *errors, written = captured.err.splitlines()  # with --json, the files written are said on stderr
    assert written == f"written: {out / 'compare.png'}, {out / 'compare.html'}"
    assert [row["run"] for row in result["runs"]] == [str(runs["soft"]), str(runs["mlp"])]
    assert [f["run"] for f in result["failed"]] == [str(runs[n]) for n in ("damaged", "unfinished", "missing")]
    assert len(errors) == 3 and all(str(runs[n]) in line for n, line in zip(("damaged", "unfinished", "missing"),
                                                                            errors, strict=True))  # fmt: skip
    assert "unfinished (3 of 5 epochs)" in errors[1] and "--resume" in errors[1]

    soft, mlp = result["runs"]
    assert (soft["model"], soft["recipe"], soft["epochs"], soft["parameters"]) == ("softmax", "seed", 3, 7850)
    assert (mlp["model"], mlp["epochs"], mlp["parameters"]) == ("mlp", 2, 784 * 256 + 256 + 256 * 10 + 10)
    # softmax regression scored by numpy from the weights file, on the test images as written
    weights = load_file(str(runs["soft"] / "model.safetensors"))
    X, y = small_arrays["test_images"].reshape(-1, 784) / np.float32(255), small_arrays["test_labels"]
    predicted = (X @ weights["weight"].T + weights["bias"]).argmax(axis=1)
    assert soft["test_acc"] == pytest.approx((predicted == y).mean())
    assert soft["per_class"] == pytest.approx({name: (predicted[y == k] == k).mean() for k, name in
                                               enumerate(data.LABELS)})  # fmt: skip
    for row, name in ((soft, "soft"), (mlp, "mlp")):
        summary = json.loads((runs[name] / "summary.json").read_text())
        metrics = [line.split(",") for line in (runs[name] / "metrics.csv").read_text().splitlines()[1:]]
        accuracies = [float(line[3]) for line in metrics]
        assert row["test_acc"] == summary["test_acc"] and row["seconds"] == summary["seconds"]
        assert row["best_epoch"] == 1 + accuracies.index(max(accuracies))
    better = max((soft, mlp), key=lambda r: r["test_acc"])
    assert soft["test_acc"] != mlp["test_acc"]  # one best
    assert result["best"]["test_acc"] == [better["run"]] and result["best"]["parameters"] == [soft["run"]]
    for name, winners in result["class_winners"].items():
        top = max(soft["per_class"][name], mlp["per_class"][name])
        assert winners == [r["run"] for r in (soft, mlp) if r["per_class"][name] == top]

    curves = drawn[0]
    for ax, key in zip(curves.axes, ("test_acc", "train_loss"), strict=True):
        assert [line.get_label() for line in ax.get_lines()] == [soft["run"], mlp["run"]]
        for line, name in zip(ax.get_lines(), ("soft", "mlp"), strict=True):
            header, *rows = [r.split(",") for r in (runs[name] / "metrics.csv").read_text().splitlines()]
            assert list(line.get_ydata()) == [float(r[header.index(key)]) for r in rows]
    assert [t.get_text() for t in curves.axes[0].get_legend().get_texts()] == [soft["run"], mlp["run"]]
    with Image.open(out / "compare.png") as picture:
        assert picture.format == "PNG" and picture.width > picture.height

    page = (out / "compare.html").read_text()
    embedded = re.findall(r'src="data:image/png;base64,([^"]+)"', page)
    assert [base64.b64decode(e) for e in embedded] == [(out / "compare.png").read_bytes()]
    without = page.replace(embedded[0], "")
    assert "<script" not in without and "http:" not in without and "https:" not in without
    assert "default-src 'none'" in without and "script-src" not in without
    assert f"<b>{100 * better['test_acc']:.2f}%*</b>" in page and "<b>7,850*</b>" in page
    assert all(f"<li>{html.escape(f['error'])}</li>" in page for f in result["failed"]) and "classes won" in page


def test_text_table_marks_the_best_of_each_column(runs, capsys):
    assert cli.main(["compare", str(runs["soft"]), str(runs["mlp"])]) == 0
    lines = capsys.readouterr().out.splitlines()
    soft = next(line for line in lines if line.startswith(str(runs["soft"])))
    assert "softmax" in soft and "7,850*" in soft
    assert lines[-1].startswith("classes won")
    assert cli.main(["compare", str(runs["soft"]), str(runs["mlp"]), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    per_class = [line for line in lines if line.split(" ")[0] in {n.split(" ")[0] for n in data.LABELS}]
    assert len(per_class) == 10
    for line, name in zip(per_class, data.LABELS, strict=True):  # the * stands in the winning run's column
        soft_cell, mlp_cell = line[13:].split()
        winners = result["class_winners"][name]
        assert soft_cell.endswith("*") == (str(runs["soft"]) in winners)
        assert mlp_cell.endswith("*") == (str(runs["mlp"]) in winners)


def test_fewer_than_two_usable_runs_is_an_error(runs, capsys):
    assert cli.main(["compare", str(runs["soft"]), str(runs["damaged"])]) == 1
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2 and str(runs["damaged"]) in err[0]
    assert err[1] == "fmnist: error: only 1 of the 2 runs can be compared, and it takes two."
    assert cli.main(["compare", str(runs["soft"])]) == 2
    assert "two or more run directories" in capsys.readouterr().err


@pytest.mark.parametrize(
    "damage, message",
    [
        ({"model.safetensors": b"\x00" * 100}, "model.safetensors is not a valid safetensors file"),
        ({"metrics.csv": b"epoch,train_loss\n1,0.5\n"}, "metrics (epoch 1 has no column train_acc, test_acc, seconds)"),
        ({"metrics.csv": b"epoch,train_loss,train_acc,test_acc,seconds\n1,x,0.1,0.2,0.3\n"},
         "metrics.csv does not hold fmnist's metrics"),
        ({"metrics.csv": None}, "metrics.csv is missing"),
        ({"config.json": b"[1, 2"}, "config.json is not a JSON object"),
        ({"config.json": None}, "config.json is missing"),
        ({"metrics.csv": b"epoch,train_loss,train_acc,test_acc,seconds\n"},
         "the checkpoint holds 3 epochs but metrics.csv only 0"),
    ],
)
def test_each_kind_of_damage_is_one_sentence_and_the_others_still_compare(runs, damage, message, capsys):
    hurt = shutil.copytree(runs["soft"], runs["soft"].with_name("hurt"))
    for name, content in damage.items():
        if content is None:
            (hurt / name).unlink()
        else:
            (hurt / name).write_bytes(content)
    assert cli.main(["compare", str(runs["soft"]), str(hurt), str(runs["mlp"]), "--json"]) == 1
    captured = capsys.readouterr()
    assert [row["run"] for row in json.loads(captured.out)["runs"]] == [str(runs["soft"]), str(runs["mlp"])]
    assert captured.err.count("\n") == 1 and message in captured.err and "Traceback" not in captured.err
