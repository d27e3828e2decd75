"""A run directory: the one owner of its files, its lock and the rules of what may be done with it.

A run directory holds config.json (every setting, as used, with library versions and the data's
checksums), model.safetensors (the weights under their documented names, see model.export_tensors,
and the model's name in the metadata), metrics.csv (one row per finished epoch), the checkpoint
for --resume (in one file written once per epoch: the weights, the optimizer's state, both random
generators' states and the metrics so far, as JSON in the metadata, so it never disagrees with
itself), and the results: summary.json, the pictures and report.html. Every file is written
atomically and read within a bound, safetensors never as pickle; every reader gets a checked Config.
"""

from __future__ import annotations

import csv
import io
import json
import math
import platform
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy
import safetensors
import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors

from . import __version__, data, fileio, model
from .errors import UserError, command
from .fileio import NotRegularFile, TooLarge, read_bounded, write_json
from .settings import Config, SettingError

CONFIG, MODEL, METRICS, CHECKPOINT = "config.json", "model.safetensors", "metrics.csv", "checkpoint.safetensors"
SUMMARY, REPORT = "summary.json", "report.html"
PICTURES = ("curves", "confusion", "mistakes", "weights")  # written as NAME.png
RESULTS = (SUMMARY, REPORT, *(f"{name}.png" for name in PICTURES))  # written once the training has ended
RUN_FILES = (CONFIG, CHECKPOINT, MODEL, METRICS, *RESULTS)
METRICS_COLUMNS = ("epoch", "train_loss", "train_acc", "val_acc", "test_acc", "seconds")  # val_acc with --val-size
CHECKPOINT_FORMAT = "fmnist-checkpoint-1"
# The most each file may hold: well above what fmnist writes (10,000 epochs of metrics; the largest model and
# its optimizer state), far below what would hurt to read whole.
LIMITS = {CONFIG: 64 << 10, SUMMARY: 64 << 10, METRICS: 4 << 20, MODEL: 16 << 20, CHECKPOINT: 48 << 20}
RESUMABLE = ("epochs",)  # the only setting --resume may change


class RunDirError(UserError):
    """A run directory is missing, damaged, belongs to something else or cannot take this command; the
    message says what to do."""


@dataclass
class Checkpoint:
    """The content of checkpoint.safetensors: tensors by name, optimizer param_groups, metrics rows."""

    path: Path
    tensors: dict[str, torch.Tensor]
    param_groups: list[dict]
    rows: list[dict]


