"""Models and the mapping between a model and its documented safetensors names."""

from __future__ import annotations

import torch
from torch import nn

MODELS = ("softmax",)


def softmax_regression() -> nn.Sequential:
    """The seed's model: Flatten then Linear(784, 10); weight ~ N(0, 0.01^2), bias 0.

    Takes X [B, 1, 28, 28] (or [B, 784]) and returns logits [B, 10].
    """
    net = nn.Sequential(nn.Flatten(), nn.Linear(784, 10))
    nn.init.normal_(net[1].weight, std=0.01)
    nn.init.zeros_(net[1].bias)
    return net


def build(name: str) -> nn.Module:
    """A freshly initialised model by name (one of MODELS); uses the global torch RNG."""
    if name == "softmax":
        return softmax_regression()
    raise ValueError(f"unknown model {name!r}; choose one of {', '.join(MODELS)}")


def export_tensors(net: nn.Module) -> dict[str, torch.Tensor]:
    """The model's weights under their documented file names (linear: weight [10, 784], bias [10])."""
    if isinstance(net, nn.Sequential) and isinstance(net[-1], nn.Linear) and len(net) == 2:
        return {"weight": net[1].weight.detach(), "bias": net[1].bias.detach()}
    return {k: v.detach() for k, v in net.state_dict().items()}


def import_tensors(net: nn.Module, tensors: dict[str, torch.Tensor]) -> None:
    """Load tensors named as export_tensors names them into net; ValueError on a mismatch."""
    own = export_tensors(net)
    if set(own) != set(tensors):
        raise ValueError(f"expected tensors {sorted(own)}, found {sorted(tensors)}")
    for name, target in own.items():
        source = tensors[name]
        if source.shape != target.shape or source.dtype != target.dtype:
            raise ValueError(
                f"tensor {name!r} is {source.dtype} {tuple(source.shape)}, "
                f"expected {target.dtype} {tuple(target.shape)}"
            )
    with torch.no_grad():
        for name, target in own.items():
            target.copy_(tensors[name])
