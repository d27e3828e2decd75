"""Any name a file system allows works: hints that go on from a stop work when pasted into a shell, whatever
the run folder is called; names are drawn as text; a name that is not valid UTF-8, a closed standard output
and an ASCII-only one give no traceback; a full disk says what is kept and how to go on (issue 18, items 5
and 7)."""

from __future__ import annotations

import errno
import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from matplotlib.text import Text
from PIL import Image
from runfolders import RESULTS, copy_run, no_results, one_line_error, shell_words

from fmnist import cli, fileio, results, rundir
from fmnist import train as train_module

NAMES = {
    "a leading dash": "-dash",
    "quotes, spaces and $": "it's \"a\" $HOME `run`",
    "not ASCII": "naïve ☃ run",
    "not valid UTF-8": os.fsdecode(b"bad\xffname"),
}


def _hint(err: str, marker: str, end: str = "") -> list[str]:
    """The words a shell makes of the hint in err that follows marker (up to end, or the line's end)."""
    assert marker in err, err
    hint = err.split(marker, 1)[1]
    return shell_words(hint.split(end, 1)[0] if end else hint.rstrip("\n"))


def _printed(path: Path) -> str:
    """path as fmnist prints it: bytes that are not UTF-8 as backslash escapes."""
    return str(path).encode("utf-8", "backslashreplace").decode("utf-8")


def _stop_in_call(n: int, real, error: BaseException):
    """real, except that its n-th call raises error."""
    calls = []

    def stop(*args, **kwargs):
        calls.append(1)
        if len(calls) == n:
            raise error
        return real(*args, **kwargs)

    return stop


def _disk_full_at_epoch(epoch: int):
    """rundir.write_metrics on a disk that is full when it writes epoch's metrics."""
    write = rundir.write_metrics

    def full(path, rows):
        if len(rows) == epoch:
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return write(path, rows)

    return full


@pytest.mark.parametrize("name", list(NAMES.values()), ids=list(NAMES))
def test_every_hint_works_when_pasted_into_a_shell(small_data, tmp_path, capsys, monkeypatch, name):
    monkeypatch.chdir(tmp_path)  # relative names: a path that starts with a dash
    run, data = Path(name), Path(f"{name} data")
    shutil.copytree(small_data, data)

    # Ctrl-C in epoch 2: go on with train --resume.
    with monkeypatch.context() as patched:
        patched.setattr(train_module, "train_epoch", _stop_in_call(2, train_module.train_epoch, KeyboardInterrupt()))
        assert cli.main(["train", f"--out={run}", "--epochs", "3", "--batch-size", "50", f"--data-dir={data}"]) == 130
    resume = _hint(capsys.readouterr().err, "Continue with: ")
    assert resume == ["fmnist", "train", f"--out={run}", "--resume", f"--data-dir={data}"]

    # compare: the run is unfinished; finish it with train --resume (its data from $FMNIST_DATA).
    assert cli.main(["compare", f"./{run}", f"./{run}"]) == 1
    finish = _hint(capsys.readouterr().err, "finish it with `", "`, or leave it out")
    assert finish == ["fmnist", "train", f"--out={run}", "--resume"]

    # The pasted hint, on a disk that is full in epoch 3: the same command goes on once there is space.
    with monkeypatch.context() as patched:
        patched.setattr(rundir, "write_metrics", _disk_full_at_epoch(3))
        assert cli.main(resume[1:]) == 1
    err = capsys.readouterr().err
    one_line_error(err)
    assert f"{_printed(run)} keeps its 2 finished epoch(s)" in err
    assert _hint(err, "then go on with: ") == resume

    # That again, stopped while the pictures are drawn: draw them with eval.
    with monkeypatch.context() as patched:
        patched.setattr(results, "write_results", _stop_in_call(1, results.write_results, KeyboardInterrupt()))
        assert cli.main(resume[1:]) == 130
    draw = _hint(capsys.readouterr().err, "Draw them with: ")
    assert draw == ["fmnist", "eval", f"./{run}" if name.startswith("-") else str(run), f"--data-dir={data}"]

    # eval of the run without its weights: train --resume writes them again.
    (run / "model.safetensors").unlink()
    assert cli.main(draw[1:]) == 1
    err = capsys.readouterr().err
    one_line_error(err)
    again = _hint(err, "is missing; `", "` writes it again")
    assert again == ["fmnist", "train", f"--out={run}", "--resume"]
    no_results(monkeypatch)  # what the pictures show of such a name: the test below
    assert cli.main(again[1:]) == 0, capsys.readouterr().err
    assert len(rundir.read_metrics(run / "metrics.csv")) == 3 and (run / "model.safetensors").is_file()


