"""fmnist.scratch against PyTorch and hand-computed values; its trainer against the concise one."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from fmnist import data, metrics, model, optim, scratch, train


@pytest.fixture
def one_thread():
    """Two threads on two shared cores can be several times slower (see DEVELOPERS.md)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _naive_softmax(X):
    return X.exp() / X.exp().sum(dim=1, keepdim=True)


def test_softmax_of_the_books_example():
    result = scratch.softmax(torch.tensor([[1.0, 2.0, 3.0, 4.0]]))
    assert torch.allclose(result, torch.tensor([[0.0321, 0.0871, 0.2369, 0.6439]]), atol=5e-5)
    exps = [math.exp(k) for k in (1, 2, 3, 4)]
    assert result[0].tolist() == pytest.approx([e / sum(exps) for e in exps], rel=1e-6)


@pytest.mark.parametrize("scale", [0.1, 1.0, 10.0, 50.0])
def test_functions_equal_pytorchs_on_ordinary_inputs(scale):
    generator = torch.Generator().manual_seed(int(scale * 10))
    logits = scale * torch.randn(64, 10, generator=generator)
    labels = torch.randint(0, 10, (64,), generator=generator)
    assert torch.allclose(scratch.softmax(logits), torch.softmax(logits, dim=1), atol=1e-7, rtol=1e-5)
    assert torch.allclose(scratch.log_softmax(logits), torch.log_softmax(logits, dim=1), atol=1e-5, rtol=1e-6)
    losses = scratch.cross_entropy(logits, labels)
    assert losses.shape == (64,)
    assert torch.allclose(losses, nn.CrossEntropyLoss(reduction="none")(logits, labels), atol=1e-5, rtol=1e-6)
    assert torch.allclose(scratch.softmax(logits).sum(dim=1), torch.ones(64))


def test_hand_computed_values():
    # two equal logits: probability 1/2 each, loss log 2; a shift by any constant changes nothing
    assert scratch.cross_entropy(torch.tensor([[3.0, 3.0]]), torch.tensor([1])).item() == pytest.approx(math.log(2))
    logits = torch.tensor([[0.0, 1.0, 2.0]])
    expected = [-math.log(sum(math.exp(k - j) for k in range(3))) for j in range(3)]
    assert scratch.log_softmax(logits)[0].tolist() == pytest.approx(expected, rel=1e-6)
    assert torch.allclose(scratch.softmax(logits + 1000), scratch.softmax(logits))


@pytest.mark.parametrize("magnitude", [1e4, 1e6, 1e30])
def test_finite_for_huge_logits(magnitude):
    logits = torch.tensor([[magnitude, -magnitude, 0.0], [-magnitude, -magnitude, -magnitude], [0.0, magnitude, 1.0]])
    labels = torch.tensor([1, 2, 2])
    assert torch.isnan(_naive_softmax(logits)).any()  # these inputs do break the textbook formula
    probs, log_probs = scratch.softmax(logits), scratch.log_softmax(logits)
    losses = scratch.cross_entropy(logits, labels)
    for result in (probs, log_probs, losses):
        assert torch.isfinite(result).all()
    assert probs[0].tolist() == [1.0, 0.0, 0.0]
    assert probs[1].tolist() == pytest.approx([1 / 3] * 3)
    assert losses.tolist() == pytest.approx([2 * magnitude, math.log(3), magnitude - 1], rel=1e-6)
    assert torch.allclose(log_probs, torch.log_softmax(logits, dim=1))


def test_initial_weights_are_bit_identical_to_the_concise_model():
    for seed in (0, 7):
        torch.manual_seed(seed)
        concise = model.softmax_regression()
        after_concise = torch.rand(3)
        torch.manual_seed(seed)
        net = scratch.ScratchSoftmaxRegression()
        after_scratch = torch.rand(3)
        assert torch.equal(net.weight, concise[1].weight) and torch.equal(net.bias, concise[1].bias)
        assert torch.equal(after_scratch, after_concise)  # the same RNG use, so the same shuffles follow
    assert {k: tuple(v.shape) for k, v in net.state_dict().items()} == {"weight": (10, 784), "bias": (10,)}
    assert abs(net.weight.std().item() - 0.01) < 5e-4 and torch.equal(net.bias, torch.zeros(10))


