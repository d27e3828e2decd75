"""Training, as a plain loop that writes a run directory.

The defaults are the seed notebook's recipe; other recipes (fmnist.recipes) change the
optimizer, the learning-rate schedule, input standardisation and augmentation.
"""

from __future__ import annotations

import math
import platform
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict
from pathlib import Path

import numpy
import safetensors
import torch
from torch import nn
from tqdm import tqdm

from . import __version__, checkpoint, data, evaluate, fileio, metrics, model, scratch
from .errors import UserError
from .optim import SGD
from .painters import Painters
from .settings import Config, threads_for

CHECKPOINT = "checkpoint.safetensors"
RUN_FILES = ("config.json", CHECKPOINT, "model.safetensors", "metrics.csv", "summary.json", "report.html",
             *(f"{name}.png" for name in evaluate.PICTURES))  # fmt: skip
NORMALIZE_MIN_STD = 0.05  # border pixels are almost always 0: do not blow up their noise


class TrainingError(UserError):
    """Training cannot go on (for example the loss diverged); the message says what to do."""


class Interrupted(Exception):
    """Training was stopped by Ctrl-C; the run directory holds the last finished epoch.

    epochs_done: epochs kept; all_done: every epoch had finished (only the results were not all written).
    """

    def __init__(self, out: Path, epochs_done: int, all_done: bool) -> None:
        super().__init__(f"interrupted; {out} keeps {epochs_done} finished epoch(s)")
        self.out, self.epochs_done, self.all_done = out, epochs_done, all_done


RESUMABLE = ("epochs",)  # the only setting --resume may change


def make_optimizer(config: Config, params: Iterable[torch.Tensor]) -> SGD | torch.optim.Optimizer:
    """The optimizer config names; plain SGD without weight decay is train.SGD."""
    params = list(params)
    if config.optimizer == "sgd" and config.weight_decay == 0:
        return SGD(params, lr=config.lr)
    if config.optimizer in ("sgd", "momentum"):
        momentum = 0.9 if config.optimizer == "momentum" else 0.0
        return torch.optim.SGD(params, lr=config.lr, momentum=momentum, nesterov=momentum > 0,
                               weight_decay=config.weight_decay)  # fmt: skip
    return torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)  # adam: Config checked the name


def learning_rate(config: Config, epoch: int) -> float:
    """The learning rate of epoch (1-based) under config's schedule."""
    if config.schedule == "cosine":
        return config.lr * (1 + math.cos(math.pi * (epoch - 1) / config.epochs)) / 2
    return config.lr


def split(dataset: data.FashionMNIST, val_size: int, seed: int) -> tuple[torch.Tensor, ...]:
    """(train images, train labels, val images, val labels): val_size training images chosen
    by seed are held out; the rest stay in their original order."""
    if not 0 <= val_size < len(dataset.train_labels):
        raise TrainingError(f"--val-size must be between 0 and {len(dataset.train_labels) - 1}, got {val_size}.")
    order = torch.randperm(len(dataset.train_labels), generator=torch.Generator().manual_seed(seed))
    held, kept = order[:val_size].sort().values, order[val_size:].sort().values
    X, y = dataset.train_images, dataset.train_labels
    if val_size == 0:
        return X, y, X[:0], y[:0]
    return X[kept.to(X.device)], y[kept.to(y.device)], X[held.to(X.device)], y[held.to(y.device)]


SCRATCH_SUPPORTS = {"model": "softmax", "optimizer": "sgd", "weight_decay": 0.0, "label_smoothing": 0.0,
                    "normalize": "none"}  # fmt: skip


