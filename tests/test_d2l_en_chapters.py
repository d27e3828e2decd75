"""The English edition's chapters (d2l.ai, d2l 1.x), every PyTorch cell in order, with only the import
changed (tests/d2l_chapters.py runs them as a notebook does), checked on what the cells show.

Runs are short without changing a cell: the small learnable dataset of conftest (200 training and 100
test images) and the documented caps FMNIST_D2L_MAX_EPOCHS / FMNIST_D2L_MAX_BATCHES of Trainer.fit.
The big networks of chapter 8 and the vision transformer (11.8) are `slow`, and so are the chapters that
train many models (12.11: five runs of 30 epochs; 19.1 and 19.4: 5 and 30 trials); the Syne Tune chapters
(19.3, 19.5) run their trials in separate processes on the real dataset (`slow`, `realdata`), as does
the softmax chapter for its full 10 epochs.
"""

from __future__ import annotations

import importlib.util
import re

import numpy as np
import pytest
import torch
from conftest import make_small_dataset
from d2l_chapters import Notebook, chapter_file, pytorch_cells

from fmnist.d2l import en, framework, zh

pytestmark = pytest.mark.usefixtures("headless", "pristine_classes")

_MISSING = object()


@pytest.fixture
def pristine_classes():
    """add_to_class in a chapter changes fmnist's classes for good, as in a notebook; each test gets them
    back as they were."""
    classes = [obj for module in (framework, en, zh) for obj in vars(module).values()
               if isinstance(obj, type) and obj.__module__ == module.__name__]  # fmt: skip
    saved = {cls: dict(vars(cls)) for cls in classes}
    torch.manual_seed(0)
    yield
    for cls, attrs in saved.items():
        for name in set(vars(cls)) - set(attrs):
            delattr(cls, name)
        for name, value in attrs.items():
            if vars(cls).get(name, _MISSING) is not value:
                setattr(cls, name, value)


TINY = [make_small_dataset(n_train=40, n_test=20)]  # for the chapters that train many models


def caps(monkeypatch, epochs: int | None = None, batches: int | None = None) -> None:
    """Cap every Trainer.fit of the test (the quick-run environment variables)."""
    for name, value in (("FMNIST_D2L_MAX_EPOCHS", epochs), ("FMNIST_D2L_MAX_BATCHES", batches)):
        if value is not None:
            monkeypatch.setenv(name, str(value))


def losses(board, key: str = "train_loss") -> list[float]:
    return [p.y for p in board.data[key]]


def test_3_2_oo_design(capsys):
    nb = Notebook("3.2").run()
    assert 'Class attribute "b" is 1' in capsys.readouterr().out
    b = nb.namespace["b"]
    assert (b.a, b.b, hasattr(b, "c")) == (1, 2, False) and b.hparams == {"a": 1, "b": 2}
    board = nb.namespace["board"]
    xs = np.arange(0, 10, 0.1)
    assert len(board.data["sin"]) == 50 and len(board.data["cos"]) == 10  # every_n=2 and 10 of 100 points
    assert board.data["sin"][0].y == pytest.approx((np.sin(xs[0]) + np.sin(xs[1])) / 2)
    assert board.data["cos"][-1].x == pytest.approx(xs[90:].mean())
    # the chapter's own Module and Trainer are its own classes, beside the library's
    assert nb.namespace["Trainer"] is not en.Trainer and issubclass(nb.namespace["Module"], torch.nn.Module)


def test_3_3_synthetic_regression_data(capsys):
    nb = Notebook("3.3").run()
    data = nb.namespace["data"]
    assert data.X.shape == (2000, 2) and data.y.shape == (2000, 1)
    assert torch.allclose(data.y, data.X @ torch.tensor([[2.0], [-3.4]]) + 4.2, atol=0.06)  # noise sd 0.01
    assert capsys.readouterr().out.count("X shape: torch.Size([32, 2]) \ny shape: torch.Size([32, 1])") == 2
    assert nb.outputs[max(nb.outputs)] == 32  # len(train_dataloader()): 1000 / 32, rounded up


