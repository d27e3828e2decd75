"""What `fmnist tune` searches, from the command line's text, checked by each setting's declaration.

Every training setting's option takes one value (kept fixed), a list ("64,128,256", "sgd,adam"), or, for
numbers, a range ("0.001:1:log", "5:30"): whole numbers for whole-number settings, on a log scale with
":log". Every value of a list and both ends of a range must be values the setting allows (its Range or
choices in fmnist.settings), and no two searched values, nor one with the fixed settings, may ask for what
a model or implementation cannot apply (the settings' needs), so every trial drawn is a valid Config.

Plain Python: Optuna is imported only when a search space is turned into its distributions.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .settings import SETTINGS, Config, Range, Setting, SettingError, bounds_here, option

if TYPE_CHECKING:
    from optuna.distributions import BaseDistribution

MAX_VALUES = 100  # in one list: a grid of two such settings is already 10,000 trials
# How fmnist tune draws trials and stops poor ones (Optuna's samplers and pruners by these names), and how many
# softmax-regression trials it asks and trains at once by default.
SAMPLERS = ("tpe", "random", "grid")
PRUNERS = ("halving", "median", "none")
TOGETHER = 16

# Settings a search keeps at one value, and why.
FIXED_ONLY = {
    "model": "the searched settings change the model's recipe",
    "recipe": "the searched settings change it",
    "seed": "it also draws the validation split, so trials with other seeds would be scored on other images",
    "val_size": "every trial is scored on the same validation split",
    "device": "it is where trials run, not a setting of the result",
    "threads": "it changes the speed and the last bits of the results, not what a setting is worth",
}


@dataclass(frozen=True)
class Values:
    """A list of values to try for a setting, in the order given (Optuna: a categorical distribution)."""

    values: tuple

    def ends(self) -> tuple:
        """Every value a trial may take: each is checked against the other settings."""
        return self.values

    def spec(self) -> dict:
        """As JSON, for the study's record of what it searches."""
        return {"values": list(self.values)}

    def text(self) -> str:
        return ",".join(map(str, self.values))

    def distribution(self) -> BaseDistribution:
        from optuna.distributions import CategoricalDistribution

        return CategoricalDistribution(self.values)

    def scale(self) -> list:
        """How a picture spreads the values (fmnist.plots.plot_search): as categories, in the listed order."""
        return list(self.values)


@dataclass(frozen=True)
class Span:
    """Numbers from low to high (both included) of kind int or float, spread evenly or on a log scale."""

    kind: type
    low: float
    high: float
    log: bool = False

    def ends(self) -> tuple:
        """The two ends; a setting's Range is an interval, so every number between is allowed when they are."""
        return self.low, self.high

    def spec(self) -> dict:
        return {"low": self.low, "high": self.high, "log": self.log, "int": self.kind is int}

    def text(self) -> str:
        return f"{self.low}:{self.high}" + (":log" if self.log else "")

    def distribution(self) -> BaseDistribution:
        from optuna.distributions import FloatDistribution, IntDistribution

        if self.kind is int:
            return IntDistribution(int(self.low), int(self.high), log=self.log)
        return FloatDistribution(self.low, self.high, log=self.log)

    def scale(self) -> str:
        return "log" if self.log else "linear"


Search = Values | Span


def parse(name: str, text: str) -> object:
    """The fixed value or the Search that the text of setting name's option asks for; SettingError (a phrase
    for argparse, which names the option) when a value is not one the setting allows, or when the setting
    cannot be searched."""
    declared = SETTINGS[name]
    if "," not in text and text.count(":") == 0:
        return _value(name, declared, text)
    if name in FIXED_ONLY:
        raise SettingError(f"takes one value in fmnist tune: {FIXED_ONLY[name]}")
    if "," in text:
        items = [item.strip() for item in text.split(",")]
        if len(items) > MAX_VALUES:
            raise SettingError(f"lists {len(items)} values; a search takes at most {MAX_VALUES}")
        values = tuple(_value(name, declared, item) for item in items)
        repeated = [str(v) for i, v in enumerate(values) if v in values[:i]]
        if repeated:
            raise SettingError(f"lists {repeated[0]} twice; give each value once")
        return Values(values)
    return _span(name, declared, text)


def _value(name: str, declared: Setting, text: str) -> object:
    """One value of setting name from its text: a number within its bounds, one of its choices, or auto."""
    if declared.auto and text == "auto":
        return text
    if declared.choices:
        if text not in declared.choices:
            raise SettingError(f"must be one of {', '.join(declared.choices)}, got {text!r:.40}")
        return text
    return bounds_here(name).parse(text)


def _span(name: str, declared: Setting, text: str) -> Span:
    """LOW:HIGH or LOW:HIGH:log for a number setting."""
    parts = text.split(":")
    if declared.bounds is None:
        raise SettingError(f"{text!r:.40} is a range, and {name} takes names: list the ones to try, "
                           f"e.g. {option(name)} {','.join(declared.choices[:2])}")  # fmt: skip
    if len(parts) not in (2, 3) or len(parts) == 3 and parts[2] != "log":
        raise SettingError(f"{text!r:.40} is not a range; write LOW:HIGH, or LOW:HIGH:log for a log "
                           "scale")  # fmt: skip
    bounds: Range = declared.bounds
    low, high = (_value(name, declared, part) for part in parts[:2])
    log = len(parts) == 3
    if not low < high:
        raise SettingError(f"{text!r:.40} is not a range: its low end must be below its high end")
    if log and low <= 0:
        raise SettingError(f"{text!r:.40}: a log scale needs a low end above 0")
    return Span(bounds.kind, low, high, log)


def check(fixed: dict[str, object], space: dict[str, Search]) -> None:
    """SettingError, naming the values, when a trial could be a Config that cannot train: a searched value
    (or a range's end) that the fixed settings cannot apply, or two searched values that cannot go together
    (a setting's needs, e.g. --impl scratch with --optimizer adam). fixed: every setting but the searched."""
    names = list(space)
    for name in names:
        for value in space[name].ends():
            _config(fixed, {name: value})
    for first, second in itertools.combinations(names, 2):
        if _linked(first, second):
            for a, b in itertools.product(space[first].ends(), space[second].ends()):
                _config(fixed, {first: a, second: b})


def _linked(first: str, second: str) -> bool:
    """True when a value of one setting restricts the other (Setting.needs)."""
    return any(second in needs for needs in SETTINGS[first].needs.values()) or any(
        first in needs for needs in SETTINGS[second].needs.values())  # fmt: skip


def _config(fixed: dict[str, object], searched: dict[str, object]) -> Config:
    try:
        return Config(**{**fixed, **searched})
    except SettingError as e:
        tried = ", ".join(f"{option(name)} {value}" for name, value in searched.items())
        raise SettingError(f"the search would try {tried}, and {e}; search other values, or set the settings "
                           "that conflict") from None  # fmt: skip


def grid(space: dict[str, Search]) -> dict[str, list]:
    """The grid sampler's values of each setting; SettingError for a range (a grid takes lists)."""
    ranges = [name for name, search in space.items() if isinstance(search, Span)]
    if ranges:
        raise SettingError(f"the grid sampler tries lists of values, and {option(ranges[0])} is a range; list the "
                           f"values to try (e.g. {option(ranges[0])} a,b,c), or use --sampler tpe or "
                           "random")  # fmt: skip
    return {name: list(search.values) for name, search in space.items()}
