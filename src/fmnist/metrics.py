"""Scoring a model: confusion matrix and what follows from it, all as tensor operations."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

from .errors import UserError

NUM_CLASSES = 10
EVAL_BATCH_SIZE = 1000  # large batches only speed up scoring; results do not depend on it


def confusion_matrix(predicted: torch.Tensor, labels: torch.Tensor, num_classes: int = NUM_CLASSES) -> torch.Tensor:
    """Counts int64 [C, C]: row = true class, column = predicted class. Inputs int64 [N]."""
    flat = labels * num_classes + predicted
    return torch.bincount(flat, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


class ScoresError(UserError):
    """A model's scores are not all finite numbers: weights so large that their sums overflow, or an input
    spread (std) of 0; its predictions would mean nothing."""


def finite(scores: torch.Tensor) -> torch.Tensor:
    """scores (any shape), unchanged; ScoresError when any is NaN or infinite."""
    if not scores.isfinite().all():
        raise ScoresError("the model's scores are not all finite numbers (its weights are so large that they "
                          "overflow, or it divides by a spread of 0), so it cannot classify; train that run again.")
    return scores


@torch.no_grad()
def logits(net: nn.Module, batches: Iterable[tuple[torch.Tensor, torch.Tensor]]) -> tuple[torch.Tensor, torch.Tensor]:
    """net's logits float32 [N, C] and the labels int64 [N] over batches, on the CPU; computed in
    eval mode without gradients (the mode net was in is restored). They are gathered on the batches'
    device and copied once at the end, so a GPU is never waited for between batches. ScoresError when
    a logit is not finite."""
    was_training = net.training
    net.eval()
    outputs, labels = zip(*((net(X), y) for X, y in batches), strict=True)
    net.train(was_training)
    return finite(torch.cat(outputs).cpu()), torch.cat(labels).cpu()


def evaluate(net: nn.Module, batches: Iterable[tuple[torch.Tensor, torch.Tensor]]) -> torch.Tensor:
    """Confusion matrix int64 [C, C] of net over batches (the class of the largest logit)."""
    scores, labels = logits(net, batches)
    return confusion_matrix(scores.argmax(dim=1), labels)


def accuracy(confusion: torch.Tensor) -> float:
    """Fraction of correct predictions, in [0, 1]."""
    return confusion.trace().item() / max(confusion.sum().item(), 1)


def per_class(confusion: torch.Tensor, names: Iterable[str]) -> list[dict]:
    """One row per class: label, index, support, precision, recall, and accuracy (equal to recall:
    the fraction of the class's images classified correctly)."""
    hits = confusion.diag().double()
    support = confusion.sum(dim=1).double()
    predicted = confusion.sum(dim=0).double()
    rows = []
    for i, name in enumerate(names):
        recall = float(hits[i] / support[i]) if support[i] else 0.0
        precision = float(hits[i] / predicted[i]) if predicted[i] else 0.0
        rows.append({"label": name, "index": i, "support": int(support[i]), "precision": precision,
                     "recall": recall, "accuracy": recall})  # fmt: skip
    return rows


def scores(confusion: torch.Tensor, names: list[str]) -> dict:
    """What a confusion matrix [C, C] says, JSON-ready: test_acc, per_class rows, most_confused pairs."""
    return {"test_acc": accuracy(confusion), "per_class": per_class(confusion, names),
            "most_confused": most_confused(confusion, names)}  # fmt: skip


def most_confident_mistakes(labels: torch.Tensor, probs: torch.Tensor, n: int) -> torch.Tensor:
    """Indices int64 [<= n] of misclassified items, the most confident mistake first (ties: lower index).

    labels: int64 [N] true classes; probs: float [N, C] predicted probabilities (argmax = prediction).
    """
    confidence, predicted = probs.max(dim=1)
    wrong = (predicted != labels).nonzero().flatten()
    order = confidence[wrong].sort(descending=True, stable=True).indices
    return wrong[order[:n]]


def most_confused(confusion: torch.Tensor, names: list[str], k: int = 5) -> list[dict]:
    """The k largest off-diagonal cells: true label, predicted label, count."""
    off = confusion.clone()
    off.fill_diagonal_(0)
    counts, flat = off.flatten().topk(k)
    n = confusion.shape[0]
    return [
        {"true": names[i // n], "predicted": names[i % n], "count": int(c)}
        for c, i in zip(counts.tolist(), flat.tolist(), strict=True)
        if c > 0
    ]
