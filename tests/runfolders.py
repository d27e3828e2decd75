"""Helpers for the tests of run folders under hostile use (issue 18): trained runs made once per session
and copied into each test, what a folder holds byte for byte, the shape of a one-line error, and the words
a real shell makes of a pasted hint.

Every template is trained on conftest's small dataset (make_small_dataset() with its default seed), whose
files have the same checksums as the small_data fixture's: a copy works in any test that uses small_data.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import make_small_dataset, quiet_train, write_dataset

from fmnist import data, results
from fmnist.settings import Config

# The runs the tests start from (200 training images).
TEMPLATES = {
    "sgd": Config(epochs=1, batch_size=50),
    "sgd2": Config(epochs=2, batch_size=50),
    "momentum": Config(epochs=1, batch_size=50, optimizer="momentum", lr=0.05),
    # uneven batches (190 training images in batches of 64: 3 steps an epoch) and a validation split
    "adam": Config(epochs=2, batch_size=64, optimizer="adam", lr=0.01, val_size=10),
    # two models to compare, the mlp worse than the softmax regression
    "soft3": Config(epochs=3, batch_size=20, lr=0.5),
    "mlp": Config(model="mlp", epochs=2, batch_size=50, lr=0.5),
}
ADAM_STEPS_PER_EPOCH = 3
# What eval (and train after its last epoch) writes: a run's results, drawn from its files.
RESULTS = ("summary.json", "report.html", "curves.png", "confusion.png", "mistakes.png", "weights.png")
WITHOUT_RESULTS = ("momentum", "adam")  # only their checkpoints are used: trained without pictures and report


def no_results(monkeypatch) -> None:
    """Training (train, --resume) draws no pictures and writes no summary or report meanwhile: for tests about
    other files, a second or two saved each time. Not for eval, which writes them from what it scores."""
    monkeypatch.setattr(results, "write_results", lambda *args, **kwargs: None)


# Shared by every test module's instance of the fixture (pytest keeps one per module that names it):
_made: dict[str, Path] = {}  # kind -> the folder of its run
_root: list[tuple[Path, dict]] = []  # the templates' folder, and the FILES table of their small dataset


@pytest.fixture(scope="session")
def trained(tmp_path_factory) -> Callable[[str], Path]:
    """trained(kind): the folder of a finished run of TEMPLATES[kind], trained once per session (with its
    summary, pictures and report unless WITHOUT_RESULTS); never change it, copy it (copy_run)."""

    def make(kind: str) -> Path:
        if not _root:
            folder = tmp_path_factory.mktemp("templates")
            _root.append((folder, write_dataset(folder / "data", make_small_dataset())))
        root, files = _root[0]
        if kind not in _made:
            with pytest.MonkeyPatch.context() as patch:
                patch.setattr(data, "FILES", files)
                if kind in WITHOUT_RESULTS:
                    no_results(patch)
                data._load_folder.cache_clear()
                quiet_train(TEMPLATES[kind], root / kind, data_dir=root / "data")
                data._load_folder.cache_clear()
            _made[kind] = root / kind
        return _made[kind]

    return make


@pytest.fixture
def run_dir(small_data, trained, tmp_path) -> Path:
    """A copy of a finished one-epoch run of the seed recipe (batch 50) on the small dataset, with its results:
    trained once per session (TEMPLATES["sgd"]), a fresh copy for each test."""
    return copy_run(trained("sgd"), tmp_path / "run")


def copy_run(template: Path, to: Path) -> Path:
    """A copy of the run folder template at to (made with its parents); returns to."""
    to.parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(template, to)
    return to


def snapshot(folder: Path) -> dict[str, object]:
    """What folder holds, by name: a regular file's bytes and inode, or what else an entry is (its file type
    and, for a link, its target). Equal snapshots: nothing in the folder was written, removed or replaced,
    not even with the same bytes (fmnist writes a file anew and renames it over the old one: a new inode)."""
    held: dict[str, object] = {}
    for entry in sorted(os.scandir(folder), key=lambda e: e.name):
        info = entry.stat(follow_symlinks=False)
        mode = info.st_mode
        if stat.S_ISREG(mode):
            held[entry.name] = (Path(entry.path).read_bytes(), info.st_ino)
        elif stat.S_ISLNK(mode):
            held[entry.name] = ("link", os.readlink(entry.path))
        else:
            held[entry.name] = ("type", stat.S_IFMT(mode))
    return held


def one_line_error(err: str) -> None:
    """err is fmnist's one-line error: one line, "fmnist: error: ...", no traceback."""
    assert err.startswith("fmnist: error: ") and err.count("\n") == 1 and "Traceback" not in err, err


def shell_words(line: str) -> list[str]:
    """The words bash makes of line, a command pasted into it (quotes, $, backslashes as bash reads them),
    as file names in Python (bytes that are not UTF-8 as surrogate escapes, like os.fsdecode)."""
    done = subprocess.run(["bash", "-c", f"printf '%s\\0' {line}"], capture_output=True, timeout=30)
    assert done.returncode == 0, done.stderr
    return [os.fsdecode(word) for word in done.stdout.split(b"\0")[:-1]]


def read_checkpoint_file(path: Path) -> tuple[dict, list, list]:
    """A checkpoint's tensors, optimizer param_groups and metrics rows, read with safetensors alone."""
    from safetensors.torch import load_file

    with open(path, "rb") as f:
        metadata = json.loads(f.read(int.from_bytes(f.read(8), "little")))["__metadata__"]
    return load_file(path), json.loads(metadata["param_groups"]), json.loads(metadata["metrics"])


def write_checkpoint_file(path: Path, tensors: dict, groups: list, rows: list) -> None:
    """Write a checkpoint in fmnist's format (safetensors with its metadata) with safetensors alone."""
    from safetensors.torch import save_file

    metadata = {"format": "fmnist-checkpoint-1", "param_groups": json.dumps(groups), "metrics": json.dumps(rows)}
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(path), metadata=metadata)


def read_only(folder: Path, *args: str) -> subprocess.CompletedProcess:
    """`fmnist ARGS` (on the small dataset) with folder mounted read-only, in a mount namespace of its own."""
    if shutil.which("unshare") is None or subprocess.run(["unshare", "-rm", "true"]).returncode != 0:
        pytest.skip("needs unshare to mount a folder read-only")
    script = str(Path(__file__).with_name("small_fmnist.py"))
    mount_read_only = 'mount --bind -o ro "$0" "$0" && exec "$@"'
    return subprocess.run(["unshare", "-rm", "sh", "-c", mount_read_only, str(folder), sys.executable, script, *args],
                          capture_output=True, text=True, timeout=120)  # fmt: skip


def rewrite_config(run: Path, **changes) -> None:
    """Put changes into run's config.json (as a user or another tool would edit it)."""
    config = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps({**config, **changes}))
