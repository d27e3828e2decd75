"""Where the time of one `fmnist train` goes: its steps timed in one process, on the real dataset.

    .venv/bin/python bench/timeline.py             # the default recipe into a temporary folder

Each line is a step of `fmnist train --quiet` as the command runs it (the same `cli.main`), with
the seconds it took; the epochs and their test passes are summed. The interpreter's own start
(about 0.03 s) comes before the first line; the interpreter's teardown after the last line is not
in it (time the whole process with bench/bench.py).
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

from fmnist import cli, data, evaluate, metrics, report, results, rundir, train  # noqa: E402

STEPS = {  # (module, function): what it is called here; the ones marked summed are added up over the run
    (data, "load"): "load and verify the data",
    (train, "train_epoch"): "training passes (summed)",
    (metrics, "evaluate"): "test passes after each epoch (summed)",
    (rundir.RunDir, "keep"): "config.json, metrics.csv, weights and checkpoint each epoch (summed)",
    (evaluate, "evaluate"): "the final test pass (probabilities, confusion matrix)",
    (results, "write_results"): "results: import matplotlib, draw four pictures, the report (all of it)",
    (report, "sprite"): "  of which the report's sprite of the test images",
    (report, "report_page"): "  of which the report's page",
    (rundir.RunDir, "write_results"): "  of which writing the results' files",
}


def main() -> None:
    seconds: dict[str, float] = defaultdict(float)
    for (owner, name), step in STEPS.items():
        setattr(owner, name, _timed(getattr(owner, name), step, seconds))
    with tempfile.TemporaryDirectory() as folder:
        code = cli.main(["train", "--quiet", "--out", str(Path(folder) / "run"), *sys.argv[1:]])
    total = time.perf_counter() - START
    print(f"{'import torch':72s} {IMPORTED_TORCH - START:6.3f} s")
    for step, value in seconds.items():
        print(f"{step:72s} {value:6.3f} s")
    print(f"{'everything else (imports of fmnist, config, summary, files)':72s} "
          f"{total - (IMPORTED_TORCH - START) - sum(v for k, v in seconds.items() if not k.startswith(' ')):6.3f} s")
    print(f"{'the whole command in this process (exit code ' + str(code) + ')':72s} {total:6.3f} s")


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
