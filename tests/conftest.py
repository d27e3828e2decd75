"""Shared fixtures: small IDX datasets written by the tests, and the real dataset."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import shutil
import struct
import subprocess
import sys
import zlib
from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure

from fmnist import data
from fmnist.d2l import figures as bookplots

REAL_DIR = data.SYSTEM_DIR
pytest_plugins = ["runfolders"]  # its fixtures (trained runs, run_dir) for every test module


def idx_bytes(array: np.ndarray) -> bytes:
    """IDX encoding written with struct, independently of fmnist's numpy parser."""
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(np.uint8).tobytes()


def make_small_dataset(n_train: int = 200, n_test: int = 100, seed: int = 0) -> dict[str, np.ndarray]:
    """A learnable toy dataset: class k is a bright horizontal band at rows 2k..2k+3, plus noise."""
    rng = np.random.default_rng(seed)
    arrays = {}
    for split, n in (("train", n_train), ("test", n_test)):
        labels = np.arange(n) % 10
        rng.shuffle(labels)
        images = rng.integers(0, 60, size=(n, 28, 28), dtype=np.uint8)
        for i, k in enumerate(labels):
            images[i, 2 * k + 2 : 2 * k + 6, :] = 255
        arrays[f"{split}_images"], arrays[f"{split}_labels"] = images, labels.astype(np.uint8)
    return arrays


def write_dataset(folder: Path, arrays: dict[str, np.ndarray]) -> dict[str, data.DataFile]:
    """Write arrays as the four .gz files; returns the FILES table that accepts them."""
    folder.mkdir(parents=True, exist_ok=True)
    files = {}
    for key, array in arrays.items():
        raw = idx_bytes(array)
        name = data.FILES[key].name
        (folder / name).write_bytes(gzip.compress(raw))
        files[key] = data.DataFile(name, hashlib.sha256(raw).hexdigest(), array.shape)
    return files


@lru_cache(maxsize=1)
def gzip_bomb(size: int = 32 << 20) -> bytes:
    """A valid gzip file of about 32 KB that unpacks to size zero bytes."""
    packer, zeros = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS), bytes(1 << 20)
    return b"".join(packer.compress(zeros) for _ in range(size >> 20)) + packer.flush()


