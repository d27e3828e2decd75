"""Softmax regression from scratch, done right: stable softmax and cross-entropy, hand-derived gradients.

The book's from-scratch chapter computes exp(X) / sum(exp(X)) and -log(probability), which
overflow to nan and underflow to inf for large logits. Here every function shifts each row
by its maximum and works in log space (LogSumExp), and the training step uses the gradient
of the mean cross-entropy worked out by hand, with no autograd:

    P = softmax(logits)                    [B, 10]
    G = (P - onehot(y)) / B                [B, 10]   d(mean loss) / d(logits)
    grad_W = G^T X   [10, 784]     grad_b = G.sum(0)   [10]
    W -= lr * grad_W               b -= lr * grad_b

From the same seed and the same batches this reaches the weights of the concise model
(fmnist.model.softmax_regression trained by fmnist.train.train_epoch) to float rounding.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
from torch import nn
from tqdm import tqdm

if TYPE_CHECKING:
    from .data import Batches


def log_softmax(X: torch.Tensor) -> torch.Tensor:
    """log(softmax(X)) along the last dimension, [..., C] -> [..., C], finite for any finite X.

    Computed as X - max - log(sum(exp(X - max))): the largest shifted value is 0, so exp
    cannot overflow and the sum is at least 1, so its log cannot be -inf.
    """
    shifted = X - X.amax(dim=-1, keepdim=True)
    return shifted - shifted.exp().sum(dim=-1, keepdim=True).log()


def softmax(X: torch.Tensor) -> torch.Tensor:
    """exp(X) / sum(exp(X)) along the last dimension, [..., C] -> [..., C] (rows sum to 1).

    Each row is shifted by its maximum first, which leaves the result unchanged and keeps
    exp from overflowing; e.g. [[1., 2., 3., 4.]] -> [[0.0321, 0.0871, 0.2369, 0.6439]].
    """
    exps = (X - X.amax(dim=-1, keepdim=True)).exp()
    return exps / exps.sum(dim=-1, keepdim=True)


def cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Per-example cross-entropy losses, shape (B,) (no reduction), from logits [B, C] and labels int64 [B].

    Takes logits, not probabilities (unlike the book's cross_entropy(y_hat, y)): it is
    -log_softmax(logits)[i, labels[i]], so equal to nn.CrossEntropyLoss(reduction='none'),
    and finite however large the logits. Units: nats.
    """
    return -log_softmax(logits).gather(1, labels.unsqueeze(1)).squeeze(1)


class ScratchSoftmaxRegression(nn.Module):
    """Logits [B, 10] = X.flatten(1) @ weight.T + bias, for X [B, 1, 28, 28] or [B, 784].

    Parameters weight (10, 784) and bias (10,), the documented safetensors names. Initialised
    like fmnist.model.softmax_regression(): after the same torch.manual_seed, the initial
    weights are bit-identical. The parameters do not require gradients: train_epoch computes
    them by hand.
    """

    def __init__(self, num_inputs: int = 784, num_outputs: int = 10) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(num_outputs, num_inputs), requires_grad=False)
        self.bias = nn.Parameter(torch.empty(num_outputs), requires_grad=False)
        # nn.Linear's own initialisation first (what torch.nn.Linear.reset_parameters does), only
        # so that the global RNG advances exactly as when the concise model is built ...
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        nn.init.uniform_(self.bias, -1 / math.sqrt(num_inputs), 1 / math.sqrt(num_inputs))
        # ... then the book's: weight ~ N(0, 0.01^2), bias 0.
        nn.init.normal_(self.weight, std=0.01)
        nn.init.zeros_(self.bias)

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        """Logits [B, 10] of images [B, 1, 28, 28] or flat pixels [B, 784]."""
        return nn.functional.linear(X.flatten(1), self.weight, self.bias)


@torch.no_grad()
def train_epoch(
    net: ScratchSoftmaxRegression,
    batches: Batches,
    lr: float,
    progress: bool | None = None,
) -> tuple[float, float]:
    """One pass of mini-batch SGD on the mean cross-entropy with hand-computed gradients.

    Returns (mean loss per example in nats, accuracy in [0, 1]) over the epoch, as
    fmnist.train.train_epoch does; losses and accuracy are those of the weights before
    each batch's step. progress: a tqdm bar (None: only on a terminal).
    """
    net.train()
    loss_sum = torch.zeros((), device=batches.labels.device)
    correct = torch.zeros((), dtype=torch.int64, device=batches.labels.device)
    for X, y in tqdm(batches, leave=False, unit="batch", disable=None if progress is None else not progress):
        X = X.flatten(1)
        logits = nn.functional.linear(X, net.weight, net.bias)
        log_p = log_softmax(logits)
        loss_sum -= log_p.gather(1, y.unsqueeze(1)).sum()
        correct += (logits.argmax(dim=1) == y).sum()
        G = (log_p.exp() - nn.functional.one_hot(y, logits.shape[1])) / len(y)
        net.weight.add_(G.T @ X, alpha=-lr)
        net.bias.add_(G.sum(dim=0), alpha=-lr)
    n = len(batches.labels)
    return loss_sum.item() / n, correct.item() / n
