"""Runs the PyTorch cells of the English edition's chapters (tests/data/d2l-en/*.md) as a notebook runs
them: in order, in one namespace, with only the book's import line changed.

A chapter's markdown is read as d2lbook reads it: a code cell belongs to the frameworks its first line
names (``%%tab pytorch, mxnet`` or the older ``#@tab pytorch``; ``all`` is every framework) and an
untagged cell to the default one, PyTorch in the English edition 1.x. What the harness supplies is what
the book's build and a Jupyter kernel supply, nothing of fmnist's:

- ``tab.selected(...)``: true for 'pytorch', as d2lbook's PyTorch notebooks keep only those branches;
  the ``%%tab`` line itself (a d2lbook cell magic) is dropped.
- IPython syntax, turned into Python by IPython's own TransformerManager: ``%matplotlib inline`` does
  nothing here (the run is headless, so fmnist saves the pictures as PNGs), ``!cmd`` runs in the shell,
  its output shown and its exit status ignored, as in IPython.
- The value of a cell's last expression is kept, as a notebook shows it (Notebook.outputs).

Every ``from d2l import torch as d2l`` becomes ``from fmnist.d2l import en as d2l``, also inside function
bodies (the Syne Tune objectives import d2l in the trial processes). The tests make runs short without
touching the cells: a small dataset, and the documented FMNIST_D2L_MAX_EPOCHS / FMNIST_D2L_MAX_BATCHES
caps of Trainer.fit; where a chapter's own loop has a budget in a variable (Syne Tune's wall-clock time),
Notebook.run's overrides set that variable right after the cell that defines it.
"""

from __future__ import annotations

import ast
import re
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from IPython.core.inputtransformer2 import TransformerManager

CHAPTERS = Path(__file__).with_name("data") / "d2l-en"
BOOK_IMPORT = "from d2l import torch as d2l"
FMNIST_IMPORT = "from fmnist.d2l import en as d2l"
_CELL = re.compile(r"^```\{\.python \.input[^}]*\}\n(.*?)^```$", re.S | re.M)
_TAB = re.compile(r"^\s*(?:%%tab|#\s*@tab)\s+(.+)$")


def chapter_file(number: str) -> Path:
    """The copy of chapter number (e.g. '4.5') under tests/data/d2l-en."""
    (path,) = CHAPTERS.glob(f"{number}-*.md")
    return path


def pytorch_cells(markdown: str) -> list[str]:
    """The sources of the PyTorch code cells of a chapter's markdown, in order, without the %%tab line."""
    cells = []
    for source in _CELL.findall(markdown):
        first, _, rest = source.partition("\n")
        tag = _TAB.match(first)
        tabs = {t.strip() for t in tag[1].split(",")} if tag else {"pytorch"}
        if "%load_ext d2lbook.tab" in source or not tabs & {"pytorch", "all"}:
            continue
        cells.append(rest if first.lstrip().startswith("%%tab") else source)
    return cells


class Tab:
    """d2lbook's ``tab`` in a PyTorch notebook."""

    @staticmethod
    def selected(*tabs: str) -> bool:
        return "pytorch" in tabs

    @staticmethod
    def interact_select(*tabs: object) -> None:
        return None


class Shell:
    """The IPython calls the transformed cells make (see the module's docstring)."""

    def run_line_magic(self, name: str, line: str) -> None:
        if name != "matplotlib":
            raise NotImplementedError(f"%{name} {line}")

    def system(self, command: str) -> None:
        done = subprocess.run(command, shell=True, capture_output=True, text=True)
        print(done.stdout + done.stderr, end="")


@dataclass
class Notebook:
    """One chapter's cells run in one namespace."""

    number: str
    namespace: dict[str, Any] = field(default_factory=dict)
    outputs: dict[int, Any] = field(default_factory=dict)  # cell index -> value of its last expression
    cells: list[str] = field(default_factory=list)

    def run(
        self,
        replace: Mapping[int, str] | None = None,
        skip: Callable[[int, str], bool] | None = None,
        overrides: Mapping[str, Any] | None = None,
    ) -> Notebook:
        """Run every PyTorch cell of the chapter in order. replace: cell index -> the source run
        instead (each use says why); skip(index, source): cells not run; overrides: variables set to
        these values right after the cell that defines them."""
        self.cells = pytorch_cells(chapter_file(self.number).read_text())
        self.namespace.update({"__name__": "__main__", "tab": Tab(), "get_ipython": Shell})
        transform = TransformerManager().transform_cell
        for index, source in enumerate(self.cells):
            if skip is not None and skip(index, source):
                continue
            source = (replace or {}).get(index, source).replace(BOOK_IMPORT, FMNIST_IMPORT)
            self._execute(index, transform(source))
            for name, value in (overrides or {}).items():
                if name in self.namespace:
                    self.namespace[name] = value
        return self

    def _execute(self, index: int, code: str) -> None:
        tree = ast.parse(code)
        last = tree.body.pop() if tree.body and isinstance(tree.body[-1], ast.Expr) else None
        filename = f"<d2l-en {self.number} cell {index}>"
        try:
            exec(compile(tree, filename, "exec"), self.namespace)
            if last is not None:
                self.outputs[index] = eval(compile(ast.Expression(last.value), filename, "eval"), self.namespace)
        except Exception as error:
            raise RuntimeError(f"cell {index} of chapter {self.number} failed:\n{code}") from error
