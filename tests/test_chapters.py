"""Code in the style of the book's Fashion-MNIST chapters 3-6, 11.11 and 12.5 (d2l-zh 2.0, PyTorch
cells), run with ``from fmnist import d2l`` on the small test dataset, checked against values
computed independently: by hand, with PyTorch's own functions, or by a second training loop
written here the way the chapters write theirs.

Each test is one chapter's calling patterns, in order; the few epochs and small batches are
the only changes. The big-model chapters (7.x) and 12.6 are in test_chapters_cnn.py.
"""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn import functional as F
from torch.optim import lr_scheduler

from fmnist import d2l

pytestmark = pytest.mark.usefixtures("headless")


def _epoch_lines(out: str) -> list[list[str]]:
    """The per-epoch lines train_ch3/train_ch6 print outside Jupyter, split into fields."""
    return [line.split() for line in out.splitlines() if line.startswith("epoch")]


def _band_class(images: torch.Tensor) -> torch.Tensor:
    """The class of each small-dataset image, read off the image: class k is the bright band at rows 2k+2..2k+5."""
    rows = images.reshape(len(images), 28, 28).mean(dim=2)
    return (rows.argmax(dim=1) - 2).div(2, rounding_mode="floor").clamp(0, 9)


def test_ch3_5_dataset(small_data, tmp_path, capsys):
    d2l.use_svg_display()
    train_iter, test_iter = d2l.load_data_fashion_mnist(18)
    X, y = next(iter(train_iter))
    assert X.shape == (18, 1, 28, 28) and X.dtype == torch.float32 and y.dtype == torch.int64
    assert torch.equal(_band_class(X), y)  # each image travels with its own label
    axes = d2l.show_images(X.reshape(18, 28, 28), 2, 9, titles=d2l.get_fashion_mnist_labels(y))
    labels = ["t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle boot"]
    assert [ax.get_title() for ax in axes] == [labels[i] for i in y.tolist()]
    assert (tmp_path / "fmnist-show_images.png").is_file()

    timer = d2l.Timer()
    for X, y in train_iter:  # noqa: B007 (the chapter times a pass that does nothing)
        continue
    assert f"{timer.stop():.2f} sec".endswith(" sec") and len(timer.times) == 1

    train_iter, test_iter = d2l.load_data_fashion_mnist(32, resize=64)
    for X, y in train_iter:
        assert (X.shape, X.dtype, y.shape, y.dtype) == ((32, 1, 64, 64), torch.float32, (32,), torch.int64)
        break
    X, _ = next(iter(d2l.load_data_fashion_mnist(32, resize=(32, 48))[1]))
    assert X.shape == (32, 1, 32, 48)
    assert capsys.readouterr().out.count("figure saved to") == 1


