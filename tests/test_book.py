"""The d2l book's names: hand-computed values, the book's two training paths, headless and Jupyter pictures."""

from __future__ import annotations

import copy
import subprocess
import sys
import types

import pytest
import torch
from PIL import Image
from torch import nn

import fmnist
import fmnist as d2l
from fmnist import data, model, optim, plots, train
from fmnist.d2l import figures as bookplots

pytestmark = pytest.mark.usefixtures("headless")


def _iters(batch_size=50):
    dataset = data.load()
    return (
        data.Batches(dataset.train_images, dataset.train_labels, batch_size, True, torch.Generator().manual_seed(0)),
        data.Batches(dataset.test_images, dataset.test_labels, batch_size),
    )


def _png(path):
    with Image.open(path) as image:
        image.load()
        return image.format, image.size


def test_import_fmnist_needs_no_torch_and_every_book_name_resolves():
    code = "import sys, fmnist; assert 'torch' not in sys.modules and 'matplotlib' not in sys.modules"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    for name in fmnist.__all__:
        assert getattr(d2l, name) is getattr(fmnist.d2l, name)
    assert d2l.plt.__name__ == "matplotlib.pyplot"
    assert {"train_ch3", "predict_ch3", "show_images", "Animator", "plt"} <= set(dir(fmnist))
    with pytest.raises(AttributeError):
        d2l.not_a_book_name  # noqa: B018


def test_accuracy_counts_correct_predictions_as_a_float():
    y_hat = torch.tensor([[0.1, 0.3, 0.6], [0.3, 0.2, 0.5]])  # the book's example: argmax 2, 2
    y = torch.tensor([0, 2])
    assert d2l.accuracy(y_hat, y) == 1.0 and isinstance(d2l.accuracy(y_hat, y), float)
    assert d2l.accuracy(y_hat, y) / len(y) == 0.5
    assert d2l.accuracy(torch.tensor([3, 1, 4, 1]), torch.tensor([3, 1, 4, 0])) == 3.0  # predicted classes [B]


def test_accumulator_and_timer():
    metric = d2l.Accumulator(3)
    metric.add(1, 2.5, torch.tensor(3))
    metric.add(1, 0.5, 1)
    assert [metric[0], metric[1], metric[2]] == [2.0, 3.0, 4.0]
    metric.reset()
    assert metric[2] == 0.0
    timer = d2l.Timer()
    first = timer.stop()
    timer.start()
    second = timer.stop()
    assert timer.times == [first, second] and timer.sum() == first + second and timer.avg() == (first + second) / 2
    assert timer.cumsum() == pytest.approx([first, first + second])


def test_sgd_is_the_books_update_on_a_summed_loss():
    w = torch.tensor([1.0, -2.0], requires_grad=True)
    (w * torch.tensor([4.0, 6.0])).sum().backward()  # grad [4, 6]
    d2l.sgd([w], lr=0.5, batch_size=2)
    assert w.tolist() == [0.0, -3.5]  # w - 0.5 * grad / 2
    assert w.grad.tolist() == [0.0, 0.0]


def test_evaluate_accuracy_uses_eval_mode_and_no_gradients(small_data):
    _, test_iter = _iters()
    seen = []

    class Probe(nn.Module):
        def __init__(self):
            super().__init__()
            self.linear = nn.Linear(784, 10)

        def forward(self, X):
            seen.append((self.training, torch.is_grad_enabled()))
            return self.linear(X.flatten(1))

    net = Probe().train()
    fraction = d2l.evaluate_accuracy(net, test_iter)
    assert seen == [(False, False)] * len(test_iter)
    assert not net.training  # left in eval mode, as the book's
    with torch.no_grad():
        correct = sum(int((net(X).argmax(1) == y).sum()) for X, y in test_iter)
    assert fraction == correct / 100
    # a plain function, as the book's from-scratch net
    assert d2l.evaluate_accuracy(lambda X: net(X), test_iter) == fraction


