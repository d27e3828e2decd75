"""Training: the loop, and the run it writes into a run directory (fmnist.rundir).

The defaults are the seed notebook's recipe; other recipes (fmnist.recipes) change the
optimizer, the learning-rate schedule, input standardisation and augmentation.
"""

from __future__ import annotations

import math
import signal
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch
from torch import nn
from tqdm import tqdm

from . import data, evaluate, metrics, model, results, rundir, scratch
from .errors import UserError
from .optim import SGD
from .settings import SETTINGS, Config, SettingError, available_cores, option, threads_for

NORMALIZE_MIN_STD = 0.05  # border pixels are almost always 0: do not blow up their noise
# What each optimizer keeps per parameter between steps, as its state_dict names it.
OPTIMIZER_STATE = {"sgd": (), "momentum": ("momentum_buffer",), "adam": ("step", "exp_avg", "exp_avg_sq")}


class TrainingError(UserError):
    """Training cannot go on (for example the loss diverged); the message says what to do."""


class Interrupted(Exception):
    """Training was stopped by Ctrl-C, SIGTERM or SIGHUP; the run directory holds the last finished epoch.

    epochs_done: epochs kept; all_done: every epoch had finished (only the results were not all written);
    old_run_kept: a run that --force was to replace is still whole (no epoch of the new one had finished);
    signum: the signal; hint: the command that goes on.
    """

    def __init__(self, out: Path, epochs_done: int, all_done: bool, old_run_kept: bool, signum: int, hint: str) -> None:
        super().__init__(f"interrupted; {out} keeps {epochs_done} finished epoch(s)")
        self.epochs_done, self.all_done, self.old_run_kept = epochs_done, all_done, old_run_kept
        self.signum, self.hint = signum, hint


# ---------------------------------------------------------------- the pieces of a recipe


MOMENTUM = 0.9  # --optimizer momentum's, with Nesterov's correction


def optimizer_kind(config: Config) -> str:
    """Which optimizer config trains with: "plain" (fmnist.optim.SGD, for SGD without weight decay), "sgd"
    (torch.optim.SGD: with momentum or weight decay) or "adamw" (torch.optim.AdamW)."""
    if config.optimizer == "sgd" and config.weight_decay == 0:
        return "plain"
    return "sgd" if config.optimizer in ("sgd", "momentum") else "adamw"  # adam: Config checked the name


def make_optimizer(config: Config, params: Iterable[torch.Tensor]) -> SGD | torch.optim.Optimizer:
    """The optimizer config names (optimizer_kind)."""
    params, kind = list(params), optimizer_kind(config)
    if kind == "plain":
        return SGD(params, lr=config.lr)
    if kind == "sgd":
        momentum = MOMENTUM if config.optimizer == "momentum" else 0.0
        return torch.optim.SGD(params, lr=config.lr, momentum=momentum, nesterov=momentum > 0,
                               weight_decay=config.weight_decay)  # fmt: skip
    return torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)


def learning_rate(config: Config, epoch: int) -> float:
    """The learning rate of epoch (1-based) under config's schedule."""
    if config.schedule == "cosine":
        return config.lr * (1 + math.cos(math.pi * (epoch - 1) / config.epochs)) / 2
    return config.lr


def check_split(dataset: data.FashionMNIST, val_size: int) -> None:
    """SettingError when holding out val_size of dataset's training images leaves none: --val-size's bounds,
    with this training set's size."""
    n = len(dataset.train_labels)
    if problem := replace(SETTINGS["val_size"], bounds=replace(SETTINGS["val_size"].bounds, high=n - 1)).check(
            "val_size", val_size):  # fmt: skip
        raise SettingError(f"{problem}; this training set has {n} images.")


def split(dataset: data.FashionMNIST, val_size: int, seed: int) -> tuple[torch.Tensor, ...]:
    """(train images, train labels, val images, val labels): val_size training images chosen
    by seed are held out; the rest stay in their original order. SettingError as check_split says."""
    check_split(dataset, val_size)
    n = len(dataset.train_labels)
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    held, kept = order[:val_size].sort().values, order[val_size:].sort().values
    X, y = dataset.train_images, dataset.train_labels
    if val_size == 0:
        return X, y, X[:0], y[:0]
    return X[kept.to(X.device)], y[kept.to(y.device)], X[held.to(X.device)], y[held.to(y.device)]


