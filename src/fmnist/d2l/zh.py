"""The d2l.ai book's data and training names of d2l-zh 2.0 (d2l 0.17, `torch` module), thin wrappers over fmnist.

Use them through ``from fmnist import d2l`` (fmnist.d2l), which adds the book's tensor
aliases and its pictures (fmnist.d2l.figures); the English edition (fmnist.d2l.en) shares
the ones d2l 1.x kept. Data come from fmnist.data (the whole dataset in memory, batches
sliced from it), scores from fmnist.metrics, the plain SGD step from fmnist.optim.

Differences from the book, none of which changes what its chapters compute:
- train_ch3 and train_ch6 return nothing and never assert the book's accuracy thresholds
  (a short run is not an error). Outside Jupyter they print one line per epoch and save
  their curves as a PNG (see fmnist.d2l.figures); train_ch6 plots one point per epoch, not five.
- train_epoch_ch3, train_ch6 and evaluate_loss weigh a mean (scalar) loss by the number of
  values it averages (the examples of its batch), so the losses they report are means per
  example (per value) whatever the loss's reduction, also when the last batch is smaller.
- train_ch6 and evaluate_accuracy_gpu copy fmnist's batches (load_data_fashion_mnist's
  iterators, load_array's) to the device once, whole, and make every later batch there,
  resizing included; other iterables are moved batch by batch, as the book does.
- accuracy and the evaluate functions work for any number of classes.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Sequence

import numpy as np
import torch
from torch import nn

from .. import data, metrics
from ..optim import SGD
from .figures import Animator, image_figure, in_notebook, publish

Batch = tuple[torch.Tensor, torch.Tensor]
Net = Callable[[torch.Tensor], torch.Tensor]
Loss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
Updater = torch.optim.Optimizer | SGD | Callable[[int], object]
Device = torch.device | str


# ---------------------------------------------------------------- data


def load_data_fashion_mnist(
    batch_size: int, resize: int | tuple[int, int] | None = None
) -> tuple[data.Batches, data.Batches]:
    """(train_iter, test_iter) over Fashion-MNIST, as d2l's function of the same name.

    Both yield X float32 [B, 1, 28, 28] in [0, 1] and y int64 [B]; with resize, X is
    [B, 1, n, n] for an int n or [B, 1, h, w] for (h, w), scaled bilinearly. train_iter is
    reshuffled every pass with the global torch RNG; test_iter is in order.
    """
    dataset = data.load()
    return (
        data.Batches(dataset.train_images, dataset.train_labels, batch_size, shuffle=True, resize=resize),
        data.Batches(dataset.test_images, dataset.test_labels, batch_size, resize=resize),
    )


def get_fashion_mnist_labels(labels: Sequence[int] | torch.Tensor) -> list[str]:
    """The text labels of numeric labels, e.g. [0, 9] -> ['t-shirt', 'ankle boot']."""
    return data.text_labels(labels)


def load_array(data_arrays: tuple[torch.Tensor, torch.Tensor], batch_size: int, is_train: bool = True) -> data.Batches:
    """Mini-batches (X, y) of (features, labels), two tensors with the same first dimension N;
    shuffled every pass (global torch RNG) when is_train."""
    features, labels = data_arrays
    return data.Batches(features, labels, batch_size, shuffle=is_train)


def synthetic_data(w: torch.Tensor, b: float | torch.Tensor, num_examples: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(X, y) for linear regression: X ~ N(0, 1) [num_examples, len(w)], y = X w + b + N(0, 0.01^2) noise,
    shaped [num_examples, 1]. Drawn from the global torch RNG in the book's order (X, then the noise)."""
    X = torch.normal(0.0, 1.0, (num_examples, len(w)))
    y = torch.matmul(X, w) + b
    noise = torch.normal(0.0, 0.01, y.shape)
    return X, (y + noise).reshape((-1, 1))


