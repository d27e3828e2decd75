"""fmnist.d2l, the book's namespace: every name its chapters call, the tensor aliases, resizing,
batches made on the device, train_ch6's initialisation, plot and show_images, and the defects
fixed on the way (accuracy with any number of classes, colour images, figures left open)."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn
from torch.nn import functional as F

import fmnist
from fmnist import d2l, data

pytestmark = pytest.mark.usefixtures("headless")

# The d2l names the PyTorch cells of the chapters call (d2l-zh 2.0): 3.5-3.7, 4.2-4.6, 6.6, 7.1-7.7,
# 11.11, 12.5, 12.6, including the ones called by the helpers those chapters define themselves.
CHAPTER_NAMES = {
    "use_svg_display", "Timer", "load_data_fashion_mnist", "get_fashion_mnist_labels", "show_images", "plt",
    "tensor", "reduce_sum", "exp", "normal", "matmul", "reshape", "log", "argmax", "astype", "size", "sgd",
    "Accumulator", "accuracy", "evaluate_accuracy", "train_epoch_ch3", "Animator", "set_axes", "train_ch3",
    "predict_ch3", "float32", "load_array", "evaluate_loss", "ones", "synthetic_data", "linreg",
    "squared_loss", "try_gpu", "evaluate_accuracy_gpu", "train_ch6", "Residual", "plot", "arange",
    "try_all_gpus", "set_figsize",
}  # fmt: skip
ALIASES = {
    "ones", "zeros", "tensor", "arange", "meshgrid", "sin", "sinh", "cos", "cosh", "tanh", "linspace", "exp", "log",
    "normal", "rand", "matmul", "int32", "float32", "concat", "stack", "abs", "eye", "numpy", "size", "reshape", "to",
    "reduce_sum", "reduce_mean", "argmax", "astype", "transpose",
}  # fmt: skip


def test_every_name_the_chapters_call_is_in_fmnist_d2l_and_not_in_fmnist():
    assert CHAPTER_NAMES | ALIASES <= set(dir(d2l))
    for name in CHAPTER_NAMES | ALIASES:
        assert getattr(d2l, name) is not None
    assert d2l.plt.__name__ == "matplotlib.pyplot"
    assert set(d2l.__all__) == CHAPTER_NAMES - {"plt"} | ALIASES | {"randn"}
    with pytest.raises(AttributeError, match="from fmnist import d2l"):
        fmnist.exp  # noqa: B018 (the aliases are not fmnist's own API)
    for name in fmnist.__all__:  # the chapter-3 names of `import fmnist as d2l` are the same objects
        assert getattr(fmnist, name) is getattr(d2l, name)
    code = "import sys, fmnist; assert 'torch' not in sys.modules; fmnist.__dir__()"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


def test_tensor_aliases_compute_what_the_book_means():
    x = d2l.tensor([[1.0, -2.0], [3.0, 4.0]])
    assert d2l.reduce_sum(x).item() == 6.0 and d2l.reduce_sum(x, 0).tolist() == [4.0, 2.0]
    assert d2l.reduce_sum(x, 1, keepdim=True).tolist() == [[-1.0], [7.0]]
    assert d2l.reduce_mean(x).item() == 1.5 and d2l.reduce_mean(x, 1).tolist() == [-0.5, 3.5]
    assert d2l.argmax(x, axis=1).tolist() == [0, 1] and d2l.argmax(x).item() == 3
    assert d2l.transpose(x).tolist() == [[1.0, 3.0], [-2.0, 4.0]]
    assert d2l.astype(x, d2l.int32).dtype == torch.int32 and d2l.astype(x, d2l.int32).tolist() == [[1, -2], [3, 4]]
    assert d2l.size(x) == 4 and d2l.reshape(x, (4,)).tolist() == [1.0, -2.0, 3.0, 4.0]
    assert d2l.reshape(x, -1, 1).shape == (4, 1) and d2l.to(x, torch.float64).dtype == torch.float64
    w = torch.ones(2, requires_grad=True)
    assert isinstance(d2l.numpy(w * 2), np.ndarray) and d2l.numpy(w * 2).tolist() == [2.0, 2.0]
    assert d2l.abs(x).tolist() == [[1.0, 2.0], [3.0, 4.0]] and d2l.eye(2).tolist() == [[1.0, 0.0], [0.0, 1.0]]
    assert d2l.concat((x, x), 0).shape == (4, 2) and d2l.stack((x, x)).shape == (2, 2, 2)
    assert d2l.matmul(x, d2l.ones((2, 1))).tolist() == [[-1.0], [7.0]] and d2l.zeros(3).tolist() == [0.0] * 3
    assert d2l.arange(3).tolist() == [0, 1, 2] and d2l.linspace(0, 1, 3).tolist() == [0.0, 0.5, 1.0]
    t = d2l.tensor([0.5])
    for alias, value in ((d2l.sin, math.sin), (d2l.sinh, math.sinh), (d2l.cos, math.cos), (d2l.cosh, math.cosh),
                         (d2l.tanh, math.tanh), (d2l.exp, math.exp), (d2l.log, math.log)):  # fmt: skip
        assert alias(t).item() == pytest.approx(value(0.5))
    a, b = d2l.meshgrid(d2l.arange(2), d2l.arange(3), indexing="ij")
    assert a.shape == b.shape == (2, 3) and b[1].tolist() == [0, 1, 2]
    torch.manual_seed(0)
    sample = d2l.normal(3.0, 0.5, (2000,))
    assert sample.mean().item() == pytest.approx(3.0, abs=0.05) and sample.std().item() == pytest.approx(0.5, abs=0.03)
    u = d2l.rand(2000)
    assert 0 <= u.min() and u.max() < 1 and d2l.float32 is torch.float32 and d2l.int32 is torch.int32


@pytest.mark.parametrize("resize", [64, (32, 48), 14, (224, 224)])
def test_resize_matches_the_books_pillow_resize(small_data, small_arrays, resize):
    """The book resizes each PIL image (bilinear) before ToTensor; fmnist resizes whole batches with
    antialiased bilinear interpolation. They agree within Pillow's rounding to 8 bits."""
    _, test_iter = d2l.load_data_fashion_mnist(5, resize=resize)
    X, _ = next(iter(test_iter))
    height, width = (resize, resize) if isinstance(resize, int) else resize
    assert X.shape == (5, 1, height, width)
    for image, ours in zip(small_arrays["test_images"][:5], X[:, 0], strict=True):
        resized = Image.fromarray(image).resize((width, height), Image.Resampling.BILINEAR)
        expected = torch.from_numpy(np.array(resized)).float() / 255
        assert (ours - expected).abs().max().item() <= 1.01 / 255


