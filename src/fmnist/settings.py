"""Every training setting: its default (the seed notebook's recipe) and the values it may take.

Plain Python, no PyTorch: the command line checks what it is given against the same rules
before any import or work, and a run's config.json is checked by them before it is trusted.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, fields
from dataclasses import field as dataclass_field

from .errors import UserError
from .recipes import MODELS, RECIPES


class SettingError(UserError, ValueError):
    """A setting has a value it cannot take; the message names the setting, the value and the range."""


def available_cores() -> int:
    """CPU cores this process may run on (its affinity, not the machine's count)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


@dataclass(frozen=True)
class Range:
    """Numbers of kind (int or float) from low to high; low_open / high_open exclude the end;
    note says where a bound comes from."""

    kind: type
    low: float
    high: float
    low_open: bool = False
    high_open: bool = False
    note: str = ""

    def check(self, value: object) -> str | None:
        """None when value is allowed, else what is wrong with it (a phrase: "must be ..., got ...")."""
        right_type = isinstance(value, int | float) and not isinstance(value, bool)
        if self.kind is int and isinstance(value, float) or not right_type or not self.holds(value):
            return f"must be {self.describe()}, got {_short(repr(value))}"
        return None

    def holds(self, value: float) -> bool:
        """True when the number value lies in the range (never for inf or nan)."""
        above = value > self.low if self.low_open else value >= self.low
        below = value < self.high if self.high_open else value <= self.high
        return (isinstance(value, int) or math.isfinite(value)) and above and below  # isfinite(10**400) overflows

    def describe(self) -> str:
        """The range in words: "a whole number from 1 to 60000", "a number greater than 0 and at most 100"."""
        note = f" ({self.note})" if self.note else ""
        if self.kind is int:
            return f"a whole number from {self.low:d} to {self.high:d}{note}"
        if not (self.low_open or self.high_open):
            return f"a number from {self.low:g} to {self.high:g}{note}"
        low = f"greater than {self.low:g}" if self.low_open else f"at least {self.low:g}"
        high = f"less than {self.high:g}" if self.high_open else f"at most {self.high:g}"
        return f"a number {low} and {high}{note}"

    def parse(self, text: str) -> int | float:
        """A number from command-line text ("20", "1e-3", "5e3" for a whole number); SettingError, quoting
        text, when it is not a number this range holds. Never an overflow, whatever the text."""
        try:
            value: float = int(text) if self.kind is int else float(text)
        except ValueError:
            try:
                value = float(text)
            except ValueError:
                raise SettingError(f"{_short(repr(text))} is not a number") from None
        if self.kind is int and isinstance(value, float):
            value = int(value) if math.isfinite(value) and value.is_integer() else math.nan
        if not self.holds(value):
            raise SettingError(f"must be {self.describe()}, got {_short(text)}")
        return value


def _short(text: str, limit: int = 30) -> str:
    """text, or its start and an ellipsis when longer than limit (a 400-digit number stays readable)."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


@dataclass(frozen=True)
class Setting:
    """What a training setting may be, declared once, beside its default in Config: the command line's
    option, its help and check, config.json's check, the report's headline and fmnist tune's search space
    are all derived from it.

    help: the option's help (its default is added from Config); bounds: a number's Range, or choices: the
    names it may take (one of the two); auto: "auto" is allowed too; needs: value -> {other setting: the
    values it may then take} (what a model or implementation cannot apply); headline: named in a run's
    one-line description.
    """

    help: str
    bounds: Range | None = None
    choices: tuple[str, ...] = ()
    auto: bool = False
    needs: dict[object, dict[str, tuple]] = dataclass_field(default_factory=dict)
    headline: bool = False

    def check(self, name: str, value: object) -> str | None:
        """None when value is allowed on its own, else what is wrong ("lr must be ..., got -1")."""
        if self.auto and value == "auto":
            return None
        if self.choices:
            if value in self.choices:
                return None
            return f"{name} must be one of {', '.join(self.choices)}, got {_short(repr(value))}"
        problem = self.bounds.check(value)
        return problem and f"{name} {problem}"


def setting(default: object, help: str, **declared: object) -> object:
    """A Config field with its default and its Setting (declared: Setting's other fields)."""
    return dataclass_field(default=default, metadata={"setting": Setting(help, **declared)})


# More threads than cores only wait on each other: 2000 made an epoch 150x slower, 3000 crashed PyTorch.
THREADS_HERE = Range(int, 1, available_cores(), note="the CPU cores this process may use")
NO_DROPOUT = {"dropout": (0, 0.0)}


@dataclass(frozen=True)
class Config:
    """Every setting that affects the result of a run; the defaults are the seed notebook's recipe.

    SettingError when a value is not one its Setting allows, or one the model or implementation cannot apply.
    """

    model: str = setting("softmax", "model to train", choices=MODELS, headline=True, needs={
        "softmax": NO_DROPOUT, "cnn": {"normalize": ("none", "global")}, "lenet": {"normalize": ("none",),
                                                                                  **NO_DROPOUT}})  # fmt: skip
    recipe: str = setting("seed", "named settings of the model: when not given, its first (softmax's)",
                          choices=tuple(sorted({r for rs in RECIPES.values() for r in rs})), headline=True)
    epochs: int = setting(10, "passes over the training set", bounds=Range(int, 1, 10_000), headline=True)
    batch_size: int = setting(256, "examples per step", bounds=Range(int, 1, 60_000), headline=True)  # the training set
    optimizer: str = setting("sgd", "sgd, momentum (Nesterov, 0.9) or adam (AdamW)",
                             choices=("sgd", "momentum", "adam"), headline=True)
    lr: float = setting(0.1, "learning rate", bounds=Range(float, 0, 100, low_open=True), headline=True)
    weight_decay: float = setting(0.0, "weight decay: decoupled for adam (AdamW), an L2 term for sgd and momentum",
                                  bounds=Range(float, 0, 1))
    schedule: str = setting("constant", "learning rate per epoch; cosine: lr (1 + cos(pi (epoch - 1) / epochs)) / 2",
                            choices=("constant", "cosine"), headline=True)
    label_smoothing: float = setting(0.0, "label smoothing of the loss", bounds=Range(float, 0, 1, high_open=True))
    normalize: str = setting("none", "standardise the input with the training split's mean and std, per pixel or "
                             "one for all", choices=("none", "pixel", "global"), headline=True)  # fmt: skip
    dropout: float = setting(0.0, "dropout before the last layer of mlp and cnn",
                             bounds=Range(float, 0, 1, high_open=True))
    augment: str = setting("none", "shift: move each training image by up to 2 pixels", choices=("none", "shift"))
    val_size: int = setting(0, "training images held out, chosen by --seed, as a validation set scored per epoch",
                            bounds=Range(int, 0, 59_999, note="at least one training image stays"))
    impl: str = setting("concise", "scratch: the hand-derived gradients of fmnist.scratch",
                        choices=("concise", "scratch"),
                        needs={"scratch": {"model": ("softmax",), "optimizer": ("sgd",), "weight_decay": (0, 0.0),
                                           "label_smoothing": (0, 0.0), "normalize": ("none",)}})  # fmt: skip
    seed: int = setting(0, "seed for initialisation and shuffling", bounds=Range(int, 0, 2**63 - 1), headline=True)
    device: str = setting("auto", "where to train; auto: a GPU when there is one", choices=("auto", "cpu", "cuda"),
                          headline=True)
    # What a run may have used on a large machine; the command line allows at most this one's cores (cli).
    threads: int | str = setting("auto", "CPU threads for PyTorch; auto: 1 for softmax, every core for the other "
                                 "models", bounds=Range(int, 1, 256), auto=True)  # fmt: skip

    def __post_init__(self) -> None:
        problems = [problem for name, declared in SETTINGS.items()
                    if (problem := declared.check(name, getattr(self, name)))]  # fmt: skip
        if not problems:  # what the chosen model and implementation cannot apply
            problems = [f"{name} {getattr(self, name)} cannot apply {option(other)} {getattr(self, other)}"
                        f" (only {', '.join(map(str, dict.fromkeys(allowed)))})"
                        for name, declared in SETTINGS.items()
                        for other, allowed in declared.needs.get(getattr(self, name), {}).items()
                        if getattr(self, other) not in allowed]  # fmt: skip
        if problems:
            raise SettingError("; ".join(problems))


SETTINGS: dict[str, Setting] = {f.name: f.metadata["setting"] for f in fields(Config)}
NAMES = tuple(SETTINGS)
HEADLINE = tuple(name for name, declared in SETTINGS.items() if declared.headline)  # a run in one line


def option(name: str) -> str:
    """The command-line option of setting name: --batch-size for batch_size."""
    return f"--{name.replace('_', '-')}"


def bounds_here(name: str) -> Range | None:
    """Setting name's bounds on this machine: as declared, but --threads at most the cores this process may use."""
    return THREADS_HERE if name == "threads" else SETTINGS[name].bounds


# Measured on 2 cores (bench/threads.py, README "Threads"): every model's epoch is 1.6-1.8x faster on two
# idle cores and 1.3-2.3x slower beside a busy process. Softmax regression's run is mostly start-up, and
# one thread keeps its default result the same on every machine; the other models train for minutes.
ONE_THREAD_MODELS = ("softmax",)


def threads_for(config: Config) -> int:
    """The intra-op threads a run uses: config.threads, or for "auto" one thread for softmax regression
    and every core this process may run on for the other models. Fixed by the model and the machine,
    never by the moment's load: the number of threads changes the floating-point results."""
    if config.threads != "auto":
        return int(config.threads)
    return 1 if config.model in ONE_THREAD_MODELS else available_cores()
