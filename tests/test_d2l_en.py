"""fmnist.d2l.en, the English edition's API (d2l 1.x), used the way its chapters use it: classes of our
own through add_to_class, subclasses of Classifier and Module, the Trainer's hooks overridden. Each is
checked against something independent: hand-computed values, PyTorch's own functions, a training loop
written out here."""

from __future__ import annotations

import subprocess
import sys
import types

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn import functional as F

import fmnist
from fmnist import d2l as zh_namespace
from fmnist import data
from fmnist.d2l import en as d2l
from fmnist.d2l import figures
from fmnist.errors import UserError

pytestmark = pytest.mark.usefixtures("headless")


def test_the_import_loads_none_of_the_command_lines_machinery():
    code = ("import sys\nfrom fmnist.d2l import en\nfrom fmnist import d2l\n"
            "print(sorted(m for m in sys.modules if m.startswith('fmnist')))")  # fmt: skip
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    loaded = eval(done.stdout)
    # the book's subpackage and the pieces it wraps: data, scores, the SGD step, pictures; no run folders,
    # settings, training runs, results, reports or command line
    pieces = {"fmnist", "fmnist.data", "fmnist.errors", "fmnist.fileio", "fmnist.metrics", "fmnist.optim",
              "fmnist.plots"}  # fmt: skip
    assert {m for m in loaded if not m.startswith("fmnist.d2l")} == pieces
    assert "fmnist.d2l.en" in loaded


def test_each_edition_has_its_own_meaning_of_a_shared_name():
    assert set(d2l.__all__) <= set(dir(d2l)) and all(getattr(d2l, name) is not None for name in d2l.__all__)
    assert d2l.plt.__name__ == "matplotlib.pyplot"
    assert d2l.Residual is not zh_namespace.Residual
    assert d2l.Residual(8, use_1x1conv=True)(torch.randn(2, 3, 6, 6)).shape == (2, 8, 6, 6)  # 1.x: lazy, no inputs
    assert zh_namespace.Residual(3, 8, use_1x1conv=True)(torch.randn(2, 3, 6, 6)).shape == (2, 8, 6, 6)
    if torch.cuda.device_count() == 0:
        assert d2l.try_all_gpus() == [] and zh_namespace.try_all_gpus() == [torch.device("cpu")]
    assert "Module" not in dir(zh_namespace) and "train_ch3" not in d2l.__all__
    for name in ("load_data_fashion_mnist", "train_ch6", "Animator", "Accumulator", "accuracy", "sgd"):
        assert getattr(d2l, name) is getattr(zh_namespace, name)  # what d2l 1.x kept is the same object
    assert fmnist.load_data_fashion_mnist is zh_namespace.load_data_fashion_mnist


def test_save_hyperparameters_and_add_to_class_change_objects_built_earlier():
    class Net(d2l.HyperParameters):
        def __init__(self, a, b=2, _private=3, *, c=4):
            local = a * 10  # noqa: F841 (a local variable defined before the call is kept too, as the book's)
            self.save_hyperparameters(ignore=["c"])

    net = Net(1)
    assert net.hparams == {"a": 1, "b": 2, "local": 10} and not hasattr(net, "c") and not hasattr(net, "_private")

    @d2l.add_to_class(Net)
    def twice(self):
        return 2 * self.a

    assert net.twice() == 2 and twice(net) == 2  # added to the object built before, and still a function


class Band(d2l.Classifier):
    """Our own classifier: one linear layer on the flattened image, its parameters our own."""

    def __init__(self, lr: float):
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(784, 10))
        self.batch_losses: list[float] = []


@d2l.add_to_class(Band)
def training_step(self, batch):
    loss = self.loss(self(*batch[:-1]), batch[-1])
    self.batch_losses.append(loss.item())
    self.plot("loss", loss, train=True)
    return loss


def _reference_training(net: nn.Module, images, labels, batch_size: int, lr: float, epochs: int) -> nn.Module:
    """The training Trainer.fit does, written out: a new permutation of the global RNG every epoch,
    mean cross-entropy, param -= lr * grad."""
    for _ in range(epochs):
        order = torch.randperm(len(labels))
        for start in range(0, len(labels), batch_size):
            index = order[start : start + batch_size]
            loss = F.cross_entropy(net(images[index]), labels[index])
            net.zero_grad()
            loss.backward()
            with torch.no_grad():
                for param in net.parameters():
                    param -= lr * param.grad
    return net


