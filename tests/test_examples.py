"""examples/*.py run headless as a user runs them, and docs/softmax.md's code blocks run and hold."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

ROOT = Path(__file__).parents[1]
EXAMPLES = ROOT / "examples"
DOC = ROOT / "docs" / "softmax.md"

# script -> the figures it saves and whether it trains (prints epoch lines)
SCRIPTS = {
    "image_classification_dataset.py": (["fmnist-show_images.png"], False),
    "softmax_regression_scratch.py": (["fmnist-train_ch3.png", "fmnist-predict_ch3.png"], True),
    "softmax_regression_concise.py": (["fmnist-train_ch3.png"], True),
}


@pytest.fixture(scope="module")
def example_cache(tmp_path_factory) -> Path:
    """One cache folder for all example runs (decompressed data, matplotlib's font list), not the user's."""
    return tmp_path_factory.mktemp("example-cache")


def test_every_example_is_tested():
    assert sorted(p.name for p in EXAMPLES.glob("*.py")) == sorted(SCRIPTS)


@pytest.mark.parametrize("script", sorted(SCRIPTS))
def test_example_runs_headless(script, real_dir, example_cache, tmp_path):
    epochs = 2
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "MPLBACKEND")}
    env.update(FMNIST_EXAMPLE_EPOCHS=str(epochs), XDG_CACHE_HOME=str(example_cache), OMP_NUM_THREADS="1")
    done = subprocess.run([sys.executable, str(EXAMPLES / script)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=180)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "Warning" not in done.stderr, done.stderr
    lines = done.stdout.splitlines()
    figures, trains = SCRIPTS[script]
    for name in figures:
        assert any(line.endswith(f"figure saved to {tmp_path / name}") for line in lines), done.stdout
        with Image.open(tmp_path / name) as image:
            image.load()
            assert image.format == "PNG" and min(image.size) > 50
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(figures)
    epoch_lines = [line.split() for line in lines if line.startswith("epoch")]
    if trains:
        assert [fields[1] for fields in epoch_lines] == [f"{e}/{epochs}" for e in range(1, epochs + 1)]
        train_acc, test_acc = float(epoch_lines[-1][7]), float(epoch_lines[-1][10])
        assert train_acc > 0.7 and test_acc > 0.7
    else:
        assert "torch.Size([32, 1, 64, 64]) torch.float32 torch.Size([32]) torch.int64" in lines
        assert "235 training batches, 40 test batches" in lines
    if script == "softmax_regression_scratch.py":
        assert "accuracy of the two-example batch: 0.5" in lines


def _code_blocks(text: str) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", text, flags=re.S | re.M)


def test_docs_code_blocks_run_and_their_assertions_hold(capsys):
    text = DOC.read_text()
    blocks = _code_blocks(text)
    assert len(blocks) >= 6 and text.count("```python") == len(blocks)
    namespace: dict = {"__name__": "softmax_md"}
    for i, block in enumerate(blocks):
        exec(compile(block, f"{DOC.name} block {i + 1}", "exec"), namespace)  # one program, as in a notebook
    assert capsys.readouterr().out.splitlines() == ["tensor([[0.0321, 0.0871, 0.2369, 0.6439]])", "tensor([2000.])"]


def test_docs_state_the_shape_of_per_example_losses():
    text = DOC.read_text()
    assert "shape `(B,)`" in text and "**not** a `(B, classes)` matrix" in text
    assert "seed/softmax-regression-notebook.txt" in text
