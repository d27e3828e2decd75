"""Speed of fmnist beside the seed notebook's pipeline and a bare lower bound, in one run.

    .venv/bin/python bench/bench.py            # everything (a few minutes on 2 cores)
    .venv/bin/python bench/bench.py --quick    # skip the seed pipeline, the LeNet rows and scikit-learn

Every figure is measured on the real dataset in this process (or its children), so the
ratios compare like with like on the same machine at the same time. An epoch is one pass
of training with the default recipe (batch 256, SGD lr 0.1) plus one pass over the test
set, as metrics.csv counts it. The LeNet rows time one epoch of the book's chapter 6.6
(LeNet, batch 256, lr 0.9, test pass included) through the book's pipeline and through
fmnist.d2l.train_ch6, on the CPU and, when PyTorch sees one, on a CUDA GPU.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import os
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from fmnist import d2l, data, model
from fmnist.settings import Config
from fmnist.train import train

BATCH, LR = 256, 0.1
LENET_LR = 0.9  # the book's, chapter 6.6


def fmnist_epochs(epochs: int, threads: int, device: str = "cpu") -> list[float]:
    """Seconds per epoch of `fmnist train`'s own loop, as written to metrics.csv."""
    with tempfile.TemporaryDirectory() as out:
        train(Config(epochs=epochs, threads=threads, device=device), Path(out), log=lambda line: None, progress=False)
        with open(Path(out) / "metrics.csv") as f:
            return [float(row["seconds"]) for row in csv.DictReader(f)]


def bare_epochs(epochs: int, threads: int) -> list[float]:
    """The simplest in-memory loop of the same recipe: the lower bound fmnist is held to."""
    torch.set_num_threads(threads)
    dataset = data.load()
    X, y, X_test, y_test = dataset.train_images, dataset.train_labels, dataset.test_images, dataset.test_labels
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(784, 10))
    optimizer = torch.optim.SGD(net.parameters(), lr=LR)
    loss_fn = nn.CrossEntropyLoss()
    times = []
    for _ in range(epochs):
        start = time.perf_counter()
        order = torch.randperm(len(y))
        for i in range(0, len(y), BATCH):
            index = order[i : i + BATCH]
            loss = loss_fn(net(X[index]), y[index])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        with torch.no_grad():
            (net(X_test).argmax(1) == y_test).float().mean().item()
        times.append(time.perf_counter() - start)
    return times


class PerImageDataset(torch.utils.data.Dataset):
    """The seed's data path without torchvision, step for step as torchvision's FashionMNIST
    and ToTensor take it: uint8 tensor row -> PIL image -> HWC array -> CHW float32 / 255."""

    def __init__(self, images: np.ndarray, labels: np.ndarray) -> None:
        self.images, self.labels = torch.from_numpy(images), torch.from_numpy(labels)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        from PIL import Image

        picture = Image.fromarray(self.images[i].numpy(), mode="L")
        x = torch.from_numpy(np.array(picture, np.uint8, copy=True))
        x = x.view(picture.size[1], picture.size[0], 1).permute((2, 0, 1)).contiguous()
        return x.to(dtype=torch.get_default_dtype()).div(255), int(self.labels[i])


def book_loaders() -> tuple[torch.utils.data.DataLoader, torch.utils.data.DataLoader]:
    """The book's load_data_fashion_mnist(BATCH) without torchvision: per-image conversion in a
    Dataset, DataLoaders with d2l's 4 worker processes; the training one shuffles."""
    folder = data.locate()
    arrays = {key: data.read_data_file(folder / f.name, f) for key, f in data.FILES.items()}
    train_iter = torch.utils.data.DataLoader(
        PerImageDataset(arrays["train_images"], arrays["train_labels"]), BATCH, shuffle=True, num_workers=4
    )
    test_iter = torch.utils.data.DataLoader(
        PerImageDataset(arrays["test_images"], arrays["test_labels"]), BATCH, num_workers=4
    )
    return train_iter, test_iter


