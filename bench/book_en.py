"""The English edition's chapters (d2l.ai, d2l 1.x) with fmnist and with d2l 1.0.3 itself, side by side.

    .venv/bin/python bench/book_en.py [--chapters 4.5 7.6 19.2] [--trials 3] [--threads 1] [--venv DIR] [--workdir DIR]

Each chapter runs as a script of its PyTorch cells (the copies in tests/data/d2l-en, in order), once
with ``from d2l import torch as d2l`` in the d2l venv and once with ``from fmnist.d2l import en as d2l``
in fmnist's, each in its own process, one after the other, with the same seeds; the cells are the
book's and nothing else changes, but for the HPO chapter's number of trials (``--trials`` of its 5).
Measured: the whole process (start to exit) and each cell. The chapters: 4.5 softmax regression
(concise, 10 epochs), 7.6 LeNet (``Trainer.fit``, 10 epochs) and 19.2's random search (LeNet trials of
10 epochs).

d2l 1.0.3 needs torchvision, which cannot live beside fmnist's CPU build of torch, so the first run
builds its own venv (``--venv``): ``pip install torch==2.14.1 torchvision==0.29.1`` (taken from this
machine's disk where it holds them), then ``d2l==1.0.3`` without its pinned dependencies and the ones
its ``torch`` module imports. d2l reads torchvision's dataset folder ``../data/FashionMNIST/raw``, which
is filled from the Debian package's files (decompressed), so nothing is downloaded. d2l's loaders keep
their defaults (4 worker processes); fmnist's data come from its verified cache. Both main processes
get ``--threads`` OpenMP threads (OMP_NUM_THREADS; 0 leaves PyTorch's default, one per core): on a
2-core machine shared with other jobs, two threads per process wait for each other's cores and a
run's time follows the other jobs' load (seen: 77 s instead of 5 s for fmnist's softmax chapter), so
the default is 1 for both; the load average is printed before and after.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from d2l_chapters import BOOK_IMPORT, FMNIST_IMPORT, chapter_file, pytorch_cells  # noqa: E402

DATA = Path("/usr/share/datasets/fashion-mnist")
D2L_PACKAGES = (["torch==2.14.1", "torchvision==0.29.1"], ["--no-deps", "d2l==1.0.3"],
                ["matplotlib", "matplotlib-inline", "ipython", "pandas", "requests", "scipy"])  # fmt: skip
PRELUDE = """import json, time
import numpy as _np, torch as _torch
class _Tab:  # d2lbook keeps the PyTorch branches of `if tab.selected(...)` in the PyTorch notebooks
    selected = staticmethod(lambda *tabs: "pytorch" in tabs)
tab = _Tab()
_np.random.seed(0)
_torch.manual_seed(0)
_cells = []
"""
RESULT = """
_board = [v for v in (globals().get("model"), globals().get("tuner")) if v is not None][0]
_last = (_board.board.data["val_acc"][-1].y if hasattr(_board, "board") else _board.incumbent_error)
print("BENCH " + json.dumps({"cells": _cells, "last": float(_last)}))
"""


def script(number: str, fmnist: bool, trials: int) -> str:
    """The chapter's PyTorch cells as a script that times each cell and prints the results."""
    parts = [PRELUDE]
    for source in pytorch_cells(chapter_file(number).read_text()):
        if fmnist:
            source = source.replace(BOOK_IMPORT, FMNIST_IMPORT)
        source = re.sub(r"number_of_trials=\d+", f"number_of_trials={trials}", source)
        parts.append(f"_t = time.perf_counter()\n{source}\n_cells.append(time.perf_counter() - _t)\n")
    return "\n".join(parts) + RESULT


def setup_d2l(venv: Path, workdir: Path) -> None:
    """The d2l 1.0.3 venv and torchvision's copy of the data in workdir/data, once."""
    python = venv / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        for packages in D2L_PACKAGES:
            subprocess.run([str(python), "-m", "pip", "install", "--quiet", *packages], check=True)
    raw = workdir / "data" / "FashionMNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for gz in DATA.glob("*-ubyte.gz"):
        target = raw / gz.stem
        if not target.exists():
            with gzip.open(gz) as src, open(target, "wb") as dst:
                shutil.copyfileobj(src, dst)


def run(python: Path, text: str, workdir: Path, threads: int) -> dict:
    """Run text as a script with python in workdir/run; the process's wall time and what it printed."""
    path = workdir / "run" / "chapter.py"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    env = {**os.environ, "MPLBACKEND": "Agg"}
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    start = time.perf_counter()
    done = subprocess.run([str(python), str(path)], cwd=path.parent, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{python} {path} failed:\n{done.stderr[-3000:]}")
    (line,) = [line for line in done.stdout.splitlines() if line.startswith("BENCH ")]
    return {"process": seconds, **json.loads(line[len("BENCH ") :])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chapters", nargs="+", default=["4.5", "7.6", "19.2"], choices=["4.5", "7.6", "19.2"])
    parser.add_argument("--trials", type=int, default=3, help="trials of 19.2's random search (the book: 5)")
    parser.add_argument("--threads", type=int, default=1, help="OpenMP threads per main process (0: default)")
    parser.add_argument("--venv", type=Path, default=Path("/work/venv-d2l"), help="the d2l 1.0.3 venv")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/fmnist-bench-d2l"))
    args = parser.parse_args()
    setup_d2l(args.venv, args.workdir)
    pythons = {"d2l 1.0.3": args.venv / "bin" / "python", "fmnist": Path(sys.executable)}
    warm = {"d2l 1.0.3": "import torchvision; torchvision.datasets.FashionMNIST('../data', download=True)",
            "fmnist": "from fmnist import data; data.load()"}  # fmt: skip
    for name, python in pythons.items():
        (args.workdir / "run").mkdir(exist_ok=True)
        subprocess.run([str(python), "-c", warm[name]], cwd=args.workdir / "run", check=True, capture_output=True)
    chapters = {"4.5 softmax regression (concise), 10 epochs": ("4.5", -1),
                "7.6 LeNet, 10 epochs": ("7.6", -1),
                f"19.2 random search, {args.trials} LeNet trials of 10 epochs": ("19.2", -2)}  # fmt: skip
    print(f"load average {os.getloadavg()[0]:.2f} before, threads {args.threads or 'default'}", flush=True)
    print("| chapter | measured | d2l 1.0.3 | fmnist | ratio |\n|---|---|---|---|---|", flush=True)
    for title, (number, cell) in chapters.items():
        if number not in args.chapters:
            continue
        results = {name: run(python, script(number, name == "fmnist", args.trials), args.workdir, args.threads)
                   for name, python in pythons.items()}  # fmt: skip
        d2l, ours = results["d2l 1.0.3"], results["fmnist"]
        rows = (("whole chapter, process start to exit", d2l["process"], ours["process"]),
                ("its training cell", d2l["cells"][cell], ours["cells"][cell]))  # fmt: skip
        for what, theirs, mine in rows:
            print(f"| {title} | {what} | {theirs:.1f} s | {mine:.1f} s | {theirs / mine:.1f}x |", flush=True)
        print(
            f"|  | last validation accuracy (19.2: best error) | {d2l['last']:.3f} | {ours['last']:.3f} |  |",
            flush=True,
        )

    print(f"load average {os.getloadavg()[0]:.2f} after", flush=True)


if __name__ == "__main__":
    main()
