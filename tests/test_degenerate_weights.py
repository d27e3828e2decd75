"""Finite weights whose scores are not finite (sums that overflow, a spread of 0 or next to it) and a
standardisation that cannot be computed are refused in one sentence; output for tools stays valid JSON
(issue 18, item 6, and item 10's --val-size with --normalize pixel)."""

from __future__ import annotations

import json

import pytest
import torch
from runfolders import copy_run, one_line_error, snapshot
from safetensors.torch import load_file, save_file

from fmnist import cli


def _strict_json(text: str) -> object:
    """text parsed as JSON as other tools read it: NaN and Infinity are not JSON."""
    return json.loads(text, parse_constant=lambda word: pytest.fail(f"{word} is not JSON"))


def _huge(tensors):
    tensors["weight"] = torch.full_like(tensors["weight"], 3e38)  # finite, but the sum of 784 overflows


def _huge_both_signs(tensors):
    tensors["weight"] = torch.full_like(tensors["weight"], 3e38) * torch.tensor([1.0, -1.0]).repeat(392)


def _spread(value: float):
    def edit(tensors):
        tensors["mean"], tensors["std"] = torch.zeros(1), torch.full((1,), value)

    return edit


WEIGHTS = {  # how model.safetensors is changed, and what the one sentence must say
    "weights 3e38": (_huge, "the model's scores are not all finite numbers"),
    "weights +-3e38": (_huge_both_signs, "the model's scores are not all finite numbers"),
    "std 0": (_spread(0.0), "tensor 'std', the input's spread it divides by, is not positive everywhere"),
    "std -1": (_spread(-1.0), "tensor 'std', the input's spread it divides by, is not positive everywhere"),
    "std 1e-45": (_spread(1e-45), "the model's scores are not all finite numbers"),  # positive, yet x / std overflows
}


@pytest.mark.parametrize("case", list(WEIGHTS))
def test_weights_whose_scores_are_not_finite_are_refused_by_every_command(small_data, trained, tmp_path, capsys,
                                                                          case):  # fmt: skip
    run, good = copy_run(trained("sgd"), tmp_path / "run"), copy_run(trained("sgd"), tmp_path / "good")
    edit, problem = WEIGHTS[case]
    tensors = load_file(run / "model.safetensors")
    edit(tensors)
    assert all(v.isfinite().all() for v in tensors.values())  # every weight a finite number
    save_file(tensors, str(run / "model.safetensors"), metadata={"model": "softmax"})
    if "std" in case:  # a standardised model, as --normalize global trains it
        config = json.loads((run / "config.json").read_text())
        (run / "config.json").write_text(json.dumps({**config, "normalize": "global"}))
    before = snapshot(run)
    for args in (["predict", str(run), "--test-index", "0", "1", "--json"], ["eval", str(run), "--json"],
                 ["eval", str(run)], ["compare", str(run), str(good), str(good), "--json"]):  # fmt: skip
        code = cli.main(args)
        out, err = capsys.readouterr()
        assert code == 1, (args, out, err)
        one_line_error(err)
        assert problem in err and (args[0] != "compare" or str(run) in err), (args, err)
        if "--json" in args and out:  # compare still compares the two good runs
            result = _strict_json(out)
            assert [row["run"] for row in result["runs"]] == [str(good), str(good)]
        else:
            assert out == "", (args, out)
        assert snapshot(run) == before, args  # summary.json, the pictures: not rewritten


def test_pixel_standardisation_of_a_single_image_is_refused(small_data, tmp_path, capsys):
    out = tmp_path / "run"
    args = ["train", f"--out={out}", "--epochs", "1", "--normalize", "pixel", "--val-size", "199"]  # 1 image left
    assert cli.main(args) == 1
    err = capsys.readouterr().err
    one_line_error(err)
    assert "--normalize pixel takes each pixel's spread over the training images, and --val-size 199 leaves 1" in err
    assert "learning rate" not in err and "--lr" not in err
    assert list(out.iterdir()) == []