def check_impl(config: Config) -> None:
    """--impl scratch covers softmax regression with plain SGD on raw pixels; refuse the rest."""
    if config.impl == "scratch":
        other = [f"--{k.replace('_', '-')} {getattr(config, k)}" for k, v in SCRATCH_SUPPORTS.items()
                 if getattr(config, k) != v]  # fmt: skip
        if other:
            raise TrainingError(f"--impl scratch trains softmax regression with plain SGD on raw pixels only, "
                                f"not {', '.join(other)}; use --impl concise.")  # fmt: skip


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
    """config.json's content: the settings (device and threads as used), library versions and the data's
    checksums."""
    return {
        **asdict(config),
        "device": str(device),
        "threads": threads_for(config),
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
    force: bool = False,
) -> dict:
    """Train config's model on Fashion-MNIST, writing the run directory out; returns the summary.

    out must be new or empty (or hold only the settings of a run that never finished an
    epoch), unless resume (continue out's run from its checkpoint, ending with the same
    weights as an uninterrupted run) or force (replace fmnist's files in it). The folder is
    locked for the whole call: a second command on it fails at once. After every epoch the
    checkpoint, the weights and metrics.csv are rewritten atomically, so an interrupted run
    keeps its last finished epoch.
    """
    check_impl(config)
    try:
        model.check_options(config.model, config.normalize, config.dropout)
    except ValueError as e:
        raise TrainingError(f"{e}; change --model, --normalize or --dropout.") from None
    device = resolve_device(config.device)
    if resume and not out.is_dir():
        raise TrainingError(f"{out} does not exist, so there is nothing to resume; train without --resume.")
    if not resume:
        make_folder(out)
    with fileio.exclusive(out):
        for name in RUN_FILES:
            fileio.check_output(out / name)  # a FIFO, device or link under a run file's name: refused before any work
        saved = None
        if resume:
            saved = checkpoint.read_checkpoint(out / CHECKPOINT)
            check_resumable(config, device, out, len(saved.rows))
        else:
            claim(out, force)
        rows: list[dict] = [] if saved is None else saved.rows  # grows by one per finished epoch
        try:
            dataset = data.load(data_dir).to(device)  # before anything in out is removed: the data may be bad
            clear(out, everything=saved is None)
            # they import matplotlib while this process trains (and leave the folder's lock to it: fileio)
            with Painters(dataset.test_images) as painters:
                return _train(config, device, out, dataset, log, progress, saved, rows, painters)
        except KeyboardInterrupt:
            raise Interrupted(out, len(rows), len(rows) >= config.epochs) from None


def _train(
    config: Config,
    device: torch.device,
    out: Path,
    dataset: data.FashionMNIST,
    log: Callable[[str], None],
    progress: bool | None,
    saved: checkpoint.Checkpoint | None,
    rows: list[dict],
    painters: Painters,
) -> dict:
    """train()'s work inside the locked, claimed folder, with the dataset on device; appends each
    finished epoch's metrics to rows; painters draw the pictures at the end."""
    if device.type == "cpu":
        torch.set_num_threads(threads_for(config))
    torch.manual_seed(config.seed)
    net = scratch.SoftmaxRegression() if config.impl == "scratch" else model.build(config.model, config.normalize,
                                                                                  config.dropout)  # fmt: skip
    net.to(device)
    train_X, train_y, val_X, val_y = split(dataset, config.val_size, config.seed)
    if config.normalize == "pixel":
        model.set_normalization(net, train_X.mean(dim=0), train_X.std(dim=0).clamp_min(NORMALIZE_MIN_STD))
    elif config.normalize == "global":
        model.set_normalization(net, train_X.mean(), train_X.std())
    shuffle = torch.Generator().manual_seed(config.seed)
    shift = 2 if config.augment == "shift" else 0
    train_batches = data.Batches(train_X, train_y, config.batch_size, True, shuffle, shift=shift)
    scored = {"test_acc": data.Batches(dataset.test_images, dataset.test_labels, metrics.EVAL_BATCH_SIZE)}
    if config.val_size:
        scored = {"val_acc": data.Batches(val_X, val_y, metrics.EVAL_BATCH_SIZE), **scored}
    loss_fn = nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)
    optimizer = make_optimizer(config, net.parameters())

    if saved is not None:
        checkpoint.restore_checkpoint(saved, net, optimizer, shuffle)
        log(f"resuming {out} after epoch {len(rows)}")
    description = describe(config, device, dataset)
    checkpoint.write_json(out / "config.json", description)  # the settings, before any epoch
    for epoch in range(len(rows) + 1, config.epochs + 1):
        epoch_start = time.perf_counter()
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(config, epoch)
        if config.impl == "scratch":
            train_loss, train_acc = scratch.train_epoch(net, train_batches, learning_rate(config, epoch), progress)
        else:
            train_loss, train_acc = train_epoch(net, train_batches, loss_fn, optimizer, progress)
        if not (math.isfinite(train_loss) and all(p.isfinite().all() for p in net.parameters())):
            raise TrainingError(
                f"the training loss became {train_loss} in epoch {epoch}; try a smaller learning rate "
                f"than --lr {config.lr}."
            )
        row = {"epoch": epoch, "train_loss": train_loss, "train_acc": train_acc}
        row.update({name: metrics.accuracy(metrics.evaluate(net, batches)) for name, batches in scored.items()})
        seconds = time.perf_counter() - epoch_start
        row["seconds"] = round(seconds, 4)
        with fileio.uninterrupted():  # the checkpoint, the weights and metrics.csv always tell of the same epoch
            checkpoint.save_checkpoint(out / CHECKPOINT, net, optimizer, shuffle, [*rows, row])
            rows.append(row)
            checkpoint.save_model(out / "model.safetensors", net, config.model)
            checkpoint.write_metrics(out / "metrics.csv", rows)
        scores = "  ".join(f"{name.replace('_acc', '')} acc {row[name]:.4f}" for name in scored)
        log(
            f"epoch {epoch:3d}/{config.epochs}  train loss {train_loss:.4f}  train acc {train_acc:.4f}  "
            f"{scores}  {seconds:6.2f} s  {len(train_batches.labels) / seconds:9,.0f} img/s"
        )
    evaluate.evaluate_run(out, net, description, dataset, rows, painters=painters)
    return checkpoint.summarize(rows)


