"""Run directory files, written atomically; weights in safetensors, never pickle.

A run directory holds config.json, model.safetensors, metrics.csv and summary.json, and
checkpoint.safetensors for --resume. model.safetensors stores the model under its
documented names (see model.export_tensors) and the model's name in its metadata under
"model". checkpoint.safetensors holds, in one file written once per epoch, everything a
resumed run needs: the weights, the optimizer's state, both random generators' states
and the metrics so far (as JSON in the metadata), so it is never out of step with itself.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, fields
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors

from . import model, settings
from .errors import UserError, command
from .fileio import NotRegularFile, TooLarge, exclusive, read_bounded, write_atomic
from .settings import Config

METRICS_COLUMNS = ("epoch", "train_loss", "train_acc", "val_acc", "test_acc", "seconds")  # val_acc with --val-size
CHECKPOINT = "checkpoint.safetensors"
CHECKPOINT_FORMAT = "fmnist-checkpoint-1"


class CheckpointError(UserError):
    """A run directory is missing, damaged or belongs to something else; the message says what to do."""


# The most each file may hold: well above what fmnist writes (10,000 epochs of metrics; the largest model and
# its optimizer state), far below what would hurt to read whole.
LIMITS = {"config.json": 64 << 10, "summary.json": 64 << 10, "metrics.csv": 4 << 20, "model.safetensors": 16 << 20,
          "checkpoint.safetensors": 48 << 20}  # fmt: skip


def write_json(path: Path, obj: object) -> None:
    """Write obj as indented JSON, atomically."""
    write_atomic(path, (json.dumps(obj, indent=2, allow_nan=False) + "\n").encode())


def read_run_file(path: Path) -> bytes:
    """The content of the run file path (config.json, metrics.csv, model.safetensors or the checkpoint), read
    within its bound (LIMITS); FileNotFoundError when it is missing, CheckpointError naming what else is wrong."""
    try:
        return read_bounded(path, LIMITS[path.name])
    except FileNotFoundError:
        raise
    except (NotRegularFile, TooLarge) as e:
        raise CheckpointError(f"{e} fmnist writes no such {path.name}, so the run directory is damaged; "
                              "train that run again.") from None  # fmt: skip
    except PermissionError:
        raise CheckpointError(f"{path} cannot be read (permission denied); check the permissions of "
                              f"{path.parent}.") from None  # fmt: skip
    except OSError as e:
        raise CheckpointError(f"{path} cannot be read ({e.strerror or e}).") from None


def read_json(path: Path) -> dict:
    """Read a JSON object written by write_json."""
    try:
        obj = json.loads(read_run_file(path))
    except FileNotFoundError:
        raise CheckpointError(f"{path} is missing; is {path.parent} a run directory made by `fmnist train`?") from None
    except (ValueError, UnicodeDecodeError, RecursionError):  # RecursionError: nested deeper than Python parses
        obj = None
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path} is not a JSON object as fmnist writes it; the run directory is damaged.")
    return obj


def read_config(run_dir: Path) -> Config:
    """The training settings in run_dir's config.json; CheckpointError when they are not all valid."""
    path = run_dir / "config.json"
    saved = read_json(path)
    try:
        return Config(**{f.name: saved[f.name] for f in fields(Config) if f.name in saved})
    except settings.SettingError as e:
        raise CheckpointError(f"{path} is damaged ({e}); train that run again.") from None


def write_metrics(path: Path, rows: list[dict]) -> None:
    """Write per-epoch rows as CSV with those of METRICS_COLUMNS the rows have, atomically."""
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=[c for c in METRICS_COLUMNS if c in rows[0]], lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    write_atomic(path, text.getvalue().encode())