def test_trainer_fit_trains_as_a_loop_written_out(small_data, capsys):
    torch.manual_seed(0)
    model = Band(lr=0.5)
    reference = Band(lr=0.5)
    reference.load_state_dict(model.state_dict())
    fmnist_data = d2l.FashionMNIST(batch_size=64)
    trainer = d2l.Trainer(max_epochs=3)
    torch.manual_seed(1)
    trainer.fit(model, fmnist_data)
    dataset = data.load()
    torch.manual_seed(1)
    _reference_training(reference.net, dataset.train_images, dataset.train_labels, 64, 0.5, 3)
    for ours, theirs in zip(model.parameters(), reference.parameters(), strict=True):
        assert torch.allclose(ours, theirs, atol=1e-6)
    # the board's points are the means of two batches' losses (4 batches per epoch, 2 points per epoch)
    assert (trainer.num_train_batches, trainer.train_batch_idx, trainer.val_batch_idx) == (4, 12, 6)
    drawn = [p.y for p in model.board.data["train_loss"]]
    assert drawn == pytest.approx([np.mean(model.batch_losses[i : i + 2]) for i in range(0, 12, 2)], rel=1e-6)
    assert [p.x for p in model.board.data["val_acc"]] == [1, 2, 3]
    correct = (model(dataset.test_images).argmax(1) == dataset.test_labels).float()
    batch_means = (correct[:64].mean() + correct[64:].mean()) / 2  # the book averages the 2 batches' accuracies
    assert model.board.data["val_acc"][-1].y == pytest.approx(batch_means.item())
    assert capsys.readouterr().out.count("fit: figure saved to") == 1


def test_classifier_loss_and_accuracy_against_pytorch():
    model = d2l.SoftmaxRegression(num_outputs=4, lr=0.1)
    Y_hat = torch.randn(6, 4)
    Y = torch.tensor([0, 1, 2, 3, 0, 1])
    assert torch.allclose(model.loss(Y_hat, Y), nn.CrossEntropyLoss()(Y_hat, Y))
    assert torch.allclose(model.loss(Y_hat, Y, averaged=False), nn.CrossEntropyLoss(reduction="none")(Y_hat, Y))
    correct = [float(Y_hat[i].argmax() == Y[i]) for i in range(6)]
    assert model.accuracy(Y_hat, Y).item() == pytest.approx(sum(correct) / 6)
    assert model.accuracy(Y_hat, Y, averaged=False).tolist() == correct
    assert model(torch.zeros(2, 1, 28, 28)).shape == (2, 4)


def test_trainer_hooks_overridden_in_a_subclass_and_gradient_clipping(small_data):
    class CountingTrainer(d2l.Trainer):
        def prepare_batch(self, batch):
            self.prepared = getattr(self, "prepared", 0) + 1
            return super().prepare_batch(batch)

    @d2l.add_to_class(CountingTrainer)
    def clip_gradients(self, grad_clip_val, model):
        d2l.Trainer.clip_gradients(self, grad_clip_val, model)
        self.clipped_norms = getattr(self, "clipped_norms", [])
        self.clipped_norms.append(torch.sqrt(sum((p.grad**2).sum() for p in model.parameters())).item())

    torch.manual_seed(0)
    model = d2l.SoftmaxRegression(num_outputs=10, lr=0.1)
    trainer = CountingTrainer(max_epochs=2, gradient_clip_val=0.01)
    trainer.fit(model, d2l.FashionMNIST(batch_size=100))
    assert trainer.prepared == 2 * (2 + 1)  # 2 training and 1 validation batch per epoch
    assert trainer.clipped_norms == pytest.approx([0.01] * 4, rel=1e-4)  # every gradient is larger than 0.01


def test_fashion_mnist_serves_fmnists_data_resized_like_the_book(small_data):
    dataset = data.load()
    fm = d2l.FashionMNIST(batch_size=32, resize=(32, 48))
    assert (len(fm.train), len(fm.val), fm.root, fm.num_workers) == (200, 100, "../data", 4)
    image, label = fm.val[-1]
    expected = F.interpolate(dataset.test_images[-1:], size=(32, 48), mode="bilinear", antialias=True)[0]
    assert torch.equal(image, expected) and label == int(dataset.test_labels[-1])
    with pytest.raises(IndexError):
        fm.train[200]
    X, y = next(iter(fm.val_dataloader()))
    assert X.shape == (32, 1, 32, 48) and torch.equal(y, dataset.test_labels[:32])  # validation: in order
    torch.manual_seed(3)
    first = next(iter(fm.train_dataloader()))[1]
    torch.manual_seed(3)
    assert torch.equal(first, dataset.train_labels[torch.randperm(200)[:32]])  # training: the global RNG's order
    native = d2l.FashionMNIST(batch_size=8)
    assert native.train.size is None and torch.equal(native.train[5][0], dataset.train_images[5])
    assert fm.text_labels(torch.tensor([0, 9])) == ["t-shirt", "ankle boot"]