def make_folder(out: Path) -> None:
    """Create the run directory out (and its parents); PathError when out exists and is not a folder."""
    if out.exists() and not out.is_dir():
        raise fileio.PathError(f"{out} exists and is not a folder; choose a folder for --out.")
    out.mkdir(parents=True, exist_ok=True)


def claim(out: Path, force: bool) -> None:
    """Refuse the locked folder out for a new run unless it is empty, holds only the settings of a run
    that never finished an epoch, or force is given (clear then replaces fmnist's files in it, and only
    those)."""
    others = sorted(p.name for p in out.iterdir() if not _leftover(p))
    unfinished = others == ["config.json"] and _is_run_config(out / "config.json")
    if others and not unfinished and not force:
        if (out / CHECKPOINT).exists():
            raise TrainingError(f"{out} already holds a run; pass --resume to continue it, --force to start over, "
                                "or choose another --out.")  # fmt: skip
        shown = ", ".join(others[:4]) + (", ..." if len(others) > 4 else "")
        raise TrainingError(f"{out} is not empty (it holds {shown}); choose a new or empty folder for --out, "
                            "or pass --force to replace fmnist's run files in it.")  # fmt: skip


def clear(out: Path, everything: bool) -> None:
    """Remove from out the temporary files of fmnist's writes cut short by a kill, and with everything
    also the run files of an earlier run, so that nothing of it passes for the new run's."""
    for path in out.iterdir():
        if _leftover(path) or everything and path.name in RUN_FILES:
            path.unlink()


def _leftover(path: Path) -> bool:
    """True for the temporary file of an atomic write of a run file (fileio.atomic_writer's naming)."""
    return path.name.endswith(".tmp") and any(path.name.startswith(f".{name}.") for name in RUN_FILES)


def _is_run_config(path: Path) -> bool:
    """True when path is a config.json written by fmnist train."""
    try:
        return "fmnist" in checkpoint.read_json(path).get("versions", {})
    except (checkpoint.CheckpointError, TypeError):
        return False


def check_resumable(config: Config, device: torch.device, out: Path, done: int) -> None:
    """Refuse to resume out (done epochs finished) with settings, other than RESUMABLE ones,
    that differ from its own, or with no epochs left to train."""
    saved = asdict(checkpoint.read_config(out))
    wanted = {**asdict(config), "device": str(device), "threads": threads_for(config)}
    ignored = {*RESUMABLE, *(() if device.type == "cpu" else ("threads",))}  # threads only matter on the CPU
    changed = [f"--{k.replace('_', '-')} {saved[k]} -> {v}" for k, v in wanted.items()
               if k not in ignored and saved[k] != v]  # fmt: skip
    if changed:
        raise TrainingError(f"cannot resume {out} with other settings ({', '.join(changed)}); use the run's own.")
    if config.schedule != "constant" and config.epochs != saved.get("epochs"):
        raise TrainingError(f"the {config.schedule} learning-rate schedule of {out} is laid out over its "
                            f"{saved['epochs']} epochs; resume without --epochs, or start over with --force.")
    if done >= config.epochs:
        raise TrainingError(f"{out} has already trained {done} epochs; pass --epochs with more than {done}.")
