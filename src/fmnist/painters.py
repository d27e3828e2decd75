"""A run's pictures, drawn in helper processes while this one goes on.

Importing matplotlib and drawing a run's four pictures take about two thirds as long as the
ten epochs of the default recipe, which train on one core. So once the data is loaded, painters
are forked: they import fmnist.plots on the other core while this process trains, and the
first also makes the report's sprite of the test images (inherited by the fork, not sent).
After training they draw the pictures they are sent, in parallel, and return PNG bytes. Only
this process writes files, so a painter may be stopped at any moment. Where fork is not
available, in a daemonic process, or with count 0, the same calls run in this process.
"""

from __future__ import annotations

import importlib
import io
import itertools
import multiprocessing
import os
import pickle
import signal
import sys
import traceback
from collections import deque
from collections.abc import Callable
from multiprocessing.connection import Connection, wait
from types import TracebackType

import numpy as np
import torch

from . import fileio, report
from .errors import UserError

# fork shares the imported PyTorch; macOS offers fork, but its system libraries do not support it
FORK = sys.platform == "linux" and "fork" in multiprocessing.get_all_start_methods()
COUNT = 2  # the four pictures split into two halves of about 0.2 s each
FORKING = multiprocessing.get_context("fork") if FORK else None


class PainterError(UserError):
    """A painter process ended before it answered (killed from outside, or out of memory)."""


