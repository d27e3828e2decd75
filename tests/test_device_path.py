"""The path `--device cuda` takes, run on the CPU with the same code: the data stay on the device and an
epoch (training and test pass) never reads a value back to the host between batches, which on a GPU
would wait for every queued kernel. There is no CUDA-only branch: only the device differs."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from fmnist import data, metrics, model
from fmnist.optim import SGD
from fmnist.train import train_epoch

HOST_READS = {torch.ops.aten._local_scalar_dense.default}  # .item(), float(t), bool(t), int(t)


class HostReads(TorchDispatchMode):
    """Notes, for every read of a tensor's value by the host (and every .cpu(), .numpy(), .tolist()),
    how many batches had been handed out by then."""

    def __init__(self) -> None:
        super().__init__()
        self.batches, self.reads = 0, []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func in HOST_READS:
            self.reads.append(self.batches)
        return func(*args, **(kwargs or {}))


class CountedBatches(data.Batches):
    """data.Batches that tell a HostReads how many batches they have handed out."""

    def __init__(self, reads: HostReads, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.counter = reads

    def __iter__(self):
        for batch in super().__iter__():
            yield batch
            self.counter.batches += 1


@pytest.fixture
def reads(monkeypatch) -> HostReads:
    mode = HostReads()
    for name in ("cpu", "numpy", "tolist"):
        original = getattr(torch.Tensor, name)

        def spy(tensor, *args, _original=original, **kwargs):
            mode.reads.append(mode.batches)
            return _original(tensor, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, spy)
    return mode


@pytest.mark.parametrize("name", ["softmax", "mlp", "cnn"])
def test_an_epoch_reads_nothing_back_until_its_last_batch(small_data, reads, name):
    dataset = data.load().to("cpu")  # the call that puts the dataset on a GPU
    torch.manual_seed(0)
    net = model.build(name)
    train_batches = CountedBatches(reads, dataset.train_images, dataset.train_labels, 32, True,
                                   torch.Generator().manual_seed(0))  # fmt: skip
    with reads:
        loss, accuracy = train_epoch(net, train_batches, nn.CrossEntropyLoss(), SGD(net.parameters(), 0.1), False)
    assert len(train_batches) == 7 and reads.batches == 7
    assert reads.reads == [7, 7]  # the summed loss and count of correct predictions, once, after the last batch
    assert 0 < loss and 0 <= accuracy <= 1


def test_the_test_pass_reads_back_once_at_the_end(small_data, reads):
    dataset = data.load()
    net = model.build("softmax")
    test_batches = CountedBatches(reads, dataset.test_images, dataset.test_labels, 30)
    with reads:
        confusion = metrics.evaluate(net, test_batches)
    assert reads.batches == 4 and reads.reads and set(reads.reads) == {4}
    assert int(confusion.sum()) == 100


def test_batches_are_made_where_the_data_are(small_data):
    dataset = data.load().to("meta")  # a device without values: any read of one would fail
    train_batches = data.Batches(dataset.train_images, dataset.train_labels, 64, True, torch.Generator())
    shapes = [(X.device.type, y.device.type, X.shape[0]) for X, y in train_batches]
    assert shapes == [("meta", "meta", 64)] * 3 + [("meta", "meta", 8)]
