"""Training with the seed notebook's recipe, as a plain loop that writes a run directory."""

from __future__ import annotations

import math
import platform
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy
import safetensors
import torch
from torch import nn
from tqdm import tqdm

from . import __version__, checkpoint, data, metrics, model

EVAL_BATCH_SIZE = 1000  # large batches only speed up scoring; results do not depend on it
CHECKPOINT = "checkpoint.safetensors"


@dataclass
class Config:
    """Every setting that affects the result of a run."""

    model: str = "softmax"
    epochs: int = 10
    batch_size: int = 256
    lr: float = 0.1
    seed: int = 0
    device: str = "auto"
    threads: int = 1


class TrainingError(Exception):
    """Training cannot go on (for example the loss diverged); the message says what to do."""


class Interrupted(Exception):
    """Training was stopped by Ctrl-C; the run directory holds the last finished epoch."""

    def __init__(self, out: Path, epochs_done: int) -> None:
        super().__init__(f"interrupted; {out} keeps {epochs_done} finished epoch(s)")
        self.out, self.epochs_done = out, epochs_done


RESUMABLE = ("epochs",)  # the only setting --resume may change


class SGD:
    """Plain mini-batch SGD, w <- w - lr * grad, with torch.optim's step()/zero_grad() interface.

    The arithmetic is torch.optim.SGD's without momentum (the tests check bit equality);
    it exists because torch.optim imports torch._dynamo on first use, which costs about
    2 s of start-up, longer than a whole training epoch of this model.
    """

    def __init__(self, params: Iterable[torch.Tensor], lr: float) -> None:
        self.params, self.lr = list(params), lr

    @torch.no_grad()
    def step(self) -> None:
        """Move every parameter against its gradient."""
        for p in self.params:
            p.add_(p.grad, alpha=-self.lr)

    def zero_grad(self) -> None:
        """Drop the gradients, as torch.optim's zero_grad(set_to_none=True)."""
        for p in self.params:
            p.grad = None

    def state_dict(self) -> dict:
        """torch.optim's format; plain SGD keeps no state between steps."""
        return {"state": {}, "param_groups": [{"lr": self.lr}]}

    def load_state_dict(self, state: dict) -> None:
        """Accept a state_dict() of the same kind (there is nothing to restore)."""
        if state["state"]:
            raise ValueError("plain SGD keeps no state, but the checkpoint has optimizer state")


