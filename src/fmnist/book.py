"""The d2l.ai book's names for this chapter, as thin wrappers over fmnist's own pieces."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from . import data


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