def seed_pipeline_epoch(threads: int) -> float:
    """One epoch of the seed notebook: DataLoader with d2l's 4 workers, the .item() accuracy
    loop, plus a test pass through the same kind of loader. The notebook never set the
    number of threads, so it ran with PyTorch's default: pass that for a faithful figure."""
    torch.set_num_threads(threads)
    train_iter, test_iter = book_loaders()
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(784, 10))
    nn.init.normal_(net[1].weight, std=0.01)
    optimizer = torch.optim.SGD(net.parameters(), lr=LR)
    loss = nn.CrossEntropyLoss(reduction="none")
    start = time.perf_counter()
    collector = torch.empty(0)
    for X, y in train_iter:
        y_hat = net(X)
        _, y_predict = torch.max(y_hat, dim=1)
        right_counter = 0
        for i in range(y_predict.shape[0]):
            if y_predict[i].item() == y[i].item():
                right_counter += 1
        collector = torch.cat((collector, torch.tensor([right_counter / y_predict.shape[0]])))
        optimizer.zero_grad()
        loss(y_hat, y).mean().backward()
        optimizer.step()
    with torch.no_grad():
        sum((net(X).argmax(1) == y).sum().item() for X, y in test_iter)
    return time.perf_counter() - start


def book_lenet_epoch(device: torch.device) -> float:
    """Seconds of one epoch of the book's train_ch6 on LeNet as d2l 0.17 runs it, test pass included:
    the DataLoader pipeline above, each batch moved to device, the loss and the number of correct
    predictions read back after every batch (d2l's Accumulator), then the test batches likewise."""
    train_iter, test_iter = book_loaders()
    torch.manual_seed(0)
    net = model.lenet().to(device)
    optimizer = torch.optim.SGD(net.parameters(), lr=LENET_LR)
    loss_fn = nn.CrossEntropyLoss()
    start = time.perf_counter()
    net.train()
    sums = [0.0, 0.0, 0]  # loss, correct, examples
    for X, y in train_iter:
        X, y = X.to(device), y.to(device)
        optimizer.zero_grad()
        y_hat = net(X)
        loss = loss_fn(y_hat, y)
        loss.backward()
        optimizer.step()
        with torch.no_grad():
            sums = [sums[0] + float(loss) * len(y), sums[1] + float((y_hat.argmax(1) == y).sum()), sums[2] + len(y)]
    net.eval()
    with torch.no_grad():
        sum(float((net(X.to(device)).argmax(1) == y.to(device)).sum()) for X, y in test_iter)
    return time.perf_counter() - start


def fmnist_lenet_epoch(device: torch.device) -> float:
    """Seconds of one epoch of fmnist.d2l.train_ch6 on the same LeNet, test pass, printing and the
    saved figure included (in a temporary folder, printing silenced)."""
    train_iter, test_iter = d2l.load_data_fashion_mnist(BATCH)
    torch.manual_seed(0)
    net = model.lenet()
    cwd = os.getcwd()
    with tempfile.TemporaryDirectory() as folder, contextlib.redirect_stdout(io.StringIO()):
        os.chdir(folder)
        try:
            start = time.perf_counter()
            d2l.train_ch6(net, train_iter, test_iter, 1, LENET_LR, device)
            return time.perf_counter() - start
        finally:
            os.chdir(cwd)


def lenet_rows(device: torch.device, threads: int, report) -> None:
    """The book's pipeline and fmnist's train_ch6, one LeNet epoch each on device, and their ratio."""
    torch.set_num_threads(threads)
    where = f"CUDA ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else f"CPU, {threads} threads"
    if device.type == "cuda":  # CUDA's start-up and kernel selection before either timing
        model.lenet().to(device)(torch.zeros(BATCH, 1, 28, 28, device=device)).sum().backward()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # DataLoader warns that 4 workers exceed 2 cores, as it does for the book
        book = book_lenet_epoch(device)
    ours = fmnist_lenet_epoch(device)
    report(f"LeNet epoch, book's pipeline (PIL per image, 4 workers), {where}", f"{book:8.3f} s")
    report(f"LeNet epoch, fmnist d2l.train_ch6, {where}", f"{ours:8.3f} s")
    report(f"  book's pipeline / fmnist, LeNet on {device.type}", f"{book / ours:8.1f}x")


