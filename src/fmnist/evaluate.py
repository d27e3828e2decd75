"""Scoring a run on the test set and drawing what it gets right and wrong, into its directory."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from . import checkpoint, data, metrics, model, report
from .fileio import write_atomic
from .painters import Painters

PICTURES = ("curves", "confusion", "mistakes", "weights")
OUTPUTS = ("summary.json", "report.html", *(f"{name}.png" for name in PICTURES))  # what evaluate_run writes
MISTAKES = 24  # images in mistakes.png
MAX_UNITS = 64  # weights.png of a wide first layer (the mlp's 256 units): these many, a quarter of the bytes


def evaluate_run(
    run_dir: Path,
    net: nn.Module,
    config: dict,
    dataset: data.FashionMNIST,
    rows: list[dict],
    write: bool = True,
    painters: Painters | None = None,
) -> dict:
    """Score net on the test set; returns test_acc, per_class and most_confused. With write, also
    write summary.json, curves.png, confusion.png, mistakes.png, weights.png and report.html into run_dir,
    the pictures drawn by painters (None: in this process).

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
    probs = torch.softmax(scores, dim=1)
    wrong = metrics.most_confident_mistakes(labels, probs, MISTAKES)
    painters = painters or Painters(dataset.test_images, count=0)
    weights, title, titles = weights_picture(net, config["model"])
    drawn = {  # the slowest first, so that the painters share the work evenly
        "mistakes": painters.draw("plot_mistakes", dataset.test_images[wrong.to(dataset.test_images.device)].cpu(),
                                   labels[wrong], probs[wrong], names, n=MISTAKES),
        "confusion": painters.draw("plot_confusion", confusion, names),
        "curves": painters.draw("plot_curves", rows),
        "weights": painters.draw("plot_weights", weights, title=title, titles=titles),
    }
    explorer = report.explorer(painters.sprite(), labels.numpy(), probs.numpy(), names)  # while they draw
    pictures = {name: run_dir / f"{name}.png" for name in PICTURES}
    for name, path in pictures.items():
        write_atomic(path, drawn[name]())
    del pictures["confusion"]  # the report has the matrix as a table, with the images of each cell
    report.write_report(run_dir / "report.html", config=config, rows=rows, summary=summary,
                        per_class=result["per_class"], confused=result["most_confused"], confusion=confusion.numpy(),
                        explorer=explorer, pictures=pictures)  # fmt: skip
    return result


def weights_picture(net: nn.Module, model_name: str) -> tuple[torch.Tensor, str, list[str] | None]:
    """fmnist.plots.plot_weights' weights, title and titles for net: softmax regression's ten class
    templates, or (up to MAX_UNITS of) the first layer's units or filters."""
    weights = model.pixel_weights(net)
    if model_name == "softmax":
        return weights, "Weights of each class, in pixel space", list(data.LABELS)
    layer = "filters of the first convolution" if weights.shape[1] < 28 else "hidden units of the first layer"
    shown = f"the first {MAX_UNITS} of the {len(weights)}" if len(weights) > MAX_UNITS else f"the {len(weights)}"
    # a copy: a view would take all the units' weights with it to a painter
    return weights[:MAX_UNITS].clone(), f"{model_name}: {shown} {layer}, in pixel space", None