class RunDir:
    """The run directory at path: its files, its lock, and every read and write of them."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def __str__(self) -> str:
        return str(self.path)

    def file(self, name: str) -> Path:
        """The path of the run file name (one of RUN_FILES)."""
        return self.path / name

    # ------------------------------------------------------------ the folder

    def create(self) -> None:
        """Make the folder (fileio.make_out_folder)."""
        fileio.make_out_folder(self.path)

    @contextmanager
    def locked(self) -> Iterator[RunDir]:
        """Hold the folder's lock (fileio.exclusive): no other fmnist command writes into it meanwhile."""
        self._require()
        with fileio.exclusive(self.path):
            yield self

    def _require(self) -> None:
        if not self.path.is_dir():
            raise RunDirError(f"{self.path} is not a directory; pass a run directory made by `fmnist train`.")

    def check_outputs(self, names: tuple[str, ...]) -> None:
        """Refuse, before any is written, run files of names that exist and are not regular files."""
        for name in names:
            fileio.check_output(self.file(name))

    def remove_leftovers(self, names: tuple[str, ...] = RUN_FILES) -> None:
        """Remove what killed writes of the files names left (fileio.remove_leftovers); hold the lock."""
        fileio.remove_leftovers(self.path, names)

    def claim(self, force: bool) -> bool:
        """Refuse the locked folder for a new run unless it is empty, holds a run that never kept an epoch
        (fmnist's config.json, no checkpoint, nothing but run files: what a stop during the first epoch's
        writes leaves), or force is given; returns True when it holds files the new run will replace
        (fmnist's run files, and only those, once its first epoch has finished)."""
        held = sorted(p.name for p in self.path.iterdir())
        unfinished = (CONFIG in held and CHECKPOINT not in held and set(held) <= set(RUN_FILES)
                      and self._is_run_config())  # fmt: skip
        if held and not unfinished and not force:
            if CHECKPOINT in held:
                raise RunDirError(f"{self.path} already holds a run; pass --resume to continue it, --force to start "
                                  "over, or choose another --out.")  # fmt: skip
            shown = ", ".join(held[:4]) + (", ..." if len(held) > 4 else "")
            raise RunDirError(f"{self.path} is not empty (it holds {shown}); choose a new or empty folder for "
                              "--out, or pass --force to replace fmnist's run files in it.")  # fmt: skip
        return any(name in RUN_FILES for name in held)

    def _is_run_config(self) -> bool:
        try:
            return "fmnist" in read_json(self.file(CONFIG)).get("versions", {})
        except (RunDirError, TypeError):
            return False

    def how_to_continue(self, data_dir: str | Path | None, all_done: bool) -> str:
        """The command that goes on with a stopped run here: eval to draw its results when all_done, else
        train --resume; pasteable whatever the paths hold."""
        data_option = () if data_dir is None else (f"--data-dir={data_dir}",)
        if all_done:
            return command("fmnist", "eval", self.path, *data_option)
        return command("fmnist", "train", f"--out={self.path}", "--resume", *data_option)

    # ------------------------------------------------------------ reading

    def config(self) -> Config:
        """The training settings in config.json; RunDirError when they are not all valid."""
        saved = self.description()
        try:
            return Config(**{f.name: saved[f.name] for f in fields(Config) if f.name in saved})
        except SettingError as e:
            raise RunDirError(f"{self.file(CONFIG)} is damaged ({e}); train that run again.") from None

    def description(self) -> dict:
        """config.json as written (describe), for the report; its settings unchecked (see config)."""
        return read_json(self.file(CONFIG))

    def read(self, resuming: bool = False) -> tuple[Config, list[dict], Checkpoint | None]:
        """The settings (config.json), per-epoch metrics (metrics.csv) and checkpoint (None when there is none,
        unless resuming), checked to tell of one run; RunDirError naming what disagrees.

        They agree when the metrics have no more epochs than config.json plans, a validation score exactly
        when config.json has a validation split, and the checkpoint's epochs are metrics.csv's first;
        metrics.csv may be one epoch ahead (a kill while an epoch's files were written). A missing metrics.csv
        is the checkpoint's when resuming (the run's files are written again).
        """
        self._require()
        config = self.config()
        path = self.file(CHECKPOINT)
        saved = read_checkpoint(path) if resuming or path.exists() else None
        metrics = self.file(METRICS)
        if saved is not None and not metrics.exists():
            if not resuming:
                raise RunDirError(f"{metrics} is missing; `{self.how_to_continue(None, False)}` writes it again from "
                                  "the run's checkpoint.")  # fmt: skip
            rows = saved.rows
        else:
            rows = read_metrics(metrics)
        done, problem = len(saved.rows) if saved else 0, None
        if len(rows) > config.epochs:
            problem = f"metrics.csv holds {len(rows)} epochs but config.json plans {config.epochs}"
        elif rows and ("val_acc" in rows[0]) != (config.val_size > 0):
            problem = (f"metrics.csv {'has' if 'val_acc' in rows[0] else 'lacks'} a validation score, but "
                       f"config.json has --val-size {config.val_size}")  # fmt: skip
        elif saved is not None and len(rows) < done:
            problem = f"the checkpoint holds {done} epochs but metrics.csv only {len(rows)}"
        elif saved is not None and len(rows) > done + 1:
            problem = f"metrics.csv holds {len(rows)} epochs, more than one beyond the checkpoint's {done}"
        elif saved is not None and rows[:done] != saved.rows:
            problem = f"the checkpoint's {done} epochs differ from the first {done} in metrics.csv"
        if problem:
            raise RunDirError(f"{self.path} does not hold one run: {problem}; train that run again (--force).")
        return config, rows, saved

    def load_model(self) -> tuple[torch.nn.Module, Config]:
        """The run's model (on the CPU, eval mode) and its checked settings."""
        self._require()
        config = self.config()
        path = self.file(MODEL)
        try:
            tensors, metadata = read_safetensors(path)
        except FileNotFoundError:
            again = (f"`{self.how_to_continue(None, False)}` writes it again from the run's checkpoint"
                     if self.file(CHECKPOINT).is_file() else "train again to recreate it")  # fmt: skip
            raise RunDirError(f"{path} is missing; {again}.") from None
        if metadata.get("model", config.model) != config.model:  # a file written by another tool may carry none
            raise RunDirError(f"{path} holds model {metadata.get('model')!r} but config.json says {config.model!r};"
                              " the run directory is mixed up, train again.")  # fmt: skip
        with torch.random.fork_rng(devices=[]):  # initial values are overwritten: leave the caller's RNG alone
            net = model.build(config.model, config.normalize, config.dropout)
        _check_finite(tensors, path)
        try:
            model.import_tensors(net, tensors)
        except ValueError as e:
            raise RunDirError(f"{path} does not fit model {config.model!r}: {e}.") from None
        return net.eval(), config

    # ------------------------------------------------------------ writing

    def keep(self, net: torch.nn.Module, model_name: str, optimizer, shuffle: torch.Generator, rows: list[dict],
             description: dict | None) -> None:  # fmt: skip
        """Write the run's state after its last finished epoch (rows: the metrics of every epoch so far):
        config.json (description, when given), metrics.csv, model.safetensors, then the checkpoint, which
        commits the epoch. Signals wait until all are written. A new run's first epoch first removes the
        checkpoint and results of the run it replaces (--force), so that run stays whole until the new one has
        an epoch to put in its place. A kill between the writes leaves metrics.csv at most one epoch ahead of
        the checkpoint (--resume redoes that epoch), or, in the first epoch, fmnist's config.json and no
        checkpoint: a run that never kept an epoch, which the same command takes again."""
        with fileio.uninterrupted():
            if len(rows) == 1:
                for name in (CHECKPOINT, *RESULTS):
                    self.file(name).unlink(missing_ok=True)
            if description is not None:
                write_json(self.file(CONFIG), description)
            write_metrics(self.file(METRICS), rows)
            write_safetensors(self.file(MODEL), model.export_tensors(net), {"model": model_name})
            save_checkpoint(self.file(CHECKPOINT), net, optimizer, shuffle, rows)

    def write_results(self, summary: dict, pictures: dict[str, bytes], report: bytes) -> None:
        """Write summary.json, the pictures (name -> PNG bytes, names of PICTURES) and report.html."""
        write_json(self.file(SUMMARY), summary)
        for name, png in pictures.items():
            fileio.write_atomic(self.file(f"{name}.png"), png)
        fileio.write_atomic(self.file(REPORT), report)


