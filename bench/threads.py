"""Threads per model kind: what `--threads auto` is chosen from.

    .venv/bin/python bench/threads.py            # about two minutes on 2 cores

For each model and its default recipe's batch size, the seconds of a training epoch (estimated from
a fixed number of batches, after two to warm up) with 1 thread and with every core this process may
use, first on an otherwise idle machine, then beside one busy process (a pure-Python loop), as on a
shared machine. The threads change the floating-point results, so `auto` is fixed per model and
machine, never chosen from the moment's load.
"""

from __future__ import annotations

import subprocess
import sys
import time

import torch
from torch import nn

from fmnist import data, model, recipes
from fmnist.settings import available_cores

BATCHES = {"softmax": 200, "mlp": 100, "lenet": 40, "cnn": 25}  # enough for a steady figure


def epoch_seconds(dataset: data.FashionMNIST, name: str, threads: int) -> float:
    """Seconds of one training epoch of model name with threads, from BATCHES[name] timed batches."""
    torch.set_num_threads(threads)
    settings = recipes.recipe_settings(name)
    torch.manual_seed(0)
    net = model.build(name, settings.get("normalize"), settings.get("dropout", 0.0))
    batch = settings.get("batch_size", 256)
    optimizer = torch.optim.SGD(net.parameters(), lr=0.01)
    loss_fn = nn.CrossEntropyLoss()
    order = torch.randperm(len(dataset.train_labels))
    X, y = dataset.train_images, dataset.train_labels
    start = 0.0
    for i in range(2 + BATCHES[name]):
        if i == 2:
            start = time.perf_counter()
        index = order[i * batch : (i + 1) * batch]
        loss = loss_fn(net(X[index]), y[index])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return (time.perf_counter() - start) / BATCHES[name] * len(y) / batch


def table(dataset: data.FashionMNIST, cores: int) -> None:
    for name in BATCHES:
        one, every = epoch_seconds(dataset, name, 1), epoch_seconds(dataset, name, cores)
        print(f"  {name:<8} 1 thread {one:7.3f} s   {cores} threads {every:7.3f} s   ratio {one / every:5.2f}",
              flush=True)


def main() -> None:
    cores = available_cores()
    dataset = data.load()
    print(f"torch {torch.__version__}, {cores} cores this process may use; seconds per training epoch\n")
    print("idle machine")
    table(dataset, cores)
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.5)
        print("\nbeside one busy process")
        table(dataset, cores)
    finally:
        busy.kill()


if __name__ == "__main__":
    main()