def test_forward_and_the_documented_file_names_match_the_concise_model():
    torch.manual_seed(1)
    concise = model.softmax_regression()
    net = scratch.ScratchSoftmaxRegression()
    assert not torch.equal(net.weight, concise[1].weight)
    model.import_tensors(net, model.export_tensors(concise))  # weight (10, 784), bias (10,)
    images = torch.rand(5, 1, 28, 28)
    assert net(images).shape == (5, 10)
    assert torch.equal(net(images), concise(images))
    assert torch.equal(net(images.reshape(5, 784)), concise(images))


def _train_both(dataset, batch_size, lr, epochs, seed=3):
    """The concise model with fmnist.train and the scratch one, from the same seed and batches."""
    histories, nets = [], []
    for make in (model.softmax_regression, scratch.ScratchSoftmaxRegression):
        torch.manual_seed(seed)
        net = make()
        shuffle = torch.Generator().manual_seed(seed)
        batches = data.Batches(dataset.train_images, dataset.train_labels, batch_size, True, shuffle)
        if make is model.softmax_regression:
            optimizer = optim.SGD(net.parameters(), lr)
            history = [train.train_epoch(net, batches, nn.CrossEntropyLoss(), optimizer, False) for _ in range(epochs)]
        else:
            history = [scratch.train_epoch(net, batches, lr, False) for _ in range(epochs)]
        histories.append(history)
        nets.append(model.export_tensors(net))
    return histories, nets


def test_hand_gradients_follow_autograd_on_small_data(small_data, one_thread):
    (concise, by_hand), (a, b) = _train_both(data.load(), batch_size=32, lr=0.5, epochs=3)
    for name in ("weight", "bias"):
        assert (a[name] - b[name]).abs().max() < 1e-5
    for (loss_a, acc_a), (loss_b, acc_b) in zip(concise, by_hand, strict=True):
        assert loss_b == pytest.approx(loss_a, rel=1e-5) and acc_b == acc_a
    assert by_hand[-1][0] < by_hand[0][0] and by_hand[-1][1] > 0.9  # it learned the toy classes


def test_two_epochs_on_the_real_data_reach_the_concise_weights(real_dir, one_thread):
    torch.manual_seed(0)
    initial = scratch.ScratchSoftmaxRegression().weight.clone()
    dataset = data.load(real_dir)
    (concise, by_hand), (a, b) = _train_both(dataset, batch_size=256, lr=0.1, epochs=2, seed=0)
    assert (a["weight"] - b["weight"]).abs().max() < 1e-4
    assert (a["bias"] - b["bias"]).abs().max() < 1e-4
    assert (b["weight"] - initial).abs().max() > 0.05  # the weights did move far from where they began
    for (loss_a, acc_a), (loss_b, acc_b) in zip(concise, by_hand, strict=True):
        assert loss_b == pytest.approx(loss_a, rel=1e-5)
        assert acc_b == pytest.approx(acc_a, abs=2e-4)
    assert 0.5 < by_hand[1][0] < by_hand[0][0] < 1.0 and by_hand[1][1] > 0.78


def test_train_epoch_uses_no_autograd(small_data):
    dataset = data.load()
    torch.manual_seed(0)
    net = scratch.ScratchSoftmaxRegression()
    assert not any(p.requires_grad for p in net.parameters())
    net.requires_grad_(True)  # even when asked for, no graph is recorded and no .grad appears
    before = net.weight.clone()
    loss, acc = scratch.train_epoch(net, data.Batches(dataset.train_images, dataset.train_labels, 50), 0.5, False)
    assert net.weight.grad is None and net.bias.grad is None
    assert not torch.equal(net.weight, before)
    assert math.isfinite(loss) and 0 <= acc <= 1
    test = data.Batches(dataset.test_images, dataset.test_labels, 100)
    assert metrics.accuracy(metrics.evaluate(net, test)) > 0.5  # the library scores it like the concise model
