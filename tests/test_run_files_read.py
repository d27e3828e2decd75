"""Run files are read within bounds, in size and in time, and refused in one sentence when they are not what
fmnist writes: a FIFO, a device, a file larger than fmnist ever writes, JSON nested deeper than Python
parses, a file this user may not read. Every command that reads the file refuses it, at once, before
anything in the folder is written (issue 18, items 3 and 5)."""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from runfolders import copy_run, one_line_error, snapshot
from safetensors.torch import save_file

from fmnist import cli
from fmnist.rundir import CHECKPOINT

# The commands that read each run file, and so must refuse it when it is not what fmnist writes.
READERS = {
    "config.json": ("eval", "predict", "compare", "resume"),
    "metrics.csv": ("eval", "compare", "resume"),
    "model.safetensors": ("eval", "predict", "compare"),
    CHECKPOINT: ("eval", "compare", "resume"),
}
LIMITS = {"config.json": 64 << 10, "metrics.csv": 4 << 20, "model.safetensors": 16 << 20, CHECKPOINT: 48 << 20}
RESCUE_AFTER = 20  # seconds after which a reader blocked on a FIFO is freed (so that a failing test ends)


def _args(command: str, run: Path, good: Path) -> list[str]:
    return {
        "eval": ["eval", str(run)],
        "predict": ["predict", str(run), "--test-index", "0", "--json"],
        "compare": ["compare", str(run), str(good), str(good)],  # the two good ones still compare: one error line
        "resume": ["train", f"--out={run}", "--resume", "--epochs", "3"],
    }[command]