def test_visualize_titles_the_images_with_their_labels(small_data, drawn):
    fm = d2l.FashionMNIST(batch_size=8)
    batch = next(iter(fm.val_dataloader()))
    fm.visualize(batch)
    (fig,) = drawn
    assert [ax.get_title() for ax in fig.axes] == fm.text_labels(batch[1])


def test_synthetic_data_and_the_scratch_model_step_by_hand():
    torch.manual_seed(0)
    w = torch.tensor([2.0, -3.4])
    synthetic = d2l.SyntheticRegressionData(w, 4.2, num_train=8, num_val=4, batch_size=4)
    torch.manual_seed(0)
    X = torch.randn(12, 2)
    noise = torch.randn(12, 1) * 0.01
    assert torch.equal(synthetic.X, X) and torch.allclose(synthetic.y, X @ w.reshape(2, 1) + 4.2 + noise)
    assert len(synthetic.train_dataloader()) == 2 and len(synthetic.val_dataloader()) == 1
    model = d2l.LinearRegressionScratch(2, lr=0.1)
    w0, b0 = model.w.detach().clone(), model.b.detach().clone()
    optimizer = model.configure_optimizers()
    loss = model.loss(model(X[:4]), synthetic.y[:4])
    loss.backward()
    residual = X[:4] @ w0 + b0 - synthetic.y[:4]
    optimizer.step()
    assert torch.allclose(model.w, w0 - 0.1 * X[:4].T @ residual / 4, atol=1e-6)
    assert torch.allclose(model.b, b0 - 0.1 * residual.mean(), atol=1e-6)
    optimizer.zero_grad()
    assert model.w.grad.abs().sum() == 0


def test_multi_head_attention_against_a_head_by_head_computation():
    torch.manual_seed(0)
    attention = d2l.MultiHeadAttention(num_hiddens=8, num_heads=2, dropout=0.0)
    attention.eval()
    queries, keys = torch.randn(2, 3, 5), torch.randn(2, 4, 5)
    valid_lens = torch.tensor([2, 4])
    out = attention(queries, keys, keys, valid_lens)
    q, k, v = attention.W_q(queries), attention.W_k(keys), attention.W_v(keys)
    heads = []
    for h in range(2):
        part = slice(4 * h, 4 * h + 4)
        mask = torch.arange(4)[None, None, :] < valid_lens[:, None, None]
        scores = (q[..., part] @ k[..., part].transpose(1, 2) / 2).masked_fill(~mask, float("-inf"))
        heads.append(torch.softmax(scores, dim=-1) @ v[..., part])
    assert torch.allclose(out, attention.W_o(torch.cat(heads, dim=-1)), atol=1e-6)
    weights = attention.attention.attention_weights
    assert weights.shape == (4, 3, 4) and weights[0, :, 2:].abs().max() < 1e-6  # head 0 of example 0: 2 keys


def test_cnn_blocks_shapes_and_init_cnn():
    assert d2l.ResNeXtBlock(32, 16, 1)(torch.randn(2, 32, 8, 8)).shape == (2, 32, 8, 8)
    assert d2l.ResNeXtBlock(64, 16, 0.5, use_1x1conv=True, strides=2)(torch.randn(2, 32, 8, 8)).shape == (2, 64, 4, 4)
    lenet = d2l.LeNet()
    lenet.apply_init([torch.zeros(1, 1, 28, 28)], d2l.init_cnn)
    linear = lenet.net[-1]
    bound = (6 / (84 + 10)) ** 0.5  # Xavier-uniform for 84 inputs, 10 outputs
    assert linear.weight.abs().max() <= bound and linear.weight.std() > bound / 3
    d2l.check_shape(lenet(torch.zeros(3, 1, 28, 28)), (3, 10))
    with pytest.raises(AssertionError, match="expected shape"):
        d2l.check_shape(torch.zeros(2), (3,))