def describe(config: Config, device: torch.device, threads: int, dataset: data.FashionMNIST) -> dict:
    """config.json's content: the settings (device and threads as used), library versions and the data's
    checksums."""
    return {
        **asdict(config),
        "device": str(device),
        "threads": threads,
        "versions": {
            "fmnist": __version__,
            "python": platform.python_version(),
            "torch": torch.__version__,
            "numpy": numpy.__version__,
            "safetensors": safetensors.__version__,
        },
        "data": {"folder": str(dataset.folder), "sha256": {f.name: f.sha256 for f in data.FILES.values()}},
    }


def summarize(rows: list[dict]) -> dict:
    """summary.json's content from metrics rows: the last epoch's scores, the epochs, their seconds."""
    last = rows[-1]
    summary = {key: last[key] for key in ("test_acc", "val_acc", "train_acc", "train_loss") if key in last}
    return {**summary, "epochs": len(rows), "seconds": round(sum(row["seconds"] for row in rows), 4)}


# ---------------------------------------------------------------- the files' formats


def read_run_file(path: Path) -> bytes:
    """The content of the run file path (config.json, metrics.csv, model.safetensors or the checkpoint), read
    within its bound (LIMITS); FileNotFoundError when it is missing, RunDirError naming what else is wrong."""
    try:
        return read_bounded(path, LIMITS[path.name])
    except FileNotFoundError:
        raise
    except (NotRegularFile, TooLarge) as e:
        raise RunDirError(f"{e} fmnist writes no such {path.name}, so the run directory is damaged; "
                              "train that run again.") from None  # fmt: skip
    except PermissionError:
        raise RunDirError(f"{path} cannot be read (permission denied); check the permissions of "
                              f"{path.parent}.") from None  # fmt: skip
    except OSError as e:
        raise RunDirError(f"{path} cannot be read ({e.strerror or e}).") from None


def read_json(path: Path) -> dict:
    """Read a JSON object written by write_json."""
    try:
        obj = json.loads(read_run_file(path))
    except FileNotFoundError:
        raise RunDirError(f"{path} is missing; is {path.parent} a run directory made by `fmnist train`?") from None
    except (ValueError, UnicodeDecodeError, RecursionError):  # RecursionError: nested deeper than Python parses
        obj = None
    if not isinstance(obj, dict):
        raise RunDirError(f"{path} is not a JSON object as fmnist writes it; the run directory is damaged.")
    return obj


def write_metrics(path: Path, rows: list[dict]) -> None:
    """Write per-epoch rows as CSV with those of METRICS_COLUMNS the rows have, atomically."""
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=[c for c in METRICS_COLUMNS if c in rows[0]], lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    fileio.write_atomic(path, text.getvalue().encode())