def read_safetensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Tensors (on the CPU) and metadata of a safetensors file; it holds no code to run.

    FileNotFoundError when it is missing; CheckpointError when it is not valid safetensors.
    """
    content = read_run_file(path)
    try:
        tensors = load_safetensors(content)
        header = json.loads(content[8 : 8 + int.from_bytes(content[:8], "little")])  # valid: load read it
        metadata = header.get("__metadata__") or {}
    except (SafetensorError, ValueError, TypeError, AttributeError, RecursionError):
        raise CheckpointError(f"{path} is not a valid safetensors file; it is damaged, train again.") from None
    return tensors, metadata


def read_metrics(path: Path) -> list[dict]:
    """The rows of a metrics.csv written by write_metrics, with numbers as numbers (checked as check_rows)."""
    try:
        rows = list(csv.DictReader(io.StringIO(read_run_file(path).decode(), newline="")))
    except FileNotFoundError:
        raise CheckpointError(f"{path} is missing; is {path.parent} a run directory made by `fmnist train`?") from None
    except (csv.Error, UnicodeDecodeError):
        rows = None
    return check_rows(rows, path)


def check_rows(rows: object, path: Path) -> list[dict]:
    """Per-epoch metrics as fmnist writes them: epochs 1, 2, ... with the same METRICS_COLUMNS (val_acc
    optional), finite numbers, accuracies in [0, 1]. Returns them as numbers; CheckpointError naming path."""
    try:
        if not isinstance(rows, list):
            raise ValueError("not a list of epochs")
        return [_check_row(row, epoch, rows[0]) for epoch, row in enumerate(rows, start=1)]
    except (ValueError, TypeError) as e:
        raise CheckpointError(f"{path} does not hold fmnist's metrics ({e}); the run directory is damaged, "
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


def summarize(rows: list[dict]) -> dict:
    """summary.json's content from metrics rows: the last epoch's scores, the epochs, their seconds."""
    last = rows[-1]
    summary = {key: last[key] for key in ("test_acc", "val_acc", "train_acc", "train_loss") if key in last}
    return {**summary, "epochs": len(rows), "seconds": round(sum(row["seconds"] for row in rows), 4)}


def write_safetensors(path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> None:
    """Write tensors (as contiguous CPU copies) and metadata as a safetensors file, atomically."""
    tensors = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    write_atomic(path, save_safetensors(tensors, metadata=metadata))


def save_model(path: Path, net: torch.nn.Module, model_name: str) -> None:
    """Save net's weights (contiguous CPU copies) as safetensors, atomically."""
    write_safetensors(path, model.export_tensors(net), {"model": model_name})


def _require_run_dir(run_dir: Path) -> None:
    if not run_dir.is_dir():
        raise CheckpointError(f"{run_dir} is not a directory; pass a run directory made by `fmnist train`.")


@contextmanager
def locked_run(run_dir: Path) -> Iterator[None]:
    """Hold run_dir's lock (fileio.exclusive), so that no other fmnist command writes into it meanwhile."""
    _require_run_dir(run_dir)
    with exclusive(run_dir):
        yield


def load_model(run_dir: Path) -> tuple[torch.nn.Module, dict]:
    """The model of a run directory (on the CPU, eval mode) and its config.json, whose settings are checked."""
    _require_run_dir(run_dir)
    read_config(run_dir)  # every setting valid
    config = read_json(run_dir / "config.json")
    path = run_dir / "model.safetensors"
    try:
        tensors, metadata = read_safetensors(path)
    except FileNotFoundError:
        again = (f"`{command('fmnist', 'train', f'--out={run_dir}', '--resume')}` writes it again from the run's "
                 "checkpoint") if (run_dir / CHECKPOINT).is_file() else "train again to recreate it"
        raise CheckpointError(f"{path} is missing; {again}.") from None
    name = config.get("model")
    if metadata.get("model", name) != name:  # a file written by another tool may carry no metadata
        raise CheckpointError(f"{path} holds model {metadata.get('model')!r} but config.json says {name!r}; "
                              "the run directory is mixed up, train again.")  # fmt: skip
    with torch.random.fork_rng(devices=[]):  # initial values are overwritten: leave the caller's RNG alone
        net = model.build(name, config.get("normalize"), config.get("dropout", 0.0))
    _check_finite(tensors, path)
    try:
        model.import_tensors(net, tensors)
    except ValueError as e:
        raise CheckpointError(f"{path} does not fit model {name!r}: {e}.") from None
    return net.eval(), config


