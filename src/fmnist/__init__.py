"""fmnist: softmax regression on Fashion-MNIST, trained, evaluated and saved.

The book-compatible names (``import fmnist as d2l``) are loaded on first use, so that
importing the package, and therefore ``fmnist --help``, does not import PyTorch.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["load_data_fashion_mnist", "get_fashion_mnist_labels"]


def __getattr__(name: str) -> object:
    if name in __all__:
        from . import book

        return getattr(book, name)
    raise AttributeError(f"module 'fmnist' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
