"""fmnist tune's search of softmax-regression trials against the same trials trained one at a time, in one run.

    .venv/bin/python bench/tune.py                       # 64 trials of 10 epochs, once (~4 min on 2 cores)
    .venv/bin/python bench/tune.py --trials 16 --repeat 3

On the real dataset, every trial scored on fmnist tune's validation split (10,000 held-out training images)
after each epoch, one PyTorch thread, each repeat times side by side:
- one trial alone: the default recipe as a search trains it (trials.SingleTrial, fmnist train's loop);
- the search: fmnist tune's worker on a new SQLite study (random sampler, no pruning, all K trials asked and
  trained together), Optuna's asks, per-epoch reports and tells included, with 1 PyTorch thread (what
  --threads auto gives softmax regression) and with 2 (--threads 2); the search space is what a search of the
  linear model tries (optimizer, learning rate on a log scale, weight decay, schedule, label smoothing);
- the same K trials (the settings the search drew) one after another, each alone;
- the whole `fmnist tune` process of the same command, start to exit (its start-up, the best trial trained
  again on all 60,000 images, the pictures and tune.html included).
The medians of the repeats are printed last, with the ratios.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from fmnist import data, searchspace, trials, tune
from fmnist.settings import Config, option

SPACE = {"optimizer": "sgd,momentum,adam", "lr": "0.0001:1:log", "weight_decay": "0,0.0001,0.001",
         "schedule": "constant,cosine", "label_smoothing": "0,0.1"}  # fmt: skip
VAL_SIZE = 10_000


def alone(config: Config, dataset: data.FashionMNIST) -> float:
    """Seconds to train config alone, its validation split scored after each epoch."""
    start = time.perf_counter()
    for _ in trials.SingleTrial(config, dataset).epochs():
        pass
    return time.perf_counter() - start


def search(plan: tune.Plan, count: int, dataset: data.FashionMNIST, folder: Path) -> tuple[float, list[Config]]:
    """Seconds of fmnist tune's search of count trials trained together on a new SQLite study, and their settings."""
    folder.mkdir()
    url = f"sqlite:///{folder / 'study.db'}"
    study, storage = tune.open_study(url, "bench", plan)
    worker = tune.Worker(study, storage, plan, dataset, together=count, say=lambda line: None)
    start = time.perf_counter()
    worker.run(count)
    seconds = time.perf_counter() - start
    return seconds, [plan.config(trial.params) for trial in study.trials]


def process(count: int, epochs: int, folder: Path) -> float:
    """Seconds of one `fmnist tune` process of the same search, start to exit."""
    fmnist = Path(sys.executable).with_name("fmnist")
    options = [f"{option(name)}={text}" for name, text in SPACE.items()]
    start = time.perf_counter()
    subprocess.run([str(fmnist), "tune", "--out", str(folder / "sweep"), "--trials", str(count), "--together",
                    str(count), "--sampler", "random", "--pruner", "none", "--epochs", str(epochs), "--quiet",
                    *options], check=True, stdout=subprocess.DEVNULL)  # fmt: skip
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(1)
    dataset = data.load()
    fixed = {**vars(Config()), "epochs": args.epochs, "val_size": VAL_SIZE, "device": "cpu"}
    space = {name: searchspace.parse(name, text) for name, text in SPACE.items()}
    plans = {threads: tune.Plan({k: v for k, v in {**fixed, "threads": threads}.items() if k not in space}, space,
                                "random", "none") for threads in (1, 2)}  # fmt: skip
    names = ("one trial alone", f"fmnist tune's search, {args.trials} together, 1 thread",
             f"fmnist tune's search, {args.trials} together, 2 threads", f"{args.trials} one after another",
             "one `fmnist tune` process")  # fmt: skip
    times: dict[str, list[float]] = {name: [] for name in names}
    for repeat in range(args.repeat):
        with tempfile.TemporaryDirectory() as folder:
            times[names[0]].append(alone(Config(**fixed), dataset))
            seconds, configs = search(plans[1], args.trials, dataset, Path(folder) / "1")
            times[names[1]].append(seconds)
            times[names[2]].append(search(plans[2], args.trials, dataset, Path(folder) / "2")[0])
            start = time.perf_counter()
            for config in configs:
                alone(config, dataset)
            times[names[3]].append(time.perf_counter() - start)
            times[names[4]].append(process(args.trials, args.epochs, Path(folder)))
        print(f"repeat {repeat + 1}: " + ", ".join(f"{name} {t[-1]:.2f} s" for name, t in times.items()), flush=True)
    median = {name: statistics.median(t) for name, t in times.items()}
    one = median[names[0]]
    print(f"\nmedians of {args.repeat} repeat(s), {args.trials} trials of {args.epochs} epochs:")
    for name, seconds in median.items():
        print(f"  {name:50s} {seconds:7.2f} s  {seconds / one:6.2f}x one trial")
    best = min(median[names[1]], median[names[2]])
    print(f"fmnist tune's search of {args.trials} trials (best of 1 and 2 threads) took {best / one:.1f}x the time of "
          f"one trial alone, {median[names[3]] / best:.1f}x less than the same trials one after another")  # fmt: skip


if __name__ == "__main__":
    main()
