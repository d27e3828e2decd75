"""A notebook in the style of the book's softmax chapters (3.5-3.7), run by a real Jupyter kernel
(nbclient + ipykernel) on the real dataset: no cell errors, pictures arrive as inline images, each
training cell shows one figure (the Animator's, redrawn in place), nothing is printed or saved
the way scripts get it."""

from __future__ import annotations

from conftest import inline_images, run_notebook

CELLS = [
    """%matplotlib inline
import torch
from torch import nn
from fmnist import d2l

d2l.use_svg_display()""",
    """train_iter, test_iter = d2l.load_data_fashion_mnist(18)
X, y = next(iter(train_iter))
d2l.show_images(X.reshape(18, 28, 28), 2, 9, titles=d2l.get_fashion_mnist_labels(y));""",
    """batch_size = 256
train_iter, test_iter = d2l.load_data_fashion_mnist(batch_size)
W = torch.normal(0, 0.01, size=(784, 10), requires_grad=True)
b = torch.zeros(10, requires_grad=True)

def softmax(X):
    X_exp = d2l.exp(X)
    return X_exp / d2l.reduce_sum(X_exp, 1, keepdim=True)

def net(X):
    return softmax(d2l.matmul(d2l.reshape(X, (-1, W.shape[0])), W) + b)

def cross_entropy(y_hat, y):
    return -d2l.log(y_hat[range(len(y_hat)), y])

d2l.evaluate_accuracy(net, test_iter)""",
    """lr = 0.1

def updater(batch_size):
    return d2l.sgd([W, b], lr, batch_size)

d2l.train_ch3(net, train_iter, test_iter, cross_entropy, 2, updater)""",
    "d2l.predict_ch3(net, test_iter)",
    """net = nn.Sequential(nn.Flatten(), nn.Linear(784, 10))
net.apply(lambda m: nn.init.normal_(m.weight, std=0.01) if type(m) == nn.Linear else None)
loss = nn.CrossEntropyLoss(reduction='none')
trainer = torch.optim.SGD(net.parameters(), lr=0.1)
d2l.train_ch3(net, train_iter, test_iter, loss, 2, trainer)""",
    "d2l.plot(d2l.arange(10), [0.1 * 0.9 ** t for t in range(10)], 'epoch', 'lr')",
]
PICTURES = {1: "show_images", 3: "train_ch3 (scratch)", 4: "predict_ch3", 5: "train_ch3 (concise)", 6: "plot"}


def test_softmax_chapters_in_a_jupyter_kernel(real_dir, tmp_path):
    cells = run_notebook(CELLS, tmp_path)
    for i, cell in enumerate(cells):
        if i in PICTURES:
            assert inline_images(cell.outputs) == ["image/svg+xml"], PICTURES[i]  # one inline SVG (use_svg_display)
        else:
            assert inline_images(cell.outputs) == [], i
        texts = [out.get("text", "") + out.get("data", {}).get("text/plain", "") for out in cell.outputs]
        assert not any("figure saved" in text or "epoch " in text for text in texts), texts
    accuracy = float(cells[2].outputs[0]["data"]["text/plain"])
    assert 0 <= accuracy < 0.5  # random weights
    assert list(tmp_path.iterdir()) == []  # nothing saved beside the notebook