@pytest.mark.parametrize("fails", ["metrics.csv", "checkpoint.safetensors", "confusion.png"])
def test_a_full_disk_says_the_finished_epochs_are_kept_and_how_to_go_on(small_data, tmp_path, capsys, monkeypatch,
                                                                       fails):  # fmt: skip
    run = tmp_path / "my runs" / "a run"
    args = ["train", f"--out={run}", "--epochs", "3", "--batch-size", "50"]
    seen = []
    write = fileio.write_atomic

    def full(path, content):
        seen.append(path.name)
        if path.name == fails and (seen.count(fails) == 3 or fails == "confusion.png"):
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return write(path, content)

    with monkeypatch.context() as patched:
        patched.setattr(fileio, "write_atomic", full)
        assert cli.main(args) == 1
    err = capsys.readouterr().err
    one_line_error(err)
    kept = 3 if fails == "confusion.png" else 2
    assert err.startswith(f"fmnist: error: {run / fails}: No space left on device; {run} keeps its {kept} finished "
                          "epoch(s), so free some space or fix the folder, then go on with: "), err  # fmt: skip
    assert len(rundir.read_checkpoint(run / "checkpoint.safetensors").rows) == kept
    go_on = _hint(err, "then go on with: ")
    assert go_on == (["fmnist", "eval", str(run)] if kept == 3 else ["fmnist", "train", f"--out={run}", "--resume"])
    if fails != "confusion.png":
        no_results(monkeypatch)
    assert cli.main(go_on[1:]) == 0
    assert len(rundir.read_metrics(run / "metrics.csv")) == 3
    assert fails != "confusion.png" or (run / "confusion.png").is_file()


@pytest.mark.slow
def test_a_run_folder_whose_name_is_not_utf8_trains_evaluates_predicts_and_compares(small_data, tmp_path, capsys):
    run = tmp_path / os.fsdecode(b"bad\xffname")
    assert cli.main(["train", f"--out={run}", "--epochs", "1", "--batch-size", "50"]) == 0
    assert cli.main(["eval", str(run), "--json"]) == 0
    assert cli.main(["predict", str(run), "--test-index", "0", "--json"]) == 0
    assert cli.main(["compare", str(run), str(run), f"--out={run}"]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    for page in ("report.html", "compare.html"):
        (run / page).read_bytes().decode("utf-8")  # strictly UTF-8: a browser shows it


def _shown(text: Text) -> tuple[str, bool]:
    """What matplotlib draws for text, and whether as mathtext (Text._preprocess_math, which draw uses)."""
    return text._preprocess_math(text.get_text())


DRAWN_NAMES = ["price$5 and $6", "_hidden", "$x_$", "50% $"]


def test_compare_shows_run_names_as_text(small_data, trained, tmp_path, capsys, monkeypatch, drawn):
    monkeypatch.chdir(tmp_path)
    for name in DRAWN_NAMES:
        copy_run(trained("sgd"), tmp_path / name)
    drawn.clear()  # the template run's own pictures, when this test was the first to need it
    assert cli.main(["compare", *DRAWN_NAMES, "--out=compared"]) == 0, capsys.readouterr().err
    legends = [ax.get_legend() for fig in drawn for ax in fig.axes if ax.get_legend()]
    assert len(legends) == 1
    assert [_shown(t) for t in legends[0].get_texts()] == [(name, False) for name in DRAWN_NAMES]


def test_predict_titles_pictures_by_their_names_as_text(small_data, trained, tmp_path, capsys, monkeypatch, drawn):
    monkeypatch.chdir(tmp_path)
    run = copy_run(trained("sgd"), tmp_path / "run")
    pictures = [f"{name}.png" for name in DRAWN_NAMES]
    for picture in pictures:
        Image.new("L", (28, 28), 128).save(picture)
    assert cli.main(["predict", str(run), *pictures, "--plot=predicted.png"]) == 0, capsys.readouterr().err
    shown = [_shown(t) for fig in drawn for t in fig.findobj(Text)]
    assert all((picture, False) in shown for picture in pictures), shown


def test_an_ascii_only_terminal_gets_escapes_not_a_traceback(small_data, trained, tmp_path, monkeypatch):
    run = copy_run(trained("sgd"), tmp_path / "run")
    picture, broken = tmp_path / "Blüse ☃.png", tmp_path / "Schuh-ß.png"
    Image.new("L", (28, 28), 128).save(picture)
    broken.write_bytes(b"not a picture")
    streams = {name: io.TextIOWrapper(io.BytesIO(), encoding="ascii") for name in ("stdout", "stderr")}
    for name, stream in streams.items():  # as PYTHONIOENCODING=ascii makes them
        monkeypatch.setattr(sys, name, stream)
    code = cli.main(["predict", str(run), str(picture), str(broken), f"--plot={tmp_path / 'Bild-ü.png'}"])
    text = {}
    for name, stream in streams.items():
        stream.flush()
        text[name] = stream.buffer.getvalue().decode("ascii")
    monkeypatch.undo()
    assert code == 1, text  # one input is not a picture: said on its line, exit 1
    assert "Traceback" not in text["stderr"]
    assert "Bl\\xfcse \\u2603.png: " in text["stdout"] and "Schuh-\\xdf.png: " in text["stdout"], text
    assert (tmp_path / "Bild-ü.png").is_file()


@pytest.mark.slow
@pytest.mark.parametrize("command", ["eval", "train"])
def test_a_closed_standard_output_is_no_error(small_data, trained, tmp_path, command):
    run = copy_run(trained("sgd"), tmp_path / "run")
    for name in RESULTS:
        (run / name).unlink()
    args = ["eval", str(run)] if command == "eval" else ["train", f"--out={tmp_path / 'new'}", "--epochs", "1"]
    script = str(Path(__file__).with_name("small_fmnist.py"))
    done = subprocess.run([sys.executable, script, *args], stdin=subprocess.DEVNULL, stderr=subprocess.PIPE,
                          preexec_fn=lambda: os.close(1), timeout=300)  # fmnist ... >&-
    assert done.returncode == 0 and done.stderr == b"", done.stderr
    written = run if command == "eval" else tmp_path / "new"
    assert json.loads((written / "summary.json").read_text())["epochs"] == 1
    assert all((written / name).is_file() for name in RESULTS)
