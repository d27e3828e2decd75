"""The d2l.ai book's names for chapter 3 (d2l 0.17, `torch` module), as thin wrappers over fmnist's pieces.

Code written for the book runs with ``import fmnist as d2l``. Data come from fmnist.data,
scores from fmnist.metrics, image grids from fmnist.plots. Pictures are pyplot figures, as
in the book: inside Jupyter (an IPython kernel) they show inline and train_ch3's curves
are redrawn after every epoch. Anywhere else (a script, an IDE, a headless machine)
nothing waits for a window: show_images, train_ch3 and predict_ch3 also save their figure
as ``fmnist-<function>.png`` in the current directory (the temporary directory when that
is not writable; ``-2``, ``-3``... for later figures of the same function in one process)
and print the path, and train_ch3 prints one line per epoch.

Differences from the book: train_ch3 returns nothing and does not assert the book's
accuracy thresholds (a short run is not an error); accuracy and evaluate_accuracy count
classes 0-9; images are drawn in grey.
"""

from __future__ import annotations

import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from . import data, metrics, plots

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

Batch = tuple[torch.Tensor, torch.Tensor]
Net = Callable[[torch.Tensor], torch.Tensor]
Loss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
Updater = torch.optim.Optimizer | Callable[[int], object]


def __getattr__(name: str) -> object:
    if name == "plt":  # the book's d2l.plt, imported on first use
        from matplotlib import pyplot

        return pyplot
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# ---------------------------------------------------------------- data


def load_data_fashion_mnist(batch_size: int, resize: int | None = None) -> tuple[data.Batches, data.Batches]:
    """(train_iter, test_iter) over Fashion-MNIST, as d2l's function of the same name.

    Both yield X float32 [B, 1, 28, 28] in [0, 1] (or [B, 1, resize, resize]) and y int64 [B].
    train_iter is reshuffled every pass with the global torch RNG; test_iter is in order.
    """
    dataset = data.load()
    return (
        data.Batches(dataset.train_images, dataset.train_labels, batch_size, shuffle=True, resize=resize),
        data.Batches(dataset.test_images, dataset.test_labels, batch_size, resize=resize),
    )


def get_fashion_mnist_labels(labels: Sequence[int] | torch.Tensor) -> list[str]:
    """The text labels of numeric labels, e.g. [0, 9] -> ['t-shirt', 'ankle boot']."""
    return data.text_labels(labels)


class Timer:
    """The book's stopwatch: start(), stop() -> seconds of the last interval, avg(), sum(), cumsum()."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self.start()

    def start(self) -> None:
        """Start an interval."""
        self.tik = time.perf_counter()

    def stop(self) -> float:
        """End the interval; its length in seconds."""
        self.times.append(time.perf_counter() - self.tik)
        return self.times[-1]

    def avg(self) -> float:
        """Mean interval, seconds."""
        return sum(self.times) / len(self.times)

    def sum(self) -> float:
        """Total of the intervals, seconds."""
        return sum(self.times)

    def cumsum(self) -> list[float]:
        """Running totals of the intervals, seconds."""
        return np.cumsum(self.times).tolist()


# ---------------------------------------------------------------- pictures


def _in_notebook() -> bool:
    """True inside an IPython kernel (Jupyter, Colab), where pyplot figures show inline."""
    ipython = sys.modules.get("IPython")  # a kernel has imported it; never import it here
    shell = ipython.get_ipython() if ipython is not None else None
    return shell is not None and "IPKernelApp" in getattr(shell, "config", {})


def use_svg_display() -> None:
    """Draw inline figures as SVG, as the book does, inside Jupyter; does nothing anywhere else."""
    if not _in_notebook():
        return
    try:
        from matplotlib_inline.backend_inline import set_matplotlib_formats
    except ImportError:
        return
    set_matplotlib_formats("svg")


def set_figsize(figsize: tuple[float, float] = (3.5, 2.5)) -> None:
    """Default size of new pyplot figures, in inches."""
    from matplotlib import pyplot

    use_svg_display()
    pyplot.rcParams["figure.figsize"] = figsize


def set_axes(
    axes: Axes,
    xlabel: str | None,
    ylabel: str | None,
    xlim: Sequence[float] | None,
    ylim: Sequence[float] | None,
    xscale: str,
    yscale: str,
    legend: Sequence[str] | None,
) -> None:
    """Labels, limits, scales, legend and grid of a matplotlib Axes, as the book's set_axes."""
    axes.set_xlabel(xlabel)
    axes.set_ylabel(ylabel)
    axes.set_xscale(xscale)
    axes.set_yscale(yscale)
    axes.set_xlim(xlim)
    axes.set_ylim(ylim)
    if legend:
        axes.legend(legend)
    axes.grid()


def _new_figure(figsize: tuple[float, float]) -> Figure:
    """A pyplot figure (inline in Jupyter, shown by plt.show()); off-screen when no GUI can start."""
    from matplotlib.figure import Figure

    try:
        from matplotlib import pyplot

        return pyplot.figure(figsize=figsize)
    except Exception:  # e.g. MPLBACKEND=TkAgg without a display: still draw, into the PNG only
        return Figure(figsize=figsize)


