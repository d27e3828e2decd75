"""Scoring a model on the test set: its probabilities, confusion matrix and per-class scores."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from . import data, metrics


@dataclass
class Evaluation:
    """A model scored on the test set: labels int64 [N], probabilities float32 [N, C] (on the CPU), the
    confusion matrix int64 [C, C] (rows: true classes), and scores: test_acc, per_class, most_confused
    (metrics.scores)."""

    labels: torch.Tensor
    probs: torch.Tensor
    confusion: torch.Tensor
    scores: dict


def evaluate(net: nn.Module, dataset: data.FashionMNIST) -> Evaluation:
    """Score net on dataset's test set; metrics.ScoresError when a score is not a finite number."""
    batches = data.Batches(dataset.test_images, dataset.test_labels, metrics.EVAL_BATCH_SIZE)
    logits, labels = metrics.logits(net, batches)
    confusion = metrics.confusion_matrix(logits.argmax(dim=1), labels)
    return Evaluation(labels, torch.softmax(logits, dim=1), confusion, metrics.scores(confusion, list(data.LABELS)))
