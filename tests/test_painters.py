"""The painter processes: the same pictures as drawn in this process, errors that arrive, and no
process left behind, whatever happens to the parent."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
from PIL import Image

from fmnist import data, painters, report
from fmnist.painters import PainterError, Painters

NAMES = list(data.LABELS)


def images(n: int = 30) -> torch.Tensor:
    return torch.rand(n, 1, 28, 28, generator=torch.Generator().manual_seed(0))


def descendants(pid: int) -> set[int]:
    """The processes below pid, from /proc (children of children too)."""
    parents = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:  # ended meanwhile
                continue
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    below, frontier = set(), {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - below
        below |= frontier
    return below


def alive(pids: set[int]) -> set[int]:
    """The pids that still run (not ended, and not zombies waiting for their parent)."""
    running = set()
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z":
            running.add(pid)
    return running


def jobs(pictures: Painters) -> dict[str, object]:
    """Every picture a run has, started in pictures; name -> its waiting function."""
    random = torch.Generator().manual_seed(1)
    probs = torch.softmax(torch.randn(30, 10, generator=random) * 3, dim=1)
    labels = torch.arange(30) % 10
    rows = [{"epoch": e, "train_loss": 1 / e, "train_acc": 0.5 + e / 40, "test_acc": 0.5 + e / 50} for e in (1, 2, 3)]
    return {
        "mistakes": pictures.draw("plot_mistakes", images(), labels, probs, NAMES),
        "confusion": pictures.draw("plot_confusion", torch.randint(0, 50, (10, 10), generator=random), NAMES),
        "curves": pictures.draw("plot_curves", rows),
        "weights": pictures.draw(
            "plot_weights", torch.randn(10, 28, 28, generator=random), title="weights", titles=NAMES
        ),
    }


@pytest.mark.parametrize("one_at_a_time", [True, False])
def test_painters_draw_the_same_bytes_as_this_process(one_at_a_time):
    here = Painters(images(), count=0)
    expected = {name: result() for name, result in jobs(here).items()}
    before = descendants(os.getpid())
    with Painters(images(), count=2, one_at_a_time=one_at_a_time) as forked:
        assert len(descendants(os.getpid()) - before) == 2
        drawn = {name: result() for name, result in jobs(forked).items()}
        sprite = forked.sprite()
    assert drawn == expected
    for png in drawn.values():
        with Image.open(io.BytesIO(png)) as picture:
            assert picture.format == "PNG" and picture.width > 300
    assert sprite == here.sprite() == report.sprite(images()[:, 0].numpy())


def test_an_error_in_a_painter_is_raised_here_with_its_traceback():
    wrong = [{"epoch": 1, "train_loss": "many"}]  # not a number
    with pytest.raises(ValueError) as here:
        Painters(images(), count=0).draw("plot_curves", wrong)()
    with Painters(images()) as forked:
        result = forked.draw("plot_curves", wrong)
        with pytest.raises(type(here.value), match=str(here.value)) as raised:
            result()
        cause = str(raised.value.__cause__)
        assert cause.startswith("in the drawing process") and "in plot_curves" in cause
        assert forked.draw("plot_curves", [{"epoch": 1, "train_loss": 1.0}])()[:4] == b"\x89PNG"  # still drawing


def test_a_painter_that_cannot_import_matplotlib_answers_with_that_error(monkeypatch):
    monkeypatch.delitem(sys.modules, "fmnist.plots")
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as if it were not installed, in the painters
    with Painters(images()) as forked:
        with pytest.raises(ModuleNotFoundError, match="matplotlib"):
            forked.sprite()
        with pytest.raises(ModuleNotFoundError, match="matplotlib"):
            jobs(forked)["curves"]()


def test_a_killed_painter_is_one_clear_error_and_leaves_no_process(tmp_path):
    before = descendants(os.getpid())
    with Painters(images()) as forked:
        forked.sprite()  # the first painter has imported matplotlib
        first = forked._processes[0].pid
        os.kill(first, signal.SIGKILL)
        with pytest.raises(PainterError, match="a drawing process ended unexpectedly .*fmnist eval"):
            for result in jobs(forked).values():
                result()
        others = descendants(os.getpid()) - before
    assert len(others) == 2 and not alive(others)


def test_leaving_the_block_ends_every_painter_at_once():
    before = descendants(os.getpid())
    with Painters(images()) as forked:
        forked.sprite()
        forked.draw("plot_mistakes", images(400), torch.arange(400) % 10, torch.rand(400, 10), NAMES, n=400)
        painted = descendants(os.getpid()) - before
        assert len(painted) == 2
    assert not alive(painted)  # ended and reaped, even the one that was drawing


@pytest.mark.parametrize("moment", ["importing", "idle"])
def test_painters_end_when_their_parent_is_killed(tmp_path, moment):
    script = textwrap.dedent(f"""
        import sys, time, torch
        from fmnist.painters import Painters
        painters = Painters(torch.rand(50, 1, 28, 28))
        if {moment!r} == "idle":
            painters.sprite()
        print("ready", flush=True)
        time.sleep(60)
    """)
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert parent.stdout.readline() == "ready\n"
    painted = descendants(parent.pid)
    assert painted
    if moment == "idle":  # the painters hold none of the caller's pipes, so a reader never waits for them
        assert {os.readlink(f"/proc/{pid}/fd/{fd}") for pid in painted for fd in (0, 1, 2)} == {"/dev/null"}
    parent.kill()
    assert parent.communicate(timeout=30)[1] == ""
    deadline = time.monotonic() + 10
    while alive(painted) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(painted)


def test_without_fork_the_pictures_are_drawn_here(monkeypatch):
    monkeypatch.setattr(painters, "FORK", False)
    before = descendants(os.getpid())
    with Painters(images()) as here:
        drawn = {name: result() for name, result in jobs(here).items()}
        assert descendants(os.getpid()) == before
    with Painters(images(), count=0) as reference:
        assert drawn == {name: result() for name, result in jobs(reference).items()}
