"""Training on small data: the optimizer against torch.optim, the run directory, repeatability."""

from __future__ import annotations

import csv
import json

import pytest
import torch
from safetensors.numpy import load_file

from fmnist import data, model
from fmnist.cli import main
from fmnist.optim import SGD
from fmnist.settings import Config
from fmnist.train import TrainingError, resolve_device, train, train_epoch


def test_sgd_is_bit_identical_to_torch_optim_sgd(small_data):
    dataset = data.load(small_data)
    nets = []
    for make_optimizer in (lambda p: SGD(p, lr=0.3), lambda p: torch.optim.SGD(p, lr=0.3)):
        torch.manual_seed(5)
        net = model.build("softmax")
        batches = data.Batches(dataset.train_images, dataset.train_labels, 32, True, torch.Generator().manual_seed(1))
        for _ in range(2):
            train_epoch(net, batches, torch.nn.CrossEntropyLoss(), make_optimizer(net.parameters()), progress=False)
        nets.append(model.export_tensors(net))
    assert all(torch.equal(nets[0][k], nets[1][k]) for k in ("weight", "bias"))
    assert not torch.equal(nets[0]["bias"], torch.zeros(10))  # it did train


def test_model_is_the_seeds_and_initialised_as_documented():
    torch.manual_seed(0)
    net = model.build("softmax")
    assert [type(m) for m in net] == [torch.nn.Flatten, torch.nn.Linear]
    w, b = net[1].weight, net[1].bias
    assert w.shape == (10, 784) and b.shape == (10,)
    assert torch.equal(b, torch.zeros(10))
    assert abs(w.std().item() - 0.01) < 0.0005 and abs(w.mean().item()) < 0.0005


def test_train_writes_a_complete_run_directory(small_data, tmp_path):
    out = tmp_path / "run"
    summary = train(Config(epochs=3, batch_size=50, lr=0.5), out, log=lambda line: None, progress=False)
    assert sorted(p.name for p in out.iterdir()) == [
        "checkpoint.safetensors", "config.json", "confusion.png", "curves.png", "metrics.csv", "mistakes.png",
        "model.safetensors", "report.html", "summary.json", "weights.png"]  # fmt: skip
    with open(out / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["epoch", "train_loss", "train_acc", "test_acc", "seconds"]
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]
    assert float(rows[2]["train_loss"]) < float(rows[0]["train_loss"])
    assert summary == json.loads((out / "summary.json").read_text())
    assert summary["test_acc"] == float(rows[-1]["test_acc"]) > 0.9  # the toy classes are linearly separable
    config = json.loads((out / "config.json").read_text())
    assert config["lr"] == 0.5 and config["device"] == "cpu" and config["versions"]["torch"] == torch.__version__
    assert config["data"]["sha256"][data.FILES["train_images"].name] == data.FILES["train_images"].sha256
    tensors = load_file(str(out / "model.safetensors"))  # read by safetensors' numpy side, not torch
    assert tensors["weight"].shape == (10, 784) and tensors["bias"].shape == (10,)


def test_same_seed_same_bits_other_seed_other_bits(small_data, tmp_path):
    def run(name, seed):
        train(Config(epochs=2, batch_size=32, seed=seed), tmp_path / name, log=lambda line: None, progress=False,
              force=True)  # fmt: skip
        with open(tmp_path / name / "metrics.csv") as f:
            metrics = [{k: v for k, v in r.items() if k != "seconds"} for r in csv.DictReader(f)]
        return metrics, (tmp_path / name / "model.safetensors").read_bytes()

    assert run("a", 7) == run("b", 7)
    assert run("c", 8)[1] != run("a", 7)[1]


def test_eval_agrees_with_the_summary(small_data, tmp_path, capsys):
    train(Config(epochs=2, batch_size=50, lr=0.5), tmp_path / "run", log=lambda line: None, progress=False)
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert main(["eval", str(tmp_path / "run"), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["test_acc"] == summary["test_acc"]
    assert [r["label"] for r in result["per_class"]] == list(data.LABELS)
    assert sum(r["support"] for r in result["per_class"]) == 100
    assert main(["eval", str(tmp_path / "run")]) == 0
    text = capsys.readouterr().out
    assert f"test accuracy {summary['test_acc']:.4f}" in text and "ankle boot" in text


def test_a_diverging_loss_stops_with_advice(small_data, tmp_path):
    # Weight decay 1 at lr 100 multiplies the weights by -99 at every step: they overflow within an epoch.
    with pytest.raises(TrainingError, match="the training loss became nan in epoch 1; try a smaller learning rate"):
        train(Config(epochs=3, lr=100, weight_decay=1, batch_size=5), tmp_path / "run", log=lambda line: None,
              progress=False)  # fmt: skip


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without a GPU")
def test_cuda_without_a_gpu_is_refused():
    assert resolve_device("auto").type == "cpu"
    with pytest.raises(TrainingError, match="--device cpu"):
        resolve_device("cuda")