def test_a_bad_resize_is_refused_with_a_clear_message(small_data):
    for bad in (0, -3, (28,), (28, 0), 2.5, "64"):
        with pytest.raises(ValueError, match="resize must be a positive int or a \\(height, width\\) pair"):
            d2l.load_data_fashion_mnist(8, resize=bad)


def test_batches_moved_to_a_device_are_made_there_whole():
    """On a GPU, train_ch6 copies the dataset there once and slices, shuffles and resizes there. The
    'meta' device (shapes without data) shows the same code making every batch on the target device."""
    batches = data.Batches(torch.rand(10, 1, 28, 28), torch.arange(10), 4, shuffle=True, resize=(32, 16))
    assert batches.to("cpu") is batches and batches.to(torch.device("cpu")) is batches
    moved = batches.to("meta")
    assert moved is batches.to("meta")  # copied once, kept for later passes
    assert moved.images.device.type == "meta" and moved.resize == (32, 16) and moved.shuffle
    shapes = [(tuple(X.shape), X.device.type, y.device.type) for X, y in moved]
    assert shapes == [((4, 1, 32, 16), "meta", "meta")] * 2 + [((2, 1, 32, 16), "meta", "meta")]


def test_train_ch6_copies_fmnist_batches_once_and_moves_other_iterables_per_batch(small_data, monkeypatch, capsys):
    calls = []
    original = data.Batches.to

    def spy(self, device):
        calls.append((len(self.labels), str(device)))
        return original(self, device)

    monkeypatch.setattr(data.Batches, "to", spy)
    train_iter, test_iter = d2l.load_data_fashion_mnist(50)
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(784, 10))
    d2l.train_ch6(net, train_iter, test_iter, 3, 0.5, d2l.try_gpu())
    assert calls == [(200, "cpu"), (100, "cpu")]  # once each, for the whole training

    # A list of batches (any iterable, as the book's DataLoader) is moved batch by batch.
    batches = [(X.clone(), y.clone()) for X, y in test_iter]
    count = sum(int((net(X).argmax(1) == y).sum()) for X, y in batches)
    assert d2l.evaluate_accuracy_gpu(net, batches) == count / 100
    assert d2l.evaluate_accuracy_gpu(lambda X: net(X), batches, torch.device("cpu")) == count / 100
    assert "training on cpu" in capsys.readouterr().out