def resolve_device(name: str) -> torch.device:
    """'auto' is CUDA when available, else the CPU; 'cuda' without a GPU is an error."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise TrainingError("--device cuda was asked for but PyTorch sees no CUDA GPU; use --device cpu.")
    return torch.device(name)


def train_epoch(
    net: nn.Module,
    batches: data.Batches,
    loss_fn: nn.Module,
    optimizer: SGD | torch.optim.Optimizer,
    progress: bool | None = None,
) -> tuple[float, float]:
    """One pass of mini-batch training; returns (mean loss per example, accuracy in [0, 1]).

    Loss and correct predictions are summed as tensors and read once at the end, so the
    loop never waits on a per-batch or per-example .item().
    """
    net.train()
    loss_sum = torch.zeros((), device=batches.labels.device)
    correct = torch.zeros((), dtype=torch.int64, device=batches.labels.device)
    for X, y in tqdm(batches, leave=False, unit="batch", disable=None if progress is None else not progress):
        logits = net(X)
        loss = loss_fn(logits, y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        loss_sum += loss.detach() * len(y)
        correct += (logits.argmax(dim=1) == y).sum()
    n = len(batches.labels)
    return loss_sum.item() / n, correct.item() / n


def describe(config: Config, device: torch.device, dataset: data.FashionMNIST) -> dict:
    """config.json's content: the settings, the device, library versions and the data's checksums."""
    return {
        **asdict(config),
        "device": str(device),
        "versions": {
            "fmnist": __version__,
            "python": platform.python_version(),
            "torch": torch.__version__,
            "numpy": numpy.__version__,
            "safetensors": safetensors.__version__,
        },
        "data": {
            "folder": str(dataset.folder),
            "sha256": {f.name: f.sha256 for f in data.FILES.values()},
        },
    }


def train(
    config: Config,
    out: Path,
    data_dir: str | Path | None = None,
    log: Callable[[str], None] = print,
    progress: bool | None = None,
    resume: bool = False,
) -> dict:
    """Train config's model on Fashion-MNIST, writing the run directory out; returns the summary.

    After every epoch the checkpoint, the weights and metrics.csv are rewritten atomically,
    so an interrupted run keeps its last finished epoch. With resume, training continues
    from out's checkpoint and ends with the same weights as an uninterrupted run.
    """
    device = resolve_device(config.device)
    if device.type == "cpu":
        torch.set_num_threads(config.threads)
    saved = None
    if resume:
        saved = checkpoint.read_checkpoint(out / CHECKPOINT)
        check_resumable(config, device, out, len(saved.rows))
    dataset = data.load(data_dir).to(device)

    torch.manual_seed(config.seed)
    net = model.build(config.model).to(device)
    shuffle = torch.Generator().manual_seed(config.seed)
    train_batches = data.Batches(dataset.train_images, dataset.train_labels, config.batch_size, True, shuffle)
    test_batches = data.Batches(dataset.test_images, dataset.test_labels, EVAL_BATCH_SIZE)
    loss_fn = nn.CrossEntropyLoss()
    optimizer = SGD(net.parameters(), lr=config.lr)

    rows: list[dict] = []
    if saved is not None:
        checkpoint.restore_checkpoint(saved, net, optimizer, shuffle)
        rows = saved.rows
        log(f"resuming {out} after epoch {len(rows)}")
    out.mkdir(parents=True, exist_ok=True)
    for leftover in out.glob(".*.tmp"):  # from a write cut short by a kill
        leftover.unlink()
    checkpoint.write_json(out / "config.json", describe(config, device, dataset))
    try:
        for epoch in range(len(rows) + 1, config.epochs + 1):
            epoch_start = time.perf_counter()
            train_loss, train_acc = train_epoch(net, train_batches, loss_fn, optimizer, progress)
            if not math.isfinite(train_loss):
                raise TrainingError(
                    f"the training loss became {train_loss} in epoch {epoch}; try a smaller learning rate "
                    f"than --lr {config.lr}."
                )
            test_acc = metrics.accuracy(metrics.evaluate(net, test_batches))
            seconds = time.perf_counter() - epoch_start
            rows.append(dict(epoch=epoch, train_loss=train_loss, train_acc=train_acc, test_acc=test_acc,
                             seconds=round(seconds, 4)))  # fmt: skip
            checkpoint.save_checkpoint(out / CHECKPOINT, net, optimizer, shuffle, rows)
            checkpoint.save_model(out / "model.safetensors", net, config.model)
            checkpoint.write_metrics(out / "metrics.csv", rows)
            log(
                f"epoch {epoch:3d}/{config.epochs}  train loss {train_loss:.4f}  train acc {train_acc:.4f}  "
                f"test acc {test_acc:.4f}  {seconds:6.2f} s  {len(train_batches.labels) / seconds:9,.0f} img/s"
            )
    except KeyboardInterrupt:
        raise Interrupted(out, len(rows)) from None
    summary = {
        "test_acc": rows[-1]["test_acc"],
        "train_acc": rows[-1]["train_acc"],
        "train_loss": rows[-1]["train_loss"],
        "epochs": len(rows),
        "seconds": round(sum(row["seconds"] for row in rows), 4),
    }
    checkpoint.write_json(out / "summary.json", summary)
    return summary


def check_resumable(config: Config, device: torch.device, out: Path, done: int) -> None:
    """Refuse to resume out (done epochs finished) with settings, other than RESUMABLE ones,
    that differ from its own, or with no epochs left to train."""
    saved = checkpoint.read_json(out / "config.json")
    wanted = {**asdict(config), "device": str(device)}
    changed = [f"--{k.replace('_', '-')} {saved.get(k)} -> {v}" for k, v in wanted.items()
               if k not in RESUMABLE and saved.get(k) != v]  # fmt: skip
    if changed:
        raise TrainingError(f"cannot resume {out} with other settings ({', '.join(changed)}); use the run's own.")
    if done >= config.epochs:
        raise TrainingError(f"{out} has already trained {done} epochs; pass --epochs with more than {done}.")
