"""The object-oriented framework of the d2l.ai book's English edition (d2l 1.x): HyperParameters,
add_to_class, ProgressBoard, Module, DataModule and Trainer, the classes its chapters build on.

Use them through ``from fmnist.d2l import en as d2l`` (fmnist.d2l.en, which says what fmnist
does differently from the book). They are plain Python classes, as the book's: add_to_class
changes them for the objects built earlier too.

Quick runs: the environment variables ``FMNIST_D2L_MAX_EPOCHS`` and ``FMNIST_D2L_MAX_BATCHES``
(positive whole numbers) cap every ``Trainer.fit`` at that many epochs, and each epoch at that
many training and validation batches, for checking that a chapter runs to its end.
"""

from __future__ import annotations

import collections
import inspect
import itertools
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import torch
from torch import nn

from .. import data, optim
from ..errors import UserError
from . import figures

# ---------------------------------------------------------------- 3.2 utilities


def add_to_class(Class: type) -> Callable[[Callable], Callable]:
    """Decorator that adds the decorated function to Class as a method (or replaces the one of that
    name), for every object of Class, also those built before."""

    def wrapper(obj: Callable) -> Callable:
        setattr(Class, obj.__name__, obj)
        return obj

    return wrapper


class HyperParameters:
    """Base class whose __init__ can keep its arguments as attributes (save_hyperparameters)."""

    def save_hyperparameters(self, ignore: Sequence[str] = ()) -> None:
        """Set every local variable of the calling function (its arguments, when called first thing
        in __init__) as an attribute of self, but self, those in ignore and those starting with '_';
        self.hparams is the dict of them."""
        frame = inspect.currentframe().f_back
        local_vars = dict(frame.f_locals)
        del frame
        skipped = {*ignore, "self"}
        self.hparams = {k: v for k, v in local_vars.items() if k not in skipped and not k.startswith("_")}
        for k, v in self.hparams.items():
            setattr(self, k, v)


Point = collections.namedtuple("Point", ["x", "y"])


def _mean(values: Sequence[Any]) -> float:
    """The mean of numbers, numpy scalars or one-element tensors (read from the device once)."""
    return float(sum(values) / len(values))


class ProgressBoard(HyperParameters):
    """The book's live plot: draw(x, y, label) adds a point to the line of label, averaging every_n points.

    self.data maps each label to its drawn Points (x, y); self.fig is the figure (made at the first
    drawn point, a pyplot figure). In Jupyter the figure is shown again after every drawn point and
    replaces the previous one; elsewhere Trainer.fit saves it (see fmnist.d2l.figures).
    """

    def __init__(
        self,
        xlabel: str | None = None,
        ylabel: str | None = None,
        xlim: Sequence[float] | None = None,
        ylim: Sequence[float] | None = None,
        xscale: str = "linear",
        yscale: str = "linear",
        ls: Sequence[str] = ("-", "--", "-.", ":"),
        colors: Sequence[str] = ("C0", "C1", "C2", "C3"),
        fig: Any = None,
        axes: Any = None,
        figsize: tuple[float, float] = (3.5, 2.5),
        display: bool = True,
    ) -> None:
        self.save_hyperparameters()

    def draw(self, x: float, y: Any, label: str, every_n: int = 1) -> None:
        """Add (x, y) to the line of label; every every_n calls, draw the mean of those points."""
        if not hasattr(self, "raw_points"):
            self.raw_points: dict[str, list[Point]] = collections.OrderedDict()
            self.data: dict[str, list[Point]] = collections.OrderedDict()
        points = self.raw_points.setdefault(label, [])
        line = self.data.setdefault(label, [])
        points.append(Point(x, y))
        if len(points) != every_n:
            return
        line.append(Point(_mean([p.x for p in points]), _mean([p.y for p in points])))
        points.clear()
        if self.display:
            self._render()

    def _render(self) -> None:
        figures.use_svg_display()
        if self.fig is None:
            self.fig = figures.new_figure(self.figsize)
        axes = self.axes if self.axes is not None else self.fig.gca()
        # one Line2D per label, updated in place: clearing and replotting the Axes at every point took a
        # third of a softmax chapter's training time
        lines = self.__dict__.setdefault("_lines", {})
        for i, (label, points) in enumerate(self.data.items()):
            if label not in lines or lines[label].axes is not axes:
                style = {"linestyle": self.ls[i % len(self.ls)], "color": self.colors[i % len(self.colors)]}
                (lines[label],) = axes.plot([], [], label=label, **style)
                axes.legend()
            lines[label].set_data([p.x for p in points], [p.y for p in points])
        if (axes.get_xscale(), axes.get_yscale()) != (self.xscale, self.yscale):
            axes.set_xscale(self.xscale)
            axes.set_yscale(self.yscale)
        axes.relim()
        axes.autoscale_view()
        if self.xlim:
            axes.set_xlim(self.xlim)
        if self.ylim:
            axes.set_ylim(self.ylim)
        axes.set_xlabel(self.xlabel)
        axes.set_ylabel(self.ylabel)
        if figures.in_notebook():
            from IPython import display

            display.display(self.fig)
            display.clear_output(wait=True)


