"""A recipe file: training settings as a JSON object or a TOML table, for `fmnist train --recipe FILE`.

    {"model": "softmax", "recipe": "tuned", "epochs": 20, "optimizer": "adam", "lr": 0.001}

Its settings replace those of the model's named recipe ("recipe" in the file, else the model's default);
settings given on the command line replace the file's. `fmnist tune` writes one for its best trial. A file is
read within a bound, parsed strictly (no duplicate names, no NaN or Infinity in JSON), and every name and
value is checked by the setting's declaration (fmnist.settings) before it is used.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from . import fileio
from .errors import UserError
from .settings import NAMES, SETTINGS

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover (Python 3.10)
    import tomli as tomllib

SUFFIXES = (".json", ".toml")
LIMIT = 64 << 10  # bytes: a recipe holds a few settings, fmnist's own about 400 bytes
# What a recipe leaves to the machine and the command: where and how fast it trains, and the validation split.
NOT_WRITTEN = ("device", "threads", "val_size")


class RecipeFileError(UserError):
    """A recipe file cannot be read or holds what is not a setting; the message names the file."""


def is_recipe_file(text: str) -> bool:
    """True when --recipe's text names a file (it ends in .json or .toml) rather than a named recipe."""
    return text.lower().endswith(SUFFIXES)


def read(path: Path) -> dict[str, object]:
    """The settings in the recipe file path, each a name of fmnist.settings with a value it allows (their
    combination is checked when they become a Config); RecipeFileError naming what is wrong."""
    try:
        text = fileio.read_bounded(path, LIMIT).decode("utf-8")
    except (fileio.NotRegularFile, fileio.TooLarge) as e:
        raise RecipeFileError(f"{e} A recipe file is a small JSON or TOML file of settings.") from None
    except UnicodeDecodeError:
        raise RecipeFileError(f"{path} is not UTF-8 text; a recipe file is JSON or TOML.") from None
    except OSError as e:
        raise RecipeFileError(f"{path} cannot be read ({e.strerror or e}); check the path.") from None
    try:
        settings = _parse(text, path.suffix.lower())
    except (ValueError, RecursionError) as e:  # json.JSONDecodeError and tomllib.TOMLDecodeError are ValueErrors
        raise RecipeFileError(f"{path} is not valid {path.suffix[1:].upper()} ({_short(e)}).") from None
    if not isinstance(settings, dict):
        raise RecipeFileError(f"{path} holds {type(settings).__name__}, not an object of settings by name.")
    for name, value in settings.items():
        if name not in NAMES:
            raise RecipeFileError(f"{path} names {name!r:.40}, which is not a setting; the settings are "
                                  f"{', '.join(NAMES)}.")  # fmt: skip
        if problem := SETTINGS[name].check(name, value):
            raise RecipeFileError(f"{path}: {problem}.")
    return settings


def _parse(text: str, suffix: str) -> object:
    if suffix == ".toml":
        return tomllib.loads(text)
    return json.loads(text, object_pairs_hook=_unique, parse_constant=_no_constant)


def _unique(pairs: list[tuple[str, object]]) -> dict:
    """A JSON object whose names are all different (json keeps the last of two silently)."""
    settings: dict = {}
    for name, value in pairs:
        if name in settings:
            raise ValueError(f"{name!r:.40} is given twice")
        settings[name] = value
    return settings


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not a number JSON allows")


def _short(error: Exception) -> str:
    text = str(error).splitlines()[0] if str(error) else type(error).__name__
    return text if len(text) <= 120 else text[:119] + "…"


def write(path: Path, settings: dict[str, object]) -> None:
    """Write settings (a Config's, as a dict) as a recipe file in JSON, atomically, leaving out NOT_WRITTEN."""
    kept = {name: value for name, value in settings.items() if name not in NOT_WRITTEN}
    fileio.write_json(path, kept)