def test_ch3_6_softmax_from_scratch(small_data, tmp_path, capsys):
    batch_size = 32
    train_iter, test_iter = d2l.load_data_fashion_mnist(batch_size)
    num_inputs, num_outputs = 784, 10
    torch.manual_seed(0)
    W = torch.normal(0, 0.01, size=(num_inputs, num_outputs), requires_grad=True)
    b = torch.zeros(num_outputs, requires_grad=True)

    X = d2l.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    assert d2l.reduce_sum(X, 0, keepdim=True).tolist() == [[5.0, 7.0, 9.0]]
    assert d2l.reduce_sum(X, 1, keepdim=True).tolist() == [[6.0], [15.0]]

    def softmax(X):
        X_exp = d2l.exp(X)
        return X_exp / d2l.reduce_sum(X_exp, 1, keepdim=True)

    X = d2l.normal(0, 1, (2, 5))
    X_prob = softmax(X)
    assert torch.allclose(X_prob, torch.softmax(X, dim=1)) and torch.allclose(d2l.reduce_sum(X_prob, 1), torch.ones(2))

    def net(X):
        return softmax(d2l.matmul(d2l.reshape(X, (-1, W.shape[0])), W) + b)

    y = d2l.tensor([0, 2])
    y_hat = d2l.tensor([[0.1, 0.3, 0.6], [0.3, 0.2, 0.5]])
    assert y_hat[[0, 1], y].tolist() == pytest.approx([0.1, 0.5])

    def cross_entropy(y_hat, y):
        return -d2l.log(y_hat[range(len(y_hat)), y])

    assert cross_entropy(y_hat, y).tolist() == pytest.approx([-math.log(0.1), -math.log(0.5)])

    # The chapter writes its own accuracy and evaluate_accuracy with d2l's aliases; so does this test.
    def count_correct(y_hat, y):
        predicted = d2l.argmax(y_hat, axis=1) if y_hat.shape[1] > 1 else y_hat
        return float(d2l.reduce_sum(d2l.astype(d2l.astype(predicted, y.dtype) == y, d2l.int32)))

    def fraction_correct(net, data_iter):
        metric = d2l.Accumulator(2)
        for X, y in data_iter:
            metric.add(count_correct(net(X), y), d2l.size(y))
        return metric[0] / metric[1]

    assert count_correct(y_hat, y) / len(y) == d2l.accuracy(y_hat, y) / len(y) == 0.5
    before = d2l.evaluate_accuracy(net, test_iter)
    assert before == fraction_correct(net, test_iter) and before < 0.5

    lr, num_epochs, W0 = 0.1, 3, W.detach().clone()

    def updater(batch_size):
        return d2l.sgd([W, b], lr, batch_size)

    torch.manual_seed(1)  # the loader shuffles with the global RNG: the same batches for both loops below
    d2l.train_ch3(net, train_iter, test_iter, cross_entropy, num_epochs, updater)
    trained = W.detach().clone(), b.detach().clone()
    epochs = _epoch_lines(capsys.readouterr().out)
    assert [fields[1] for fields in epochs] == ["1/3", "2/3", "3/3"]

    # The same training with a loop written here: the same weights and the same printed numbers.
    with torch.no_grad():
        W.copy_(W0)
        b.zero_()
    torch.manual_seed(1)
    for epoch in range(num_epochs):
        metric = d2l.Accumulator(3)
        for X, y in train_iter:
            y_hat = net(X)
            l = cross_entropy(y_hat, y)  # noqa: E741 (the book's name)
            l.sum().backward()
            updater(X.shape[0])
            metric.add(float(l.detach().sum()), count_correct(y_hat, y), y.numel())
        expected = [f"{metric[0] / metric[2]:.4f}", f"{metric[1] / metric[2]:.4f}",
                    f"{fraction_correct(net, test_iter):.4f}"]  # fmt: skip
        assert [epochs[epoch][4], epochs[epoch][7], epochs[epoch][10]] == expected
    assert torch.allclose(W, trained[0], atol=1e-6) and torch.allclose(b, trained[1], atol=1e-6)
    assert float(epochs[-1][10]) > 0.8  # the toy classes are easy

    d2l.predict_ch3(net, test_iter)
    assert capsys.readouterr().out.splitlines()[-1].endswith(str(tmp_path / "fmnist-predict_ch3.png"))


def test_ch3_7_softmax_concise(small_data, capsys):
    train_iter, test_iter = d2l.load_data_fashion_mnist(32)
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(784, 10))

    def init_weights(m):
        if type(m) is nn.Linear:
            nn.init.normal_(m.weight, std=0.01)

    net.apply(init_weights)
    loss = nn.CrossEntropyLoss(reduction="none")
    trainer = torch.optim.SGD(net.parameters(), lr=0.1)
    reference = nn.Sequential(nn.Flatten(), nn.Linear(784, 10))
    reference.load_state_dict(net.state_dict())

    torch.manual_seed(5)
    d2l.train_ch3(net, train_iter, test_iter, loss, 2, trainer)
    # The same two epochs by hand: mean cross-entropy from log_softmax, w -= lr * grad.
    torch.manual_seed(5)
    for _ in range(2):
        for X, y in train_iter:
            mean_loss = -F.log_softmax(reference(X), dim=1)[torch.arange(len(y)), y].mean()
            grads = torch.autograd.grad(mean_loss, list(reference.parameters()))
            with torch.no_grad():
                for param, grad in zip(reference.parameters(), grads, strict=True):
                    param -= 0.1 * grad
    assert torch.allclose(net[1].weight, reference[1].weight, atol=1e-6)
    assert torch.allclose(net[1].bias, reference[1].bias, atol=1e-6)
    assert [fields[1] for fields in _epoch_lines(capsys.readouterr().out)] == ["1/2", "2/2"]


