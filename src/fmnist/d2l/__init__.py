"""The d2l.ai book's library for its Fashion-MNIST chapters, both editions.

- ``from fmnist import d2l``: d2l-zh 2.0 (d2l 0.17's ``torch`` module, functions such as
  ``load_data_fashion_mnist`` and ``train_ch3``). This module is that namespace.
- ``from fmnist.d2l import en as d2l``: the English edition at d2l.ai (d2l 1.x, classes such
  as ``Module``, ``Trainer`` and ``FashionMNIST``), fmnist.d2l.en.

Either line replaces the book's ``from d2l import torch as d2l``. Where the editions give
one name two meanings (``Residual``'s arguments, ``try_all_gpus`` without a GPU), each
namespace has its own edition's. Both are thin wrappers over fmnist's data, metrics and
SGD step, with the pictures of fmnist.d2l.figures; importing them loads none of the
command line's machinery (run folders, training runs, reports). ``d2l.plt`` is
matplotlib.pyplot, imported on first use. They live here, not in ``fmnist`` itself, so that
fmnist's own namespace stays its own (``import fmnist as d2l`` still gives the chapter-3 names).
"""

from __future__ import annotations

from .aliases import (
    abs,
    arange,
    argmax,
    astype,
    concat,
    cos,
    cosh,
    exp,
    eye,
    float32,
    int32,
    linspace,
    log,
    matmul,
    meshgrid,
    normal,
    numpy,
    ones,
    rand,
    randn,
    reduce_mean,
    reduce_sum,
    reshape,
    sin,
    sinh,
    size,
    stack,
    tanh,
    tensor,
    to,
    transpose,
    zeros,
)
from .figures import Animator, lazy_plt, plot, set_axes, set_figsize, show_images, use_svg_display
from .zh import (
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
    return lazy_plt(__name__, name)


def __dir__() -> list[str]:
    return sorted([*globals(), "plt"])
