"""Comparing finished runs: one table, per-class accuracy side by side, the curves overlaid.

Every run's model is scored again on the test set, so runs of any models compare, and a run
whose files are damaged is found out before it is compared.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from . import data, fileio, metrics
from .evaluate import evaluate
from .rundir import RunDir, RunDirError, summarize

PICTURE, PAGE = "compare.png", "compare.html"  # what compare --out writes
# The columns where one value is better: the highest accuracy, the fewest seconds and parameters.
BEST = {"test_acc": max, "seconds": min, "parameters": min}


class RunError(Exception):
    """A run cannot be compared; the message names it and says why."""


@dataclass
class Run:
    """A finished run as compare sees it: its table row, per-class accuracies and metrics rows."""

    row: dict  # run, model, recipe, epochs, test_acc, best_epoch, seconds, parameters
    per_class: list[float]  # accuracy of each class on the test set, in data.LABELS order
    rows: list[dict]  # metrics.csv


def load_run(run_dir: Path, dataset: data.FashionMNIST) -> Run:
    """Score the run in run_dir on dataset's test set; RunError when it is missing, damaged or unfinished."""
    try:
        run = RunDir(run_dir)
        settings, rows, _ = run.read()
        net, _ = run.load_model()
    except RunDirError as e:
        raise RunError(str(e)) from None
    if len(rows) < settings.epochs:
        raise RunError(f"{run_dir} is unfinished ({len(rows)} of {settings.epochs} epochs); finish it with "
                       f"`{run.how_to_continue(None, False)}`, or leave it out.")
    try:
        scores = evaluate(net, dataset).scores
    except metrics.ScoresError as e:
        raise RunError(f"{run_dir}: {e}") from None
    best = max(rows, key=lambda row: row["test_acc"])  # the first of equals
    row = {
        "run": str(run_dir),
        "model": settings.model,
        "recipe": settings.recipe,
        "epochs": len(rows),
        "test_acc": scores["test_acc"],
        "best_epoch": best["epoch"],
        "seconds": summarize(rows)["seconds"],
        "parameters": sum(p.numel() for p in net.parameters()),
    }
    return Run(row, [c["accuracy"] for c in scores["per_class"]], rows)


def compare(runs: list[Run], failed: list[dict]) -> dict:
    """The comparison as one JSON-ready object.

    runs: table rows, each with per_class (label -> accuracy); best: column -> the runs with its best
    value (BEST); class_winners: label -> the runs with the best accuracy on that class;
    failed: {run, error} of the runs left out.
    """
    table = [{**run.row, "per_class": dict(zip(data.LABELS, run.per_class, strict=True))} for run in runs]
    best = {column: _winners([row[column] for row in table], choose, table) for column, choose in BEST.items()}
    winners = {name: _winners([row["per_class"][name] for row in table], max, table) for name in data.LABELS}
    return {"runs": table, "best": best, "class_winners": winners, "failed": failed}


def _winners(values: list, choose, table: list[dict]) -> list[str]:
    """The runs (names) whose value equals choose(values)."""
    top = choose(values)
    return [row["run"] for row, value in zip(table, values, strict=True) if value == top]


def format_text(result: dict) -> str:
    """The comparison as plain-text tables; * marks the best value of a column or of a class."""
    table = result["runs"]
    names = [row["run"] for row in table]
    width = max(len(name) for name in names) + 2
    lines = [f"{'run':<{width}}{'model':<9}{'recipe':<8}{'epochs':>6}{'test acc':>11}{'best epoch':>12}"
             f"{'seconds':>10}{'parameters':>13}"]  # fmt: skip
    for row in table:
        acc, seconds, parameters = (_mark(row, result["best"][column], text) for column, text in
                                    (("test_acc", f"{row['test_acc']:.4f}"), ("seconds", f"{row['seconds']:.1f}"),
                                     ("parameters", f"{row['parameters']:,}")))  # fmt: skip
        lines.append(f"{row['run']:<{width}}{row['model']:<9}{row['recipe']:<8}{row['epochs']:>6}{acc:>11}"
                     f"{row['best_epoch']:>12}{seconds:>10}{parameters:>13}")  # fmt: skip
    lines += ["* the best of the column: highest test accuracy, fewest seconds, fewest parameters", "",
              "test accuracy per class (* the best run for the class)"]  # fmt: skip
    column = max(10, width)
    lines.append(f"{'class':<13}" + "".join(f"{name:>{column}}" for name in names))
    for label, winners in result["class_winners"].items():
        cells = [_mark(row, winners, f"{row['per_class'][label]:.3f}") for row in table]
        lines.append(f"{label:<13}" + "".join(f"{cell:>{column}}" for cell in cells))
    wins = [f"{sum(name in winners for winners in result['class_winners'].values())} " for name in names]
    lines.append(f"{'classes won':<13}" + "".join(f"{n:>{column}}" for n in wins))
    return "\n".join(lines)


def _mark(row: dict, best: list[str], text: str) -> str:
    """text, followed by * when row's run is among the best, else by a space (so columns align)."""
    return text + ("*" if row["run"] in best else " ")


def check_out(out: Path) -> None:
    """Refuse --out before any work (write checks it again, holding the folder's lock): a path that exists and
    is not a folder, or a PICTURE or PAGE there that is not a regular file."""
    fileio.check_out_folder(out)
    if out.is_dir():
        for name in (PICTURE, PAGE):
            fileio.check_output(out / name)


def write(out: Path, result: dict, runs: list[Run]) -> tuple[Path, Path]:
    """Write PICTURE (every run's curves) and PAGE (tables and picture) into out."""
    from . import report

    with fileio.uninterrupted():  # matplotlib: only when drawing; a stop waits for its import
        from . import plots
    fileio.make_out_folder(out)
    picture, page = out / PICTURE, out / PAGE
    with fileio.exclusive(out):  # one compare at a time writes there, so leftovers of killed ones can go
        for path in (picture, page):  # both checked before either is written
            fileio.check_output(path)
        fileio.remove_leftovers(out, (picture.name, page.name))
        png = plots.png(plots.plot_comparison, [(run.row["run"], run.rows) for run in runs])
        fileio.write_atomic(picture, png)
        fileio.write_atomic(page, report.comparison_page(result, png))
    return picture, page