def test_3_4_linear_regression_scratch(capsys):
    nb = Notebook("3.4").run()
    model, data = nb.namespace["model"], nb.namespace["data"]
    with torch.no_grad():  # 3 epochs at lr 0.03 come close (the book shows errors of 0.1-0.2)
        assert (data.w - model.w.reshape(data.w.shape)).abs().max() < 0.5 and abs(data.b - model.b.item()) < 0.5
    assert "error in estimating w" in capsys.readouterr().out
    assert losses(model.board)[-1] < losses(model.board)[0] / 10
    assert (model.trainer.epoch, model.trainer.train_batch_idx) == (2, 3 * 32)
    assert (tuple(model.board.xlim), model.board.xlabel) == ((0, 3), "epoch")


def test_3_5_linear_regression_concise(capsys):
    nb = Notebook("3.5").run()
    w, b = nb.namespace["w"], nb.namespace["b"]
    assert w.shape == (1, 2) and b.shape == (1,)
    assert torch.allclose(w, torch.tensor([[2.0, -3.4]]), atol=0.5) and abs(b.item() - 4.2) < 0.5
    assert "error in estimating b" in capsys.readouterr().out
    assert type(nb.namespace["trainer"].optim) is torch.optim.SGD  # the chapter's own configure_optimizers


def test_3_7_weight_decay(capsys):
    Notebook("3.7").run()
    norms = [float(x) for x in re.findall(r"L2 norm of w: (\S+)", capsys.readouterr().out)]
    assert len(norms) == 3 and norms[1] < norms[0] / 5  # weight decay 3 shrinks w, from N(0, 0.01^2) weights
    # the concise model's LazyLinear draws its own weights at the first batch (the cell's normal_ comes too
    # early), |w|^2 / 2 about 0.17 for 200 inputs; weight decay brings it below a tenth of that
    assert norms[2] < 0.017


def test_4_2_image_classification_dataset(small_data, capsys):
    """The chapter's own first two cells build FashionMNIST on torchvision's dataset (and its cell 5
    on DataLoader with 4 workers, which runs here). torchvision cannot be installed beside the CPU
    build of torch this project pins; where it is missing, those two cells are replaced by what they
    save into the library: the import line without torchvision, and `FashionMNIST = d2l.FashionMNIST`."""
    replace = {}
    if importlib.util.find_spec("torchvision") is None:
        with pytest.raises(RuntimeError) as failure:
            Notebook("4.2").run(skip=lambda index, _: index > 0)
        cause = failure.value.__cause__
        assert isinstance(cause, ModuleNotFoundError) and cause.name == "torchvision"
        imports = pytorch_cells(chapter_file("4.2").read_text())[0].splitlines()
        replace = {0: "\n".join(line for line in imports if "torchvision" not in line),
                   1: "FashionMNIST = d2l.FashionMNIST"}  # fmt: skip
    nb = Notebook("4.2").run(replace=replace)
    assert nb.outputs[2] == (200, 100)  # len(data.train), len(data.val)
    assert nb.outputs[3] == (1, 32, 32)  # data.train[0][0].shape
    assert re.fullmatch(r"\d+\.\d\d sec", nb.outputs[7])
    out = capsys.readouterr().out
    assert "torch.Size([64, 1, 32, 32]) torch.float32 torch.Size([64]) torch.int64" in out
    assert "show_images: figure saved to" in out  # data.visualize(batch)


def test_4_3_classification():
    nb = Notebook("4.3").run()
    classifier = nb.namespace["Classifier"]
    scores = torch.tensor([[0.1, 0.9], [0.8, 0.2], [0.3, 0.7]])
    assert classifier.accuracy(None, scores, torch.tensor([1, 1, 1])).item() == pytest.approx(2 / 3)
    assert en.Module.configure_optimizers is nb.namespace["configure_optimizers"]  # the cell replaced the library's


