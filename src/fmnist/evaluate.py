"""Scoring a run on the test set and drawing what it gets right and wrong, into its directory."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from . import checkpoint, data, metrics, plots, report

PICTURES = ("curves", "confusion", "mistakes")


def evaluate_run(
    run_dir: Path, net: nn.Module, config: dict, dataset: data.FashionMNIST, rows: list[dict], write: bool = True
) -> dict:
    """Score net on the test set; returns test_acc, per_class and most_confused. With write, also
    write summary.json, curves.png, confusion.png, mistakes.png and report.html into run_dir.

    config and rows are the run's config.json and metrics.csv rows.
    """
    batches = data.Batches(dataset.test_images, dataset.test_labels, metrics.EVAL_BATCH_SIZE)
    scores, labels = metrics.logits(net, batches)
    confusion = metrics.confusion_matrix(scores.argmax(dim=1), labels)
    names = list(data.LABELS)
    result = {
        "test_acc": metrics.accuracy(confusion),
        "per_class": metrics.per_class(confusion, names),
        "most_confused": metrics.most_confused(confusion, names),
    }
    if not write:
        return result
    summary = checkpoint.summarize(rows)
    checkpoint.write_json(run_dir / "summary.json", summary)
    pictures = {name: run_dir / f"{name}.png" for name in PICTURES}
    plots.plot_curves(rows, pictures["curves"])
    plots.plot_confusion(confusion, names, pictures["confusion"])
    plots.plot_mistakes(dataset.test_images.cpu(), labels, torch.softmax(scores, dim=1), names, pictures["mistakes"])
    report.write_report(run_dir / "report.html", config=config, rows=rows, summary=summary,
                        per_class=result["per_class"], confused=result["most_confused"], pictures=pictures)  # fmt: skip
    return result
