"""Hostile but realistic use: busy and foreign run directories, outputs that are not files, data
folders that are wrong, extreme numbers, interruptions at any moment, huge pictures, output for tools."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import stat
import struct
import subprocess
import sys
import threading
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import small_fmnist, wait_for_line
from PIL import Image
from safetensors.torch import load_file, save_file

from fmnist import cli, data, fileio, plots, rundir
from fmnist import train as train_module
from fmnist.rundir import CHECKPOINT
from fmnist.settings import Config
from fmnist.train import train

IN_USE = "is in use by another fmnist command"


def _quiet(config: Config, out: Path, **kwargs) -> dict:
    return train(config, out, log=lambda line: None, progress=False, **kwargs)


def _snapshot(folder: Path) -> dict[str, bytes]:
    """Every regular file's bytes, by name (what must not change)."""
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file() and not p.is_symlink()}


def _one_line_error(err: str) -> None:
    assert err.startswith("fmnist: error: ") and err.count("\n") == 1 and "Traceback" not in err, err


@pytest.fixture
def run_dir(small_data, tmp_path) -> Path:
    out = tmp_path / "run"
    _quiet(Config(epochs=1, batch_size=50), out)
    return out


# ---------------------------------------------------------------- 1. one owner at a time


def test_a_run_directory_has_one_owner_at_a_time(small_data, tmp_path):
    out = tmp_path / "run"
    owner = small_fmnist("train", "--out", str(out), "--epochs", "5000", "--batch-size", "10", "--seed", "0")
    wait_for_line(owner, "epoch   2/")
    drain = threading.Thread(target=owner.stdout.read, daemon=True)  # its epoch lines must not fill the pipe
    drain.start()
    for args in (["train", "--out", str(out), "--seed", "1"], ["train", "--out", str(out), "--force", "--seed", "1"],
                 ["train", "--out", str(out), "--resume", "--epochs", "6000"], ["eval", str(out)]):  # fmt: skip
        second = small_fmnist(*args)
        _, err = second.communicate(timeout=120)
        assert second.returncode == 1 and IN_USE in err, err
        _one_line_error(err)
    owner.send_signal(signal.SIGINT)
    assert owner.wait(timeout=60) == 130
    drain.join(timeout=60)
    saved = rundir.read_checkpoint(out / CHECKPOINT)
    assert json.loads((out / "config.json").read_text())["seed"] == 0  # nothing of seed 1 got in
    assert rundir.read_metrics(out / "metrics.csv") == saved.rows

    # The lock goes with its process, even one killed without warning.
    owner = small_fmnist("train", "--out", str(out), "--resume")
    wait_for_line(owner, "epoch")
    owner.kill()
    owner.wait()
    assert cli.main(["eval", str(out)]) == 0


def test_the_lock_is_taken_by_the_library_too(run_dir):
    with fileio.exclusive(run_dir):
        with pytest.raises(fileio.PathError, match=IN_USE):
            _quiet(Config(epochs=2), run_dir, resume=True)


# ---------------------------------------------------------------- 2. never overwrite what is not ours


@pytest.mark.parametrize("name", ["report.html", "summary.json", "metrics.csv", "curves.png", "notes.txt", ".hidden"])
def test_a_folder_holding_anything_is_not_taken_without_force(small_data, tmp_path, capsys, name):
    out = tmp_path / "finished"
    out.mkdir()
    (out / name).write_text("mine")
    assert cli.main(["train", "--out", str(out), "--epochs", "1"]) == 1
    err = capsys.readouterr().err
    _one_line_error(err)
    assert f"{out} is not empty (it holds {name})" in err and "--force" in err
    assert _snapshot(out) == {name: b"mine"}


def test_the_current_folder_is_not_taken_and_force_replaces_only_fmnists_files(small_data, tmp_path, capsys,
                                                                               monkeypatch):  # fmt: skip
    monkeypatch.chdir(tmp_path)
    Path("notes.txt").write_text("mine")
    Path("report.html").write_text("an old report")
    assert cli.main(["train", "--out", ".", "--epochs", "1"]) == 1
    assert "is not empty (it holds notes.txt, report.html" in capsys.readouterr().err
    assert cli.main(["train", "--out", ".", "--epochs", "1", "--force"]) == 0
    assert Path("notes.txt").read_text() == "mine" and Path("report.html").read_text() != "an old report"
    assert rundir.read_metrics(Path("metrics.csv"))[0]["epoch"] == 1