def test_4_4_softmax_regression_scratch(small_data, monkeypatch):
    caps(monkeypatch, epochs=3)
    nb = Notebook("4.4").run()
    first, second = nb.outputs[1]
    assert first.tolist() == [[5.0, 7.0, 9.0]] and second.tolist() == [[6.0], [15.0]]
    assert torch.allclose(nb.outputs[3][1], torch.ones(2))  # softmax rows sum to 1
    assert nb.outputs[6].tolist() == pytest.approx([0.1, 0.5])
    assert float(nb.outputs[7]) == pytest.approx(-(np.log(0.1) + np.log(0.5)) / 2)
    assert nb.outputs[10] == (100,)  # preds.shape: the first validation batch, all 100 test images
    model = nb.namespace["model"]
    assert losses(model.board)[-1] < losses(model.board)[0]


def test_4_5_softmax_regression_concise(small_data, monkeypatch, capsys):
    caps(monkeypatch, epochs=4)
    nb = Notebook("4.5").run()
    model = nb.namespace["model"]
    assert model.trainer.epoch == 3 and model.net[1].weight.shape == (10, 784)
    assert losses(model.board, "val_acc")[-1] > 0.7  # the small dataset's classes are easy to tell apart
    assert "fit: figure saved to" in capsys.readouterr().out


def test_5_2_mlp_implementation(small_data, monkeypatch):
    caps(monkeypatch, epochs=3)
    nb = Notebook("5.2").run()
    model = nb.namespace["model"]
    assert isinstance(model.net[1], torch.nn.Linear) and model.net[1].weight.shape == (256, 784)
    assert losses(model.board)[-1] < losses(model.board)[0]


def test_5_6_dropout(small_data, monkeypatch, capsys):
    caps(monkeypatch, epochs=2)
    nb = Notebook("5.6").run()
    out = capsys.readouterr().out
    assert "dropout_p = 0: tensor([[ 0.,  1.,  2." in out and "dropout_p = 1: tensor([[0., 0., 0." in out
    assert len(nb.namespace["model"].board.data["val_acc"]) == 2


def test_6_4_lazy_init():
    nb = Notebook("6.4").run()
    assert nb.outputs[2] is nb.namespace["net"][0].weight  # materialized in place by the first call
    assert nb.outputs[3] == (256, 20)


def _needs_two_gpus(index: int, source: str) -> bool:
    """6.7's cells that copy to the second GPU (and the two that use that copy)."""
    return torch.cuda.device_count() < 2 and ("cuda(1)" in source or source.strip() == "Y + Z")


def test_6_7_use_gpu(capsys):
    nb = Notebook("6.7").run(skip=_needs_two_gpus)
    if torch.cuda.device_count() == 0:
        assert nb.outputs[4] == (torch.device("cpu"), torch.device("cpu"), [])
        assert en.try_all_gpus() == [] and en.num_gpus() == 0 and en.gpu(1) == torch.device("cuda:1")
    assert nb.outputs[12].shape == (2, 1)
    trainer = en.Trainer(max_epochs=1, num_gpus=1)  # the chapter's own __init__, added to the class
    assert trainer.gpus == [torch.device(f"cuda:{i}") for i in range(min(1, torch.cuda.device_count()))]


def test_7_6_lenet(small_data, monkeypatch, capsys):
    caps(monkeypatch, epochs=2)
    nb = Notebook("7.6").run()
    lines = [line.split() for line in capsys.readouterr().out.splitlines() if "output shape" in line]
    assert [line[0] for line in lines] == ["Conv2d", "Sigmoid", "AvgPool2d", "Conv2d", "Sigmoid", "AvgPool2d",
                                           "Flatten", "Linear", "Sigmoid", "Linear", "Sigmoid", "Linear"]  # fmt: skip
    assert lines[-1][-1] == "10])" and lines[6][-1] == "400])"
    model = nb.namespace["model"]
    assert len(losses(model.board, "val_acc")) == 2


@pytest.mark.slow
@pytest.mark.parametrize("small_arrays", TINY, ids=["tiny"])
def test_12_11_lr_scheduler(small_data, capsys):
    nb = Notebook("12.11").run()
    out = capsys.readouterr().out
    assert out.count("train loss ") == 5 and "learning rate is now 0.10" in out
    scheduler = nb.namespace["scheduler"]
    assert scheduler(0) == pytest.approx(0.0) and scheduler(5) == pytest.approx(0.3)  # warmup, then cosine
    assert out.count("plot: figure saved to") == 5