def test_train_epoch_ch3_with_an_optimizer_matches_fmnist_train_epoch(small_data):
    torch.manual_seed(2)
    reference = model.softmax_regression()
    net = copy.deepcopy(reference)
    train_iter, _ = _iters(32)
    expected = train.train_epoch(reference, train_iter, nn.CrossEntropyLoss(), optim.SGD(reference.parameters(), 0.3))
    train_iter.generator.manual_seed(0)  # the same batches again
    result = d2l.train_epoch_ch3(net, train_iter, nn.CrossEntropyLoss(reduction="none"),
                                 torch.optim.SGD(net.parameters(), lr=0.3))  # fmt: skip
    assert result[0] == pytest.approx(expected[0], rel=1e-6) and result[1] == expected[1]
    assert torch.allclose(net[1].weight, reference[1].weight, atol=1e-7)
    assert not torch.equal(net[1].bias, torch.zeros(10))


def test_the_books_scratch_updater_path_matches_the_optimizer_path(small_data):
    torch.manual_seed(4)
    with_optimizer = model.softmax_regression()
    net = copy.deepcopy(with_optimizer)
    train_iter, _ = _iters(32)
    loss = nn.CrossEntropyLoss(reduction="none")
    expected = d2l.train_epoch_ch3(with_optimizer, train_iter, loss, optim.SGD(with_optimizer.parameters(), 0.3))
    train_iter.generator.manual_seed(0)
    batch_sizes = []

    def updater(batch_size):
        batch_sizes.append(batch_size)
        d2l.sgd(net.parameters(), 0.3, batch_size)

    result = d2l.train_epoch_ch3(net, train_iter, loss, updater)
    assert batch_sizes == [32] * 6 + [8]  # 200 examples in batches of 32
    assert result == pytest.approx(expected, rel=1e-6)
    assert torch.allclose(net[1].weight, with_optimizer[1].weight, atol=1e-7)


def test_train_ch3_runs_the_books_scratch_code_headless(small_data, tmp_path, capsys):
    train_iter, test_iter = d2l.load_data_fashion_mnist(50)
    torch.manual_seed(0)
    W = torch.normal(0, 0.01, size=(784, 10), requires_grad=True)
    b = torch.zeros(10, requires_grad=True)

    def net(X):
        X_exp = torch.exp(torch.matmul(X.reshape((-1, W.shape[0])), W) + b)
        return X_exp / X_exp.sum(1, keepdim=True)

    def cross_entropy(y_hat, y):
        return -torch.log(y_hat[range(len(y_hat)), y])

    assert d2l.evaluate_accuracy(net, test_iter) < 0.5
    d2l.train_ch3(net, train_iter, test_iter, cross_entropy, 4, lambda batch_size: d2l.sgd([W, b], 0.5, batch_size))
    out = capsys.readouterr().out.splitlines()
    epochs = [line.split() for line in out if line.startswith("epoch")]
    assert [fields[1] for fields in epochs] == ["1/4", "2/4", "3/4", "4/4"]
    losses = [float(fields[4]) for fields in epochs]
    assert losses[-1] < losses[0] and float(epochs[-1][10]) > 0.9  # test accuracy on the toy classes
    assert out[-1] == f"train_ch3: figure saved to {tmp_path / 'fmnist-train_ch3.png'}"
    kind, size = _png(tmp_path / "fmnist-train_ch3.png")
    assert kind == "PNG" and min(size) > 100

    d2l.predict_ch3(net, test_iter)
    assert capsys.readouterr().out == f"predict_ch3: figure saved to {tmp_path / 'fmnist-predict_ch3.png'}\n"
    width, height = _png(tmp_path / "fmnist-predict_ch3.png")[1]
    assert width > 3 * height  # one row of six images


