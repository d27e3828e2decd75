"""The d2l.ai book's English edition (d2l 1.x, its ``torch`` module): ``from fmnist.d2l import en as d2l``.

This is the line to change in the PyTorch cells of the English edition:
``from d2l import torch as d2l`` becomes ``from fmnist.d2l import en as d2l``. It holds the
book's classes, as its chapters build them up (``HyperParameters``, ``Module``,
``DataModule``, ``Trainer``, ``FashionMNIST``, ``Classifier``, the CNN blocks, multi-head
attention, the HPO classes of chapter 19), the d2l 0.17 functions d2l 1.x kept
(``load_data_fashion_mnist``, ``train_ch6``, ``Animator``...), the tensor aliases and the
pictures. Classes are plain Python classes: ``add_to_class`` changes them for objects built
earlier, as in the book.

What fmnist does differently, none of which changes what a chapter computes:
- ``FashionMNIST`` serves fmnist's verified in-memory copy of the dataset (fmnist.data): no
  torchvision, no download when the files are present, no worker processes (``root`` and
  ``num_workers`` stay attributes). Its loaders are fmnist.data.Batches: X float32
  [B, 1, H, W] in [0, 1], y int64 [B], resized on the fly like the book's ``Resize``.
- ``Module.configure_optimizers`` and ``LinearRegression``'s return fmnist.optim.SGD, the same
  arithmetic as ``torch.optim.SGD`` without importing torch.optim (about 2 s of start-up).
- ``Trainer`` makes fmnist's batches on its GPU once (the whole dataset is copied there when
  the trainer has a GPU), and ``fit`` saves the model's curves as ``fmnist-fit.png`` outside
  Jupyter (see fmnist.d2l.figures); in Jupyter the ``ProgressBoard`` is redrawn in place.
- ``ProgressBoard`` draws every line (the book's stops at four), plots a point per batch when
  an epoch has fewer batches than points asked, and averages a tensor's values on its device.
- ``try_all_gpus`` is d2l 1.x's: an empty list without a GPU (d2l 0.17's gives [cpu]).
- ``add_to_class`` returns the function it adds (the book's returns None).

Quick runs: the environment variables ``FMNIST_D2L_MAX_EPOCHS`` and ``FMNIST_D2L_MAX_BATCHES``
cap ``Trainer.fit`` (see fmnist.d2l.framework).
"""

from __future__ import annotations

import collections
import math
import time
from collections.abc import Callable, Iterable, Sequence, Sized
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from .. import data, optim
from .aliases import *  # noqa: F403 (the book's tensor aliases, listed in aliases.EN)
from .aliases import EN as _ALIASES
from .figures import Animator, lazy_plt, plot, set_axes, set_figsize, show_images, use_svg_display
from .framework import DataModule, HyperParameters, Module, ProgressBoard, Trainer, add_to_class
from .zh import (
    Accumulator,
    Timer,
    accuracy,
    evaluate_accuracy_gpu,
    evaluate_loss,
    get_fashion_mnist_labels,
    init_cnn,
    linreg,
    load_array,
    load_data_fashion_mnist,
    sgd,
    squared_loss,
    synthetic_data,
    train_ch6,
    try_gpu,
)

__all__ = [
    *_ALIASES,
    # pictures
    "use_svg_display", "set_figsize", "set_axes", "plot", "show_images", "Animator", "ProgressBoard",
    # the object-oriented design (3.2), regression (3.3-3.7), classification (4.2-4.5)
    "add_to_class", "HyperParameters", "Module", "DataModule", "Trainer", "SyntheticRegressionData",
    "LinearRegressionScratch", "SGD", "LinearRegression", "FashionMNIST", "Classifier", "SoftmaxRegression",
    # devices (6.7), CNNs (7.6-8.8), attention (11.8)
    "cpu", "gpu", "num_gpus", "try_gpu", "try_all_gpus", "init_cnn", "LeNet", "Residual", "ResNeXtBlock",
    "check_len", "check_shape", "masked_softmax", "DotProductAttention", "MultiHeadAttention",
    # hyperparameter optimization (19.1-19.5)
    "HPOTrainer", "HPOSearcher", "RandomSearcher", "HPOScheduler", "BasicScheduler", "HPOTuner",
    "hpo_objective_lenet", "SuccessiveHalvingScheduler",
    # the d2l 0.17 functions d2l 1.x kept
    "Timer", "Accumulator", "accuracy", "synthetic_data", "linreg", "squared_loss", "sgd", "load_array",
    "get_fashion_mnist_labels", "load_data_fashion_mnist", "evaluate_accuracy_gpu", "evaluate_loss", "train_ch6",
]  # fmt: skip