_saved: dict[str, int] = {}


def _publish(fig: Figure, name: str) -> Path | None:
    """Outside Jupyter, save fig as fmnist-<name>.png (in the current or the temporary directory)
    and print where; returns the path, or None in Jupyter, where the figure shows inline."""
    if _in_notebook():
        return None
    count = _saved[name] = _saved.get(name, 0) + 1
    filename = f"fmnist-{name}.png" if count == 1 else f"fmnist-{name}-{count}.png"
    for folder in (Path("."), Path(tempfile.gettempdir())):
        path = (folder / filename).absolute()
        try:
            fig.savefig(path, bbox_inches="tight")
        except OSError:
            continue
        print(f"{name}: figure saved to {path}", flush=True)
        return path
    print(f"{name}: could not save the figure (neither the current nor the temporary directory is writable)")
    return None


def _as_images(imgs: torch.Tensor | np.ndarray | Sequence[Any]) -> torch.Tensor | np.ndarray:
    if isinstance(imgs, torch.Tensor | np.ndarray):
        return imgs
    return torch.stack([torch.as_tensor(np.asarray(img)) for img in imgs])


def _image_figure(
    imgs: torch.Tensor | np.ndarray | Sequence[Any],
    num_rows: int,
    num_cols: int,
    titles: Sequence[str] | None,
    scale: float,
) -> tuple[Figure, np.ndarray]:
    fig = _new_figure((num_cols * scale, num_rows * scale))
    return plots.image_grid(_as_images(imgs), num_rows, num_cols, titles=titles, scale=scale, fig=fig)


def show_images(
    imgs: torch.Tensor | np.ndarray | Sequence[Any],
    num_rows: int,
    num_cols: int,
    titles: Sequence[str] | None = None,
    scale: float = 1.5,
) -> np.ndarray:
    """Grey images [N, H, W] (or [N, 1, H, W], or a list of [H, W]) in a grid; returns the flat array of Axes.

    Each cell is scale inches square. Outside Jupyter the figure is also saved as
    fmnist-show_images.png, whose path is printed.
    """
    fig, axes = _image_figure(imgs, num_rows, num_cols, titles, scale)
    _publish(fig, "show_images")
    return axes


class Animator:
    """The book's live plot: add(x, y) appends points to one line per y value and redraws.

    In Jupyter the figure is displayed again after every add(); elsewhere it is only
    redrawn (train_ch3 saves it at the end). self.fig is the figure, self.axes its Axes.
    """

    def __init__(
        self,
        xlabel: str | None = None,
        ylabel: str | None = None,
        legend: Sequence[str] | None = None,
        xlim: Sequence[float] | None = None,
        ylim: Sequence[float] | None = None,
        xscale: str = "linear",
        yscale: str = "linear",
        fmts: Sequence[str] = ("-", "m--", "g-.", "r:"),
        nrows: int = 1,
        ncols: int = 1,
        figsize: tuple[float, float] = (3.5, 2.5),
    ) -> None:
        legend = [] if legend is None else legend
        use_svg_display()
        self.fig = _new_figure(figsize)
        self.axes = self.fig.subplots(nrows, ncols, squeeze=False).flatten()
        self.config_axes = lambda: set_axes(self.axes[0], xlabel, ylabel, xlim, ylim, xscale, yscale, legend)
        self.X: list[list[float]] | None = None
        self.Y: list[list[float]] | None = None
        self.fmts = fmts

    def add(self, x: float | Sequence[float], y: float | Sequence[float]) -> None:
        """Append one point per line: y a number or one value per line, x shared or one per line."""
        if not hasattr(y, "__len__"):
            y = [y]
        n = len(y)
        if not hasattr(x, "__len__"):
            x = [x] * n
        if not self.X:
            self.X = [[] for _ in range(n)]
        if not self.Y:
            self.Y = [[] for _ in range(n)]
        for i, (a, b) in enumerate(zip(x, y, strict=False)):
            if a is not None and b is not None:
                self.X[i].append(a)
                self.Y[i].append(b)
        self.axes[0].cla()
        for xs, ys, fmt in zip(self.X, self.Y, self.fmts, strict=False):
            self.axes[0].plot(xs, ys, fmt)
        self.config_axes()
        if _in_notebook():
            from IPython import display

            display.display(self.fig)
            display.clear_output(wait=True)


# ---------------------------------------------------------------- training


class Accumulator:
    """Sums over n variables: add(*values) adds one value to each; acc[i] reads the i-th sum."""

    def __init__(self, n: int) -> None:
        self.data = [0.0] * n

    def add(self, *args: float) -> None:
        """Add args[i] to the i-th sum."""
        self.data = [a + float(b) for a, b in zip(self.data, args, strict=False)]

    def reset(self) -> None:
        """Set every sum back to 0."""
        self.data = [0.0] * len(self.data)

    def __getitem__(self, idx: int) -> float:
        return self.data[idx]