def test_show_images_returns_the_axes_and_numbers_later_figures(tmp_path, capsys):
    images = torch.rand(5, 28, 28)
    axes = d2l.show_images(images, 2, 3, titles=["a", "b", "c", "d", "e"])
    assert len(axes) == 6 and [ax.get_title() for ax in axes] == ["a", "b", "c", "d", "e", ""]
    assert len(axes[0].images) == 1 and len(axes[5].images) == 0
    d2l.show_images([image.numpy() for image in images[:2]], 1, 2)
    assert capsys.readouterr().out.splitlines() == [
        f"show_images: figure saved to {tmp_path / 'fmnist-show_images.png'}",
        f"show_images: figure saved to {tmp_path / 'fmnist-show_images-2.png'}",
    ]
    assert _png(tmp_path / "fmnist-show_images-2.png")[0] == "PNG"


def test_figures_still_saved_when_no_gui_can_start_or_the_directory_is_read_only(tmp_path, monkeypatch, capsys):
    from matplotlib import pyplot

    def no_display(*args, **kwargs):
        raise ImportError("Cannot load backend 'TkAgg' which requires the 'tk' interactive framework")

    monkeypatch.setattr(pyplot, "figure", no_display)
    original_write = plots.write_atomic

    def read_only_cwd(path, content):
        if path.parent == tmp_path:
            raise PermissionError(13, "Permission denied", str(path))
        return original_write(path, content)

    monkeypatch.setattr(plots, "write_atomic", read_only_cwd)
    monkeypatch.setattr(bookplots.tempfile, "gettempdir", lambda: str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    d2l.show_images(torch.rand(2, 28, 28), 1, 2)
    assert capsys.readouterr().out == f"show_images: figure saved to {tmp_path / 'tmp' / 'fmnist-show_images.png'}\n"
    assert _png(tmp_path / "tmp" / "fmnist-show_images.png")[0] == "PNG"


def _fake_jupyter(monkeypatch):
    """An IPython kernel as book sees one: IPython.get_ipython() with IPKernelApp in its config."""
    calls = []
    display = types.ModuleType("IPython.display")
    display.display = lambda fig: calls.append(("display", fig))
    display.clear_output = lambda wait=False: calls.append(("clear_output", wait))
    shell = types.SimpleNamespace(config={"IPKernelApp": {}})
    ipython = types.ModuleType("IPython")
    ipython.get_ipython = lambda: shell
    ipython.display = display
    monkeypatch.setitem(sys.modules, "IPython", ipython)
    monkeypatch.setitem(sys.modules, "IPython.display", display)
    return calls


def test_not_jupyter_in_a_plain_interpreter_or_a_terminal_ipython(monkeypatch):
    assert not bookplots.in_notebook()
    _fake_jupyter(monkeypatch)
    assert bookplots.in_notebook()
    sys.modules["IPython"].get_ipython = lambda: types.SimpleNamespace(config={"TerminalIPythonApp": {}})
    assert not bookplots.in_notebook()


def test_in_jupyter_train_ch3_redraws_every_epoch_and_writes_nothing(small_data, tmp_path, monkeypatch, capsys):
    calls = _fake_jupyter(monkeypatch)
    torch.manual_seed(0)
    net = model.softmax_regression()
    train_iter, test_iter = _iters()
    loss = nn.CrossEntropyLoss(reduction="none")
    d2l.train_ch3(net, train_iter, test_iter, loss, 3, optim.SGD(net.parameters(), 0.5))
    figures = [arg for name, arg in calls if name == "display"]
    assert len(figures) == 3 and all(fig is figures[0] for fig in figures)
    assert calls[1] == ("clear_output", True)
    lines = figures[0].axes[0].get_lines()
    assert [len(line.get_xdata()) for line in lines] == [3, 3, 3]  # train loss, train acc, test acc
    assert figures[0].axes[0].get_legend() is not None
    d2l.predict_ch3(net, test_iter)
    d2l.show_images(torch.rand(2, 28, 28), 1, 2)
    assert capsys.readouterr().out == "" and list(tmp_path.glob("*.png")) == []


def test_accuracy_counts_matches_for_any_number_of_classes():
    y_hat = torch.zeros(3, 12)
    y_hat[0, 11] = y_hat[1, 3] = y_hat[2, 0] = 1  # predictions 11, 3, 0
    assert d2l.accuracy(y_hat, torch.tensor([0, 3, 0])) == 2.0