def test_ch4_2_mlp_from_scratch_with_a_mean_loss(small_data, capsys):
    batch_size = 32
    train_iter, test_iter = d2l.load_data_fashion_mnist(batch_size)
    num_inputs, num_outputs, num_hiddens = 784, 10, 64
    torch.manual_seed(0)
    W1 = nn.Parameter(torch.randn(num_inputs, num_hiddens, requires_grad=True) * 0.01)
    b1 = nn.Parameter(torch.zeros(num_hiddens, requires_grad=True))
    W2 = nn.Parameter(torch.randn(num_hiddens, num_outputs, requires_grad=True) * 0.01)
    b2 = nn.Parameter(torch.zeros(num_outputs, requires_grad=True))
    params = [W1, b1, W2, b2]

    def relu(X):
        return torch.max(X, torch.zeros_like(X))

    def net(X):
        X = d2l.reshape(X, (-1, num_inputs))
        return relu(X @ W1 + b1) @ W2 + b2

    loss = nn.CrossEntropyLoss()  # a mean over the batch, not one loss per example
    # With lr 0 the weights stay put, so the epoch's loss is the training set's mean cross-entropy.
    frozen = d2l.train_epoch_ch3(net, train_iter, loss, torch.optim.SGD(params, lr=0.0))
    dataset = train_iter.images, train_iter.labels
    with torch.no_grad():
        logits = net(dataset[0])
    assert frozen[0] == pytest.approx(F.cross_entropy(logits, dataset[1]).item(), rel=1e-5)
    assert frozen[1] == pytest.approx((logits.argmax(1) == dataset[1]).double().mean().item())

    updater = torch.optim.SGD(params, lr=0.5)
    d2l.train_ch3(net, train_iter, test_iter, loss, 4, updater)
    epochs = _epoch_lines(capsys.readouterr().out)
    assert float(epochs[-1][4]) < float(epochs[0][4]) and float(epochs[-1][10]) > 0.8
    d2l.predict_ch3(net, test_iter)
    assert "predict_ch3: figure saved to" in capsys.readouterr().out


def test_ch4_3_mlp_concise(small_data, capsys):
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(784, 64), nn.ReLU(), nn.Linear(64, 10))

    def init_weights(m):
        if type(m) is nn.Linear:
            torch.nn.init.normal_(m.weight, std=0.01)

    net.apply(init_weights)
    batch_size, lr, num_epochs = 32, 0.5, 4
    loss = nn.CrossEntropyLoss()
    trainer = torch.optim.SGD(net.parameters(), lr=lr)
    train_iter, test_iter = d2l.load_data_fashion_mnist(batch_size)
    d2l.train_ch3(net, train_iter, test_iter, loss, num_epochs, trainer)
    epochs = _epoch_lines(capsys.readouterr().out)
    assert len(epochs) == num_epochs
    with torch.no_grad():
        test_X, test_y = test_iter.images, test_iter.labels
        assert float(epochs[-1][10]) == pytest.approx((net(test_X).argmax(1) == test_y).float().mean().item(), abs=6e-5)
    assert float(epochs[-1][10]) > 0.8


