"""Integration on the real dataset: compare, weights.png, the explorable report and predict --explain
on two short real runs made by the command line."""

from __future__ import annotations

import gzip
import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
from browser import CLICK_EVERYTHING, check_clicks, run_probe
from PIL import Image
from safetensors.numpy import load_file

from fmnist import cli, data
from fmnist.rundir import RunDir

MAX_REPORT_BYTES = 4_000_000  # the test set's 10,000 images travel in the page as one 4-bit sprite


@pytest.fixture(scope="module")
def real_runs(real_dir, tmp_path_factory) -> dict:
    """`fmnist train --epochs 2` of softmax regression and of the mlp, as a user runs them."""
    root = tmp_path_factory.mktemp("runs")
    runs = {"softmax": root / "softmax", "mlp": root / "mlp"}
    for name, out in runs.items():
        done = subprocess.run([sys.executable, "-m", "fmnist", "train", "--model", name, "--epochs", "2", "--quiet",
                               "--out", str(out)], capture_output=True, text=True, timeout=300)  # fmt: skip
        assert done.returncode == 0, done.stderr
    return runs


def _official_test_labels(real_dir) -> np.ndarray:
    return np.frombuffer(gzip.decompress((real_dir / "t10k-labels-idx1-ubyte.gz").read_bytes())[8:], np.uint8)


def test_report_of_a_real_run_is_bounded_and_every_cell_shows_its_images(real_runs, real_dir, chromium, tmp_path):
    report = real_runs["softmax"] / "report.html"
    assert 1_000_000 < report.stat().st_size < MAX_REPORT_BYTES
    net, _ = RunDir(real_runs["softmax"]).load_model()
    dataset = data.load()
    with torch.no_grad():
        probs = net(dataset.test_images).softmax(dim=1).numpy()
    labels = _official_test_labels(real_dir).astype(np.int64)
    confusion = np.zeros((10, 10), np.int64)
    np.add.at(confusion, (labels, probs.argmax(axis=1)), 1)
    result = run_probe(chromium, report.read_text(), CLICK_EVERYTHING, tmp_path)
    check_clicks(result, labels, probs, confusion)
    assert result["sprite"] == [2800, 2800]
    with Image.open(real_runs["softmax"] / "weights.png") as picture:
        assert picture.format == "PNG"


def test_compare_two_real_runs_and_a_damaged_one(real_runs, tmp_path, capsys):
    damaged = tmp_path / "damaged"
    shutil.copytree(real_runs["softmax"], damaged)
    (damaged / "metrics.csv").write_text("epoch,train_loss\n1,oops\n")
    args = [str(real_runs["softmax"]), str(damaged), str(real_runs["mlp"])]
    assert cli.main(["compare", *args, "--json", "--out", str(tmp_path / "cmp")]) == 1
    captured = capsys.readouterr()
    assert f"{damaged / 'metrics.csv'} does not hold fmnist's metrics" in captured.err
    result = json.loads(captured.out)
    softmax, mlp = result["runs"]
    for row, run in ((softmax, real_runs["softmax"]), (mlp, real_runs["mlp"])):
        summary = json.loads((run / "summary.json").read_text())
        assert row["test_acc"] == summary["test_acc"] and row["epochs"] == 2
    assert (softmax["parameters"], mlp["parameters"]) == (7850, 203530)
    assert result["best"]["test_acc"] == [str(real_runs["mlp"])]  # the mlp is well ahead after 2 epochs
    assert (tmp_path / "cmp" / "compare.html").stat().st_size < 200_000


def test_predict_explain_on_a_real_run(real_runs, real_dir, tmp_path, drawn, capsys):
    picture = tmp_path / "explained.png"
    args = ["predict", str(real_runs["softmax"]), "--test-index", "0", "--explain", "--plot", str(picture)]
    assert cli.main(args) == 0
    assert "(true: ankle boot)" in capsys.readouterr().out
    pixels = gzip.decompress((real_dir / "t10k-images-idx3-ubyte.gz").read_bytes())[16 : 16 + 784]
    x = np.frombuffer(pixels, np.uint8) / np.float32(255)
    weights = load_file(str(real_runs["softmax"] / "model.safetensors"))
    top = int((x @ weights["weight"].T + weights["bias"]).argmax())
    evidence = (x * weights["weight"][top]).reshape(28, 28)
    shown = drawn[0].axes[1].images[0].get_array()[:28]  # the first row of the column of evidence maps
    assert np.allclose(shown, evidence / np.abs(evidence).max(), atol=1e-6)
    assert picture.stat().st_size > 0