def accuracy(y_hat: torch.Tensor, y: torch.Tensor) -> float:
    """Number of correct predictions (a count, as float; divide by len(y) for the fraction).

    y_hat: scores [B, C] (the argmax of each row is the prediction) or predicted classes [B];
    y: true classes, int64 [B].
    """
    predicted = y_hat.argmax(dim=1) if y_hat.dim() > 1 and y_hat.shape[1] > 1 else y_hat
    return float((predicted.to(y.dtype) == y).sum())


class _Function(nn.Module):
    """A plain function net(X) as a module, so that fmnist.metrics.evaluate can score it."""

    def __init__(self, fn: Net) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        return self.fn(X)


def evaluate_accuracy(net: Net, data_iter: Iterable[Batch]) -> float:
    """Fraction of correct predictions of net over data_iter, in [0, 1], computed without gradients.

    An nn.Module is put in eval mode and, as in the book, left there; net may also be a plain
    function X -> scores [B, 10].
    """
    if isinstance(net, nn.Module):
        net.eval()
    else:
        net = _Function(net)
    return metrics.accuracy(metrics.evaluate(net, data_iter))


def sgd(params: Iterable[torch.Tensor], lr: float, batch_size: int) -> None:
    """The book's minibatch SGD: param -= lr * param.grad / batch_size, then zero the gradients.

    For a loss summed over the batch (the book's updater path), this is a step on the mean loss.
    """
    with torch.no_grad():
        for param in params:
            param -= lr * param.grad / batch_size
            param.grad.zero_()


def _is_optimizer(updater: Updater) -> bool:
    """torch.optim optimizers and anything with their step()/zero_grad(), like fmnist.train.SGD."""
    return callable(getattr(updater, "step", None)) and callable(getattr(updater, "zero_grad", None))


def train_epoch_ch3(net: Net, train_iter: Iterable[Batch], loss: Loss, updater: Updater) -> tuple[float, float]:
    """One training pass, as the book's; returns (mean loss per example, accuracy in [0, 1]).

    loss returns per-example losses [B] (e.g. nn.CrossEntropyLoss(reduction='none')). With an
    optimizer the mean is back-propagated and step() called; otherwise the sum is
    back-propagated and updater(batch_size) called (e.g. one that calls sgd).
    """
    if isinstance(net, nn.Module):
        net.train()
    metric = Accumulator(3)  # sum of losses, correct predictions, examples
    for X, y in train_iter:
        y_hat = net(X)
        losses = loss(y_hat, y)
        if _is_optimizer(updater):
            updater.zero_grad()
            losses.mean().backward()
            updater.step()
        else:
            losses.sum().backward()
            updater(X.shape[0])
        total = losses.detach().sum() if losses.dim() else losses.detach() * len(y)  # an averaged loss, too
        metric.add(float(total), accuracy(y_hat, y), y.numel())
    return metric[0] / metric[2], metric[1] / metric[2]


def train_ch3(
    net: Net,
    train_iter: Iterable[Batch],
    test_iter: Iterable[Batch],
    loss: Loss,
    num_epochs: int,
    updater: Updater,
) -> None:
    """Train for num_epochs, plotting train loss, train accuracy and test accuracy per epoch.

    In Jupyter the plot is redrawn after every epoch. Elsewhere one line per epoch is printed,
    ``epoch   1/10  train loss 0.7827  train acc 0.7502  test acc 0.7713``, and the plot
    is saved as fmnist-train_ch3.png (path printed). See train_epoch_ch3 for loss and updater.
    """
    # xlim as the book's, [1, num_epochs], but never [1, 1], which matplotlib warns about
    animator = Animator(xlabel="epoch", xlim=[1, max(num_epochs, 2)], ylim=[0.3, 0.9],
                        legend=["train loss", "train acc", "test acc"])  # fmt: skip
    notebook = _in_notebook()
    for epoch in range(num_epochs):
        train_loss, train_acc = train_epoch_ch3(net, train_iter, loss, updater)
        test_acc = evaluate_accuracy(net, test_iter)
        animator.add(epoch + 1, (train_loss, train_acc, test_acc))
        if not notebook:
            print(
                f"epoch {epoch + 1:3d}/{num_epochs}  train loss {train_loss:.4f}  train acc {train_acc:.4f}  "
                f"test acc {test_acc:.4f}",
                flush=True,
            )
    _publish(animator.fig, "train_ch3")


def predict_ch3(net: Net, test_iter: Iterable[Batch], n: int = 6) -> None:
    """Show the first n images of test_iter's first batch titled with true and predicted labels.

    Outside Jupyter the figure is saved as fmnist-predict_ch3.png, whose path is printed.
    """
    X, y = next(iter(test_iter))
    with torch.no_grad():
        predicted = net(X).argmax(dim=1)
    trues, preds = get_fashion_mnist_labels(y[:n]), get_fashion_mnist_labels(predicted[:n])
    titles = [f"{true}\n{pred}" for true, pred in zip(trues, preds, strict=True)]
    fig, _ = _image_figure(X[:n], 1, n, titles, 1.5)
    _publish(fig, "predict_ch3")