def normalization(config: Config, train_X: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
    """(mean, std) that config's input standardisation takes from the training images train_X
    [N, 1, 28, 28]: shapes (784,) per pixel or (1,) global; None without standardisation."""
    if config.normalize == "pixel" and len(train_X) < 2:  # the spread of one image is not defined
        raise TrainingError(f"--normalize pixel takes each pixel's spread over the training images, and --val-size "
                            f"{config.val_size} leaves {len(train_X)}; hold out fewer images, or use --normalize "
                            "global.")  # fmt: skip
    if config.normalize == "pixel":
        return train_X.mean(dim=0).reshape(-1), train_X.std(dim=0).clamp_min(NORMALIZE_MIN_STD).reshape(-1)
    if config.normalize == "global":
        return train_X.mean().reshape(1), train_X.std().reshape(1)
    return None


def resolve_device(name: str) -> torch.device:
    """'auto' is CUDA when available, else the CPU; 'cuda' without a GPU is an error."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise TrainingError("--device cuda was asked for but PyTorch sees no CUDA GPU; use --device cpu.")
    return torch.device(name)


def divergence(config: Config, loss: float, epoch: int) -> str:
    """What training says when the loss of epoch became loss (NaN or infinite)."""
    return f"the training loss became {loss} in epoch {epoch}; try a smaller learning rate than --lr {config.lr}."


# ---------------------------------------------------------------- the loop


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


@dataclass
class Inputs:
    """What a model of a config trains and is scored on: its shuffled training batches and their generator
    (a checkpoint keeps its state), the input standardisation's (mean, std) or None (normalization), and the
    sets scored after each epoch, (images, labels) by their name in metrics.csv (val_acc, test_acc)."""

    batches: data.Batches
    shuffle: torch.Generator
    stats: tuple[torch.Tensor, torch.Tensor] | None
    scored: dict[str, tuple[torch.Tensor, torch.Tensor]]


def inputs(config: Config, dataset: data.FashionMNIST, test: bool) -> Inputs:
    """config's Inputs from dataset (on the device to train on): its validation split (split), its test set
    scored too when test."""
    train_X, train_y, val_X, val_y = split(dataset, config.val_size, config.seed)
    shuffle = torch.Generator().manual_seed(config.seed)
    shift = 2 if config.augment == "shift" else 0
    batches = data.Batches(train_X, train_y, config.batch_size, True, shuffle, shift=shift)
    scored = {}
    if config.val_size:
        scored["val_acc"] = (val_X, val_y)
    if test:
        scored["test_acc"] = (dataset.test_images, dataset.test_labels)
    return Inputs(batches, shuffle, normalization(config, train_X), scored)


class Session:
    """One model trained as config says, epoch by epoch, on dataset (already on device): the model, its
    batches, loss and optimizer, made in fmnist train's order from config.seed (the global torch generator
    is seeded here). What `fmnist train` and fmnist.trials' lone trials share; no run folder.

    test: also score the test set after each epoch (test_acc); a search chooses on the validation split.
    """

    def __init__(self, config: Config, dataset: data.FashionMNIST, device: torch.device, test: bool = True) -> None:
        self.config = config
        torch.manual_seed(config.seed)
        net = scratch.ScratchSoftmaxRegression() if config.impl == "scratch" else model.build(
            config.model, config.normalize, config.dropout)  # fmt: skip
        self.net = net.to(device)
        given = inputs(config, dataset, test)
        if given.stats is not None:
            model.set_normalization(net, *given.stats)
        self.shuffle, self.batches = given.shuffle, given.batches
        # name in metrics.csv -> batches scored after each epoch
        self.scored = {name: data.Batches(X, y, metrics.EVAL_BATCH_SIZE) for name, (X, y) in given.scored.items()}
        self.loss_fn = nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)
        self.optimizer = make_optimizer(config, net.parameters())

    def epoch(self, epoch: int, progress: bool | None = None) -> dict:
        """Train epoch (1-based) and score it: its metrics row (epoch, train_loss, train_acc, then the scored
        accuracies, seconds of wall time). TrainingError when the loss or the weights stop being finite."""
        config, net = self.config, self.net
        start = time.perf_counter()
        lr = learning_rate(config, epoch)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        if config.impl == "scratch":
            loss, accuracy = scratch.train_epoch(net, self.batches, lr, progress)
        else:
            loss, accuracy = train_epoch(net, self.batches, self.loss_fn, self.optimizer, progress)
        if not (math.isfinite(loss) and all(p.isfinite().all() for p in net.parameters())):
            raise TrainingError(divergence(config, loss, epoch))
        row = {"epoch": epoch, "train_loss": loss, "train_acc": accuracy}
        row.update({name: metrics.accuracy(metrics.evaluate(net, batches)) for name, batches in self.scored.items()})
        row["seconds"] = round(time.perf_counter() - start, 4)
        return row


# ---------------------------------------------------------------- a run


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

    out must be new or empty (or hold a run that never kept an epoch), unless resume (continue out's
    run from its checkpoint, ending with the same weights as an uninterrupted run) or force (replace
    fmnist's files in it once the new run's first epoch is written). The folder is locked for the whole
    call: a second command on it fails at once. After every epoch the run's files are rewritten
    atomically (rundir.RunDir.keep), so an interrupted run keeps its last finished epoch.
    """
    device = resolve_device(config.device)
    run = rundir.RunDir(out)
    if resume and not out.is_dir():
        raise TrainingError(f"{out} does not exist, so there is nothing to resume; train without --resume.")
    if not resume:
        run.create()
    with run.locked():
        run.check_outputs(rundir.RUN_FILES)  # a FIFO, device or link under a run file's name: refused before any work
        saved, replacing = None, False
        if resume:
            own, _, saved = run.read(resuming=True)
            check_resumable(config, own, device, run, saved, log)
        else:
            replacing = run.claim(force)
        rows: list[dict] = [] if saved is None else saved.rows  # grows by one per finished epoch
        try:
            dataset = data.load(data_dir).to(device)
            run.remove_leftovers()
            return _train(config, device, run, dataset, log, progress, saved, rows)
        except KeyboardInterrupt as stop:
            all_done = len(rows) >= config.epochs
            raise Interrupted(out, len(rows), all_done, replacing and not rows, getattr(stop, "signum", signal.SIGINT),
                              run.how_to_continue(data_dir, all_done)) from None  # fmt: skip
        except OSError as e:  # a full disk, a folder made read-only: what is kept, and how to go on
            if not rows:
                raise
            where = f"{e.filename}: " if e.filename else ""
            raise TrainingError(f"{where}{e.strerror or e}; {out} keeps its {len(rows)} finished epoch(s), so free "
                                f"some space or fix the folder, then go on with: "
                                f"{run.how_to_continue(data_dir, len(rows) >= config.epochs)}") from None  # fmt: skip


