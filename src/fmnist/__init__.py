"""fmnist: softmax regression on Fashion-MNIST, trained, evaluated and saved.

The d2l.ai book's names for all its Fashion-MNIST chapters are in fmnist.d2l
(``from fmnist import d2l``). The chapter-3 names below also resolve here, for code that
uses ``import fmnist as d2l``; they are loaded on first use, so that importing the package,
and therefore ``fmnist --help``, does not import PyTorch.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = [
    "load_data_fashion_mnist",
    "get_fashion_mnist_labels",
    "show_images",
    "Timer",
    "Accumulator",
    "accuracy",
    "evaluate_accuracy",
    "sgd",
    "train_epoch_ch3",
    "train_ch3",
    "predict_ch3",
    "Animator",
    "set_axes",
    "set_figsize",
    "use_svg_display",
]
_LAZY = (*__all__, "plt")  # d2l.plt is matplotlib.pyplot, imported on first use


def __getattr__(name: str) -> object:
    if name in _LAZY:
        from . import d2l

        return getattr(d2l, name)
    raise AttributeError(
        f"module 'fmnist' has no attribute {name!r} (the d2l book's names are in fmnist.d2l: `from fmnist import d2l`)"
    )


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])