def test_train_ch6_draws_xavier_uniform_weights_for_linear_and_conv_layers_only(small_data, capsys):
    class MyLinear(nn.Linear):  # the book's init checks the exact type; a subclass keeps its weights
        pass

    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 4, kernel_size=3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 26 * 26, 64),
                        nn.ReLU(), MyLinear(64, 10))  # fmt: skip
    own = net[5].weight.detach().clone()
    biases = [net[0].bias.detach().clone(), net[3].bias.detach().clone()]
    train_iter, test_iter = d2l.load_data_fashion_mnist(100)
    d2l.train_ch6(net, train_iter, test_iter, 1, 0.0, d2l.try_gpu())  # lr 0: the initial weights stay
    for layer, fan_in, fan_out in ((net[0], 9, 4 * 9), (net[3], 4 * 26 * 26, 64)):
        bound = math.sqrt(6 / (fan_in + fan_out))  # Glorot & Bengio's uniform bound
        weights = layer.weight.detach()
        assert weights.abs().max() <= bound and weights.abs().max() > 0.9 * bound
        assert weights.std().item() == pytest.approx(bound / math.sqrt(3), rel=0.1)  # U(-a, a) has sd a / sqrt(3)
    assert torch.equal(net[5].weight, own)
    assert torch.equal(net[0].bias, biases[0]) and torch.equal(net[3].bias, biases[1])
    out = capsys.readouterr().out.splitlines()
    with torch.no_grad():  # lr 0: the printed losses and accuracies are those of the initial net
        X, y = train_iter.images, train_iter.labels
        logits = net(X)
        expected_loss, expected_acc = F.cross_entropy(logits, y).item(), (logits.argmax(1) == y).double().mean().item()
        test_acc = (net(test_iter.images).argmax(1) == test_iter.labels).double().mean().item()
    assert out[-3] == f"loss {expected_loss:.3f}, train acc {expected_acc:.3f}, test acc {test_acc:.3f}"


def test_accuracy_and_evaluate_accuracy_take_any_number_of_classes(small_data):
    _, test_iter = d2l.load_data_fashion_mnist(30)

    def eleven_outputs(X):  # the right class (the band's row) when it is odd, class 10 (no such label) when even
        band = (X.reshape(len(X), 28, 28).mean(dim=2).argmax(dim=1) - 2) // 2
        scores = F.one_hot(band, 11).float()
        scores[band % 2 == 0, 10] = 2.0
        return scores

    X, y = test_iter.images, test_iter.labels
    expected = (y % 2 == 1).sum().item() / len(y)
    assert 0.3 < expected < 0.7
    assert d2l.evaluate_accuracy(eleven_outputs, test_iter) == expected
    assert d2l.accuracy(eleven_outputs(X), y) == expected * len(y)


def test_evaluate_loss_is_a_mean_per_value_for_per_example_and_mean_losses():
    X = d2l.tensor([[1.0], [2.0], [3.0]])
    y = d2l.tensor([1.0, 1.0, 1.0])  # reshaped to the net's [N, 1] output, as the book does
    batches = d2l.load_array((X, y), 2, is_train=False)  # batches of 2 and 1
    identity = lambda X: X  # noqa: E731
    # squared_loss per example: 0, 0.5, 2 -> mean 2.5 / 3
    assert d2l.evaluate_loss(identity, batches, d2l.squared_loss) == pytest.approx(2.5 / 3)
    # nn.MSELoss() returns each batch's mean (0.5, then 4): weighted by the batch sizes, not averaged per batch
    assert d2l.evaluate_loss(identity, batches, nn.MSELoss()) == pytest.approx(5 / 3)


def test_residual_is_the_books_block():
    torch.manual_seed(0)
    X = torch.randn(2, 3, 6, 6)
    for block in (d2l.Residual(3, 3), d2l.Residual(3, 5, use_1x1conv=True, strides=2)):
        # the same block written out with torch.nn.functional, batch statistics as in training
        def bn(Z, layer):
            return F.batch_norm(Z, None, None, layer.weight, layer.bias, training=True, eps=layer.eps)

        Y = F.relu(
            bn(F.conv2d(X, block.conv1.weight, block.conv1.bias, stride=block.conv1.stride, padding=1), block.bn1)
        )
        Y = bn(F.conv2d(Y, block.conv2.weight, block.conv2.bias, padding=1), block.bn2)
        shortcut = X if block.conv3 is None else F.conv2d(X, block.conv3.weight, block.conv3.bias, stride=2)
        assert torch.allclose(block(X), F.relu(Y + shortcut), atol=1e-5)
    assert list(d2l.Residual(3, 5, use_1x1conv=True).state_dict())[:6] == [
        "conv1.weight", "conv1.bias", "conv2.weight", "conv2.bias", "conv3.weight", "conv3.bias"]  # fmt: skip