def _check_finite(tensors: dict[str, torch.Tensor], path: Path) -> None:
    """CheckpointError naming the tensors of path that hold NaN or infinity."""
    broken = [k for k, v in tensors.items() if v.is_floating_point() and not v.isfinite().all()]
    if broken:
        raise CheckpointError(f"{path} holds values that are not finite numbers (in {', '.join(broken)}), so the "
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


@dataclass
class Checkpoint:
    """The content of checkpoint.safetensors: tensors by name, optimizer param_groups, metrics rows."""

    path: Path
    tensors: dict[str, torch.Tensor]
    param_groups: list[dict]
    rows: list[dict]


def read_checkpoint(path: Path) -> Checkpoint:
    """Read a checkpoint written by save_checkpoint; CheckpointError when missing or damaged (not finite
    included)."""
    try:
        tensors, metadata = read_safetensors(path)
    except FileNotFoundError:
        raise CheckpointError(f"{path} is missing, so there is nothing to resume; train without --resume.") from None
    try:
        if metadata.get("format") != CHECKPOINT_FORMAT:
            raise ValueError(metadata.get("format"))
        param_groups, rows = json.loads(metadata["param_groups"]), json.loads(metadata["metrics"])
        if not (isinstance(param_groups, list) and all(isinstance(g, dict) for g in param_groups)):
            raise ValueError("param_groups")
    except (ValueError, KeyError, RecursionError):
        raise CheckpointError(f"{path} is not an fmnist checkpoint; start again with --force.") from None
    _check_finite(tensors, path)
    return Checkpoint(path, tensors, param_groups, check_rows(rows, path))


def read_run(run_dir: Path, resuming: bool = False) -> tuple[Config, list[dict], Checkpoint | None]:
    """run_dir's settings (config.json), per-epoch metrics (metrics.csv) and checkpoint (None when there is
    none, unless resuming), checked to tell of one run; CheckpointError naming what disagrees.

    They agree when the metrics have no more epochs than config.json plans, a validation score exactly when
    config.json has a validation split, and the checkpoint's epochs are metrics.csv's first; metrics.csv may
    be one epoch ahead (a kill while an epoch's files were written). A missing metrics.csv is the checkpoint's.
    """
    _require_run_dir(run_dir)
    config = read_config(run_dir)
    path = run_dir / CHECKPOINT
    saved = read_checkpoint(path) if resuming or path.exists() else None
    metrics = run_dir / "metrics.csv"
    if saved is not None and not metrics.exists():
        if not resuming:
            raise CheckpointError(f"{metrics} is missing; `{command('fmnist', 'train', f'--out={run_dir}', '--resume')}`"
                                  " writes it again from the run's checkpoint.")  # fmt: skip
        rows = saved.rows
    else:
        rows = read_metrics(metrics)
    done, problem = len(saved.rows) if saved else 0, None
    if len(rows) > config.epochs:
        problem = f"metrics.csv holds {len(rows)} epochs but config.json plans {config.epochs}"
    elif rows and ("val_acc" in rows[0]) != (config.val_size > 0):
        problem = (f"metrics.csv {'has' if 'val_acc' in rows[0] else 'lacks'} a validation score, but config.json "
                   f"has --val-size {config.val_size}")  # fmt: skip
    elif saved is not None and len(rows) < done:
        problem = f"the checkpoint holds {done} epochs but metrics.csv only {len(rows)}"
    elif saved is not None and len(rows) > done + 1:
        problem = f"metrics.csv holds {len(rows)} epochs, more than one beyond the checkpoint's {done}"
    elif saved is not None and rows[:done] != saved.rows:
        problem = f"the checkpoint's {done} epochs differ from the first {done} in metrics.csv"
    if problem:
        raise CheckpointError(f"{run_dir} does not hold one run: {problem}; train that run again (--force).")
    return config, rows, saved


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
        raise CheckpointError(f"{saved.path} does not fit this run ({e}); start again with --force.") from None


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
