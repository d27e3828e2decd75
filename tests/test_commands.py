"""predict, show, eval's pictures and train --quiet, through the command line, on small data."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from fmnist import cli, data
from fmnist.settings import Config
from fmnist.train import train


@pytest.fixture
def run_dir(small_data, tmp_path):
    out = tmp_path / "run"
    train(Config(epochs=3, batch_size=20, lr=0.5), out, log=lambda line: None, progress=False)
    return out


def test_predict_answers_every_good_file_and_reports_the_bad_one(run_dir, small_arrays, tmp_path, capsys):
    i = int(np.flatnonzero(small_arrays["test_labels"] == 9)[0])  # an ankle-boot band image
    big = Image.fromarray(small_arrays["test_images"][i]).resize((112, 112), Image.NEAREST)
    big.convert("RGB").save(tmp_path / "a.png")
    Image.fromarray(255 - np.asarray(big)).save(tmp_path / "b.jpg", quality=95)  # dark on light
    (tmp_path / "c.png").write_text("not a picture")
    files = [str(tmp_path / name) for name in ("a.png", "c.png", "b.jpg")]
    assert cli.main(["predict", str(run_dir), *files, "--json", "--top", "2"]) == 1
    captured = capsys.readouterr()
    results = json.loads(captured.out)
    assert [r["path"] for r in results] == files
    assert "c.png" in results[1]["error"] and "c.png" in captured.err
    for r in (results[0], results[2]):
        assert [t["label"] for t in r["top"]][0] == "ankle boot" and len(r["top"]) == 2
        assert r["top"][0]["prob"] >= r["top"][1]["prob"] and r["top"][0]["index"] == 9


def test_predict_test_items_with_their_true_labels_and_a_plot(run_dir, small_arrays, tmp_path, capsys):
    assert cli.main(["predict", str(run_dir), "--test-index", "0", "5", "--plot", str(tmp_path / "p.png")]) == 0
    lines = capsys.readouterr().out.splitlines()
    for line, i in zip(lines, (0, 5), strict=False):
        true = data.LABELS[small_arrays["test_labels"][i]]
        assert line.startswith(f"test[{i}]: ") and line.endswith(f"(true: {true})")
    with Image.open(tmp_path / "p.png") as picture:
        assert picture.format == "PNG" and picture.height > picture.width * 0.4  # two rows


def test_predict_needs_something_to_predict(run_dir, capsys):
    assert cli.main(["predict", str(run_dir)]) == 2
    assert "give one or more image files, or --test-index" in capsys.readouterr().err
    assert cli.main(["predict", str(run_dir), "--test-index", "100"]) == 2
    assert "--test-index 100 is outside the test set (0 to 99)" in capsys.readouterr().err


def test_show_draws_a_labelled_grid(small_data, tmp_path, capsys):
    assert cli.main(["show", "--n", "12", "--split", "test", "--out", str(tmp_path / "grid.png")]) == 0
    assert str(tmp_path / "grid.png") in capsys.readouterr().out
    with Image.open(tmp_path / "grid.png") as picture:
        assert picture.format == "PNG" and 3.5 < picture.width / picture.height < 4.5  # 9 x 2 images with labels


def test_eval_redraws_the_pictures_and_the_report(run_dir, capsys):
    for name in ("curves.png", "confusion.png", "mistakes.png", "report.html"):
        (run_dir / name).unlink()
    assert cli.main(["eval", str(run_dir)]) == 0
    for name in ("curves.png", "confusion.png", "mistakes.png"):
        with Image.open(run_dir / name) as picture:
            assert picture.format == "PNG"
    assert "data:image/png;base64," in (run_dir / "report.html").read_text()


def test_quiet_training_prints_one_line(small_data, tmp_path, capsys):
    assert cli.main(["train", "--quiet", "--epochs", "2", "--out", str(tmp_path / "run")]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 1 and out[0].startswith("done in")