class Painters:
    """A context manager: up to count forked processes (no more than the cores this process may use) that
    draw fmnist.plots pictures; with none, they are drawn in this process. Leaving the block stops them at
    once, even in the middle of a picture.

    images: the test images, float [N, 1, H, W] in [0, 1] on any device, for sprite(). one_at_a_time: the
    painters import matplotlib one after the other, so that they leave a core to this process while it
    trains; otherwise all at once.
    """

    def __init__(self, images: torch.Tensor, count: int = COUNT, one_at_a_time: bool = True) -> None:
        self._images = images.detach().cpu()[:, 0].numpy()
        self._pipes: list[Connection] = []
        self._processes: list[multiprocessing.Process] = []
        self._jobs = itertools.count()
        self._queue: deque[tuple[int, bytes]] = deque()  # jobs waiting for an idle painter
        self._busy: dict[int, int] = {}  # painter -> the one job it has been sent and not yet answered
        self._answers: dict[int, tuple] = {}
        self._sprite_job = next(self._jobs)
        # a daemonic process (a multiprocessing.Pool worker) may not have children
        count = min(count, len(os.sched_getaffinity(0))) if FORK and not multiprocessing.current_process().daemon else 0
        if count == 0:
            from . import plots  # noqa: F401  (imported now, as a painter does: no import after training)

            return
        # one at a time: painter i + 1 imports matplotlib once painter i has (when gate i's write end closes)
        gates = [os.pipe() for _ in range(count - 1)] if one_at_a_time else []
        try:
            with fileio.uninterrupted():  # Ctrl-C waits until every painter started is known, so that close() stops it
                for i in range(count):
                    ours, theirs = FORKING.Pipe()
                    after = gates[i - 1][0] if 0 < i <= len(gates) else None
                    then = gates[i][1] if i < len(gates) else None
                    others = [fd for gate in gates for fd in gate if fd not in (after, then)]
                    process = FORKING.Process(target=_serve, name="fmnist painter", daemon=True,
                                              args=(theirs, [*self._pipes, ours], others, after, then,
                                                    self._images if i == 0 else None))  # fmt: skip
                    process.start()
                    theirs.close()
                    self._pipes.append(ours)
                    self._processes.append(process)
        except BaseException:
            self.close()
            raise
        finally:
            for fd in (fd for gate in gates for fd in gate):
                os.close(fd)
        self._busy[0] = self._sprite_job  # the first painter sends the sprite unasked

    def __enter__(self) -> Painters:
        return self

    def __exit__(self, kind: type | None, error: BaseException | None, trace: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        """Stop every painter at once and wait until each has ended."""
        for process in self._processes:
            process.kill()
        for process in self._processes:  # their memory is given back in parallel
            process.join()
        for pipe in self._pipes:
            pipe.close()
        self._pipes, self._processes = [], []

    def sprite(self) -> report.Sprite:
        """fmnist.report.sprite of the test images."""
        if not self._pipes:
            return report.sprite(self._images)
        return self._result(self._sprite_job)

    def draw(self, plot: str, *args: object, **kwargs: object) -> Callable[[], bytes]:
        """Start fmnist.plots.<plot>(*args, **kwargs) in the first idle painter; returns a function that
        waits for the picture's PNG bytes (and raises what the drawing raised).

        Arguments travel pickled: tensors on the CPU, a few MB at most.
        """
        job = next(self._jobs)
        if not self._pipes:
            self._answers[job] = _draw(plot, args, kwargs)
        else:
            self._queue.append((job, pickle.dumps((plot, args, kwargs))))
            self._dispatch()
        return lambda: self._result(job)

    def _dispatch(self) -> None:
        # one job at a time per painter: a painter only sends while this process will read,
        # so neither side can block the other on a full pipe
        for painter in range(len(self._pipes)):
            if self._queue and painter not in self._busy:
                job, request = self._queue.popleft()
                try:
                    self._pipes[painter].send_bytes(request)
                except OSError:  # the painter is gone
                    raise _lost() from None
                self._busy[painter] = job

    def _result(self, job: int) -> object:
        while job not in self._answers:
            if not self._busy:  # its painter was lost earlier
                raise _lost()
            for pipe in wait([self._pipes[painter] for painter in self._busy]):
                painter = self._pipes.index(pipe)
                try:
                    answer = pickle.loads(pipe.recv_bytes())
                except (EOFError, OSError):  # the painter is gone
                    raise _lost() from None
                self._answers[self._busy.pop(painter)] = answer
            self._dispatch()
        answer = self._answers[job]
        if answer[0] == "error":
            error, trace = answer[1], answer[2]
            raise error from RuntimeError(f"in the drawing process:\n{trace}")
        return answer[1]


def _lost() -> PainterError:
    return PainterError(
        "a drawing process ended unexpectedly (killed, or out of memory?), so the pictures were "
        "not all drawn; draw them with `fmnist eval` on the run directory."
    )


def _serve(
    pipe: Connection,
    parent_ends: list[Connection],
    other_gates: list[int],
    after: int | None,
    then: int | None,
    images: np.ndarray | None,
) -> None:
    """A painter's life: wait until the gate after closes, import fmnist.plots, close the gate then, send the
    sprite of images (if any), then answer each drawing request until the pipe closes (with the import's
    error, if it failed).

    parent_ends and other_gates are closed first: a pipe or gate must end when the process at its other end does.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent answers Ctrl-C, and stops the painters
    for end in parent_ends:
        end.close()
    for fd in other_gates:
        os.close(fd)
    null = os.open(os.devnull, os.O_RDWR)  # hold none of the caller's standard streams: errors travel on pipe
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    os.close(null)
    torch.set_num_threads(1)  # the parent trains on the cores it chose; as a DataLoader worker does after fork
    if after is not None:
        os.read(after, 1)  # nothing is written: it returns when the previous painter closes the gate, or ends
    imported = _call(importlib.import_module, "fmnist.plots")  # a failure is every answer of this painter
    if then is not None:
        os.close(then)
    if images is not None:
        pipe.send_bytes(_pickled(_call(report.sprite, images) if imported[0] == "ok" else imported))
    while True:
        try:
            plot, args, kwargs = pickle.loads(pipe.recv_bytes())
        except EOFError:
            return
        pipe.send_bytes(_pickled(_draw(plot, args, kwargs) if imported[0] == "ok" else imported))


def _draw(plot: str, args: tuple, kwargs: dict) -> tuple:
    """fmnist.plots.<plot>(*args, **kwargs) drawn into memory, as _call answers."""
    from . import plots

    def png() -> bytes:
        buffer = io.BytesIO()
        getattr(plots, plot)(*args, **kwargs, path=buffer)
        return buffer.getvalue()

    return _call(png)


def _call(function: Callable, *args: object) -> tuple:
    """("ok", function(*args)), or ("error", the exception, its traceback)."""
    try:
        return ("ok", function(*args))
    except Exception as e:
        return ("error", e, traceback.format_exc())


def _pickled(answer: tuple) -> bytes:
    """answer pickled; an exception that cannot travel becomes a RuntimeError with the same traceback."""
    if answer[0] == "ok":
        return pickle.dumps(answer)
    try:
        data = pickle.dumps(answer)
        pickle.loads(data)
        return data
    except Exception:
        return pickle.dumps(("error", RuntimeError(answer[2]), answer[2]))
