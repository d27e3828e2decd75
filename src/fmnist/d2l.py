"""The d2l.ai book's library for its Fashion-MNIST chapters: ``from fmnist import d2l``.

This is the one line to change in the book's PyTorch code (d2l-zh 2.0, whose library is
d2l 0.17's ``torch`` module): ``from d2l import torch as d2l`` becomes
``from fmnist import d2l``. It holds the names those chapters use: the book's framework-neutral
tensor aliases (``d2l.tensor``, ``d2l.reduce_sum``, ``d2l.float32``...), its data, training
and device helpers (fmnist.book) and its pictures (fmnist.bookplots); ``d2l.plt`` is
matplotlib.pyplot. They live in this module, not in ``fmnist`` itself, so that fmnist's own
namespace stays its own (``import fmnist as d2l`` still gives the chapter-3 names).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from .book import (
    Accumulator,
    Residual,
    Timer,
    accuracy,
    evaluate_accuracy,
    evaluate_accuracy_gpu,
    evaluate_loss,
    get_fashion_mnist_labels,
    linreg,
    load_array,
    load_data_fashion_mnist,
    predict_ch3,
    sgd,
    squared_loss,
    synthetic_data,
    train_ch3,
    train_ch6,
    train_epoch_ch3,
    try_all_gpus,
    try_gpu,
)
from .bookplots import Animator, plot, set_axes, set_figsize, show_images, use_svg_display

__all__ = [
    # tensor aliases
    "ones", "zeros", "tensor", "arange", "meshgrid", "sin", "sinh", "cos", "cosh", "tanh", "linspace",
    "exp", "log", "normal", "rand", "randn", "matmul", "int32", "float32", "concat", "stack", "abs", "eye",
    "numpy", "size", "reshape", "to", "reduce_sum", "reduce_mean", "argmax", "astype", "transpose",
    # pictures
    "use_svg_display", "set_figsize", "set_axes", "plot", "show_images", "Animator",
    # data, training, devices
    "Timer", "Accumulator", "synthetic_data", "linreg", "squared_loss", "sgd", "load_array",
    "get_fashion_mnist_labels", "load_data_fashion_mnist", "accuracy", "evaluate_accuracy",
    "evaluate_loss", "train_epoch_ch3", "train_ch3", "predict_ch3", "try_gpu", "try_all_gpus",
    "evaluate_accuracy_gpu", "train_ch6", "Residual",
]  # fmt: skip


def __getattr__(name: str) -> object:
    if name == "plt":  # matplotlib.pyplot, imported on first use
        from matplotlib import pyplot

        return pyplot
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), "plt"])


# ---------------------------------------------------------------- tensor aliases (the book's config.ini)

ones = torch.ones
zeros = torch.zeros
tensor = torch.tensor
arange = torch.arange
meshgrid = torch.meshgrid
sin = torch.sin
sinh = torch.sinh
cos = torch.cos
cosh = torch.cosh
tanh = torch.tanh
linspace = torch.linspace
exp = torch.exp
log = torch.log
normal = torch.normal
rand = torch.rand
randn = torch.randn
matmul = torch.matmul
int32 = torch.int32
float32 = torch.float32
concat = torch.cat
stack = torch.stack
abs = torch.abs
eye = torch.eye


def numpy(x: torch.Tensor, *args: Any, **kwargs: Any) -> np.ndarray:
    """x as a numpy array, detached from autograd (x must be on the CPU)."""
    return x.detach().numpy(*args, **kwargs)


def size(x: torch.Tensor) -> int:
    """Number of elements of x."""
    return x.numel()


def reshape(x: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
    """x.reshape(shape)."""
    return x.reshape(*args, **kwargs)


def to(x: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
    """x.to(device or dtype)."""
    return x.to(*args, **kwargs)


def reduce_sum(x: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
    """x.sum(dim, keepdim=...): the sum of all elements, or along dim."""
    return x.sum(*args, **kwargs)


def reduce_mean(x: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
    """x.mean(dim, keepdim=...)."""
    return x.mean(*args, **kwargs)


def argmax(x: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
    """x.argmax(dim) (the book writes axis=1, which torch accepts too)."""
    return x.argmax(*args, **kwargs)


def astype(x: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
    """x converted to a dtype, x.type(dtype)."""
    return x.type(*args, **kwargs)


def transpose(x: torch.Tensor) -> torch.Tensor:
    """The transpose of a matrix (x.t())."""
    return x.t()