def linreg(X: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """The linear regression model X w + b: [N, d] @ [d, 1] -> [N, 1]."""
    return torch.matmul(X, w) + b


def squared_loss(y_hat: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """(y_hat - y)^2 / 2 per element, y reshaped to y_hat's shape (no reduction)."""
    return (y_hat - y.reshape(y_hat.shape)) ** 2 / 2


# ---------------------------------------------------------------- counting


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


class Accumulator:
    """Sums over n variables: add(*values) adds one value to each; acc[i] reads the i-th sum."""

    def __init__(self, n: int) -> None:
        self.data = [0.0] * n

    def add(self, *args: float | torch.Tensor) -> None:
        """Add args[i] to the i-th sum (numbers, or one-element tensors, which may need gradients)."""
        values = [b.detach() if isinstance(b, torch.Tensor) else b for b in args]
        self.data = [a + float(b) for a, b in zip(self.data, values, strict=False)]

    def reset(self) -> None:
        """Set every sum back to 0."""
        self.data = [0.0] * len(self.data)

    def __getitem__(self, idx: int) -> float:
        return self.data[idx]


def _correct(y_hat: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Number of correct predictions, a tensor on y_hat's device (read it when needed, not per batch)."""
    predicted = y_hat.argmax(dim=1) if y_hat.dim() > 1 and y_hat.shape[1] > 1 else y_hat
    return (predicted.to(y.dtype) == y).sum()


def accuracy(y_hat: torch.Tensor, y: torch.Tensor) -> float:
    """Number of correct predictions (a count, as float; divide by len(y) for the fraction).

    y_hat: scores [B, C] for any number of classes C (the argmax of each row is the prediction)
    or predicted classes [B]; y: true classes, int64 [B].
    """
    return float(_correct(y_hat, y))


def _loss_total(losses: torch.Tensor, count: int) -> torch.Tensor:
    """The sum of a batch's losses: per-example (or per-element) losses are added up; a mean,
    a scalar, stands for count values."""
    return losses.sum() if losses.dim() else losses * count


class _Function(nn.Module):
    """A plain function net(X) as a module, so that fmnist.metrics can score it."""

    def __init__(self, fn: Net) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        return self.fn(X)


def evaluate_accuracy(net: Net, data_iter: Iterable[Batch]) -> float:
    """Fraction of correct predictions of net over data_iter, in [0, 1], computed without gradients.

    An nn.Module is put in eval mode and, as in the book, left there; net may also be a plain
    function X -> scores [B, C] (any number of classes C) or predicted classes [B].
    """
    if isinstance(net, nn.Module):
        net.eval()
    scores, labels = metrics.logits(net if isinstance(net, nn.Module) else _Function(net), data_iter)
    return float(_correct(scores, labels)) / len(labels)


@torch.no_grad()
def evaluate_loss(net: Net, data_iter: Iterable[Batch], loss: Loss) -> float:
    """Mean loss of net over data_iter, per value of net's output (per example for [B, 1] outputs).

    y is reshaped to net(X)'s shape, as in the book; computed without gradients. A loss that
    reduces to a mean counts once per output value (see the module's notes).
    """
    total, count = 0.0, 0
    for X, y in data_iter:
        out = net(X)
        losses = loss(out, y.reshape(out.shape))
        n = losses.numel() if losses.dim() else out.numel()
        total, count = total + _loss_total(losses, n), count + n
    return float(total) / count


# ---------------------------------------------------------------- chapter 3: training


def sgd(params: Iterable[torch.Tensor], lr: float, batch_size: int) -> None:
    """The book's minibatch SGD: param -= lr * param.grad / batch_size, then zero the gradients.

    For a loss summed over the batch (the book's updater path), this is a step on the mean loss.
    """
    with torch.no_grad():
        for param in params:
            param -= lr * param.grad / batch_size
            param.grad.zero_()


def _is_optimizer(updater: Updater) -> bool:
    """torch.optim optimizers and anything with their step()/zero_grad(), like fmnist.optim.SGD."""
    return callable(getattr(updater, "step", None)) and callable(getattr(updater, "zero_grad", None))


def _train_epoch(net: Net, train_iter: Iterable[Batch], loss: Loss, updater: Updater) -> tuple[float, float, int]:
    """One training pass (see train_epoch_ch3); returns (sum of losses, correct predictions, examples).

    The sums stay tensors on the batches' device until the end: no wait for the device per batch.
    """
    if isinstance(net, nn.Module):
        net.train()
    loss_sum, correct, examples = 0.0, 0.0, 0
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
        with torch.no_grad():
            loss_sum = loss_sum + _loss_total(losses, len(y))
            correct = correct + _correct(y_hat, y)
        examples += y.numel()
    return float(loss_sum), float(correct), examples


def train_epoch_ch3(net: Net, train_iter: Iterable[Batch], loss: Loss, updater: Updater) -> tuple[float, float]:
    """One training pass, as the book's; returns (mean loss per example, accuracy in [0, 1]).

    loss returns per-example losses [B] (e.g. nn.CrossEntropyLoss(reduction='none')) or their
    mean. With an optimizer (torch.optim's, or anything with step() and zero_grad()) the mean
    is back-propagated and step() called; otherwise the sum is back-propagated and
    updater(batch_size) called (e.g. one that calls sgd).
    """
    loss_sum, correct, examples = _train_epoch(net, train_iter, loss, updater)
    return loss_sum / examples, correct / examples


def _fit(
    net: Net,
    train_iter: Iterable[Batch],
    test_iter: Iterable[Batch],
    loss: Loss,
    num_epochs: int,
    updater: Updater,
    ylim: Sequence[float] | None,
) -> tuple[tuple[float, float, float], float, Animator]:
    """The loop of train_ch3 and train_ch6: num_epochs of training, each followed by the test accuracy,
    drawn on an Animator and, outside Jupyter, printed. Returns the last epoch's (train loss, train
    accuracy, test accuracy), the training examples per second (test passes not counted), the Animator."""
    if num_epochs < 1:
        raise ValueError(f"num_epochs must be at least 1, not {num_epochs}")
    # xlim as the book's, [1, num_epochs], but never [1, 1], which matplotlib warns about
    animator = Animator(xlabel="epoch", xlim=[1, max(num_epochs, 2)], ylim=ylim,
                        legend=["train loss", "train acc", "test acc"])  # fmt: skip
    notebook, timer = in_notebook(), Timer()
    for epoch in range(num_epochs):
        timer.start()
        loss_sum, correct, examples = _train_epoch(net, train_iter, loss, updater)  # ends reading the sums
        timer.stop()
        scores = (loss_sum / examples, correct / examples, evaluate_accuracy(net, test_iter))
        animator.add(epoch + 1, scores)
        if not notebook:
            print(f"epoch {epoch + 1:3d}/{num_epochs}  train loss {scores[0]:.4f}  train acc {scores[1]:.4f}  "
                  f"test acc {scores[2]:.4f}", flush=True)  # fmt: skip
    return scores, examples * num_epochs / timer.sum(), animator


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
    _, _, animator = _fit(net, train_iter, test_iter, loss, num_epochs, updater, ylim=[0.3, 0.9])
    publish(animator.fig, "train_ch3", close=True)


def predict_ch3(net: Net, test_iter: Iterable[Batch], n: int = 6) -> None:
    """Show the first n images of test_iter's first batch titled with true and predicted labels.

    Outside Jupyter the figure is saved as fmnist-predict_ch3.png, whose path is printed.
    """
    X, y = next(iter(test_iter))
    with torch.no_grad():
        predicted = net(X).argmax(dim=1)
    trues, preds = get_fashion_mnist_labels(y[:n]), get_fashion_mnist_labels(predicted[:n])
    titles = [f"{true}\n{pred}" for true, pred in zip(trues, preds, strict=True)]
    fig, _ = image_figure(X[:n], 1, n, titles, 1.5)
    publish(fig, "predict_ch3", close=True)


# ---------------------------------------------------------------- chapters 6 and 7: devices, train_ch6


def try_gpu(i: int = 0) -> torch.device:
    """cuda:i when there are more than i CUDA GPUs, otherwise the CPU."""
    return torch.device(f"cuda:{i}") if torch.cuda.device_count() > i else torch.device("cpu")


def try_all_gpus() -> list[torch.device]:
    """Every CUDA GPU, or [cpu] when there is none."""
    return [torch.device(f"cuda:{i}") for i in range(torch.cuda.device_count())] or [torch.device("cpu")]


class _Moved:
    """An iterable of batches (X, y) moved to device one by one, as the book moves them; len() as the iterable's."""

    def __init__(self, batches: Iterable[Batch], device: Device) -> None:
        self.batches, self.device = batches, device

    def __iter__(self) -> Iterator[Batch]:
        for X, y in self.batches:
            yield X.to(self.device), y.to(self.device)

    def __len__(self) -> int:
        return len(self.batches)


def _on_device(data_iter: Iterable[Batch], device: Device | None) -> Iterable[Batch]:
    """data_iter's batches on device: fmnist's Batches are copied there whole, once, and make every
    batch there; any other iterable is moved batch by batch. None: left where they are."""
    if device is None:
        return data_iter
    if isinstance(data_iter, data.Batches):
        return data_iter.to(device)
    return _Moved(data_iter, device)


def evaluate_accuracy_gpu(net: Net, data_iter: Iterable[Batch], device: Device | None = None) -> float:
    """evaluate_accuracy with the batches on device: by default, for an nn.Module, where its
    first parameter is; a plain function's batches stay where they are unless device is given."""
    if device is None and isinstance(net, nn.Module):
        first = next(net.parameters(), None)
        device = None if first is None else first.device
    return evaluate_accuracy(net, _on_device(data_iter, device))


def init_cnn(module: nn.Module) -> None:
    """Xavier-uniform weights for a module that is exactly an nn.Linear or nn.Conv2d (not a subclass,
    nor a lazy layer before its first call), as train_ch6's init_weights and d2l 1.x's init_cnn; use
    it as net.apply(init_cnn)."""
    if type(module) in (nn.Linear, nn.Conv2d):
        nn.init.xavier_uniform_(module.weight)


def train_ch6(
    net: nn.Module,
    train_iter: Iterable[Batch],
    test_iter: Iterable[Batch],
    num_epochs: int,
    lr: float,
    device: Device,
) -> None:
    """Train a classifier on device, as the book's chapter 6: Xavier-uniform weights for every
    nn.Linear and nn.Conv2d, plain SGD at lr on the mean cross-entropy, the test accuracy after
    every epoch.

    Prints ``training on <device>`` first and, at the end, the last epoch's
    ``loss 0.469, train acc 0.823, test acc 0.779`` and ``<n> examples/sec on <device>`` (training
    passes only). In Jupyter the curves are redrawn every epoch; elsewhere one line per epoch
    is printed and they are saved as fmnist-train_ch6.png (path printed). fmnist's batches are
    copied to device once and made there, resizing included.
    """
    net.apply(init_cnn)
    print("training on", device)
    net.to(device)
    train_batches, test_batches = _on_device(train_iter, device), _on_device(test_iter, device)
    (train_loss, train_acc, test_acc), speed, animator = _fit(
        net, train_batches, test_batches, nn.CrossEntropyLoss(), num_epochs, SGD(net.parameters(), lr), ylim=None
    )
    print(f"loss {train_loss:.3f}, train acc {train_acc:.3f}, test acc {test_acc:.3f}")
    print(f"{speed:.1f} examples/sec on {device}")
    publish(animator.fig, "train_ch6", close=True)


class Residual(nn.Module):
    """The book's residual block (chapter 7.6): two 3x3 convolutions, each followed by batch norm,
    ReLU between them; the input added (through a 1x1 convolution when use_1x1conv) and a ReLU.

    [B, input_channels, H, W] -> [B, num_channels, ceil(H / strides), ceil(W / strides)];
    use_1x1conv is needed when the channels or the size change.
    """

    def __init__(self, input_channels: int, num_channels: int, use_1x1conv: bool = False, strides: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(input_channels, num_channels, kernel_size=3, padding=1, stride=strides)
        self.conv2 = nn.Conv2d(num_channels, num_channels, kernel_size=3, padding=1)
        self.conv3 = nn.Conv2d(input_channels, num_channels, kernel_size=1, stride=strides) if use_1x1conv else None
        self.bn1 = nn.BatchNorm2d(num_channels)
        self.bn2 = nn.BatchNorm2d(num_channels)

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        Y = self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(X)))))
        shortcut = X if self.conv3 is None else self.conv3(X)
        return torch.relu(Y + shortcut)