def test_try_gpu_and_try_all_gpus_follow_cuda():
    count = torch.cuda.device_count()
    assert d2l.try_gpu() == (torch.device("cuda:0") if count else torch.device("cpu"))
    assert d2l.try_gpu(count) == torch.device("cpu")
    assert d2l.try_all_gpus() == ([torch.device(f"cuda:{i}") for i in range(count)] or [torch.device("cpu")])


def test_plot_draws_the_books_calling_patterns():
    from matplotlib.figure import Figure

    x = d2l.arange(0, 3, 1.0)
    axes = Figure().subplots()
    d2l.plot(x, [d2l.exp(x), 2 * x], "x", "f(x)", legend=["exp", "2x"], axes=axes)  # one x for two curves
    lines = axes.get_lines()
    assert [line.get_xdata().tolist() for line in lines] == [[0.0, 1.0, 2.0]] * 2
    assert lines[1].get_ydata().tolist() == [0.0, 2.0, 4.0] and lines[1].get_linestyle() == "--"
    assert lines[0].get_ydata().tolist() == pytest.approx([1.0, math.e, math.e**2])
    assert [t.get_text() for t in axes.get_legend().get_texts()] == ["exp", "2x"] and axes.get_xlabel() == "x"
    d2l.plot([0.3, 0.2, 0.1], axes=axes, yscale="log")  # one list of numbers: against its index
    assert axes.get_lines()[0].get_xdata().tolist() == [0, 1, 2] and axes.get_yscale() == "log"
    w = torch.ones(3, requires_grad=True)
    d2l.plot(x, w * x, axes=axes)  # a tensor that needs gradients plots too
    assert axes.get_lines()[0].get_ydata().tolist() == [0.0, 1.0, 2.0]


def test_show_images_draws_colour_images_in_colour(tmp_path, capsys):
    red, green = np.zeros((8, 12, 3), np.uint8), np.zeros((8, 12, 3), np.uint8)
    red[..., 0], green[..., 1] = 255, 255
    axes = d2l.show_images([red, Image.fromarray(green)], 1, 2)  # an array and a PIL image, as the book passes
    assert [ax.images[0].get_array().shape for ax in axes] == [(8, 12, 3)] * 2
    fig = axes[0].figure
    fig.canvas.draw()
    rendered = np.asarray(fig.canvas.buffer_rgba())
    box = axes[0].get_window_extent()
    centre = rendered[rendered.shape[0] - int((box.y0 + box.y1) / 2), int((box.x0 + box.x1) / 2)]
    assert centre[:3].tolist() == [255, 0, 0]
    floats = torch.rand(2, 5, 5, 3)  # tensors [N, H, W, 3] in [0, 1]
    assert d2l.show_images(floats, 1, 2)[1].images[0].get_array().shape == (5, 5, 3)
    with pytest.raises(ValueError, match=r"colour \[N, H, W, 3\].*permute\(0, 2, 3, 1\)"):
        d2l.show_images(torch.rand(2, 3, 5, 5), 1, 2)  # channels first: refused, not drawn as strips
    with pytest.raises(ValueError, match=r"single colour image; pass a list of images \(\[img\]\)"):
        d2l.show_images(red, 1, 1)  # one image [H, W, 3], not a list of them
    assert capsys.readouterr().out.count("show_images: figure saved to") == 2


def test_training_and_drawing_repeatedly_leaves_no_figure_open(small_data, tmp_path, capsys):
    from matplotlib import pyplot

    train_iter, test_iter = d2l.load_data_fashion_mnist(100)
    net = nn.Sequential(nn.Flatten(), nn.Linear(784, 10))
    for _ in range(3):
        d2l.train_ch3(net, train_iter, test_iter, nn.CrossEntropyLoss(reduction="none"), 1,
                      torch.optim.SGD(net.parameters(), lr=0.1))  # fmt: skip
    d2l.train_ch6(net, train_iter, test_iter, 1, 0.1, d2l.try_gpu())
    d2l.predict_ch3(net, test_iter)
    d2l.plot(d2l.arange(5), [1, 2, 3, 4, 5])
    assert pyplot.get_fignums() == []  # each was saved, then closed
    saved = {"fmnist-train_ch3.png", "fmnist-train_ch3-2.png", "fmnist-train_ch3-3.png", "fmnist-train_ch6.png",
             "fmnist-predict_ch3.png", "fmnist-plot.png"}  # fmt: skip
    assert saved == {p.name for p in tmp_path.glob("*.png")}
    assert capsys.readouterr().out.count("figure saved to") == len(saved)
    axes = d2l.show_images(torch.rand(2, 28, 28), 1, 2)  # its axes are returned to draw on: it stays open
    assert pyplot.get_fignums() == [axes[0].figure.number]