# ---------------------------------------------------------------- 3.2 models, data, training


class Module(nn.Module, HyperParameters):
    """The base class of models: an nn.Module with a loss, training and validation steps, an
    optimizer and a ProgressBoard (self.board) on which Trainer.fit draws the losses."""

    def __init__(self, plot_train_per_epoch: int = 2, plot_valid_per_epoch: int = 1) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.board = ProgressBoard()

    def loss(self, y_hat: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The loss of predictions y_hat for targets y; subclasses define it."""
        raise NotImplementedError

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        """self.net(X); a subclass sets self.net in __init__ or defines its own forward."""
        if not hasattr(self, "net"):
            raise NotImplementedError(f"{type(self).__name__} has no self.net: set it in __init__ or define forward")
        return self.net(X)

    def plot(self, key: str, value: Any, train: bool) -> None:
        """Draw value (a number or a one-element tensor) as a point of the line 'train_<key>' or
        'val_<key>' on self.board, x in epochs; plot_train_per_epoch (plot_valid_per_epoch) points
        per epoch, each the mean of its batches' values."""
        if not hasattr(self, "trainer"):
            raise RuntimeError(f"{type(self).__name__}.plot draws during Trainer.fit: call trainer.fit(model, data)")
        trainer = self.trainer
        self.board.xlabel = "epoch"
        if train:
            x = trainer.train_batch_idx / trainer.num_train_batches
            n = trainer.num_train_batches / self.plot_train_per_epoch
        else:
            x = trainer.epoch + 1
            n = trainer.num_val_batches / self.plot_valid_per_epoch
        value = value.detach() if isinstance(value, torch.Tensor) else value
        self.board.draw(x, value, ("train_" if train else "val_") + key, every_n=max(1, int(n)))

    def training_step(self, batch: Sequence[torch.Tensor]) -> torch.Tensor:
        """The loss of a batch (inputs..., targets), drawn on the board; returned for backward."""
        loss = self.loss(self(*batch[:-1]), batch[-1])
        self.plot("loss", loss, train=True)
        return loss

    def validation_step(self, batch: Sequence[torch.Tensor]) -> None:
        """Draw the loss of a validation batch (inputs..., targets) on the board."""
        loss = self.loss(self(*batch[:-1]), batch[-1])
        self.plot("loss", loss, train=False)

    def configure_optimizers(self) -> optim.SGD:
        """Plain minibatch SGD on every parameter at self.lr."""
        return optim.SGD(self.parameters(), self.lr)

    def apply_init(self, inputs: Sequence[torch.Tensor], init: Callable[[nn.Module], None] | None = None) -> None:
        """Run self.forward(*inputs) once, which gives lazy layers their shapes, then self.net.apply(init)."""
        self.forward(*inputs)
        if init is not None:
            self.net.apply(init)


class DataModule(HyperParameters):
    """The base class of data: train_dataloader() and val_dataloader() give iterables of batches."""

    def __init__(self, root: str = "../data", num_workers: int = 4) -> None:
        self.save_hyperparameters()

    def get_dataloader(self, train: bool) -> Iterable:
        """The batches of the training (train) or validation split; subclasses define it."""
        raise NotImplementedError

    def train_dataloader(self) -> Iterable:
        """The training batches, reshuffled every pass."""
        return self.get_dataloader(train=True)

    def val_dataloader(self) -> Iterable:
        """The validation batches, in order."""
        return self.get_dataloader(train=False)

    def get_tensorloader(
        self, tensors: Sequence[torch.Tensor], train: bool, indices: slice = slice(0, None)
    ) -> data.Batches:
        """Batches (X, y) of self.batch_size rows of tensors = (X, y) [N, ...] taken at indices;
        reshuffled every pass (global torch RNG) when train."""
        if len(tensors) != 2:
            raise ValueError(f"get_tensorloader takes (features, labels), not {len(tensors)} tensors")
        X, y = (t[indices] for t in tensors)
        return data.Batches(X, y, int(self.batch_size), shuffle=train)


class _FirstBatches:
    """The first n batches of an iterable of batches (FMNIST_D2L_MAX_BATCHES); len() as many."""

    def __init__(self, batches: Iterable, n: int) -> None:
        self.batches, self.n = batches, n

    def __iter__(self) -> Iterator:
        return itertools.islice(self.batches, self.n)

    def __len__(self) -> int:
        return min(self.n, len(self.batches))


def _limit(variable: str) -> int | None:
    """The positive whole number in environment variable variable, or None when it is unset or empty."""
    text = os.environ.get(variable, "").strip()
    if not text:
        return None
    if not text.isdigit() or int(text) == 0:
        raise UserError(f"{variable} must be a positive whole number, not {text!r}.")
    return int(text)


class Trainer(HyperParameters):
    """Trains a Module on a DataModule: fit() runs max_epochs passes of fit_epoch(), each a
    training pass (training_step, backward, optional gradient clipping, optimizer step) and a
    validation pass without gradients (validation_step). On num_gpus GPUs (those present)."""

    def __init__(self, max_epochs: int, num_gpus: int = 0, gradient_clip_val: float = 0) -> None:
        self.save_hyperparameters()
        self.gpus = [torch.device(f"cuda:{i}") for i in range(min(num_gpus, torch.cuda.device_count()))]

    def prepare_data(self, data: DataModule) -> None:
        """Take data's loaders; fmnist's batches are made on the trainer's GPU."""
        self.train_dataloader = self._batches(data.train_dataloader())
        self.val_dataloader = self._batches(data.val_dataloader())
        self.num_train_batches = len(self.train_dataloader)
        self.num_val_batches = len(self.val_dataloader) if self.val_dataloader is not None else 0

    def _batches(self, loader: Iterable | None) -> Iterable | None:
        if self.gpus and isinstance(loader, data.Batches):
            loader = loader.to(self.gpus[0])
        limit = _limit("FMNIST_D2L_MAX_BATCHES")
        return loader if loader is None or limit is None else _FirstBatches(loader, limit)

    def prepare_model(self, model: Module) -> None:
        """Attach model to this trainer (model.trainer), on the trainer's GPU."""
        model.trainer = self
        model.board.xlim = [0, self.max_epochs]
        if self.gpus:
            model.to(self.gpus[0])
        self.model = model

    def fit(self, model: Module, data: DataModule) -> None:
        """Train model on data for max_epochs epochs; outside Jupyter, save the board as fmnist-fit.png."""
        self.prepare_data(data)
        self.prepare_model(model)
        self.optim = model.configure_optimizers()
        self.epoch = 0
        self.train_batch_idx = 0
        self.val_batch_idx = 0
        epochs = min(self.max_epochs, _limit("FMNIST_D2L_MAX_EPOCHS") or self.max_epochs)
        for self.epoch in range(epochs):
            self.fit_epoch()
        board = getattr(model, "board", None)
        if board is not None and board.fig is not None:
            figures.publish(board.fig, "fit", close=True)

    def prepare_batch(self, batch: Sequence[torch.Tensor]) -> Sequence[torch.Tensor]:
        """The batch on the trainer's GPU (a list), or as it is."""
        if self.gpus:
            batch = [a.to(self.gpus[0]) for a in batch]
        return batch

    def fit_epoch(self) -> None:
        """One training pass over train_dataloader, then one validation pass without gradients."""
        self.model.train()
        for batch in self.train_dataloader:
            loss = self.model.training_step(self.prepare_batch(batch))
            self.optim.zero_grad()
            with torch.no_grad():
                loss.backward()
                if self.gradient_clip_val > 0:
                    self.clip_gradients(self.gradient_clip_val, self.model)
                self.optim.step()
            self.train_batch_idx += 1
        if self.val_dataloader is None:
            return
        self.model.eval()
        for batch in self.val_dataloader:
            with torch.no_grad():
                self.model.validation_step(self.prepare_batch(batch))
            self.val_batch_idx += 1

    def clip_gradients(self, grad_clip_val: float, model: nn.Module) -> None:
        """Scale the gradients of model's trainable parameters so that their joint L2 norm is at most grad_clip_val."""
        params = [p for p in model.parameters() if p.requires_grad]
        norm = torch.sqrt(sum(torch.sum(p.grad**2) for p in params))
        if norm > grad_clip_val:
            for param in params:
                param.grad[:] *= grad_clip_val / norm
