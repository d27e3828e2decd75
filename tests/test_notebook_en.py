"""The English edition's API in a real Jupyter kernel (nbclient + ipykernel), in the style of chapters
4.2 and 4.5, on the real dataset: no cell errors, pictures arrive inline, each training cell shows
one figure (its ProgressBoard, redrawn in place), nothing is printed or saved the way scripts get it."""

from __future__ import annotations

from conftest import inline_images, run_notebook

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


def test_english_edition_in_a_jupyter_kernel(real_dir, tmp_path):
    cells = run_notebook(CELLS, tmp_path)
    for i, cell in enumerate(cells):
        expected = ["image/svg+xml"] if i in PICTURES else []  # one inline SVG per picture cell
        assert inline_images(cell.outputs) == expected, PICTURES.get(i, i)
        texts = [out.get("text", "") + out.get("data", {}).get("text/plain", "") for out in cell.outputs]
        assert not any("figure saved" in text for text in texts), texts
    accuracy = float(cells[3].outputs[0]["data"]["text/plain"])
    assert 0.7 < accuracy <= 1  # an epoch of softmax regression on the first 256 test images
    assert list(tmp_path.iterdir()) == []  # nothing saved beside the notebook
