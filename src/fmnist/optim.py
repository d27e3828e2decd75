"""The plain SGD step, w <- w - lr * grad, for fmnist's training and the d2l book's APIs.

It imports nothing of fmnist, so the book's namespaces (fmnist.d2l) use it without loading
the command line's run folders, reports or painters.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch


@torch.no_grad()
def sgd_step(params: Iterable[torch.Tensor], lr: float) -> None:
    """Move every parameter against its gradient: p <- p - lr * p.grad, in place."""
    for p in params:
        p.add_(p.grad, alpha=-lr)


class SGD:
    """Plain mini-batch SGD with torch.optim's step()/zero_grad()/param_groups interface.

    The arithmetic is torch.optim.SGD's without momentum (the tests check bit equality);
    it exists because torch.optim imports torch._dynamo on first use, which costs about
    2 s of start-up, longer than a whole training epoch of this model.
    """

    def __init__(self, params: Iterable[torch.Tensor], lr: float) -> None:
        self.param_groups = [{"params": list(params), "lr": lr}]

    def step(self) -> None:
        """Move every parameter against its gradient."""
        for group in self.param_groups:
            sgd_step(group["params"], group["lr"])

    def zero_grad(self) -> None:
        """Drop the gradients, as torch.optim's zero_grad(set_to_none=True)."""
        for group in self.param_groups:
            for p in group["params"]:
                p.grad = None

    def state_dict(self) -> dict:
        """torch.optim's format; plain SGD keeps no state between steps."""
        return {"state": {}, "param_groups": [{"lr": g["lr"]} for g in self.param_groups]}

    def load_state_dict(self, state: dict) -> None:
        """Accept a state_dict() of the same kind (there is nothing to restore)."""
        if state["state"]:
            raise ValueError("plain SGD keeps no state, but the checkpoint has optimizer state")