def test_ch4_4_model_selection_polynomial():
    max_degree, n_train, n_test = 20, 100, 100
    rng = np.random.default_rng(0)
    true_w = np.zeros(max_degree)
    true_w[0:4] = np.array([5, 1.2, -3.4, 5.6])
    features = rng.normal(size=(n_train + n_test, 1))
    poly_features = np.power(features, np.arange(max_degree).reshape(1, -1))
    for i in range(max_degree):
        poly_features[:, i] /= math.gamma(i + 1)
    labels = poly_features @ true_w + rng.normal(scale=0.1, size=n_train + n_test)
    true_w, features, poly_features, labels = [d2l.tensor(x, dtype=d2l.float32)
                                               for x in [true_w, features, poly_features, labels]]  # fmt: skip
    assert poly_features.dtype == torch.float32 and poly_features.shape == (200, 20)

    def chapter_evaluate_loss(net, data_iter, loss):  # the chapter's own, written with d2l's names
        metric = d2l.Accumulator(2)
        for X, y in data_iter:
            out = net(X)
            l = loss(out, d2l.reshape(y, out.shape))  # noqa: E741
            metric.add(d2l.reduce_sum(l), d2l.size(l))
        return metric[0] / metric[1]

    def train(train_features, test_features, train_labels, test_labels, num_epochs=400):
        loss = nn.MSELoss(reduction="none")
        net = nn.Sequential(nn.Linear(train_features.shape[-1], 1, bias=False))
        batch_size = min(10, train_labels.shape[0])
        train_iter = d2l.load_array((train_features, train_labels.reshape(-1, 1)), batch_size)
        test_iter = d2l.load_array((test_features, test_labels.reshape(-1, 1)), batch_size, is_train=False)
        trainer = torch.optim.SGD(net.parameters(), lr=0.01)
        animator = d2l.Animator(xlabel="epoch", ylabel="loss", yscale="log", xlim=[1, num_epochs], ylim=[1e-3, 1e2],
                                legend=["train", "test"])  # fmt: skip
        for epoch in range(num_epochs):
            d2l.train_epoch_ch3(net, train_iter, loss, trainer)
            if epoch == 0 or (epoch + 1) % 20 == 0:
                animator.add(epoch + 1, (chapter_evaluate_loss(net, train_iter, loss),
                                         d2l.evaluate_loss(net, test_iter, loss)))  # fmt: skip
        with torch.no_grad():  # both evaluate_loss functions against the mean squared error of the whole set
            mse = F.mse_loss(net(test_features), test_labels.reshape(-1, 1)).item()
        assert d2l.evaluate_loss(net, test_iter, loss) == pytest.approx(mse, rel=1e-5)
        assert chapter_evaluate_loss(net, test_iter, loss) == pytest.approx(mse, rel=1e-5)
        assert d2l.evaluate_loss(net, test_iter, nn.MSELoss()) == pytest.approx(mse, rel=1e-5)  # a mean loss too
        assert len(animator.Y[0]) == len(animator.Y[1]) == 1 + num_epochs // 20
        return net[0].weight.data.numpy(), animator.Y

    torch.manual_seed(0)
    weight, losses = train(poly_features[:n_train, :4], poly_features[n_train:, :4], labels[:n_train], labels[n_train:])
    assert weight[0] == pytest.approx([5, 1.2, -3.4, 5.6], abs=0.15)  # the generating polynomial
    assert losses[1][-1] < 0.02  # test loss near the noise's 0.1^2 / 2
    weight, losses = train(poly_features[:n_train, :2], poly_features[n_train:, :2], labels[:n_train], labels[n_train:],
                           num_epochs=100)  # fmt: skip
    assert losses[1][-1] > 1  # a line underfits the cubic