class _Objective:
    """A pretend training run: the error of a configuration falls with the epochs it gets."""

    def __init__(self):
        self.calls = []

    def __call__(self, learning_rate, batch_size, max_epochs=10):
        self.calls.append(max_epochs)
        return torch.tensor(abs(learning_rate - 0.3) + 1 / max_epochs)


def test_random_search_and_successive_halving_with_a_pretend_objective(capsys):
    class Fixed:
        def __init__(self, values):
            self.values = iter(values)

        def rvs(self):
            return next(self.values)

    space = {"learning_rate": Fixed([0.9, 0.3, 0.5, 0.1, 0.7, 0.2, 0.4, 0.6]), "batch_size": Fixed([64] * 8)}
    searcher = d2l.RandomSearcher(space, initial_config={"learning_rate": 0.8, "batch_size": 32})
    scheduler = d2l.SuccessiveHalvingScheduler(searcher, eta=2, r_min=1, r_max=4)
    objective = _Objective()
    tuner = d2l.HPOTuner(scheduler=scheduler, objective=objective)
    tuner.run(number_of_trials=7)
    assert scheduler.rung_levels == [1, 2, 4] and objective.calls == [1, 1, 1, 1, 2, 2, 4]
    # rung 1 holds 0.8 (the initial configuration), 0.9, 0.3, 0.5, evaluated from the end of the queue; its best
    # two go on to rung 2, again from the end of the queue
    assert [c["learning_rate"] for c, _ in scheduler.all_observed_error_at_rungs[1]] == [0.5, 0.3, 0.9, 0.8]
    assert [c["learning_rate"] for c, _ in scheduler.all_observed_error_at_rungs[2]] == [0.5, 0.3]
    assert scheduler.all_observed_error_at_rungs[4][0][0]["learning_rate"] == 0.3
    assert tuner.incumbent["learning_rate"] == 0.3 and tuner.incumbent_error == pytest.approx(0.25)
    assert tuner.cumulative_runtime == sorted(tuner.cumulative_runtime)
    assert capsys.readouterr().out.count("    error = ") == 7


def test_quick_run_caps_and_their_errors(small_data, monkeypatch):
    monkeypatch.setenv("FMNIST_D2L_MAX_EPOCHS", "2")
    monkeypatch.setenv("FMNIST_D2L_MAX_BATCHES", "1")
    model = d2l.SoftmaxRegression(num_outputs=10, lr=0.1)
    trainer = d2l.Trainer(max_epochs=10)
    trainer.fit(model, d2l.FashionMNIST(batch_size=32))
    assert (trainer.epoch, trainer.num_train_batches, trainer.train_batch_idx, trainer.val_batch_idx) == (1, 1, 2, 2)
    monkeypatch.setenv("FMNIST_D2L_MAX_BATCHES", "some")
    with pytest.raises(UserError, match="^FMNIST_D2L_MAX_BATCHES must be a positive whole number, not 'some'.$"):
        trainer.fit(model, d2l.FashionMNIST(batch_size=32))


def _fake_jupyter(monkeypatch):
    calls = []
    display = types.ModuleType("IPython.display")
    display.display = lambda fig: calls.append(("display", fig))
    display.clear_output = lambda wait=False: calls.append(("clear_output", wait))
    ipython = types.ModuleType("IPython")
    ipython.get_ipython = lambda: types.SimpleNamespace(config={"IPKernelApp": {}})
    ipython.display = display
    monkeypatch.setitem(sys.modules, "IPython", ipython)
    monkeypatch.setitem(sys.modules, "IPython.display", display)
    return calls


def test_in_jupyter_the_board_is_shown_again_at_every_point_and_nothing_is_saved(
    small_data, tmp_path, monkeypatch, capsys
):
    calls = _fake_jupyter(monkeypatch)
    model = d2l.SoftmaxRegression(num_outputs=10, lr=0.1)
    d2l.Trainer(max_epochs=2).fit(model, d2l.FashionMNIST(batch_size=100))
    shown = [arg for name, arg in calls if name == "display"]
    assert len(shown) == 2 * (2 + 2) and all(fig is model.board.fig for fig in shown)  # 2 train, loss, acc
    assert calls[1] == ("clear_output", True)
    lines = {line.get_label(): len(line.get_xdata()) for line in model.board.fig.axes[0].get_lines()}
    assert lines == {"train_loss": 4, "val_loss": 2, "val_acc": 2}
    assert capsys.readouterr().out == "" and list(tmp_path.glob("*.png")) == []
    assert figures.in_notebook()