@pytest.fixture(autouse=True)
def isolated_environment(tmp_path_factory, monkeypatch):
    """No test reads or writes the user's cache, or sees a developer's FMNIST_* settings."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("cache")))
    monkeypatch.delenv("FMNIST_DATA", raising=False)
    monkeypatch.delenv("FMNIST_MIRRORS", raising=False)
    data._load_folder.cache_clear()
    yield
    data._load_folder.cache_clear()


@pytest.fixture
def small_arrays() -> dict[str, np.ndarray]:
    return make_small_dataset()


@pytest.fixture
def small_data(tmp_path, monkeypatch, small_arrays) -> Path:
    """A folder with a small dataset that fmnist accepts (FILES patched to its checksums and shapes);
    also the $FMNIST_DATA folder, so code that takes no data_dir finds it."""
    folder = tmp_path / "small-data"
    files = write_dataset(folder, small_arrays)
    monkeypatch.setattr(data, "FILES", files)
    monkeypatch.setenv("FMNIST_DATA", str(folder))
    monkeypatch.setenv("FMNIST_TEST_FILES", json.dumps({k: [f.name, f.sha256, f.shape] for k, f in files.items()}))
    return folder


def small_fmnist(*args: str, **kwargs) -> subprocess.Popen:
    """`fmnist ARGS` in a child process that accepts the small_data fixture's dataset."""
    script = Path(__file__).with_name("small_fmnist.py")
    return subprocess.Popen([sys.executable, str(script), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, **kwargs)  # fmt: skip


def wait_for_line(process: subprocess.Popen, prefix: str) -> None:
    """Read process's stdout until a line starts with prefix; AssertionError (with its stderr) if none does."""
    for line in process.stdout:
        if line.startswith(prefix):
            return
    raise AssertionError(f"no line starting {prefix!r}; stderr: {process.stderr.read()}")


@pytest.fixture
def drawn(monkeypatch) -> list[Figure]:
    """The matplotlib figures saved during the test, in order: what was drawn, not only the PNG."""
    figures = []
    savefig = Figure.savefig

    def spy(fig, *args, **kwargs):
        figures.append(fig)
        return savefig(fig, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", spy)
    return figures


# Tests marked with these are left out of a plain `pytest` (a few minutes on 2 cores); `pytest --all` (what
# `make test` and CI run) runs them too. A test is marked by what it uses: the fixtures below mark theirs.
OPTIONAL = ("slow", "realdata", "browser", "postgres")
MARKED_BY_FIXTURE = {"real_dir": "realdata", "chromium": "browser", "postgres_url": "postgres"}


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--all", action="store_true",
                     help=f"also run the tests marked {', '.join(OPTIONAL)} (make test and CI do)")  # fmt: skip


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        for fixture, marker in MARKED_BY_FIXTURE.items():
            if fixture in item.fixturenames:
                item.add_marker(marker)
    if config.getoption("--all") or config.getoption("-m"):  # a -m expression chooses for itself
        return
    left_out = [item for item in items if any(item.get_closest_marker(marker) for marker in OPTIONAL)]
    if left_out:
        config.hook.pytest_deselected(items=left_out)
        items[:] = [item for item in items if item not in set(left_out)]


@pytest.fixture(scope="session")
def real_dir() -> Path:
    """The real dataset from the Debian package dataset-fashion-mnist (`make test` installs it)."""
    if not data.has_all_files(REAL_DIR):
        pytest.fail(f"the real dataset is not in {REAL_DIR}: apt-get install dataset-fashion-mnist (make test does)")
    return REAL_DIR


@pytest.fixture(scope="session")
def chromium() -> str:
    """Debian's Chromium, run headless by tests/browser.py (`make test` installs it)."""
    path = shutil.which("chromium")
    if path is None:
        pytest.fail("headless Chromium is needed to check the report's pages: apt-get install chromium "
                    "(make test does)")  # fmt: skip
    return path


@pytest.fixture
def headless(tmp_path, monkeypatch):
    """For the book's API: the test's own working directory (where figures are saved), figure numbers
    from 1, one PyTorch thread (2 shared cores), and pyplot's figures closed after the test."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(bookplots, "_saved", {})
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
    from matplotlib import pyplot

    pyplot.close("all")


def quiet_train(config, out: Path, **kwargs) -> dict:
    """fmnist.train.train without printing: the run's summary."""
    from fmnist.train import train

    return train(config, out, log=lambda line: None, progress=False, **kwargs)


def stop_in_epoch(patched: pytest.MonkeyPatch, n: int) -> None:
    """Through patched, make the n-th call of fmnist.train.train_epoch a Ctrl-C (KeyboardInterrupt) at its start."""
    from fmnist import train as train_module

    real_epoch, calls = train_module.train_epoch, []

    def stopping(*args, **kwargs):
        calls.append(1)
        if len(calls) == n:
            raise KeyboardInterrupt
        return real_epoch(*args, **kwargs)

    patched.setattr(train_module, "train_epoch", stopping)


def run_notebook(cells: list[str], folder: Path) -> list:
    """cells run in order, as one notebook, by a real Jupyter kernel (nbclient + ipykernel) whose working folder
    is folder, with one OpenMP thread and no display; returns the executed cells (with their outputs).
    nbclient's CellExecutionError, with the traceback, if a cell fails."""
    import nbformat
    from nbclient import NotebookClient

    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source) for source in cells])
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "MPLBACKEND")}
    env["OMP_NUM_THREADS"] = "1"
    client = NotebookClient(notebook, timeout=180, kernel_name="python3", resources={"metadata": {"path": str(folder)}})
    client.execute(env=env)
    for i, cell in enumerate(notebook.cells):
        assert not [out for out in cell.outputs if out.output_type == "error"], i
    return notebook.cells


def inline_images(outputs: list) -> list[str]:
    """The picture formats (PNG, SVG) of a notebook cell's outputs, one per picture shown."""
    return [kind for out in outputs for kind in out.get("data", {}) if kind in ("image/png", "image/svg+xml")]
