"""In-memory batches and the book's loader: shapes, dtypes, shuffling, determinism."""

from __future__ import annotations

import torch

import fmnist
from fmnist import data


def _batches(n=10, batch_size=4, **kwargs):
    images = torch.arange(n, dtype=torch.float32).reshape(n, 1, 1, 1).expand(n, 1, 28, 28).contiguous()
    return data.Batches(images, torch.arange(n), batch_size, **kwargs)


def test_batches_cover_the_data_in_order_without_shuffle():
    batches = _batches()
    assert len(batches) == 3
    sizes = [len(y) for _, y in batches]
    assert sizes == [4, 4, 2]
    assert torch.cat([y for _, y in batches]).tolist() == list(range(10))
    for X, y in batches:
        assert X.shape == (len(y), 1, 28, 28)
        assert (X[:, 0, 0, 0] == y.float()).all()  # images travel with their labels


def test_shuffled_batches_are_a_new_permutation_every_pass():
    batches = _batches(n=100, batch_size=32, shuffle=True, generator=torch.Generator().manual_seed(1))
    passes = [torch.cat([y for _, y in batches]) for _ in range(3)]
    for order in passes:
        assert sorted(order.tolist()) == list(range(100))
    assert passes[0].tolist() != passes[1].tolist() != passes[2].tolist()
    for X, y in batches:
        assert (X[:, 0, 0, 0] == y.float()).all()


def test_shuffling_is_repeatable_from_the_seed():
    def orders(seed):
        batches = _batches(n=50, batch_size=8, shuffle=True, generator=torch.Generator().manual_seed(seed))
        return [torch.cat([y for _, y in batches]).tolist() for _ in range(2)]

    assert orders(3) == orders(3)
    assert orders(3) != orders(4)


def test_resize_gives_the_asked_size():
    X, _ = next(iter(_batches(resize=64)))
    assert X.shape == (4, 1, 64, 64)
    assert torch.allclose(X[:, 0, 5, 5], torch.arange(4, dtype=torch.float32))  # a flat image stays flat


def test_book_loader_on_small_data(small_data, small_arrays):
    train_iter, test_iter = fmnist.load_data_fashion_mnist(64)
    assert (len(train_iter), len(test_iter)) == (4, 2)  # 200 and 100 images
    X, y = next(iter(train_iter))
    assert X.shape == (64, 1, 28, 28) and X.dtype == torch.float32 and y.dtype == torch.int64
    assert 0 <= X.min() and X.max() <= 1
    assert torch.cat([y for _, y in test_iter]).tolist() == small_arrays["test_labels"].tolist()
    X, _ = next(iter(fmnist.load_data_fashion_mnist(16, resize=32)[0]))
    assert X.shape == (16, 1, 32, 32)


def test_book_loader_shuffles_with_the_global_rng(small_data):
    train_iter, _ = fmnist.load_data_fashion_mnist(200)
    torch.manual_seed(0)
    first = next(iter(train_iter))[1]
    torch.manual_seed(0)
    assert next(iter(train_iter))[1].tolist() == first.tolist()


def test_text_labels():
    assert fmnist.get_fashion_mnist_labels([0, 9, 6]) == ["t-shirt", "ankle boot", "shirt"]
    assert fmnist.get_fashion_mnist_labels(torch.tensor([1, 2, 3, 4, 5, 7, 8])) == [
        "trouser", "pullover", "dress", "coat", "sandal", "sneaker", "bag"]  # fmt: skip


def test_real_data_through_the_book_loader(real_dir):
    train_iter, test_iter = fmnist.load_data_fashion_mnist(256)
    assert (len(train_iter), len(test_iter)) == (235, 40)
    X, y = next(iter(train_iter))
    assert X.shape == (256, 1, 28, 28) and y.shape == (256,)
    # The first test image of Fashion-MNIST is an ankle boot.
    assert next(iter(test_iter))[1][0].item() == 9