def process(argv: list[str], env: dict | None = None) -> tuple[float, float, str]:
    """Wall seconds, peak resident MiB and stdout of a fresh process, from start to exit."""
    start = time.perf_counter()
    child = subprocess.Popen(argv, env={**os.environ, **(env or {})}, stdout=subprocess.PIPE, text=True)
    stdout = child.stdout.read()
    _, status, usage = os.wait4(child.pid, 0)
    seconds = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(argv)} failed")
    return seconds, usage.ru_maxrss / 1024, stdout  # ru_maxrss is in KiB on Linux


def whole_runs(cache: str, out: str, pairs: int) -> dict[str, list[float]]:
    """Wall seconds of `python -c "import torch"` and of each command a user waits for, from process
    start to exit, taken in turns (one of each per round) so that a busy moment hits them alike."""
    fmnist = [sys.executable, "-m", "fmnist"]
    commands = {
        "import torch": [sys.executable, "-c", "import torch"],
        "fmnist train": [*fmnist, "train", "--out", f"{out}/run", "--force", "--quiet"],
        "fmnist eval": [*fmnist, "eval", f"{out}/run"],
        "fmnist predict": [*fmnist, "predict", f"{out}/run", "--test-index", "0", "1", "2"],
        "fmnist predict --plot": [*fmnist, "predict", f"{out}/run", "--test-index", *map(str, range(24)),
                                  "--plot", f"{out}/p.png"],  # fmt: skip
        "fmnist show": [*fmnist, "show", "--out", f"{out}/show.png"],
    }
    times: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(pairs):
        for name, argv in commands.items():
            times[name].append(process(argv, {"XDG_CACHE_HOME": cache})[0])
    return times


def load_seconds(cache: str) -> float:
    """Seconds for data.load() in a fresh process (after torch is imported there)."""
    code = "import time, torch\nfrom fmnist import data\nt = time.perf_counter()\ndata.load()\n"
    code += "print(time.perf_counter() - t)"
    return float(process([sys.executable, "-c", code], {"XDG_CACHE_HOME": cache})[2])


def sklearn_row(dataset: data.FashionMNIST) -> tuple[float, float] | None:
    """scikit-learn's multinomial LogisticRegression (lbfgs): fit seconds and test accuracy."""
    try:
        from sklearn.linear_model import LogisticRegression
    except ImportError:
        return None
    X = dataset.train_images.reshape(-1, 784).numpy()
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # lbfgs stops at its default 100 iterations, not converged
        model = LogisticRegression(max_iter=100).fit(X, dataset.train_labels.numpy())
    seconds = time.perf_counter() - start
    return seconds, float(model.score(dataset.test_images.reshape(-1, 784).numpy(), dataset.test_labels.numpy()))


