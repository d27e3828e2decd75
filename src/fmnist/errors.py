"""What a user is told when a command cannot go on: one sentence, and commands they can paste."""

from __future__ import annotations

import os
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
    return " ".join(_quoted(f"./{word}" if isinstance(word, Path) and str(word).startswith("-") else str(word))
                    for word in words)  # fmt: skip


def _quoted(word: str) -> str:
    """word quoted for a shell (shlex.quote), or, when it holds what cannot be printed as it is (bytes of a
    file name that are not UTF-8, which Python decodes as surrogates; control characters), as $'...' with
    those bytes as \\xHH escapes, which bash, zsh and ksh read back as the same bytes."""
    if word.isprintable():
        return shlex.quote(word)
    escaped = "".join(f"\\{c}" if c in "'\\" else c if c.isprintable() else
                      "".join(f"\\x{byte:02x}" for byte in os.fsencode(c)) for c in word)  # fmt: skip
    return f"$'{escaped}'"
