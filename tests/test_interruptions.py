"""Ctrl-C at every moment: start-up, after the last epoch, while an epoch's files are written, during the
import of matplotlib; the hints it prints are commands a shell runs."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import stop_in_epoch

from fmnist import cli, fileio, plots, rundir


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

    def ctrl_c(*args, **kwargs):  # the command gets Ctrl-C while it draws the pictures
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
    with monkeypatch.context() as patched:
        stop_in_epoch(patched, 2)
        assert cli.main(["train", "--out", str(out), "--epochs", "3", "--data-dir", str(small_data)]) == 130
    hint = shlex.split(capsys.readouterr().err.split("Continue with: ")[1])
    assert hint == ["fmnist", "train", f"--out={out}", "--resume", f"--data-dir={small_data}"]
    assert cli.main(hint[1:]) == 0
    assert len(rundir.read_metrics(out / "metrics.csv")) == 3


def test_ctrl_c_waits_while_an_epochs_files_are_written():
    reached = []
    with pytest.raises(KeyboardInterrupt):
        with fileio.uninterrupted():
            os.kill(os.getpid(), signal.SIGINT)
            for _ in range(1000):  # a signal is handled between bytecodes: give it every chance to cut in
                reached.append(1)
        reached.append("after the block")
    assert len(reached) == 1000  # the block ran to its end, and Ctrl-C came right after it


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