def test_an_empty_folder_is_taken(small_data, tmp_path):
    (tmp_path / "empty").mkdir()
    assert cli.main(["train", "--out", str(tmp_path / "empty"), "--epochs", "1"]) == 0


# ---------------------------------------------------------------- 3. outputs are files, made atomically


def _make(kind: str, path: Path, target: Path) -> None:
    if kind == "a FIFO":
        os.mkfifo(path)
    elif kind == "a symbolic link":
        target.write_bytes(b"the link's target")
        path.symlink_to(target)
    elif kind == "a folder":
        path.mkdir()
    else:  # a character device: a copy of /dev/null's node (root only)
        try:
            os.mknod(path, stat.S_IFCHR | 0o666, os.makedev(1, 3))
        except PermissionError:
            pytest.skip("making a device node needs root")


def _unchanged(kind: str, path: Path, target: Path) -> None:
    mode = os.lstat(path).st_mode
    tests = {"a FIFO": stat.S_ISFIFO, "a symbolic link": stat.S_ISLNK, "a folder": stat.S_ISDIR,
             "a character device": stat.S_ISCHR}  # fmt: skip
    assert tests[kind](mode)
    if kind == "a symbolic link":
        assert target.read_bytes() == b"the link's target"


KINDS = ["a FIFO", "a symbolic link", "a folder", "a character device"]


@pytest.mark.parametrize("kind", KINDS)
def test_show_and_predict_refuse_an_output_that_is_not_a_regular_file(run_dir, tmp_path, capsys, kind):
    path, target = tmp_path / "picture.png", tmp_path / "target.png"
    _make(kind, path, target)
    for args in (["show", "--out", str(path)], ["predict", str(run_dir), "--test-index", "0", "--plot", str(path)]):
        assert cli.main(args) == 1
        out, err = capsys.readouterr()
        _one_line_error(err)
        assert f"{path} exists and is {kind}, not a regular file" in err and out == ""
        _unchanged(kind, path, target)


@pytest.mark.parametrize("kind", KINDS)
def test_run_files_that_are_not_regular_files_are_refused_before_any_work(run_dir, tmp_path, capsys, kind):
    path, target = run_dir / "curves.png", tmp_path / "target.png"
    path.unlink()
    _make(kind, path, target)
    before = _snapshot(run_dir)
    for args in (["eval", str(run_dir)], ["train", "--out", str(run_dir), "--force"],
                 ["train", "--out", str(run_dir), "--resume", "--epochs", "2"]):  # fmt: skip
        assert cli.main(args) == 1
        err = capsys.readouterr().err
        _one_line_error(err)
        assert f"{path} exists and is {kind}, not a regular file" in err
        _unchanged(kind, path, target)
        assert _snapshot(run_dir) == before


@pytest.mark.parametrize("suffix, magic", [(".png", b"\x89PNG"), (".jpg", b"\xff\xd8\xff"), (".JPEG", b"\xff\xd8\xff"),
                                           (".pdf", b"%PDF"), (".svg", b"<?xml")])  # fmt: skip
def test_pictures_are_written_in_the_format_their_name_says(small_data, tmp_path, suffix, magic):
    path = tmp_path / f"grid{suffix}"
    assert cli.main(["show", "--n", "4", "--out", str(path)]) == 0
    assert path.read_bytes().startswith(magic)


@pytest.mark.parametrize("name", ["grid.txt", "grid", "grid.png.bak", "grid.gif"])
def test_a_picture_name_without_a_format_matplotlib_writes_is_refused(small_data, tmp_path, capsys, name):
    with pytest.raises(SystemExit) as stop:
        cli.main(["show", "--out", str(tmp_path / name)])
    assert stop.value.code == 2 and "does not end in .png" in capsys.readouterr().err
    assert not (tmp_path / name).exists()