def test_ch4_5_weight_decay():
    n_train, n_test, num_inputs, batch_size = 20, 100, 200, 5
    true_w, true_b = d2l.ones((num_inputs, 1)) * 0.01, 0.05
    torch.manual_seed(0)
    train_data = d2l.synthetic_data(true_w, true_b, n_train)
    train_iter = d2l.load_array(train_data, batch_size)
    test_data = d2l.synthetic_data(true_w, true_b, n_test)
    test_iter = d2l.load_array(test_data, batch_size, is_train=False)

    X, y = test_data
    assert X.shape == (n_test, num_inputs) and y.shape == (n_test, 1)
    noise = y - (X @ true_w + true_b)
    assert abs(noise.mean().item()) < 0.004 and 0.007 < noise.std().item() < 0.013  # N(0, 0.01^2)
    assert torch.cat([y for _, y in test_iter]).equal(y)  # in order
    assert sorted(torch.cat([X[:, 0] for X, _ in train_iter]).tolist()) == sorted(train_data[0][:, 0].tolist())
    assert d2l.squared_loss(d2l.tensor([[1.0], [3.0]]), d2l.tensor([2.0, 1.0])).tolist() == [[0.5], [2.0]]

    def init_params():
        w = torch.normal(0, 1, size=(num_inputs, 1), requires_grad=True)
        b = torch.zeros(1, requires_grad=True)
        return [w, b]

    def l2_penalty(w):
        return torch.sum(w.pow(2)) / 2

    def train(lambd):
        w, b = init_params()
        net, loss = lambda X: d2l.linreg(X, w, b), d2l.squared_loss
        assert torch.equal(net(X), torch.mm(X, w) + b)
        num_epochs, lr = 100, 0.003
        animator = d2l.Animator(xlabel="epochs", ylabel="loss", yscale="log", xlim=[5, num_epochs],
                                legend=["train", "test"])  # fmt: skip
        for epoch in range(num_epochs):
            for X_batch, y_batch in train_iter:
                l = loss(net(X_batch), y_batch) + lambd * l2_penalty(w)  # noqa: E741
                l.sum().backward()
                d2l.sgd([w, b], lr, batch_size)
            if (epoch + 1) % 5 == 0:
                animator.add(epoch + 1, (d2l.evaluate_loss(net, train_iter, loss),
                                         d2l.evaluate_loss(net, test_iter, loss)))  # fmt: skip
        with torch.no_grad():
            assert animator.Y[1][-1] == pytest.approx(((net(X) - y) ** 2 / 2).mean().item(), rel=1e-5)
        return torch.norm(w).item(), animator.Y[1][-1]

    norm_free, test_free = train(lambd=0)
    norm_decayed, test_decayed = train(lambd=3)
    assert norm_decayed < norm_free / 5 and test_decayed < test_free

    def train_concise(wd):
        net = nn.Sequential(nn.Linear(num_inputs, 1))
        for param in net.parameters():
            param.data.normal_()
        loss = nn.MSELoss()
        num_epochs, lr = 100, 0.003
        trainer = torch.optim.SGD([{"params": net[0].weight, "weight_decay": wd}, {"params": net[0].bias}], lr=lr)
        for _ in range(num_epochs):
            for X_batch, y_batch in train_iter:
                trainer.zero_grad()
                loss(net(X_batch), y_batch).backward()
                trainer.step()
        with torch.no_grad():
            assert d2l.evaluate_loss(net, test_iter, loss) == pytest.approx(F.mse_loss(net(X), y).item(), rel=1e-5)
        return net[0].weight.norm().item()

    assert train_concise(3) < train_concise(0) / 5


def test_ch4_6_dropout(small_data, capsys):
    def dropout_layer(X, dropout):
        assert 0 <= dropout <= 1
        if dropout == 1:
            return torch.zeros_like(X)
        if dropout == 0:
            return X
        mask = (torch.rand(X.shape) > dropout).float()
        return mask * X / (1.0 - dropout)

    X = torch.arange(16, dtype=torch.float32).reshape((2, 8))
    kept = dropout_layer(X, 0.5)
    assert torch.equal(dropout_layer(X, 0.0), X) and not dropout_layer(X, 1.0).any()
    assert ((kept == 0) | (kept == 2 * X)).all()

    num_inputs, num_outputs, num_hiddens1, num_hiddens2 = 784, 10, 64, 32

    class Net(nn.Module):
        def __init__(self, is_training=True):
            super().__init__()
            self.training = is_training
            self.lin1 = nn.Linear(num_inputs, num_hiddens1)
            self.lin2 = nn.Linear(num_hiddens1, num_hiddens2)
            self.lin3 = nn.Linear(num_hiddens2, num_outputs)
            self.relu = nn.ReLU()

        def forward(self, X):
            H1 = self.relu(self.lin1(X.reshape((-1, num_inputs))))
            if self.training:
                H1 = dropout_layer(H1, 0.2)
            H2 = self.relu(self.lin2(H1))
            if self.training:
                H2 = dropout_layer(H2, 0.5)
            return self.lin3(H2)

    torch.manual_seed(0)
    num_epochs, lr, batch_size = 3, 0.5, 32
    loss = nn.CrossEntropyLoss(reduction="none")
    train_iter, test_iter = d2l.load_data_fashion_mnist(batch_size)
    for net in (Net(), nn.Sequential(nn.Flatten(), nn.Linear(784, 64), nn.ReLU(), nn.Dropout(0.2), nn.Linear(64, 10))):
        trainer = torch.optim.SGD(net.parameters(), lr=lr)
        d2l.train_ch3(net, train_iter, test_iter, loss, num_epochs, trainer)
        assert not net.training  # evaluate_accuracy leaves the net in eval mode, as the book's
        with torch.no_grad():  # in eval mode there is no dropout: the printed accuracy is repeatable
            accuracy = (net(test_iter.images).argmax(1) == test_iter.labels).float().mean().item()
        assert float(_epoch_lines(capsys.readouterr().out)[-1][10]) == pytest.approx(accuracy, abs=6e-5)