@contextmanager
def _bounded_memory(extra: int = 3 << 30) -> Iterator[None]:
    """At most extra more bytes of address space meanwhile: a read that never ends fails with MemoryError
    instead of taking the machine's memory."""
    with open("/proc/self/status") as f:
        size = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmSize:"))
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    resource.setrlimit(resource.RLIMIT_AS, (size + extra, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


@pytest.fixture
def rescuer() -> Iterator[callable]:
    """rescuer(fifo): a process that opens fifo for writing every RESCUE_AFTER seconds, so that a command that
    blocked opening it for reading sees its end, fails, and lets the test report the hang."""
    started = []

    def rescue(fifo: Path) -> None:
        started.append(subprocess.Popen(["sh", "-c", f'while :; do sleep {RESCUE_AFTER}; : > "$0"; done', str(fifo)]))

    yield rescue
    for process in started:
        process.kill()
        process.wait()


def _make(kind: str, path: Path) -> tuple[str, str]:
    """Put kind in place of the run file path; returns what the error must say about it as an input, and
    as an output (train --resume refuses to replace what is not a regular file before it reads anything)."""
    if kind == "a FIFO":
        path.unlink()
        os.mkfifo(path)
        return f"{path} is a FIFO, not a regular file.", f"{path} exists and is a FIFO, not a regular file"
    if kind == "a link to /dev/zero":
        path.unlink()
        path.symlink_to("/dev/zero")
        return (f"{path} is a character device, not a regular file.",
                f"{path} exists and is a symbolic link, not a regular file")  # fmt: skip
    os.truncate(path, LIMITS[path.name] + 1)  # larger than fmnist writes: sparse, costs no disk
    return (f"{path} is larger than {LIMITS[path.name]:,} bytes.",) * 2


CASES = [(name, kind) for name in READERS for kind in ("a FIFO", "a link to /dev/zero", "too large")]


@pytest.mark.parametrize("name, kind", CASES, ids=[f"{n}-{k}" for n, k in CASES])
def test_a_run_file_that_is_not_what_fmnist_writes_is_refused_at_once(small_data, trained, tmp_path, capsys,
                                                                      rescuer, name, kind):  # fmt: skip
    run, good = copy_run(trained("sgd2"), tmp_path / "run"), copy_run(trained("sgd2"), tmp_path / "good")
    as_input, as_output = _make(kind, run / name)
    if kind == "a FIFO":
        rescuer(run / name)
    before, good_before = snapshot(run), snapshot(good)
    for command in READERS[name]:
        start = time.monotonic()
        with _bounded_memory():
            code = cli.main(_args(command, run, good))
        seconds = time.monotonic() - start
        out, err = capsys.readouterr()
        assert code == 1, (command, err)
        one_line_error(err)
        assert as_input in err and "damaged" in err or command == "resume" and as_output in err, (command, err)
        assert seconds < RESCUE_AFTER - 5, (command, seconds)  # it did not wait for the FIFO's writer
        assert snapshot(run) == before and snapshot(good) == good_before, command
        if command == "predict":
            assert out == ""  # no half answer for tools


def _nested(depth: int) -> str:
    return "[" * depth + "]" * depth  # valid JSON that Python's parser cannot follow (RecursionError)


@pytest.mark.parametrize("where", ["config.json", "checkpoint metrics", "checkpoint param_groups"])
def test_json_nested_deeper_than_python_parses_is_damage(small_data, trained, tmp_path, capsys, where):
    run, good = copy_run(trained("sgd2"), tmp_path / "run"), copy_run(trained("sgd2"), tmp_path / "good")
    if where == "config.json":
        (run / "config.json").write_text('{"model": ' + _nested(30_000) + "}")  # 60 KB: within its bound
        commands, problem = READERS["config.json"], f"{run / 'config.json'} is not a JSON object as fmnist writes it"
    else:
        from safetensors.torch import load_file

        path = run / CHECKPOINT
        tensors = load_file(path)
        with open(path, "rb") as f:  # the metadata as fmnist wrote it, one entry replaced
            header = json.loads(f.read(int.from_bytes(f.read(8), "little")))["__metadata__"]
        header[where.split()[1]] = _nested(30_000)
        save_file(tensors, str(path), metadata=header)
        commands, problem = READERS[CHECKPOINT], f"{path} is not an fmnist checkpoint"
    before = snapshot(run)
    for command in commands:
        assert cli.main(_args(command, run, good)) == 1, command
        err = capsys.readouterr().err
        one_line_error(err)
        assert problem in err, (command, err)
        assert snapshot(run) == before


@contextmanager
def _as_another_user() -> Iterator[None]:
    """This process acts as user nobody (65534) meanwhile, when it runs as root, whom permissions never stop;
    as any other user, it stays itself."""
    if os.geteuid() != 0:
        yield
        return
    os.setegid(65534)
    os.seteuid(65534)
    try:
        yield
    finally:
        os.seteuid(0)
        os.setegid(0)


@pytest.fixture
def shared_folder() -> Iterator[Path]:
    """A folder every user may read, outside the test's private temporary folder."""
    folder = Path(tempfile.mkdtemp(prefix="fmnist-shared-"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder)


@pytest.mark.parametrize("name", list(READERS))
def test_a_run_file_this_user_may_not_read_is_not_called_damaged(small_data, trained, shared_folder, capsys,
                                                                 monkeypatch, name):  # fmt: skip
    run, good = copy_run(trained("sgd2"), shared_folder / "run"), copy_run(trained("sgd2"), shared_folder / "good")
    data = shutil.copytree(small_data, shared_folder / "data")  # compare reads the data first
    cache = shared_folder / "cache"  # where the data's decompressed copy goes: the other user's own
    cache.mkdir(mode=0o777)
    cache.chmod(0o777)
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    (run / name).chmod(0o000)
    before = snapshot(run)
    for command in READERS[name]:
        with _as_another_user():
            code = cli.main([*_args(command, run, good), f"--data-dir={data}"])
        err = capsys.readouterr().err
        assert code == 1, (command, err)
        one_line_error(err)
        assert f"{run / name} cannot be read (permission denied); check the permissions of {run}." in err, err
        assert "damaged" not in err
        assert snapshot(run) == before
