"""Every training setting: its default (the seed notebook's recipe) and the values it may take.

Plain Python, no PyTorch: the command line checks what it is given against the same rules
before any import or work, and a run's config.json is checked by them before it is trusted.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, fields

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


CHOICES: dict[str, tuple[str, ...]] = {
    "model": MODELS,
    "recipe": tuple(sorted({r for rs in RECIPES.values() for r in rs})),
    "optimizer": ("sgd", "momentum", "adam"),
    "schedule": ("constant", "cosine"),
    "normalize": ("none", "pixel", "global"),
    "augment": ("none", "shift"),
    "impl": ("concise", "scratch"),
    "device": ("auto", "cpu", "cuda"),
}

# More threads than cores only wait on each other: 2000 made an epoch 150x slower, 3000 crashed PyTorch.
THREADS_HERE = Range(int, 1, available_cores(), note="the CPU cores this process may use")

RANGES: dict[str, Range] = {
    "epochs": Range(int, 1, 10_000),
    "batch_size": Range(int, 1, 60_000),  # the training set
    "lr": Range(float, 0, 100, low_open=True),
    "weight_decay": Range(float, 0, 1),
    "label_smoothing": Range(float, 0, 1, high_open=True),
    "dropout": Range(float, 0, 1, high_open=True),
    "val_size": Range(int, 0, 59_999),  # at least one training image stays
    "seed": Range(int, 0, 2**63 - 1),
    # What a run may have used on a large machine; the command line allows at most this one's cores (cli).
    "threads": Range(int, 1, 256),
}


@dataclass(frozen=True)
class Config:
    """Every setting that affects the result of a run; the defaults are the seed's recipe.

    SettingError when a value is outside CHOICES or RANGES.
    """

    model: str = "softmax"
    recipe: str = "seed"
    epochs: int = 10
    batch_size: int = 256
    optimizer: str = "sgd"  # sgd, momentum (Nesterov, 0.9) or adam (AdamW)
    lr: float = 0.1
    weight_decay: float = 0.0
    schedule: str = "constant"  # or cosine: lr * (1 + cos(pi * (epoch - 1) / epochs)) / 2
    label_smoothing: float = 0.0
    normalize: str = "none"  # or pixel / global: standardise with the training split's statistics
    dropout: float = 0.0
    augment: str = "none"  # or shift: move each training image by up to 2 pixels
    val_size: int = 0  # training images held out for validation, chosen by the seed
    impl: str = "concise"  # or scratch: fmnist.scratch's hand-derived gradients (softmax, plain SGD only)
    seed: int = 0
    device: str = "auto"
    threads: int | str = "auto"  # or a number; see threads_for

    def __post_init__(self) -> None:
        problems = [problem for name in NAMES if (problem := check_value(name, getattr(self, name)))]
        if problems:
            raise SettingError("; ".join(problems))


NAMES = tuple(f.name for f in fields(Config))


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


def check_value(name: str, value: object) -> str | None:
    """None when value is allowed for the setting name, else what is wrong ("lr must be ..., got -1")."""
    if name == "threads" and value == "auto":
        return None
    if name in CHOICES:
        problem = None if value in CHOICES[name] else f"must be one of {', '.join(CHOICES[name])}, got {_short(repr(value))}"
    else:
        problem = RANGES[name].check(value)
    return problem and f"{name} {problem}"