def _lenet():
    return nn.Sequential(
        nn.Conv2d(1, 6, kernel_size=5, padding=2), nn.Sigmoid(), nn.AvgPool2d(kernel_size=2, stride=2),
        nn.Conv2d(6, 16, kernel_size=5), nn.Sigmoid(), nn.AvgPool2d(kernel_size=2, stride=2),
        nn.Flatten(), nn.Linear(16 * 5 * 5, 120), nn.Sigmoid(), nn.Linear(120, 84), nn.Sigmoid(), nn.Linear(84, 10),
    )  # fmt: skip


def _chapter_evaluate(net, data_iter, device=None):
    """Chapter 6.6's own evaluate_accuracy_gpu, written with d2l's names."""
    if isinstance(net, nn.Module):
        net.eval()
        device = device or next(iter(net.parameters())).device
    metric = d2l.Accumulator(2)
    with torch.no_grad():
        for X, y in data_iter:
            metric.add(d2l.accuracy(net(X.to(device)), y.to(device)), d2l.size(y))
    return metric[0] / metric[1]


def _chapter_train(net, train_iter, test_iter, num_epochs, loss, trainer, device, scheduler=None, evaluate=None):
    """Chapter 6.6's train_ch6 loop, written with d2l's names, as chapter 11.11 reuses it with a learning-rate
    scheduler; returns the final line the book prints."""
    evaluate = evaluate or d2l.evaluate_accuracy_gpu
    net.to(device)
    animator = d2l.Animator(xlabel="epoch", xlim=[1, num_epochs], legend=["train loss", "train acc", "test acc"])
    timer, num_batches = d2l.Timer(), len(train_iter)
    for epoch in range(num_epochs):
        metric = d2l.Accumulator(3)
        net.train()
        for i, (X, y) in enumerate(train_iter):
            timer.start()
            trainer.zero_grad()
            X, y = X.to(device), y.to(device)
            y_hat = net(X)
            l = loss(y_hat, y)  # noqa: E741
            l.backward()
            trainer.step()
            with torch.no_grad():
                metric.add(l * X.shape[0], d2l.accuracy(y_hat, y), X.shape[0])
            timer.stop()
            if (i + 1) % (num_batches // 5) == 0 or i == num_batches - 1:
                animator.add(epoch + (i + 1) / num_batches, (metric[0] / metric[2], metric[1] / metric[2], None))
        test_acc = evaluate(net, test_iter)
        animator.add(epoch + 1, (None, None, test_acc))
        if scheduler:
            if scheduler.__module__ == lr_scheduler.__name__:
                scheduler.step()
            else:
                for param_group in trainer.param_groups:
                    param_group["lr"] = scheduler(epoch)
    return f"loss {metric[0] / metric[2]:.3f}, train acc {metric[1] / metric[2]:.3f}, test acc {test_acc:.3f}"


def test_ch6_6_lenet(small_data, capsys):
    net = _lenet()
    X = torch.rand(size=(1, 1, 28, 28), dtype=torch.float32)
    shapes = []
    for layer in net:
        X = layer(X)
        shapes.append((layer.__class__.__name__, tuple(X.shape)))
    assert shapes[2] == ("AvgPool2d", (1, 6, 14, 14)) and shapes[5] == ("AvgPool2d", (1, 16, 5, 5))
    assert shapes[-1] == ("Linear", (1, 10))

    batch_size = 32  # 7 batches of the 200 training images: the chapter's loop reports every 7 // 5 batches
    train_iter, test_iter = d2l.load_data_fashion_mnist(batch_size=batch_size)

    def init_weights(m):
        if type(m) in (nn.Linear, nn.Conv2d):
            nn.init.xavier_uniform_(m.weight)

    lr, num_epochs = 0.9, 3
    reference = copy.deepcopy(net)  # the same biases (Xavier sets the weights)
    torch.manual_seed(3)  # the same initial weights and batches for both
    reference.apply(init_weights)
    trainer = torch.optim.SGD(reference.parameters(), lr=lr)
    expected = _chapter_train(reference, train_iter, test_iter, num_epochs, nn.CrossEntropyLoss(), trainer,
                              d2l.try_gpu(), evaluate=_chapter_evaluate)  # fmt: skip
    torch.manual_seed(3)
    d2l.train_ch6(net, train_iter, test_iter, num_epochs, lr, d2l.try_gpu())
    for param, expected_param in zip(net.parameters(), reference.parameters(), strict=True):
        assert torch.allclose(param, expected_param, atol=1e-6)
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "training on cpu" and len(_epoch_lines("\n".join(out))) == num_epochs
    assert out[-3] == expected
    speed, unit = out[-2].split(" ", 1)
    assert float(speed) > 0 and unit == "examples/sec on cpu"
    assert out[-1].startswith("train_ch6: figure saved to ")
    assert d2l.evaluate_accuracy_gpu(net, test_iter) == _chapter_evaluate(net, test_iter)


def test_ch11_11_learning_rate_schedules(small_data, tmp_path, capsys):
    def net_fn():
        return nn.Sequential(
            nn.Conv2d(1, 6, kernel_size=5, padding=2), nn.ReLU(), nn.MaxPool2d(kernel_size=2, stride=2),
            nn.Conv2d(6, 16, kernel_size=5), nn.ReLU(), nn.MaxPool2d(kernel_size=2, stride=2), nn.Flatten(),
            nn.Linear(16 * 5 * 5, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, 10),
        )  # fmt: skip

    loss = nn.CrossEntropyLoss()
    device = d2l.try_gpu()
    train_iter, test_iter = d2l.load_data_fashion_mnist(batch_size=32)  # 7 batches: reports every 7 // 5
    train = _chapter_train

    class SquareRootScheduler:
        def __init__(self, lr=0.1):
            self.lr = lr

        def __call__(self, num_update):
            return self.lr * pow(num_update + 1.0, -0.5)

    class CosineScheduler:
        def __init__(self, max_update, base_lr=0.01, final_lr=0):
            self.base_lr, self.max_update, self.final_lr = base_lr, max_update, final_lr

        def __call__(self, epoch):
            t = min(epoch, self.max_update) / self.max_update
            return self.final_lr + (self.base_lr - self.final_lr) * (1 + math.cos(math.pi * t)) / 2

    num_epochs = 3
    torch.manual_seed(0)
    net = net_fn()
    trainer = torch.optim.SGD(net.parameters(), lr=0.3)
    assert train(net, train_iter, test_iter, num_epochs, loss, trainer, device).startswith("loss ")
    trainer.param_groups[0]["lr"] = 0.1

    scheduler = SquareRootScheduler(lr=0.1)
    d2l.plot(d2l.arange(num_epochs), [scheduler(t) for t in range(num_epochs)])
    net = net_fn()
    trainer = torch.optim.SGD(net.parameters(), 0.1)
    train(net, train_iter, test_iter, num_epochs, loss, trainer, device, scheduler)
    assert trainer.param_groups[0]["lr"] == pytest.approx(0.1 / math.sqrt(num_epochs))

    net = net_fn()
    trainer = torch.optim.SGD(net.parameters(), lr=0.5)
    scheduler = lr_scheduler.MultiStepLR(trainer, milestones=[1, 2], gamma=0.5)
    train(net, train_iter, test_iter, num_epochs, loss, trainer, device, scheduler)
    assert trainer.param_groups[0]["lr"] == pytest.approx(0.5 * 0.5**2)

    scheduler = CosineScheduler(max_update=20, base_lr=0.3, final_lr=0.01)
    d2l.plot(d2l.arange(num_epochs), [scheduler(t) for t in range(num_epochs)])
    out = capsys.readouterr().out.splitlines()
    assert out == [f"plot: figure saved to {tmp_path / 'fmnist-plot.png'}",
                   f"plot: figure saved to {tmp_path / 'fmnist-plot-2.png'}"]  # fmt: skip


def test_ch12_5_data_parallel_from_scratch(small_data):
    devices = d2l.try_all_gpus()
    assert devices == ([torch.device(f"cuda:{i}") for i in range(torch.cuda.device_count())] or [torch.device("cpu")])
    assert d2l.try_gpu(torch.cuda.device_count()) == torch.device("cpu")  # one past the last GPU

    scale = 0.01
    torch.manual_seed(0)
    W1, b1 = torch.randn(size=(20, 1, 3, 3)) * scale, torch.zeros(20)
    W2, b2 = torch.randn(size=(50, 20, 5, 5)) * scale, torch.zeros(50)
    W3, b3 = torch.randn(size=(800, 128)) * scale, torch.zeros(128)
    W4, b4 = torch.randn(size=(128, 10)) * scale, torch.zeros(10)
    params = [W1, b1, W2, b2, W3, b3, W4, b4]

    def lenet(X, params):
        h1 = F.avg_pool2d(
            F.relu(F.conv2d(input=X, weight=params[0], bias=params[1])), kernel_size=(2, 2), stride=(2, 2)
        )
        h2 = F.avg_pool2d(
            F.relu(F.conv2d(input=h1, weight=params[2], bias=params[3])), kernel_size=(2, 2), stride=(2, 2)
        )
        h3 = F.relu(torch.mm(h2.reshape(h2.shape[0], -1), params[4]) + params[5])
        return torch.mm(h3, params[6]) + params[7]

    loss = nn.CrossEntropyLoss(reduction="none")

    def get_params(params, device):
        new_params = [p.to(device) for p in params]
        for p in new_params:
            p.requires_grad_()
        return new_params

    def allreduce(data):
        for i in range(1, len(data)):
            data[0][:] += data[i].to(data[0].device)
        for i in range(1, len(data)):
            data[i][:] = data[0].to(data[i].device)

    data = [torch.ones((1, 2), device=d2l.try_gpu(i)) * (i + 1) for i in range(2)]
    allreduce(data)
    assert data[0].tolist() == data[1].tolist() == [[3.0, 3.0]]

    def split_batch(X, y, devices):  # nn.parallel.scatter needs CUDA; chunks work on any device
        return ([x.to(d) for x, d in zip(X.chunk(len(devices)), devices, strict=True)],
                [t.to(d) for t, d in zip(y.chunk(len(devices)), devices, strict=True)])  # fmt: skip

    def train_batch(X, y, device_params, devices, lr):
        X_shards, y_shards = split_batch(X, y, devices)
        ls = [loss(lenet(X_shard, device_W), y_shard).sum()
              for X_shard, y_shard, device_W in zip(X_shards, y_shards, device_params, strict=True)]  # fmt: skip
        for l in ls:  # noqa: E741
            l.backward()
        with torch.no_grad():
            for i in range(len(device_params[0])):
                allreduce([device_params[c][i].grad for c in range(len(devices))])
        for param in device_params:
            d2l.sgd(param, lr, X.shape[0])

    def train(num_gpus, batch_size, lr, num_epochs=2):
        train_iter, test_iter = d2l.load_data_fashion_mnist(batch_size)
        devices = [d2l.try_gpu(i) for i in range(num_gpus)]
        device_params = [get_params(params, d) for d in devices]
        animator = d2l.Animator("epoch", "test acc", xlim=[1, num_epochs])
        timer = d2l.Timer()
        for epoch in range(num_epochs):
            timer.start()
            for X, y in train_iter:
                train_batch(X, y, device_params, devices, lr)
            timer.stop()
            animator.add(epoch + 1, (d2l.evaluate_accuracy_gpu(lambda x: lenet(x, device_params[0]), test_iter,
                                                               devices[0]),))  # fmt: skip
        with torch.no_grad():  # the accuracy counted here, from the test set in one piece
            X, y = test_iter.images.to(devices[0]), test_iter.labels.to(devices[0])
            assert animator.Y[0][-1] == pytest.approx(
                (lenet(X, device_params[0]).argmax(1) == y).double().mean().item()
            )
        assert timer.avg() > 0 and len(timer.times) == num_epochs  # the chapter prints avg() sec/epoch
        return animator.Y[0]

    accuracies = train(num_gpus=len(devices), batch_size=32, lr=0.2)
    assert len(accuracies) == 2