def test_file_system_errors_name_the_users_path_not_a_temporary_one(small_data, tmp_path, capsys, monkeypatch):
    def full(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    path = tmp_path / "grid.png"
    assert cli.main(["show", "--out", str(path)]) == 1
    err = capsys.readouterr().err
    assert err == f"fmnist: error: {path}: No space left on device; check the path and the free space.\n"
    assert list(tmp_path.glob(".*")) == []  # the temporary file is gone too


# ---------------------------------------------------------------- 4. the data folder the user names


def _broken_copies(small_data: Path, root: Path) -> dict[str, tuple[Path, str]]:
    """Folders that do not hold the four files, each with what the error must say about it."""
    names = [f.name for f in data.FILES.values()]
    cases = {}
    for case in ("three of four", "a folder in place of a file", "decompressed"):
        folder = root / case.replace(" ", "-")
        shutil.copytree(small_data, folder)
        victim = folder / names[3]
        victim.unlink()
        if case == "a folder in place of a file":
            victim.mkdir()
        elif case == "decompressed":
            victim.with_suffix("").write_bytes(b"\0\0\x08\x01\0\0\0\x00")
        problem = {"three of four": "is missing", "a folder in place of a file": "is a folder",
                   "decompressed": "is there only decompressed"}[case]  # fmt: skip
        cases[case] = (folder, f"{names[3]} {problem}")
    cases["a path that does not exist"] = (root / "nowhere", "does not exist")
    return cases


@pytest.mark.parametrize("how", ["--data-dir", "FMNIST_DATA"])
def test_a_named_data_folder_is_the_one_used_or_the_command_stops(small_data, tmp_path, capsys, monkeypatch, how):
    for case, (folder, problem) in _broken_copies(small_data, tmp_path / "data").items():
        out = tmp_path / f"run-{case}"
        args = ["train", "--out", str(out), "--epochs", "1"]
        if how == "--data-dir":
            args += ["--data-dir", str(folder)]
        else:
            monkeypatch.setenv("FMNIST_DATA", str(folder))
        assert cli.main(args) == 1, case
        err = capsys.readouterr().err
        _one_line_error(err)
        assert str(folder) in err and problem in err, err
        assert f"fmnist download --data-dir={folder}" in err
        assert not (out / "config.json").exists()  # no run was made from another folder's data


def test_a_damaged_file_in_a_named_folder_names_that_folder(small_data, capsys):
    victim = small_data / data.FILES["test_labels"].name
    victim.write_bytes(victim.read_bytes()[:-4])
    assert cli.main(["show", "--data-dir", str(small_data)]) == 1
    err = capsys.readouterr().err
    assert str(victim) in err and f"fmnist download --data-dir={small_data}" in err


# ---------------------------------------------------------------- 5. no traceback from any value

EXTREME = ["inf", "-inf", "nan", "1e39", "-1e39", "1e400", "12345678901234567890", "-12345678901234567890",
           "1" + "0" * 400, "0x10", ""]  # fmt: skip
NUMERIC = [["train", "--epochs"], ["train", "--batch-size"], ["train", "--lr"], ["train", "--weight-decay"],
           ["train", "--label-smoothing"], ["train", "--dropout"], ["train", "--val-size"], ["train", "--seed"],
           ["train", "--threads"], ["predict", "run", "--top"], ["predict", "run", "--test-index"],
           ["show", "--n"]]  # fmt: skip


@pytest.mark.parametrize("option", NUMERIC, ids=lambda o: o[-1])
def test_extreme_numbers_are_refused_in_one_line_before_any_work(option, capsys):
    for value in EXTREME:
        with pytest.raises(SystemExit) as stop:
            cli.main([*option[:-1], f"{option[-1]}={value}"])  # "=": so that "-inf" is not taken for an option
        err = capsys.readouterr().err
        assert stop.value.code == 2 and err.count("\n") == 1 and f"argument {option[-1]}:" in err, (value, err)
        assert "must be" in err or "is not a number" in err
        assert len(err) < 250  # a 400-digit number is not echoed whole


def test_threads_are_bounded_by_the_cores_this_process_may_use(capsys):
    cores = len(os.sched_getaffinity(0))
    for threads in (cores + 1, 2000, 3000):
        with pytest.raises(SystemExit):
            cli.main(["train", "--threads", str(threads)])
        assert f"--threads: must be a whole number from 1 to {cores} (the CPU cores" in capsys.readouterr().err


def test_extreme_numbers_through_the_real_command_give_no_traceback(tmp_path):
    for args in (["train", "--val-size", "inf"], ["train", "--seed", "1e39"], ["predict", "r", "--test-index", "nan"],
                 ["train", "--threads", "3000"], ["train", "--lr", "1e39"]):  # fmt: skip
        done = subprocess.run([sys.executable, "-m", "fmnist", *args], capture_output=True, text=True, timeout=60)
        assert done.returncode == 2 and done.stderr.count("\n") == 1 and "Traceback" not in done.stderr


def _rewrite_config(run: Path, **changes) -> None:
    config = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps({**config, **changes}))