def read_safetensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Tensors (on the CPU) and metadata of a safetensors file; it holds no code to run.

    FileNotFoundError when it is missing; RunDirError when it is not valid safetensors.
    """
    content = read_run_file(path)
    try:
        tensors = load_safetensors(content)
        header = json.loads(content[8 : 8 + int.from_bytes(content[:8], "little")])  # valid: load read it
        metadata = header.get("__metadata__") or {}
    except (SafetensorError, ValueError, TypeError, AttributeError, RecursionError):
        raise RunDirError(f"{path} is not a valid safetensors file; it is damaged, train again.") from None
    return tensors, metadata


def read_metrics(path: Path) -> list[dict]:
    """The rows of a metrics.csv written by write_metrics, with numbers as numbers (checked as check_rows)."""
    try:
        rows = list(csv.DictReader(io.StringIO(read_run_file(path).decode(), newline="")))
    except FileNotFoundError:
        raise RunDirError(f"{path} is missing; is {path.parent} a run directory made by `fmnist train`?") from None
    except (csv.Error, UnicodeDecodeError):
        rows = None
    return check_rows(rows, path)


def check_rows(rows: object, path: Path) -> list[dict]:
    """Per-epoch metrics as fmnist writes them: epochs 1, 2, ... with the same METRICS_COLUMNS (val_acc
    optional), finite numbers, accuracies in [0, 1]. Returns them as numbers; RunDirError naming path."""
    try:
        if not isinstance(rows, list):
            raise ValueError("not a list of epochs")
        return [_check_row(row, epoch, rows[0]) for epoch, row in enumerate(rows, start=1)]
    except (ValueError, TypeError) as e:
        raise RunDirError(f"{path} does not hold fmnist's metrics ({e}); the run directory is damaged, "
                              "train that run again.") from None  # fmt: skip


def _check_row(row: object, epoch: int, first: object) -> dict:
    if not isinstance(row, dict) or not isinstance(first, dict):
        raise ValueError(f"epoch {epoch} is not a row of named values")
    if None in row or None in row.values():  # csv.DictReader's marks of a row longer or shorter than the header
        raise ValueError(f"epoch {epoch} has {'more' if None in row else 'fewer'} values than the header has columns")
    unknown = sorted(set(row) - set(METRICS_COLUMNS), key=str)
    missing = [c for c in METRICS_COLUMNS if c != "val_acc" and c not in row]
    if unknown or missing or set(row) != set(first):
        problem = f"columns {', '.join(map(str, unknown))} that fmnist does not write" if unknown else \
            f"no column {', '.join(missing)}" if missing else "columns that differ from the first epoch's"
        raise ValueError(f"epoch {epoch} has {problem}")
    values = {c: float(row[c]) for c in METRICS_COLUMNS if c in row}  # a CSV text or a number
    accuracies_ok = all(0 <= values[c] <= 1 for c in ("train_acc", "val_acc", "test_acc") if c in values)
    if not all(map(math.isfinite, values.values())) or not accuracies_ok or min(values.values()) < 0:
        raise ValueError(f"epoch {epoch} holds a value out of range")
    if values["epoch"] != epoch:
        raise ValueError(f"row {epoch} is numbered {row['epoch']}")
    return {**values, "epoch": epoch}


def write_safetensors(path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> None:
    """Write tensors (as contiguous CPU copies) and metadata as a safetensors file, atomically."""
    tensors = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    fileio.write_atomic(path, save_safetensors(tensors, metadata=metadata))


def _check_finite(tensors: dict[str, torch.Tensor], path: Path) -> None:
    """RunDirError naming the tensors of path that hold NaN or infinity."""
    broken = [k for k, v in tensors.items() if v.is_floating_point() and not v.isfinite().all()]
    if broken:
        raise RunDirError(f"{path} holds values that are not finite numbers (in {', '.join(broken)}), so the "
                              "run directory is damaged; train that run again.")  # fmt: skip


def save_checkpoint(path: Path, net: torch.nn.Module, optimizer, shuffle: torch.Generator, rows: list[dict]) -> None:
    """Save the state after the last finished epoch (rows: its metrics so far), atomically."""
    tensors = {f"model.{k}": v for k, v in model.export_tensors(net).items()}
    state = optimizer.state_dict()
    for index, values in state["state"].items():
        for name, value in values.items():
            tensors[f"optimizer.{index}.{name}"] = value
    tensors["rng.torch"] = torch.get_rng_state()
    tensors["rng.shuffle"] = shuffle.get_state()
    if torch.cuda.is_initialized():
        tensors["rng.cuda"] = torch.cuda.get_rng_state()
    metadata = {
        "format": CHECKPOINT_FORMAT,
        "param_groups": json.dumps(state["param_groups"]),
        "metrics": json.dumps(rows),
    }
    write_safetensors(path, tensors, metadata)


def read_checkpoint(path: Path) -> Checkpoint:
    """Read a checkpoint written by save_checkpoint; RunDirError when missing or damaged (not finite
    included)."""
    try:
        tensors, metadata = read_safetensors(path)
    except FileNotFoundError:
        raise RunDirError(f"{path} is missing, so there is nothing to resume; train without --resume.") from None
    try:
        if metadata.get("format") != CHECKPOINT_FORMAT:
            raise ValueError(metadata.get("format"))
        param_groups, rows = json.loads(metadata["param_groups"]), json.loads(metadata["metrics"])
        if not (isinstance(param_groups, list) and all(isinstance(g, dict) for g in param_groups)):
            raise ValueError("param_groups")
    except (ValueError, KeyError, RecursionError):
        raise RunDirError(f"{path} is not an fmnist checkpoint; start again with --force.") from None
    _check_finite(tensors, path)
    return Checkpoint(path, tensors, param_groups, check_rows(rows, path))


def restore_checkpoint(saved: Checkpoint, net: torch.nn.Module, optimizer, shuffle: torch.Generator, steps: int,
                       kept: tuple[str, ...]) -> None:  # fmt: skip
    """Put the checkpoint's state into net, optimizer, shuffle and the global torch RNG, after checking it
    against them: the optimizer keeps its own settings (config.json's), which the checkpoint's must match, and
    its state must be the one it keeps per parameter (kept: the names, such as "exp_avg"), in the shapes of
    net's parameters, after steps optimizer steps."""
    tensors = saved.tensors
    weights = {k.removeprefix("model."): v for k, v in tensors.items() if k.startswith("model.")}
    try:
        model.import_tensors(net, weights)
        state = _optimizer_state(saved, optimizer, steps, kept)
        optimizer.load_state_dict({"state": state, "param_groups": optimizer.state_dict()["param_groups"]})
        torch.set_rng_state(tensors["rng.torch"])
        shuffle.set_state(tensors["rng.shuffle"])
        if "rng.cuda" in tensors and torch.cuda.is_available():
            torch.cuda.set_rng_state(tensors["rng.cuda"])
    except (ValueError, KeyError, RuntimeError, TypeError, IndexError) as e:
        raise RunDirError(f"{saved.path} does not fit this run ({e}); start again with --force.") from None


def _optimizer_state(saved: Checkpoint, optimizer, steps: int, kept: tuple[str, ...]) -> dict[int, dict]:
    """The checkpoint's optimizer state for optimizer, checked; ValueError naming what does not fit."""
    own = json.loads(json.dumps(optimizer.state_dict()["param_groups"]))  # as the checkpoint stores them
    if len(saved.param_groups) != len(own):
        raise ValueError(f"{len(saved.param_groups)} parameter groups, where the run has {len(own)}")
    for theirs, ours in zip(saved.param_groups, own, strict=True):
        differ = [f"{key} {theirs[key]!r}, not {value!r}" for key, value in ours.items()
                  if key != "lr" and key in theirs and theirs[key] != value]  # lr follows the schedule
        if differ:
            raise ValueError(f"its optimizer settings disagree with config.json: {'; '.join(differ)}")
    params = [p for group in optimizer.param_groups for p in group["params"]]
    expected = {f"optimizer.{i}.{name}" for i in range(len(params)) for name in kept}
    found = {key for key in saved.tensors if key.startswith("optimizer.")}
    if found != expected:
        raise ValueError(f"optimizer state {sorted(found - expected) or 'missing'} where the run keeps "
                         f"{sorted(expected - found) or 'none'}")  # fmt: skip
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key in sorted(expected):
        _, index, name = key.split(".", 2)
        value, param = saved.tensors[key], params[int(index)]
        shape = () if name == "step" else param.shape
        if value.shape != shape or value.dtype != param.dtype:
            raise ValueError(f"{key} is {value.dtype} {tuple(value.shape)}, not {param.dtype} {tuple(shape)}")
        if name == "step" and value.item() != steps or name == "exp_avg_sq" and (value < 0).any():
            raise ValueError(f"{key} does not fit {steps} steps of training" if name == "step" else
                             f"{key} holds negative values")  # fmt: skip
        state.setdefault(int(index), {})[name] = value
    return state
