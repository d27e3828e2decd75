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
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save as save_safetensors

from . import model
from .fileio import write_atomic

METRICS_COLUMNS = ("epoch", "train_loss", "train_acc", "val_acc", "test_acc", "seconds")  # val_acc with --val-size
CHECKPOINT_FORMAT = "fmnist-checkpoint-1"


class CheckpointError(Exception):
    """A run directory is missing, damaged or belongs to something else; the message says what to do."""


def write_json(path: Path, obj: object) -> None:
    """Write obj as indented JSON, atomically."""
    write_atomic(path, (json.dumps(obj, indent=2) + "\n").encode())


def read_json(path: Path) -> dict:
    """Read a JSON object written by write_json."""
    try:
        obj = json.loads(path.read_text())
    except FileNotFoundError:
        raise CheckpointError(f"{path} is missing; is {path.parent} a run directory made by `fmnist train`?") from None
    except (OSError, ValueError, UnicodeDecodeError):
        obj = None
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path} is not a JSON object as fmnist writes it; the run directory is damaged.")
    return obj


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
    try:
        with safe_open(path, framework="pt") as f:
            return {k: f.get_tensor(k) for k in f.keys()}, f.metadata() or {}
    except FileNotFoundError:
        raise
    except (SafetensorError, OSError, ValueError):
        raise CheckpointError(f"{path} is not a valid safetensors file; it is damaged, train again.") from None


def read_metrics(path: Path) -> list[dict]:
    """The rows of a metrics.csv written by write_metrics, with numbers as numbers."""
    try:
        with open(path, newline="") as f:
            return [{k: int(v) if k == "epoch" else float(v) for k, v in row.items()} for row in csv.DictReader(f)]
    except FileNotFoundError:
        raise CheckpointError(f"{path} is missing; is {path.parent} a run directory made by `fmnist train`?") from None
    except (OSError, ValueError, TypeError, UnicodeDecodeError):
        raise CheckpointError(f"{path} is damaged; train again to recreate it.") from None


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


def load_model(run_dir: Path) -> tuple[torch.nn.Module, dict]:
    """The model of a run directory (on the CPU, eval mode) and its config.json."""
    if not run_dir.is_dir():
        raise CheckpointError(f"{run_dir} is not a directory; pass a run directory made by `fmnist train`.")
    config = read_json(run_dir / "config.json")
    path = run_dir / "model.safetensors"
    try:
        tensors, metadata = read_safetensors(path)
    except FileNotFoundError:
        raise CheckpointError(f"{path} is missing; train again to recreate it.") from None
    name = config.get("model")
    if metadata.get("model", name) != name:  # a file written by another tool may carry no metadata
        raise CheckpointError(f"{path} holds model {metadata.get('model')!r} but config.json says {name!r}; "
                              "the run directory is mixed up, train again.")  # fmt: skip
    try:
        with torch.random.fork_rng(devices=[]):  # initial values are overwritten: leave the caller's RNG alone
            net = model.build(name, config.get("normalize"), config.get("dropout", 0.0))
    except (ValueError, TypeError) as e:
        raise CheckpointError(f"{run_dir / 'config.json'} describes a model this fmnist cannot build ({e}).") from None
    try:
        model.import_tensors(net, tensors)
    except ValueError as e:
        raise CheckpointError(f"{path} does not fit model {name!r}: {e}.") from None
    return net.eval(), config


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
    """Read a checkpoint written by save_checkpoint; CheckpointError when missing or damaged."""
    try:
        tensors, metadata = read_safetensors(path)
    except FileNotFoundError:
        raise CheckpointError(f"{path} is missing, so there is nothing to resume; train without --resume.") from None
    try:
        if metadata.get("format") != CHECKPOINT_FORMAT:
            raise ValueError(metadata.get("format"))
        return Checkpoint(path, tensors, json.loads(metadata["param_groups"]), json.loads(metadata["metrics"]))
    except (ValueError, KeyError):
        raise CheckpointError(f"{path} is not an fmnist checkpoint; start again with --force.") from None


def restore_checkpoint(saved: Checkpoint, net: torch.nn.Module, optimizer, shuffle: torch.Generator) -> None:
    """Put the checkpoint's state into net, optimizer, shuffle and the global torch RNG."""
    tensors = saved.tensors
    weights = {k.removeprefix("model."): v for k, v in tensors.items() if k.startswith("model.")}
    optimizer_state: dict[int, dict[str, torch.Tensor]] = {}
    try:
        for key, value in tensors.items():
            if key.startswith("optimizer."):
                _, index, name = key.split(".", 2)
                optimizer_state.setdefault(int(index), {})[name] = value
        model.import_tensors(net, weights)
        optimizer.load_state_dict({"state": optimizer_state, "param_groups": saved.param_groups})
        torch.set_rng_state(tensors["rng.torch"])
        shuffle.set_state(tensors["rng.shuffle"])
        if "rng.cuda" in tensors and torch.cuda.is_available():
            torch.cuda.set_rng_state(tensors["rng.cuda"])
    except (ValueError, KeyError, RuntimeError) as e:
        raise CheckpointError(f"{saved.path} does not fit this run ({e}); start again with --force.") from None
