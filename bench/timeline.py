"""Where the time of one `fmnist train` goes: its steps timed in one process, on the real dataset.

    .venv/bin/python bench/timeline.py             # the default recipe into a temporary folder

Each line is a step of `fmnist train --quiet` as the command runs it (the same `cli.main`), with
the seconds it took; the epochs and their test passes are summed. The interpreter's own start
(about 0.03 s) comes before the first line. Time spent in the painter processes shows only where
this process waits for them.
"""

from __future__ import annotations

import time

START = time.perf_counter()

import sys  # noqa: E402
import tempfile  # noqa: E402
from collections import defaultdict  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402, F401  (timed: the first import of the command)

IMPORTED_TORCH = time.perf_counter()

from fmnist import cli, data, metrics, painters, report, train  # noqa: E402

STEPS = {  # (module, function): what it is called here; the ones marked summed are added up over the run
    (data, "load"): "load and verify the data",
    (painters.Painters, "__init__"): "fork the painters",
    (train, "train_epoch"): "training passes (summed)",
    (metrics, "evaluate"): "test passes after each epoch (summed)",
    (checkpoint, "save_checkpoint"): "checkpoint, weights and metrics.csv each epoch (summed)",
    (checkpoint, "save_model"): "checkpoint, weights and metrics.csv each epoch (summed)",
    (checkpoint, "write_metrics"): "checkpoint, weights and metrics.csv each epoch (summed)",
    (report, "explorer"): "the report's test-set data (sprite made by a painter)",
    (painters.Painters, "_result"): "waiting for the painters (summed)",
    (report, "write_report"): "write report.html",
    (painters.Painters, "close"): "stop the painters",
}


def main() -> None:
    seconds: dict[str, float] = defaultdict(float)
    for (owner, name), step in STEPS.items():
        setattr(owner, name, _timed(getattr(owner, name), step, seconds))
    with tempfile.TemporaryDirectory() as folder:
        code = cli.main(["train", "--quiet", "--out", str(Path(folder) / "run"), *sys.argv[1:]])
    total = time.perf_counter() - START
    print(f"{'import torch':60s} {IMPORTED_TORCH - START:6.3f} s")
    for step, value in seconds.items():
        print(f"{step:60s} {value:6.3f} s")
    print(f"{'everything else (imports of fmnist, config, summary, files)':60s} "
          f"{total - (IMPORTED_TORCH - START) - sum(seconds.values()):6.3f} s")  # fmt: skip
    print(f"{'the whole command in this process (exit code ' + str(code) + ')':60s} {total:6.3f} s")


def _timed(function, step: str, seconds: dict[str, float]):
    def timed(*args, **kwargs):
        start = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            seconds[step] += time.perf_counter() - start

    return timed


if __name__ == "__main__":
    main()
