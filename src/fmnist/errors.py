"""What a user is told when a command cannot go on: one sentence, and commands they can paste."""

from __future__ import annotations

import shlex
import signal
from pathlib import Path


class UserError(Exception):
    """Bad input, a damaged or busy file, a setting that cannot work; the command line prints the message
    as one line and exits with 1, never a traceback."""


class Stopped(KeyboardInterrupt):
    """The process was asked to stop (Ctrl-C's SIGINT, SIGTERM from `timeout` or systemd, SIGHUP from a closed
    terminal); every command answers it as Ctrl-C. signum: the signal, so the exit code can be 128 + signum."""

    def __init__(self, signum: int = signal.SIGINT) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def command(*words: str | Path) -> str:
    """A command line a user can paste into a shell, whatever the paths hold: words are quoted for the shell,
    and a path (a Path word) that starts with a dash is written ./-name so that it is not read as an option.
    Give an option's path as one word, f"--out={path}", for the same reason."""
    return shlex.join(f"./{word}" if isinstance(word, Path) and str(word).startswith("-") else str(word)
                      for word in words)  # fmt: skip