def _train(
    config: Config,
    device: torch.device,
    run: rundir.RunDir,
    dataset: data.FashionMNIST,
    log: Callable[[str], None],
    progress: bool | None,
    saved: rundir.Checkpoint | None,
    rows: list[dict],
) -> dict:
    """train()'s work inside the locked, claimed run directory, with the dataset on device; appends each
    finished epoch's metrics to rows, then writes the run's results."""
    if device.type == "cpu":
        torch.set_num_threads(threads_for(config))
    session = Session(config, dataset, device)
    net, optimizer, shuffle = session.net, session.optimizer, session.shuffle
    if saved is not None:
        rundir.restore_checkpoint(saved, net, optimizer, shuffle, len(rows) * len(session.batches),
                                  OPTIMIZER_STATE[config.optimizer])  # fmt: skip
        log(f"resuming {run} after epoch {len(rows)}")
    description = rundir.describe(config, device, threads_for(config), dataset)
    first = len(rows) + 1
    for epoch in range(first, config.epochs + 1):
        row = session.epoch(epoch, progress)
        run.keep(net, config.model, optimizer, shuffle, [*rows, row], description if epoch == first else None)
        rows.append(row)
        scores = "  ".join(f"{name.replace('_acc', '')} acc {row[name]:.4f}" for name in session.scored)
        log(
            f"epoch {epoch:3d}/{config.epochs}  train loss {row['train_loss']:.4f}  train acc {row['train_acc']:.4f}"
            f"  {scores}  {row['seconds']:6.2f} s  {len(session.batches.labels) / row['seconds']:9,.0f} img/s"
        )
    if first > config.epochs:  # a finished run, some of whose files are missing: written again from its checkpoint
        run.keep(net, config.model, optimizer, shuffle, rows, description)
    results.write_results(run, net, config.model, description, dataset, evaluate.evaluate(net, dataset), rows)
    return rundir.summarize(rows)


def check_resumable(config: Config, own: Config, device: torch.device, run: rundir.RunDir,
                    saved: rundir.Checkpoint, log: Callable[[str], None]) -> None:  # fmt: skip
    """Refuse to resume run (own: its settings) from its checkpoint saved unless config differs from own in
    RESUMABLE settings only and something is left to do: epochs to train, or files of the finished run to
    write again. Note a number of threads above this machine's cores."""
    saved_settings = asdict(own)
    wanted = {**asdict(config), "device": str(device), "threads": threads_for(config)}
    ignored = {*rundir.RESUMABLE, *(() if device.type == "cpu" else ("threads",))}  # threads only matter on the CPU
    changed = [f"{option(k)} {saved_settings[k]} -> {v}" for k, v in wanted.items()
               if k not in ignored and saved_settings[k] != v]  # fmt: skip
    if changed:
        raise TrainingError(f"cannot resume {run} with other settings ({', '.join(changed)}); use the run's own.")
    if config.schedule != "constant" and config.epochs != own.epochs:
        raise TrainingError(f"the {config.schedule} learning-rate schedule of {run} is laid out over its "
                            f"{own.epochs} epochs; resume without --epochs, or start over with --force.")
    done = len(saved.rows)
    if done >= config.epochs and all(run.file(name).is_file() for name in rundir.RUN_FILES):
        raise TrainingError(f"{run} has already trained {done} epochs; pass --epochs with more than {done}.")
    threads, cores = threads_for(config), available_cores()
    if device.type == "cpu" and threads > cores:
        log(f"note: {run} was trained with {threads} CPU threads and this process may use {cores} cores; "
            "its epochs run slower with more threads than cores, and are kept so that the results stay bit for "
            "bit those of an uninterrupted run.")  # fmt: skip