@pytest.mark.parametrize("changes, problem", [
    ({"batch_size": 0}, "batch_size must be a whole number from 1 to 60000, got 0"),
    ({"lr": "0.1"}, "lr must be a number greater than 0 and at most 100, got '0.1'"),
    ({"epochs": 1.5}, "epochs must be a whole number"),
    ({"device": "tpu"}, "device must be one of auto, cpu, cuda, got 'tpu'"),
    ({"optimizer": None}, "optimizer must be one of sgd, momentum, adam, got None"),
    ({"seed": 10**30}, "seed must be a whole number from 0 to"),
])  # fmt: skip
def test_a_damaged_config_is_refused_before_anything_is_rewritten(run_dir, capsys, changes, problem):
    _rewrite_config(run_dir, **changes)
    before = _snapshot(run_dir)
    assert cli.main(["train", "--out", str(run_dir), "--resume", "--epochs", "3"]) == 1
    err = capsys.readouterr().err
    _one_line_error(err)
    assert f"{run_dir / 'config.json'} is damaged ({problem}" in err
    assert _snapshot(run_dir) == before


@pytest.mark.parametrize("rows, problem", [
    ([{"epoch": 1, "train_loss": 0.5}], "epoch 1 has no column train_acc, test_acc, seconds"),
    ([[1, 0.5, 0.8, 0.8, 1.0]], "epoch 1 is not a row of named values"),
    ({"epoch": 1}, "not a list of epochs"),
    ([{"epoch": 2, "train_loss": 0.5, "train_acc": 0.8, "test_acc": 0.8, "seconds": 1.0}], "row 1 is numbered 2"),
    ([{"epoch": 1, "train_loss": 0.5, "train_acc": 8, "test_acc": 0.8, "seconds": 1.0}], "a value out of range"),
])  # fmt: skip
def test_checkpoint_metrics_of_the_wrong_shape_are_refused(run_dir, capsys, rows, problem):
    path = run_dir / CHECKPOINT
    tensors, metadata = rundir.read_safetensors(path)
    save_file(tensors, str(path), metadata={**metadata, "metrics": json.dumps(rows)})
    before = _snapshot(run_dir)
    assert cli.main(["train", "--out", str(run_dir), "--resume", "--epochs", "3"]) == 1
    err = capsys.readouterr().err
    _one_line_error(err)
    assert problem in err and str(path) in err
    assert _snapshot(run_dir) == before


@pytest.mark.parametrize("edit, problem", [
    (lambda text: "".join(line + (",note\n" if i == 0 else ",x\n") for i, line in enumerate(text.splitlines())),
     "columns note that fmnist does not write"),
    (lambda text: text.replace("train_acc,", "", 1), "epoch 1 has more values than the header has columns"),
    (lambda text: text.replace(",test_acc", ",val_acc,test_acc", 1), "epoch 1 has fewer values than the header has"),
    (lambda text: text.replace("train_acc", "train_accuracy", 1), "columns train_accuracy that fmnist does not"),
    (lambda text: text.replace("\n1,", "\none,", 1), "could not convert"),
    (lambda text: text + "3,0.1,0.2,0.3,0.4\n", "row 2 is numbered 3"),
    (lambda text: re.sub(r"\n1,[^,]*,", "\n1,nan,", text), "out of range"),
])  # fmt: skip
def test_eval_refuses_a_metrics_file_it_did_not_write(run_dir, capsys, edit, problem):
    path = run_dir / "metrics.csv"
    path.write_text(edit(path.read_text()))
    before = _snapshot(run_dir)
    assert cli.main(["eval", str(run_dir)]) == 1
    err = capsys.readouterr().err
    _one_line_error(err)
    assert f"{path} does not hold fmnist's metrics" in err and problem in err, err
    assert _snapshot(run_dir) == before


# ---------------------------------------------------------------- 6. interruptions at every moment


