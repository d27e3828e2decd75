"""A run's results, drawn in this process from its evaluation and written into its folder: summary.json,
the pictures (curves, confusion matrix, most confident mistakes, weights) and report.html."""

from __future__ import annotations

import torch
from torch import nn

from . import data, fileio, metrics, model, report, rundir
from .evaluate import Evaluation

MISTAKES = 24  # images in mistakes.png
MAX_UNITS = 64  # weights.png of a wide first layer (the mlp's 256 units): these many, a quarter of the bytes


def write_results(run: rundir.RunDir, net: nn.Module, model_name: str, description: dict,
                  dataset: data.FashionMNIST, evaluation: Evaluation, rows: list[dict]) -> None:  # fmt: skip
    """Draw and write run's results: net (a model_name) scored on dataset's test set as evaluation, its
    config.json's description and metrics rows."""
    with fileio.uninterrupted():  # a stop during matplotlib's import would leave it half-imported: it waits
        from . import plots
    names = list(data.LABELS)
    labels, probs = evaluation.labels, evaluation.probs
    wrong = metrics.most_confident_mistakes(labels, probs, MISTAKES)
    weights, title, titles = weights_picture(net, model_name)
    pictures = {
        "curves": plots.png(plots.plot_curves, rows),
        "confusion": plots.png(plots.plot_confusion, evaluation.confusion, names),
        "mistakes": plots.png(plots.plot_mistakes, dataset.test_images[wrong.to(dataset.test_images.device)].cpu(),
                         labels[wrong], probs[wrong], names, n=MISTAKES),  # fmt: skip
        "weights": plots.png(plots.plot_weights, weights, title=title, titles=titles),
    }
    summary = rundir.summarize(rows)
    sprite = report.sprite(dataset.test_images.detach().cpu()[:, 0].numpy())
    page = report.report_page(run.path.name or "run", config=description, rows=rows, summary=summary,
                              per_class=evaluation.scores["per_class"], confused=evaluation.scores["most_confused"],
                              confusion=evaluation.confusion.numpy(),
                              explorer=report.explorer(sprite, labels.numpy(), probs.numpy(), names),
                              pictures={k: v for k, v in pictures.items() if k != "confusion"})  # fmt: skip
    run.write_results(summary, pictures, page)  # the report has the matrix as a table, with each cell's images


def weights_picture(net: nn.Module, model_name: str) -> tuple[torch.Tensor, str, list[str] | None]:
    """fmnist.plots.plot_weights' weights, title and titles for net: softmax regression's ten class
    templates, or (up to MAX_UNITS of) the first layer's units or filters."""
    weights = model.pixel_weights(net)
    if model_name == "softmax":
        return weights, "Weights of each class, in pixel space", list(data.LABELS)
    layer = "filters of the first convolution" if weights.shape[1] < 28 else "hidden units of the first layer"
    shown = f"the first {MAX_UNITS} of the {len(weights)}" if len(weights) > MAX_UNITS else f"the {len(weights)}"
    return weights[:MAX_UNITS], f"{model_name}: {shown} {layer}, in pixel space", None
