"""Softmax-regression trials trained together (fmnist.trials) against one at a time, in one run.

    .venv/bin/python bench/trials.py                       # 64 trials of 10 epochs, 3 repeats (~15 min on 2 cores)
    .venv/bin/python bench/trials.py --trials 16 --repeat 1

Every repeat times, side by side on the real dataset in this process: one trial of the default
recipe alone (SingleTrial: fmnist train's loop without the run folder); the K trials together
(TrialGroup) with 1 and with 2 PyTorch threads; the same K trials one after another, each
alone; and one whole `fmnist train` process for reference (start-up, pictures and report
included). Every trial scores the test set after each epoch, as fmnist train does. The K
trials are what a search over the linear model tries: optimizer, learning rate (log scale),
weight decay, schedule and label smoothing drawn at random, the data path shared (batch 256,
seed 0, raw pixels). The medians of the repeats are printed last, with the ratios.
"""

from __future__ import annotations

import argparse
import math
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from fmnist import data, trials
from fmnist.settings import Config

LR_RANGES = {"sgd": (0.01, 1.0), "momentum": (0.001, 0.1), "adam": (1e-4, 1e-2)}


def search_configs(count: int, epochs: int, val_size: int, threads: int) -> list[Config]:
    """count settings drawn as a random search would draw them (seed 0), sharing the data path."""
    rng = random.Random(0)
    configs = []
    for _ in range(count):
        optimizer = rng.choice(sorted(LR_RANGES))
        low, high = LR_RANGES[optimizer]
        configs.append(Config(epochs=epochs, val_size=val_size, device="cpu", threads=threads, optimizer=optimizer,
                              lr=math.exp(rng.uniform(math.log(low), math.log(high))),
                              weight_decay=rng.choice([0.0, 1e-4, 1e-3]), schedule=rng.choice(["constant", "cosine"]),
                              label_smoothing=rng.choice([0.0, 0.1])))  # fmt: skip
    return configs


def alone(config: Config, dataset: data.FashionMNIST) -> tuple[float, list[dict]]:
    """Seconds to train config alone, and its rows."""
    start = time.perf_counter()
    single = trials.SingleTrial(config, dataset, test=True)
    for _ in single.epochs():
        pass
    return time.perf_counter() - start, single.outcomes[0].rows


def together(configs: list[Config], dataset: data.FashionMNIST) -> tuple[float, list[list[dict]]]:
    """Seconds to train configs together, and their rows."""
    start = time.perf_counter()
    group = trials.TrialGroup(configs, dataset, test=True)
    for _ in group.epochs():
        pass
    return time.perf_counter() - start, [outcome.rows for outcome in group.outcomes]


def process(epochs: int) -> float:
    """Seconds of one `fmnist train --epochs N` process, start to exit."""
    fmnist = Path(sys.executable).with_name("fmnist")
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        subprocess.run([str(fmnist), "train", "--epochs", str(epochs), "--out", out, "--force", "--quiet"],
                       check=True, stdout=subprocess.DEVNULL)  # fmt: skip
        return time.perf_counter() - start


def matmul_rate(K: int, batch: int, threads: int) -> float:
    """GFLOP/s of this machine's float32 matmul of the group's shape, X [batch, 784] by [784, 10*K]."""
    torch.set_num_threads(threads)
    X, W = torch.rand(batch, 784), torch.rand(10 * K, 784)
    for _ in range(3):
        X @ W.T
    start = time.perf_counter()
    for _ in range(50):
        X @ W.T
    return 50 * 2 * batch * 784 * 10 * K / (time.perf_counter() - start) / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--val-size", type=int, default=0)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    K, batch = args.trials, 256
    dataset = data.load()
    n_train = len(dataset.train_labels) - args.val_size
    steps = math.ceil(n_train / batch)
    scored = len(dataset.test_labels) + args.val_size
    flop = 2 * 784 * 10 * K * (2 * n_train + scored) * args.epochs
    print(f"{K} trials x {args.epochs} epochs: {steps} steps of batch {batch} per epoch; per step one matmul "
          f"[{batch}, 784] x [784, {10 * K}] for the logits and one for the weight gradient, and {scored:,} images "
          f"scored per epoch: {flop / 1e12:.2f} TFLOP in all ({flop / K / 1e9:.1f} GFLOP per trial)")
    rates = {threads: matmul_rate(K, batch, threads) for threads in (1, 2)}
    print("matmul of that shape here: " + ", ".join(f"{r:.0f} GFLOP/s with {t} thread(s), so at least "
                                                     f"{flop / r / 1e9:.1f} s" for t, r in rates.items()))
    torch.set_num_threads(1)
    configs = {threads: search_configs(K, args.epochs, args.val_size, threads) for threads in (1, 2)}
    default = Config(epochs=args.epochs, val_size=args.val_size, device="cpu")
    names = ("one trial alone", "together, 1 thread", "together, 2 threads", f"{K} one after another",
             "one `fmnist train` process")  # fmt: skip
    times: dict[str, list[float]] = {name: [] for name in names}
    for repeat in range(args.repeat):
        times[names[0]].append(alone(default, dataset)[0])
        seconds, rows_together = together(configs[1], dataset)
        times[names[1]].append(seconds)
        times[names[2]].append(together(configs[2], dataset)[0])
        start, rows_alone = time.perf_counter(), [alone(config, dataset)[1] for config in configs[1]]
        times[names[3]].append(time.perf_counter() - start)
        times[names[4]].append(process(args.epochs))
        print(f"repeat {repeat + 1}: " + ", ".join(f"{name} {t[-1]:.2f} s" for name, t in times.items()), flush=True)
    differ = [abs(a[-1]["test_acc"] - b[-1]["test_acc"]) for a, b in zip(rows_together, rows_alone, strict=True)
              if a and b]  # fmt: skip
    print(f"final test accuracy, together vs alone: the same in {differ.count(0.0)} of {len(differ)} trials, "
          f"largest difference {max(differ):.4f} (a learning rate beyond the stable range amplifies rounding, as "
          "fmnist train's results change with the number of threads)")  # fmt: skip
    median = {name: statistics.median(t) for name, t in times.items()}
    one, best = median[names[0]], min(median[names[1]], median[names[2]])
    print(f"\nmedians of {args.repeat} repeat(s):")
    for name, seconds in median.items():
        print(f"  {name:28s} {seconds:7.2f} s  {seconds / one:6.2f}x one trial")
    mean = median[names[3]] / K
    print(f"{K} trials together (best of 1 and 2 threads) take {best / one:.1f}x the time of one trial alone "
          f"({best / mean:.1f}x the mean time of the {K} trained alone, {mean:.2f} s), {median[names[3]] / best:.1f}x "
          f"less than one after another; the matmuls alone need {flop / max(rates.values()) / 1e9 / one:.1f}x "
          "one trial at this machine's matmul rate")  # fmt: skip


if __name__ == "__main__":
    main()