@pytest.mark.parametrize("delay", [0.3, 0.6, 1.0, 1.5])
def test_ctrl_c_during_start_up_is_one_line(real_dir, tmp_path, delay):
    run = subprocess.Popen([sys.executable, "-m", "fmnist", "train", "--out", str(tmp_path / "run")],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        run.wait(timeout=delay)
    except subprocess.TimeoutExpired:
        run.send_signal(signal.SIGINT)
    _, err = run.communicate(timeout=60)
    assert run.returncode == 130, err  # the run takes seconds: it is still going, starting or training
    assert err.count("\n") == 1 and err.startswith("fmnist: interrupted") and "Traceback" not in err


def test_ctrl_c_after_the_last_epoch_says_how_to_draw_the_results(small_data, tmp_path, capsys, monkeypatch):
    out = tmp_path / "my runs" / "first try"
    out.parent.mkdir()

    command, draw = os.getpid(), plots.plot_mistakes

    def ctrl_c(*args, **kwargs):  # in a painter process: the command gets Ctrl-C while it waits for the pictures
        os.kill(command, signal.SIGINT)
        return draw(*args, **kwargs)

    with monkeypatch.context() as patched:
        patched.setattr(plots, "plot_mistakes", ctrl_c)
        assert cli.main(["train", "--out", str(out), "--epochs", "2"]) == 130
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{out} keeps all 2 epochs but not all its pictures and report" in err
    hint = shlex.split(err.split("Draw them with: ")[1])
    assert hint == ["fmnist", "eval", str(out)]
    assert not (out / "report.html").exists()
    assert cli.main(hint[1:]) == 0
    assert (out / "report.html").is_file() and (out / "mistakes.png").is_file()
    assert json.loads((out / "summary.json").read_text())["epochs"] == 2


def test_resume_hints_are_commands_a_shell_runs_whatever_the_path(small_data, tmp_path, capsys, monkeypatch):
    out = tmp_path / "it's a run; with spaces"
    calls = []
    real_epoch = train_module.train_epoch

    def stop_in_epoch_2(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real_epoch(*args, **kwargs)

    with monkeypatch.context() as patched:
        patched.setattr(train_module, "train_epoch", stop_in_epoch_2)
        assert cli.main(["train", "--out", str(out), "--epochs", "3", "--data-dir", str(small_data)]) == 130
    hint = shlex.split(capsys.readouterr().err.split("Continue with: ")[1])
    assert hint == ["fmnist", "train", f"--out={out}", "--resume", f"--data-dir={small_data}"]
    assert cli.main(hint[1:]) == 0
    assert len(rundir.read_metrics(out / "metrics.csv")) == 3


# ---------------------------------------------------------------- 7. bounded memory on hostile sizes


def _blank_png(path: Path, width: int, height: int) -> None:
    """An all-transparent RGBA PNG of width x height, written a row at a time (a few MB of memory)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    packer, row = zlib.compressobj(9), b"\0" * (1 + 4 * width)
    body = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", body) + chunk(b"IEND", b""))


def _peak_memory_mib(*args: str) -> tuple[subprocess.CompletedProcess, float]:
    """Run `fmnist ARGS` in a child; its result and the peak resident memory of that child, MiB."""
    probe = ("import resource, subprocess, sys; done = subprocess.run(sys.argv[1:], capture_output=True, text=True); "
             "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); print(done.returncode); "
             "print(done.stdout, end=''); print(done.stderr, end='', file=sys.stderr)")  # fmt: skip
    script = str(Path(__file__).with_name("small_fmnist.py"))
    done = subprocess.run([sys.executable, "-c", probe, sys.executable, script, *args], capture_output=True,
                          text=True, timeout=300)  # fmt: skip
    peak, code, *out = done.stdout.splitlines()
    return subprocess.CompletedProcess(args, int(code), "\n".join(out), done.stderr), int(peak) / 1024


PICTURE_MEMORY_MIB = 200  # README: memory stays within about 200 MB of a normal run


def test_a_huge_picture_is_refused_in_bounded_memory(run_dir, tmp_path):
    huge = tmp_path / "huge.png"
    _blank_png(huge, 13_300, 13_300)
    assert huge.stat().st_size < 2_000_000  # small on disk, 700 MB as pixels
    done, peak = _peak_memory_mib("predict", str(run_dir), str(huge))
    assert done.returncode == 1 and "is 13300x13300 pixels, more than the 16,777,216 fmnist decodes" in done.stdout
    Image.new("L", (28, 28)).save(tmp_path / "small.png")
    baseline = _peak_memory_mib("predict", str(run_dir), str(tmp_path / "small.png"))[1]
    assert peak < baseline + PICTURE_MEMORY_MIB, (peak, baseline)


def _largest(kind: str, path: Path) -> Path:
    """The largest picture predict decodes (4096 x 4096) of a kind that costs more than plain RGB to decode."""
    size = (4096, 4096)
    if kind == "RGBA":
        _blank_png(path.with_suffix(".png"), *size)
    elif kind == "RGB with a transparent colour key":
        Image.new("RGB", size).save(path.with_suffix(".png"), transparency=(0, 0, 0))
    elif kind == "palette with transparency":
        Image.new("P", size).save(path.with_suffix(".png"), transparency=0)
    else:  # the TIFFs: 32 bits a pixel, uncompressed
        Image.new("CMYK" if kind == "CMYK TIFF" else "I", size).save(path.with_suffix(".tif"))
    return next(path.parent.glob(path.name + ".*"))


@pytest.mark.parametrize("kind", ["RGBA", pytest.param("RGB with a transparent colour key", marks=pytest.mark.slow),
                                  pytest.param("palette with transparency", marks=pytest.mark.slow),
                                  pytest.param("CMYK TIFF", marks=pytest.mark.slow),
                                  pytest.param("32-bit TIFF", marks=pytest.mark.slow)])  # fmt: skip
def test_the_largest_picture_of_each_costly_kind_stays_in_bounded_memory(run_dir, tmp_path, kind):
    Image.new("L", (28, 28)).save(tmp_path / "small.png")
    baseline = _peak_memory_mib("predict", str(run_dir), str(tmp_path / "small.png"))[1]
    done, peak = _peak_memory_mib("predict", str(run_dir), str(_largest(kind, tmp_path / "largest")), "--json")
    assert done.returncode == 0 and len(json.loads(done.stdout)[0]["top"]) == 3
    assert peak < baseline + PICTURE_MEMORY_MIB, (peak, baseline)


# ---------------------------------------------------------------- 8. output that tools can read


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_a_model_with_non_finite_weights_is_refused(run_dir, capsys, bad):
    path = run_dir / "model.safetensors"
    tensors = load_file(str(path))
    tensors["weight"][3, 100] = bad
    save_file(tensors, str(path), metadata={"model": "softmax"})
    for args in (["predict", str(run_dir), "--test-index", "0", "--json"], ["eval", str(run_dir), "--json"]):
        assert cli.main(args) == 1
        out, err = capsys.readouterr()
        assert out == "" and "holds values that are not finite numbers (in weight)" in err
        _one_line_error(err)


@pytest.mark.parametrize("args", [["eval", "RUN"], ["eval", "RUN", "--json"], ["predict", "RUN", "--test-index", "0"]])
def test_a_closed_pipe_ends_quietly(run_dir, args):
    run = small_fmnist(*[str(run_dir) if a == "RUN" else a for a in args])
    run.stdout.close()  # the reader is gone before anything was written
    run.wait(timeout=120)
    assert run.stderr.read() == "" and run.returncode == 141


def test_eval_of_a_read_only_run_directory_prints_its_scores(run_dir):
    before = _snapshot(run_dir)
    done = _read_only(run_dir, "eval", str(run_dir))
    assert done.returncode == 0, done.stderr
    assert "test accuracy" in done.stdout and "ankle boot" in done.stdout
    assert f"note: {run_dir} cannot be written, so its pictures and report were not redrawn" in done.stdout
    assert _snapshot(run_dir) == before


def test_images_keep_their_exif_orientation(real_dir, tmp_path):
    from fmnist import images

    item = (data.load(real_dir).test_images[0, 0] * 255).round().byte().numpy()
    upright = Image.fromarray(np.pad(item, ((0, 0), (0, 28)))).resize((560, 280), Image.NEAREST)
    exif = Image.Exif()
    exif[0x0112] = 6  # stored turned a quarter to the left: viewers turn it right
    upright.transpose(Image.Transpose.ROTATE_90).save(tmp_path / "phone.jpg", exif=exif.tobytes(), quality=95)
    upright.save(tmp_path / "upright.png")
    turned, straight = images.load_image(tmp_path / "phone.jpg"), images.load_image(tmp_path / "upright.png")
    assert torch.allclose(turned, straight, atol=0.1)


def test_ctrl_c_waits_while_an_epochs_files_are_written():
    reached = []
    with pytest.raises(KeyboardInterrupt):
        with fileio.uninterrupted():
            os.kill(os.getpid(), signal.SIGINT)
            for _ in range(1000):  # a signal is handled between bytecodes: give it every chance to cut in
                reached.append(1)
        reached.append("after the block")
    assert len(reached) == 1000  # the block ran to its end, and Ctrl-C came right after it


def test_predict_plot_draws_at_most_100_rows(run_dir, capsys):
    indices = [str(i) for i in range(101)]
    assert cli.main(["predict", str(run_dir), "--test-index", *indices, "--plot", "p.png"]) == 2
    assert "--plot draws at most 100 images" in capsys.readouterr().err


def test_a_stop_during_matplotlibs_import_waits_for_it_and_is_answered_after_the_last_epoch(small_data, tmp_path):
    # A real SIGINT, sent by the process to itself as fmnist.plots starts to import after the last epoch: the
    # import ends (a library stopped half-way may swallow the stop), then the stop is answered as Ctrl-C is.
    out = tmp_path / "run"
    probe = (
        "import importlib.abc, os, signal, sys\n"
        "class Hook(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path, target=None):\n"
        "        if name == 'fmnist.plots':\n"
        "            os.kill(os.getpid(), signal.SIGINT)\n"
        "        return None\n"
        "sys.meta_path.insert(0, Hook())\n"
        f"sys.argv = ['fmnist', 'train', '--out={out}', '--epochs', '2', '--quiet']\n"
        "try:\n"
        f"    exec(open({str(Path(__file__).with_name('small_fmnist.py'))!r}).read())\n"
        "finally:\n"
        "    print('plots imported:', 'fmnist.plots' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=300)
    assert done.returncode == 130, done.stderr
    assert done.stdout.splitlines()[-1] == "plots imported: True"  # not cut off half-way
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert f"interrupted after the last epoch; {out} keeps all 2 epochs" in done.stderr
    hint = shlex.split(done.stderr.split("Draw them with: ")[1])
    assert not (out / "report.html").exists()
    assert cli.main(hint[1:]) == 0 and (out / "report.html").is_file()

def test_a_run_made_with_more_threads_than_this_machine_has_still_evaluates_and_compares(run_dir, capsys):
    _rewrite_config(run_dir, threads=64)  # as a 64-core machine records it
    assert cli.main(["eval", str(run_dir), "--json"]) == 0
    capsys.readouterr()
    assert rundir.RunDir(run_dir).config().threads == 64
    assert cli.main(["compare", str(run_dir), str(run_dir)]) == 0


def test_force_keeps_the_old_run_when_the_new_one_cannot_load_its_data(run_dir, tmp_path, capsys):
    before = _snapshot(run_dir)
    args = ["train", "--out", str(run_dir), "--force", "--data-dir", str(tmp_path / "no-data")]
    assert cli.main(args) == 1
    assert "does not exist" in capsys.readouterr().err
    assert _snapshot(run_dir) == before


def _read_only(folder: Path, *args: str) -> subprocess.CompletedProcess:
    """`fmnist ARGS` (on the small dataset) with folder mounted read-only, in a mount namespace of its own."""
    if shutil.which("unshare") is None or subprocess.run(["unshare", "-rm", "true"]).returncode != 0:
        pytest.skip("needs unshare to mount a folder read-only")
    script = str(Path(__file__).with_name("small_fmnist.py"))
    mount_read_only = 'mount --bind -o ro "$0" "$0" && exec "$@"'
    return subprocess.run(["unshare", "-rm", "sh", "-c", mount_read_only, str(folder), sys.executable, script, *args],
                          capture_output=True, text=True, timeout=120)  # fmt: skip


def test_download_verifies_a_complete_folder_it_cannot_write(small_data):
    done = _read_only(small_data, "download", "--data-dir", str(small_data))  # a shared read-only copy
    assert done.returncode == 0 and f"ready in {small_data}" in done.stdout, done.stderr
    (small_data / data.FILES["test_labels"].name).unlink()
    done = _read_only(small_data, "download", "--data-dir", str(small_data))
    assert done.returncode == 1 and f"cannot write into {small_data}" in done.stderr


def test_a_fifo_given_as_a_picture_is_refused_not_read(run_dir, tmp_path):
    fifo = tmp_path / "picture.png"
    os.mkfifo(fifo)
    done = subprocess.run([sys.executable, str(Path(__file__).with_name("small_fmnist.py")), "predict", str(run_dir),
                           str(fifo)], capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 1 and "is not a regular file (a FIFO" in done.stdout
