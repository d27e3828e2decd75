"""The seed notebook's code, with only its import changed, runs against fmnist."""

from __future__ import annotations

import runpy
from pathlib import Path

# The seed notebook as text (cells and outputs), copied from the project's shared/seed/ folder.
SEED_TEXT = Path(__file__).with_name("data") / "softmax-regression-notebook.txt"
SEED_CODE = Path(__file__).with_name("seed_notebook.py")


def test_seed_code_is_the_notebooks_code():
    notebook = SEED_TEXT.read_text()
    lines = SEED_CODE.read_text().splitlines()
    assert lines[3] == "import fmnist as d2l" and "from d2l import torch as d2l" in notebook
    for line in lines[4:]:
        assert line in notebook, line


def test_seed_code_runs_and_learns(small_data, capsys):
    # 100 epochs as the notebook asks: on the 200-image test dataset that is 100 batches.
    runpy.run_path(str(SEED_CODE), run_name="__main__")
    out = capsys.readouterr().out.splitlines()
    assert out[:4] == ["<class 'torch.Tensor'>", "<class 'torch.Tensor'>",
                       "torch.Size([200, 1, 28, 28])", "torch.Size([200])"]  # fmt: skip
    rates = [float(line.split("-> ")[1]) for line in out if line.startswith("平均预测率")]
    assert len(rates) == 100
    assert rates[0] < 0.5 and rates[-1] > 0.95
