"""Run directory files, written atomically; weights in safetensors, never pickle.

A run directory holds config.json, model.safetensors, metrics.csv and summary.json.
model.safetensors stores the model under its documented names (see model.export_tensors)
and the model's name in its metadata under "model".
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors

from . import model
from .fileio import write_atomic

METRICS_COLUMNS = ("epoch", "train_loss", "train_acc", "test_acc", "seconds")


class CheckpointError(Exception):
    """A run directory is missing, damaged or belongs to something else; the message says what to do."""


def write_json(path: Path, obj: object) -> None:
    """Write obj as indented JSON, atomically."""
    write_atomic(path, (json.dumps(obj, indent=2) + "\n").encode())


def read_json(path: Path) -> dict:
    """Read a JSON object written by write_json."""
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise CheckpointError(f"{path} is missing; is {path.parent} a run directory made by `fmnist train`?") from None
    except (OSError, ValueError, UnicodeDecodeError):
        raise CheckpointError(f"{path} is not valid JSON; the run directory is damaged, train again.") from None


def write_metrics(path: Path, rows: list[dict]) -> None:
    """Write per-epoch rows as CSV with METRICS_COLUMNS, atomically."""
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=METRICS_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    write_atomic(path, text.getvalue().encode())


def save_model(path: Path, net: torch.nn.Module, model_name: str) -> None:
    """Save net's weights (contiguous CPU copies) as safetensors, atomically."""
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.export_tensors(net).items()}
    write_atomic(path, save_safetensors(tensors, metadata={"model": model_name}))


def load_model(run_dir: Path) -> tuple[torch.nn.Module, dict]:
    """The model of a run directory (on the CPU, eval mode) and its config.json."""
    if not run_dir.is_dir():
        raise CheckpointError(f"{run_dir} is not a directory; pass a run directory made by `fmnist train`.")
    config = read_json(run_dir / "config.json")
    path = run_dir / "model.safetensors"
    try:
        tensors = load_safetensors(path.read_bytes())
    except FileNotFoundError:
        raise CheckpointError(f"{path} is missing; train again to recreate it.") from None
    except (SafetensorError, OSError, ValueError):
        raise CheckpointError(f"{path} is not a valid safetensors file; it is damaged, train again.") from None
    name = config.get("model")
    if name not in model.MODELS:
        raise CheckpointError(f"{run_dir / 'config.json'} names model {name!r}, which this fmnist does not know.")
    with torch.random.fork_rng(devices=[]):  # initial values are overwritten: leave the caller's RNG alone
        net = model.build(name)
    try:
        model.import_tensors(net, tensors)
    except ValueError as e:
        raise CheckpointError(f"{path} does not fit model {name!r}: {e}.") from None
    return net.eval(), config
