"""The English edition's API in a real Jupyter kernel (nbclient + ipykernel), in the style of chapters
4.2 and 4.5, on the real dataset: no cell errors, pictures arrive inline, each training cell shows
one figure (its ProgressBoard, redrawn in place), nothing is printed or saved the way scripts get it."""

from __future__ import annotations

import os

import nbformat
from nbclient import NotebookClient

CELLS = [
    """%matplotlib inline
import torch
from fmnist.d2l import en as d2l

d2l.use_svg_display()""",
    """data = d2l.FashionMNIST(batch_size=256)
batch = next(iter(data.val_dataloader()))
data.visualize(batch)""",
    """model = d2l.SoftmaxRegression(num_outputs=10, lr=0.1)
trainer = d2l.Trainer(max_epochs=1)
trainer.fit(model, data)""",
    """@d2l.add_to_class(d2l.SoftmaxRegression)
def predict(self, X):
    return self(X).argmax(axis=1)

X, y = batch
float((model.predict(X) == y).float().mean())""",
    "trainer.fit(d2l.SoftmaxRegression(num_outputs=10, lr=0.5), data)",
]
PICTURES = {1: "visualize", 2: "Trainer.fit", 4: "Trainer.fit again"}


def _images(outputs) -> list[str]:
    return [kind for out in outputs for kind in out.get("data", {}) if kind in ("image/png", "image/svg+xml")]


def test_english_edition_in_a_jupyter_kernel(real_dir, tmp_path):
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source) for source in CELLS])
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "MPLBACKEND")}
    env["OMP_NUM_THREADS"] = "1"
    client = NotebookClient(
        notebook, timeout=180, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    )
    client.execute(env=env)  # raises CellExecutionError, with the traceback, if any cell fails

    cells = notebook.cells
    for i, cell in enumerate(cells):
        assert not [out for out in cell.outputs if out.output_type == "error"], i
        expected = ["image/svg+xml"] if i in PICTURES else []  # one inline SVG per picture cell
        assert _images(cell.outputs) == expected, PICTURES.get(i, i)
        texts = [out.get("text", "") + out.get("data", {}).get("text/plain", "") for out in cell.outputs]
        assert not any("figure saved" in text for text in texts), texts
    accuracy = float(cells[3].outputs[0]["data"]["text/plain"])
    assert 0.7 < accuracy <= 1  # an epoch of softmax regression on the first 256 test images
    assert list(tmp_path.iterdir()) == []  # nothing saved beside the notebook