def __getattr__(name: str) -> object:
    return lazy_plt(__name__, name)


def __dir__() -> list[str]:
    return sorted([*globals(), "plt"])


# ---------------------------------------------------------------- 3.3-3.5 regression


class SyntheticRegressionData(DataModule):
    """y = X w + b + noise: X ~ N(0, 1) [num_train + num_val, len(w)], noise ~ N(0, noise^2), y
    [n, 1]; drawn from the global torch RNG in the book's order (X, then the noise)."""

    def __init__(
        self,
        w: torch.Tensor,
        b: float,
        noise: float = 0.01,
        num_train: int = 1000,
        num_val: int = 1000,
        batch_size: int = 32,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        n = num_train + num_val
        self.X = torch.randn(n, len(w))
        noise = torch.randn(n, 1) * noise
        self.y = torch.matmul(self.X, w.reshape((-1, 1))) + b + noise

    def get_dataloader(self, train: bool) -> data.Batches:
        """The first num_train rows (train) or the rest, in batches of batch_size."""
        i = slice(0, self.num_train) if train else slice(self.num_train, None)
        return self.get_tensorloader((self.X, self.y), train, i)


class LinearRegressionScratch(Module):
    """X w + b with w [num_inputs, 1] ~ N(0, sigma^2) and b [1] = 0 as plain tensors; loss the mean of
    (y_hat - y)^2 / 2; trained by the book's SGD."""

    def __init__(self, num_inputs: int, lr: float, sigma: float = 0.01) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.w = torch.normal(0, sigma, (num_inputs, 1), requires_grad=True)
        self.b = torch.zeros(1, requires_grad=True)

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        """[N, num_inputs] -> [N, 1]."""
        return torch.matmul(X, self.w) + self.b

    def loss(self, y_hat: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The mean of (y_hat - y)^2 / 2."""
        return ((y_hat - y) ** 2 / 2).mean()

    def configure_optimizers(self) -> SGD:
        return SGD([self.w, self.b], self.lr)


class SGD(HyperParameters):
    """The book's minibatch SGD: step() moves each of params by -lr * grad (fmnist's plain SGD step);
    zero_grad() sets the gradients to zero."""

    def __init__(self, params: Iterable[torch.Tensor], lr: float) -> None:
        self.save_hyperparameters()
        self.params = list(params)  # a generator (model.parameters()) would be spent after one step

    def step(self) -> None:
        """params <- params - lr * grad."""
        optim.sgd_step(self.params, self.lr)

    def zero_grad(self) -> None:
        """Set every gradient to zero, in place."""
        for param in self.params:
            if param.grad is not None:
                param.grad.zero_()


class LinearRegression(Module):
    """nn.LazyLinear(1) with weights ~ N(0, 0.01^2) and bias 0; loss nn.MSELoss (mean squared error)."""

    def __init__(self, lr: float) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.LazyLinear(1)
        self.net.weight.data.normal_(0, 0.01)
        self.net.bias.data.fill_(0)

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        """[N, d] -> [N, 1]."""
        return self.net(X)

    def loss(self, y_hat: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The mean of (y_hat - y)^2."""
        return nn.MSELoss()(y_hat, y)

    def get_w_b(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(weight [1, d], bias [1])."""
        return (self.net.weight.data, self.net.bias.data)


# ---------------------------------------------------------------- 4.2 the dataset


class Images:
    """One split of Fashion-MNIST as a dataset, like torchvision's: len() images, [i] -> (image
    float32 [1, H, W] in [0, 1], label int); images, labels and size (None: 28x28) for fmnist's Batches."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, size: tuple[int, int] | None) -> None:
        self.images, self.labels, self.size = images, labels, size

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        i = range(len(self))[index]  # IndexError out of range; negative indices count from the end
        X, y = next(iter(data.Batches(self.images[i : i + 1], self.labels[i : i + 1], 1, resize=self.size)))
        return X[0], int(y[0])


class FashionMNIST(DataModule):
    """Fashion-MNIST from fmnist's verified copy (fmnist.data: found, downloaded once if missing, held in
    memory): train (60,000 images) and val (the 10,000 test images) resized to resize = (height, width);
    loaders of batch_size images X float32 [B, 1, height, width] in [0, 1] and labels y int64 [B]."""

    def __init__(self, batch_size: int = 64, resize: int | tuple[int, int] = (28, 28)) -> None:
        super().__init__()
        self.save_hyperparameters()
        dataset = data.load()
        size = data.Batches.image_size(resize)
        size = None if size == tuple(dataset.train_images.shape[-2:]) else size
        self.train = Images(dataset.train_images, dataset.train_labels, size)
        self.val = Images(dataset.test_images, dataset.test_labels, size)

    def text_labels(self, indices: Sequence[int] | torch.Tensor) -> list[str]:
        """The class names of labels 0-9."""
        return data.text_labels(indices)

    def get_dataloader(self, train: bool) -> data.Batches:
        """Batches of train (reshuffled every pass, global torch RNG) or val (in order)."""
        split = self.train if train else self.val
        return data.Batches(split.images, split.labels, int(self.batch_size), shuffle=train, resize=split.size)

    def visualize(
        self, batch: Sequence[torch.Tensor], nrows: int = 1, ncols: int = 8, labels: Sequence[str] = ()
    ) -> None:
        """Show the images of batch (X [B, 1, H, W], y [B]) in a grid, titled with labels or y's class names."""
        X, y = batch
        if not labels:
            labels = self.text_labels(y)
        show_images(X.squeeze(1), nrows, ncols, titles=labels)


# ---------------------------------------------------------------- 4.3-4.5 classification


class Classifier(Module):
    """The base class of classifiers: cross-entropy loss, accuracy, and both drawn on validation."""

    def validation_step(self, batch: Sequence[torch.Tensor]) -> None:
        """Draw the loss and the accuracy of a validation batch."""
        Y_hat = self(*batch[:-1])
        self.plot("loss", self.loss(Y_hat, batch[-1]), train=False)
        self.plot("acc", self.accuracy(Y_hat, batch[-1]), train=False)

    def accuracy(self, Y_hat: torch.Tensor, Y: torch.Tensor, averaged: bool = True) -> torch.Tensor:
        """Fraction of correct predictions (argmax of Y_hat's last axis against Y), a 0-dim tensor;
        with averaged=False one 0./1. per example, float32 [N]."""
        Y_hat = Y_hat.reshape((-1, Y_hat.shape[-1]))
        preds = Y_hat.argmax(axis=1).type(Y.dtype)
        compare = (preds == Y.reshape(-1)).type(torch.float32)
        return compare.mean() if averaged else compare

    def loss(self, Y_hat: torch.Tensor, Y: torch.Tensor, averaged: bool = True) -> torch.Tensor:
        """Cross-entropy of the logits Y_hat [..., C] for the classes Y: the mean, or one per example [N]."""
        Y_hat = Y_hat.reshape((-1, Y_hat.shape[-1]))
        return F.cross_entropy(Y_hat, Y.reshape((-1,)), reduction="mean" if averaged else "none")

    def layer_summary(self, X_shape: Sequence[int]) -> None:
        """Print each layer of self.net with the shape of its output for a random input of X_shape."""
        X = torch.randn(*X_shape)
        for layer in self.net:
            X = layer(X)
            print(layer.__class__.__name__, "output shape:\t", X.shape)


class SoftmaxRegression(Classifier):
    """Softmax regression: nn.Flatten, then nn.LazyLinear(num_outputs); logits [N, num_outputs]."""

    def __init__(self, num_outputs: int, lr: float) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(nn.Flatten(), nn.LazyLinear(num_outputs))

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        return self.net(X)


# ---------------------------------------------------------------- 6.7 devices


def cpu() -> torch.device:
    """The CPU device."""
    return torch.device("cpu")


def gpu(i: int = 0) -> torch.device:
    """The i-th CUDA device (whether it exists or not)."""
    return torch.device(f"cuda:{i}")


def num_gpus() -> int:
    """The number of CUDA GPUs PyTorch sees."""
    return torch.cuda.device_count()


def try_all_gpus() -> list[torch.device]:
    """Every CUDA GPU; an empty list when there is none (as d2l 1.x's)."""
    return [gpu(i) for i in range(num_gpus())]


# ---------------------------------------------------------------- 7.6-8.8 convolutional networks


class LeNet(Classifier):
    """LeNet-5 as the book's: two sigmoid convolutions with average pooling, three linear layers
    (lazy); [N, 1, 28, 28] -> logits [N, num_classes]."""

    def __init__(self, lr: float = 0.1, num_classes: int = 10) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(
            nn.LazyConv2d(6, kernel_size=5, padding=2), nn.Sigmoid(),
            nn.AvgPool2d(kernel_size=2, stride=2),
            nn.LazyConv2d(16, kernel_size=5), nn.Sigmoid(),
            nn.AvgPool2d(kernel_size=2, stride=2),
            nn.Flatten(),
            nn.LazyLinear(120), nn.Sigmoid(),
            nn.LazyLinear(84), nn.Sigmoid(),
            nn.LazyLinear(num_classes),
        )  # fmt: skip


class Residual(nn.Module):
    """d2l 1.x's residual block (8.6): two lazy 3x3 convolutions with batch norm, ReLU between them;
    the input added (through a 1x1 convolution when use_1x1conv) and a ReLU.

    [B, C, H, W] -> [B, num_channels, ceil(H / strides), ceil(W / strides)]; use_1x1conv is needed
    when the channels or the size change. (d2l 0.17's Residual takes input_channels first.)
    """

    def __init__(self, num_channels: int, use_1x1conv: bool = False, strides: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.LazyConv2d(num_channels, kernel_size=3, padding=1, stride=strides)
        self.conv2 = nn.LazyConv2d(num_channels, kernel_size=3, padding=1)
        self.conv3 = nn.LazyConv2d(num_channels, kernel_size=1, stride=strides) if use_1x1conv else None
        self.bn1 = nn.LazyBatchNorm2d()
        self.bn2 = nn.LazyBatchNorm2d()

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        Y = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(X)))))
        shortcut = X if self.conv3 is None else self.conv3(X)
        return F.relu(Y + shortcut)