@pytest.mark.slow
@pytest.mark.parametrize("small_arrays", TINY, ids=["tiny"])
def test_19_1_hyperopt_intro(small_data, monkeypatch, capsys):
    caps(monkeypatch, epochs=2)
    nb = Notebook("19.1").run()
    errors, values = nb.namespace["errors"], nb.namespace["values"]
    assert len(errors) == len(values) == 5 and all(0 <= e <= 1 for e in errors)
    assert f"optimal learning rate = {values[int(np.argmin(errors))]}" in capsys.readouterr().out


@pytest.mark.parametrize("small_arrays", TINY, ids=["tiny"])
def test_19_2_hyperopt_api(small_data, monkeypatch, capsys):
    caps(monkeypatch, epochs=2)
    nb = Notebook("19.2").run()
    tuner = nb.namespace["tuner"]
    assert len(tuner.records) == 5 and tuner.records[0]["config"] == {"learning_rate": 0.1, "batch_size": 128}
    trajectory = tuner.incumbent_trajectory
    assert trajectory == [min(r["error"] for r in tuner.records[: i + 1]) for i in range(5)]
    assert len(nb.namespace["board"].data["random search"]) == 5
    assert capsys.readouterr().out.count("Trial ") == 5


@pytest.mark.slow
@pytest.mark.parametrize("small_arrays", TINY, ids=["tiny"])
def test_19_4_sh_intro(small_data, monkeypatch, capsys):
    caps(monkeypatch, epochs=2)
    nb = Notebook("19.4").run()
    scheduler = nb.namespace["scheduler"]
    assert scheduler.rung_levels == [2, 4, 8, 10]
    rungs = {rung: len(results) for rung, results in scheduler.all_observed_error_at_rungs.items()}
    assert rungs[2] >= 16 and rungs[4] >= 8 and sum(rungs.values()) == 30  # 30 trials: 16 + 8 + 4 + 2 per round


@pytest.mark.slow
@pytest.mark.parametrize("number", ["8.1", "8.2", "8.3", "8.4", "8.5", "8.6", "8.7", "8.8", "11.8"])
def test_big_networks_one_batch_each(number, small_data, monkeypatch):
    """Chapters 8.1-8.8 and 11.8 at their own resolution, each fit capped at one epoch of one batch."""
    caps(monkeypatch, epochs=1, batches=1)
    nb = Notebook(number).run()
    model = nb.namespace["model"]
    assert model.trainer.train_batch_idx == 1 and model.trainer.val_batch_idx == 1
    assert np.isfinite(losses(model.board)).all()


@pytest.mark.slow
@pytest.mark.realdata
def test_4_5_softmax_regression_concise_full_run(real_dir, capsys):
    """The chapter as the book runs it: 10 epochs on the real dataset."""
    nb = Notebook("4.5").run()
    accuracy = losses(nb.namespace["model"].board, "val_acc")
    assert len(accuracy) == 10 and 0.78 < accuracy[-1] < 0.86


@pytest.mark.slow
@pytest.mark.realdata
@pytest.mark.parametrize("number", ["19.3", "19.5"])
def test_syne_tune_chapters(number, real_dir, tmp_path, monkeypatch, capsys):
    """Syne Tune runs the book's objective in trial processes on the real dataset; each fit is capped at
    two batches per epoch (the caps reach the trials through the environment) and the chapter's
    12-minute budget is cut to 40 s."""
    monkeypatch.setenv("SYNETUNE_FOLDER", str(tmp_path / "syne-tune"))
    caps(monkeypatch, batches=2)
    nb = Notebook(number).run(overrides={"max_wallclock_time": 40})
    results = nb.namespace["results"]
    assert results["trial_id"].nunique() >= 2 and results["validation_error"].between(0, 1).all()
    assert results["epoch"].between(1, 10).all()
    if number == "19.3":  # random search trains every trial its 10 epochs (ASHA stops some early)
        assert results["epoch"].max() == 10