def seconds_to_reach(target: float, max_epochs: int) -> str:
    """Seconds (summed epochs, test passes included) until the default recipe's test
    accuracy first reaches target, or its best accuracy when it never does."""
    with tempfile.TemporaryDirectory() as out:
        train(Config(epochs=max_epochs), Path(out), log=lambda line: None, progress=False)
        with open(Path(out) / "metrics.csv") as f:
            rows = list(csv.DictReader(f))
    elapsed = 0.0
    for row in rows:
        elapsed += float(row["seconds"])
        if float(row["test_acc"]) >= target:
            return f"{elapsed:8.3f} s ({row['epoch']} epochs)"
    best = max(rows, key=lambda row: float(row["test_acc"]))
    return f"not reached in {max_epochs} epochs (best {float(best['test_acc']):.4f}, epoch {best['epoch']})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=7, help="epochs per median (default: 7)")
    parser.add_argument("--quick", action="store_true", help="skip the seed pipeline, the LeNet rows and scikit-learn")
    parser.add_argument("--pairs", type=int, default=7, help="rounds of whole commands taken in turns (default: 7)")
    args = parser.parse_args()
    median = statistics.median
    rows: list[tuple[str, str]] = []

    def report(name: str, value: str) -> None:
        rows.append((name, value))
        print(f"{name:<58}{value}", flush=True)

    default_threads = torch.get_num_threads()
    print(f"torch {torch.__version__}, {os.cpu_count()} CPUs, epoch = train pass + test pass, batch {BATCH}\n")
    ours = {t: median(fmnist_epochs(args.epochs, t)) for t in (1, 2)}
    bare = {t: median(bare_epochs(args.epochs, t)) for t in (1, 2)}
    for t in (1, 2):
        report(f"fmnist epoch, {t} thread(s), median of {args.epochs}", f"{ours[t]:8.3f} s")
        report(f"bare in-memory loop epoch, {t} thread(s), median of {args.epochs}", f"{bare[t]:8.3f} s")
    if torch.cuda.is_available():
        cuda = median(fmnist_epochs(args.epochs, 1, "cuda"))
        report(f"fmnist epoch on CUDA ({torch.cuda.get_device_name()}), median of {args.epochs}", f"{cuda:8.3f} s")

    with tempfile.TemporaryDirectory() as cache, tempfile.TemporaryDirectory() as out:
        report("data load in a fresh process, from the .gz files", f"{load_seconds(cache):8.3f} s")
        report("data load in a fresh process, again (verified cache)", f"{load_seconds(cache):8.3f} s")
        command = [sys.executable, "-m", "fmnist", "train", "--out", f"{out}/run"]
        _, peak, _ = process(command, {"XDG_CACHE_HOME": cache})
        report("`fmnist train` (10 epochs), peak resident memory", f"{peak:8.0f} MiB")
        walls = {name: median(seconds) for name, seconds in whole_runs(cache, out, args.pairs).items()}
        for name, seconds in walls.items():
            report(f"`{name}`, process start to exit, median of {args.pairs}", f"{seconds:8.3f} s")

    if not args.quick:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # DataLoader warns that 4 workers exceed 2 cores, as it did for the seed
            seed = seed_pipeline_epoch(default_threads)
        report(f"seed notebook's pipeline, one epoch ({default_threads} threads, 4 workers)", f"{seed:8.3f} s")
        lenet_rows(torch.device("cpu"), default_threads, report)
        if torch.cuda.is_available():
            lenet_rows(torch.device("cuda"), default_threads, report)
        dataset = data.load()
        fitted = sklearn_row(dataset)
        if fitted is None:
            report("scikit-learn LogisticRegression", "not installed (pip install '.[bench]')")
        else:
            report("scikit-learn LogisticRegression(lbfgs, 100 iter): fit", f"{fitted[0]:8.3f} s")
            report("scikit-learn LogisticRegression: test accuracy", f"{fitted[1]:8.4f}")
            report("fmnist default recipe: time to that test accuracy", seconds_to_reach(fitted[1], 30))

    print("\nratios")
    torch_import = walls["import torch"]
    print(f"  `fmnist train` / `import torch`: {walls['fmnist train'] / torch_import:6.2f}  (target <= 3)")
    for name in ("fmnist eval", "fmnist predict", "fmnist predict --plot", "fmnist show"):
        print(f"  `{name}` / `import torch`: {walls[name] / torch_import:6.2f}")
    print(f"  fmnist / bare loop, 1 thread:  {ours[1] / bare[1]:6.2f}  (target <= 1.5)")
    print(f"  fmnist / bare loop, 2 threads: {ours[2] / bare[2]:6.2f}")
    print(f"  fmnist 2 threads / 1 thread:   {ours[2] / ours[1]:6.2f}  (--threads auto gives softmax 1 thread)")
    if not args.quick:
        print(f"  seed pipeline / fmnist:        {seed / ours[1]:6.1f}x (target >= 30x; softmax's auto, 1 thread)")


if __name__ == "__main__":
    main()