class ResNeXtBlock(nn.Module):
    """The ResNeXt block (8.6): 1x1 convolution to round(num_channels * bot_mul) channels, a grouped 3x3
    convolution (groups of `groups` channels), 1x1 back to num_channels, batch norm after each; the input
    added (through a 1x1 convolution and batch norm when use_1x1conv) and a ReLU.
    [B, C, H, W] -> [B, num_channels, ceil(H / strides), ceil(W / strides)]."""

    def __init__(
        self, num_channels: int, groups: int, bot_mul: float, use_1x1conv: bool = False, strides: int = 1
    ) -> None:
        super().__init__()
        bot_channels = int(round(num_channels * bot_mul))
        self.conv1 = nn.LazyConv2d(bot_channels, kernel_size=1, stride=1)
        self.conv2 = nn.LazyConv2d(bot_channels, kernel_size=3, stride=strides, padding=1,
                                   groups=bot_channels // groups)  # fmt: skip
        self.conv3 = nn.LazyConv2d(num_channels, kernel_size=1, stride=1)
        self.bn1 = nn.LazyBatchNorm2d()
        self.bn2 = nn.LazyBatchNorm2d()
        self.bn3 = nn.LazyBatchNorm2d()
        self.conv4 = nn.LazyConv2d(num_channels, kernel_size=1, stride=strides) if use_1x1conv else None
        self.bn4 = nn.LazyBatchNorm2d() if use_1x1conv else None

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        Y = F.relu(self.bn1(self.conv1(X)))
        Y = F.relu(self.bn2(self.conv2(Y)))
        Y = self.bn3(self.conv3(Y))
        shortcut = X if self.conv4 is None else self.bn4(self.conv4(X))
        return F.relu(Y + shortcut)


# ---------------------------------------------------------------- 11.8 attention, for the vision transformer


def check_len(a: Sized, n: int) -> None:
    """AssertionError unless len(a) == n."""
    if len(a) != n:
        raise AssertionError(f"list's length {len(a)} != expected length {n}")


def check_shape(a: torch.Tensor, shape: Sequence[int]) -> None:
    """AssertionError unless a.shape == shape."""
    if a.shape != shape:
        raise AssertionError(f"tensor's shape {a.shape} != expected shape {shape}")


def masked_softmax(X: torch.Tensor, valid_lens: torch.Tensor | None) -> torch.Tensor:
    """Softmax over the last axis of X [B, Q, K], counting only the first valid_lens keys of each row
    (valid_lens [B], one length per example, or [B, Q], one per query; None: all keys)."""
    if valid_lens is None:
        return F.softmax(X, dim=-1)
    shape = X.shape
    lens = torch.repeat_interleave(valid_lens, shape[1]) if valid_lens.dim() == 1 else valid_lens.reshape(-1)
    X = X.reshape(-1, shape[-1])
    outside = torch.arange(shape[-1], device=X.device)[None, :] >= lens[:, None]
    # a very negative score rather than -inf, as the book's: a row with no valid key stays uniform
    return F.softmax(X.masked_fill(outside, -1e6).reshape(shape), dim=-1)


class DotProductAttention(nn.Module):
    """Scaled dot-product attention: softmax(Q K^T / sqrt(d)) V with dropout on the weights, which are
    kept as self.attention_weights [B, Q, K]. Q [B, Q, d], K [B, K, d], V [B, K, v] -> [B, Q, v]."""

    def __init__(self, dropout: float) -> None:
        super().__init__()
        self.dropout = nn.Dropout(dropout)

    def forward(
        self, queries: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, valid_lens: torch.Tensor | None = None
    ) -> torch.Tensor:
        scores = torch.bmm(queries, keys.transpose(1, 2)) / math.sqrt(queries.shape[-1])
        self.attention_weights = masked_softmax(scores, valid_lens)
        return torch.bmm(self.dropout(self.attention_weights), values)


class MultiHeadAttention(Module):
    """Multi-head attention (11.5): queries, keys and values projected to num_hiddens (lazy linear layers),
    split into num_heads heads of scaled dot-product attention, concatenated and projected.
    [B, Q, *], [B, K, *], [B, K, *] -> [B, Q, num_hiddens]."""

    def __init__(self, num_hiddens: int, num_heads: int, dropout: float, bias: bool = False, **kwargs: Any) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.attention = DotProductAttention(dropout)
        self.W_q = nn.LazyLinear(num_hiddens, bias=bias)
        self.W_k = nn.LazyLinear(num_hiddens, bias=bias)
        self.W_v = nn.LazyLinear(num_hiddens, bias=bias)
        self.W_o = nn.LazyLinear(num_hiddens, bias=bias)

    def forward(
        self, queries: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, valid_lens: torch.Tensor | None
    ) -> torch.Tensor:
        queries = self.transpose_qkv(self.W_q(queries))
        keys = self.transpose_qkv(self.W_k(keys))
        values = self.transpose_qkv(self.W_v(values))
        if valid_lens is not None:
            valid_lens = torch.repeat_interleave(valid_lens, repeats=self.num_heads, dim=0)
        output = self.attention(queries, keys, values, valid_lens)
        return self.W_o(self.transpose_output(output))

    def transpose_qkv(self, X: torch.Tensor) -> torch.Tensor:
        """[B, n, num_hiddens] -> [B * num_heads, n, num_hiddens / num_heads]."""
        X = X.reshape(X.shape[0], X.shape[1], self.num_heads, -1).permute(0, 2, 1, 3)
        return X.reshape(-1, X.shape[2], X.shape[3])

    def transpose_output(self, X: torch.Tensor) -> torch.Tensor:
        """The inverse of transpose_qkv: [B * num_heads, n, h] -> [B, n, num_heads * h]."""
        X = X.reshape(-1, self.num_heads, X.shape[1], X.shape[2]).permute(0, 2, 1, 3)
        return X.reshape(X.shape[0], X.shape[1], -1)


# ---------------------------------------------------------------- 19 hyperparameter optimization


class HPOTrainer(Trainer):
    """A Trainer that also measures the validation error after training."""

    def validation_error(self) -> torch.Tensor:
        """1 - the mean over validation batches of the model's batch accuracy, a 0-dim tensor."""
        self.model.eval()
        accuracy = 0
        val_batch_idx = 0
        for batch in self.val_dataloader:
            with torch.no_grad():
                x, y = self.prepare_batch(batch)
                accuracy += self.model.accuracy(self.model(x), y)
            val_batch_idx += 1
        return 1 - accuracy / val_batch_idx


class HPOSearcher(HyperParameters):
    """Base class of searchers: sample_configuration() proposes a configuration (a dict), update() learns
    from an evaluated one."""

    def sample_configuration(self) -> dict:
        raise NotImplementedError

    def update(self, config: dict, error: float, additional_info: Any = None) -> None:
        """Record that config reached error (ignored by random search)."""


class RandomSearcher(HPOSearcher):
    """Random search: initial_config first, if given, then each value drawn from its distribution in
    config_space (objects with rvs(), such as scipy.stats' distributions)."""

    def __init__(self, config_space: dict, initial_config: dict | None = None) -> None:
        self.save_hyperparameters()

    def sample_configuration(self) -> dict:
        if self.initial_config is not None:
            result = self.initial_config
            self.initial_config = None
        else:
            result = {name: domain.rvs() for name, domain in self.config_space.items()}
        return result


class HPOScheduler(HyperParameters):
    """Base class of schedulers: suggest() the next configuration to evaluate, update() with its result."""

    def suggest(self) -> dict:
        raise NotImplementedError

    def update(self, config: dict, error: float, info: Any = None) -> None:
        raise NotImplementedError


class BasicScheduler(HPOScheduler):
    """Evaluates every configuration its searcher samples, with the objective's own resources."""

    def __init__(self, searcher: HPOSearcher) -> None:
        self.save_hyperparameters()

    def suggest(self) -> dict:
        return self.searcher.sample_configuration()

    def update(self, config: dict, error: float, info: Any = None) -> None:
        self.searcher.update(config, error, additional_info=info)


class HPOTuner(HyperParameters):
    """Runs trials one after the other: objective(**scheduler.suggest()) returns a 0-dim tensor error.
    Keeps records (config, error, runtime in seconds), the incumbent (best config so far) and its
    error, and per trial incumbent_trajectory and cumulative_runtime."""

    def __init__(self, scheduler: HPOScheduler, objective: Callable[..., torch.Tensor]) -> None:
        self.save_hyperparameters()
        self.incumbent = None
        self.incumbent_error = None
        self.incumbent_trajectory: list[float] = []
        self.cumulative_runtime: list[float] = []
        self.current_runtime = 0.0
        self.records: list[dict] = []

    def run(self, number_of_trials: int) -> None:
        """Evaluate number_of_trials configurations, printing each and its error and runtime."""
        for i in range(number_of_trials):
            start_time = time.time()
            config = self.scheduler.suggest()
            print(f"Trial {i}: config = {config}")
            error = float(self.objective(**config).cpu())
            self.scheduler.update(config, error)
            runtime = time.time() - start_time
            self.bookkeeping(config, error, runtime)
            print(f"    error = {error}, runtime = {runtime}")

    def bookkeeping(self, config: dict, error: float, runtime: float) -> None:
        """Record a trial and update the incumbent and the trajectories."""
        self.records.append({"config": config, "error": error, "runtime": runtime})
        if self.incumbent is None or self.incumbent_error > error:
            self.incumbent = config
            self.incumbent_error = error
        self.incumbent_trajectory.append(self.incumbent_error)
        self.current_runtime += runtime
        self.cumulative_runtime.append(self.current_runtime)


def hpo_objective_lenet(learning_rate: float, batch_size: int, max_epochs: int = 10) -> torch.Tensor:
    """The validation error (0-dim tensor, in [0, 1]) of LeNet trained max_epochs epochs on Fashion-MNIST
    with SGD at learning_rate in batches of batch_size, on a GPU when there is one."""
    model = LeNet(lr=learning_rate, num_classes=10)
    trainer = HPOTrainer(max_epochs=max_epochs, num_gpus=1)
    data = FashionMNIST(batch_size=batch_size)
    model.apply_init([next(iter(data.get_dataloader(True)))[0]], init_cnn)
    trainer.fit(model=model, data=data)
    return trainer.validation_error()


class SuccessiveHalvingScheduler(HPOScheduler):
    """Successive halving (19.4): rounds of prefact * eta^K configurations from searcher trained r_min
    epochs; the best 1/eta of each rung go on to eta times more epochs, up to r_max (rungs r_min * eta^k,
    and r_max). Configurations get max_epochs set to their rung."""

    def __init__(self, searcher: HPOSearcher, eta: int, r_min: int, r_max: int, prefact: int = 1) -> None:
        self.save_hyperparameters()
        self.K = int(np.log(r_max / r_min) / np.log(eta))
        self.rung_levels = [r_min * eta**k for k in range(self.K + 1)]
        if r_max not in self.rung_levels:
            self.rung_levels.append(r_max)
            self.K += 1
        self.observed_error_at_rungs: dict[int, list] = collections.defaultdict(list)
        self.all_observed_error_at_rungs: dict[int, list] = collections.defaultdict(list)
        self.queue: list[dict] = []

    def suggest(self) -> dict:
        if not self.queue:  # a new round: n0 configurations at the first rung
            for _ in range(int(self.prefact * self.eta**self.K)):
                config = self.searcher.sample_configuration()
                config["max_epochs"] = self.r_min
                self.queue.append(config)
        return self.queue.pop()

    def update(self, config: dict, error: float, info: Any = None) -> None:
        ri = int(config["max_epochs"])
        self.searcher.update(config, error, additional_info=info)
        self.all_observed_error_at_rungs[ri].append((config, error))
        if ri >= self.r_max:
            return
        self.observed_error_at_rungs[ri].append((config, error))
        ki = self.K - self.rung_levels.index(ri)
        if len(self.observed_error_at_rungs[ri]) >= int(self.prefact * self.eta**ki):
            # the rung is complete: its best go first in the queue, one rung up
            best = self.get_top_n_configurations(rung_level=ri, n=int(self.prefact * self.eta ** (ki - 1)))
            next_rung = self.rung_levels[self.K - ki + 1]
            self.queue = [dict(c, max_epochs=next_rung) for c in best] + self.queue
            self.observed_error_at_rungs[ri] = []

    def get_top_n_configurations(self, rung_level: int, n: int) -> list[dict]:
        """The n configurations of rung_level with the lowest errors, best first."""
        rung = self.observed_error_at_rungs[rung_level]
        return [config for config, _ in sorted(rung, key=lambda x: x[1])[:n]]
