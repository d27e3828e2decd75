"""Output that tools can read: non-finite weights refused, closed pipes, read-only run folders."""

from __future__ import annotations

import pytest
from conftest import small_fmnist
from runfolders import one_line_error, read_only, snapshot
from safetensors.torch import load_file, save_file

from fmnist import cli


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_a_model_with_non_finite_weights_is_refused(run_dir, capsys, bad):
    path = run_dir / "model.safetensors"
    tensors = load_file(str(path))
    tensors["weight"][3, 100] = bad
    save_file(tensors, str(path), metadata={"model": "softmax"})
    for args in (["predict", str(run_dir), "--test-index", "0", "--json"], ["eval", str(run_dir), "--json"]):
        assert cli.main(args) == 1
        out, err = capsys.readouterr()
        assert out == "" and "holds values that are not finite numbers (in weight)" in err
        one_line_error(err)


@pytest.mark.parametrize("args", [
    ["eval", "RUN"],
    pytest.param(["eval", "RUN", "--json"], marks=pytest.mark.slow),
    pytest.param(["predict", "RUN", "--test-index", "0"], marks=pytest.mark.slow),
])  # fmt: skip
def test_a_closed_pipe_ends_quietly(run_dir, args):
    run = small_fmnist(*[str(run_dir) if a == "RUN" else a for a in args])
    run.stdout.close()  # the reader is gone before anything was written
    run.wait(timeout=120)
    assert run.stderr.read() == "" and run.returncode == 141


@pytest.mark.slow
def test_eval_of_a_read_only_run_directory_prints_its_scores(run_dir):
    before = snapshot(run_dir)
    done = read_only(run_dir, "eval", str(run_dir))
    assert done.returncode == 0, done.stderr
    assert "test accuracy" in done.stdout and "ankle boot" in done.stdout
    assert f"note: {run_dir} cannot be written, so its pictures and report were not redrawn" in done.stdout
    assert snapshot(run_dir) == before
