"""Scoring a run on the test set and drawing what it gets right and wrong, into its directory."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from . import checkpoint, data, metrics, model, plots, report

PICTURES = ("curves", "confusion", "mistakes", "weights")
MAX_UNITS = 64  # weights.png of a wide first layer (the mlp's 256 units): these many, a quarter of the bytes


def evaluate_run(
    run_dir: Path, net: nn.Module, config: dict, dataset: data.FashionMNIST, rows: list[dict], write: bool = True
) -> dict:
    """Score net on the test set; returns test_acc, per_class and most_confused. With write, also
    write summary.json, curves.png, confusion.png, mistakes.png, weights.png and report.html into run_dir.

    config and rows are the run's config.json and metrics.csv rows.
    """
    batches = data.Batches(dataset.test_images, dataset.test_labels, metrics.EVAL_BATCH_SIZE)
    scores, labels = metrics.logits(net, batches)
    confusion = metrics.confusion_matrix(scores.argmax(dim=1), labels)
    names = list(data.LABELS)
    result = metrics.scores(confusion, names)
    if not write:
        return result
    summary = checkpoint.summarize(rows)
    checkpoint.write_json(run_dir / "summary.json", summary)
    pictures = {name: run_dir / f"{name}.png" for name in PICTURES}
    images, probs = dataset.test_images.cpu(), torch.softmax(scores, dim=1)
    plots.plot_curves(rows, pictures["curves"])
    plots.plot_confusion(confusion, names, pictures["confusion"])
    plots.plot_mistakes(images, labels, probs, names, pictures["mistakes"])
    plot_weights(net, config["model"], pictures["weights"])
    del pictures["confusion"]  # the report has the matrix as a table, with the images of each cell
    report.write_report(run_dir / "report.html", config=config, rows=rows, summary=summary,
                        per_class=result["per_class"], confused=result["most_confused"], confusion=confusion.numpy(),
                        images=images[:, 0].numpy(), labels=labels.numpy(), probs=probs.numpy(),
                        pictures=pictures)  # fmt: skip
    return result


def plot_weights(net: nn.Module, model_name: str, path: Path) -> None:
    """weights.png: softmax regression's ten class templates, or (up to MAX_UNITS of) the first layer's
    units or filters."""
    weights = model.pixel_weights(net)
    if model_name == "softmax":
        plots.plot_weights(weights, path, "Weights of each class, in pixel space", list(data.LABELS))
        return
    layer = "filters of the first convolution" if weights.shape[1] < 28 else "hidden units of the first layer"
    shown = f"the first {MAX_UNITS} of the {len(weights)}" if len(weights) > MAX_UNITS else f"the {len(weights)}"
    plots.plot_weights(weights[:MAX_UNITS], path, f"{model_name}: {shown} {layer}, in pixel space")
