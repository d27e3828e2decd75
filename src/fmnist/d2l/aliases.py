"""The d2l book's framework-neutral tensor aliases (its config.ini), for both editions.

``d2l.tensor``, ``d2l.reduce_sum``, ``d2l.float32``... are PyTorch's functions under the
book's names. d2l 1.x added a few (``nn_Module``, ``int64``, ``expand_dims``...); the
d2l 0.17 namespace (fmnist.d2l) exports the older list, the 1.x one (fmnist.d2l.en) all.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

ZH = (
    "ones", "zeros", "tensor", "arange", "meshgrid", "sin", "sinh", "cos", "cosh", "tanh", "linspace",
    "exp", "log", "normal", "rand", "randn", "matmul", "int32", "float32", "concat", "stack", "abs", "eye",
    "numpy", "size", "reshape", "to", "reduce_sum", "reduce_mean", "argmax", "astype", "transpose",
)  # fmt: skip
EN = (*ZH, "nn_Module", "ones_like", "zeros_like", "int64", "sigmoid", "batch_matmul", "expand_dims",
      "swapaxes", "repeat")  # fmt: skip
__all__ = [*EN]

nn_Module = nn.Module
ones = torch.ones
ones_like = torch.ones_like
zeros = torch.zeros
zeros_like = torch.zeros_like
tensor = torch.tensor
arange = torch.arange
meshgrid = torch.meshgrid
sin = torch.sin
sinh = torch.sinh
cos = torch.cos
cosh = torch.cosh
tanh = torch.tanh
linspace = torch.linspace
exp = torch.exp
log = torch.log
normal = torch.normal
rand = torch.rand
randn = torch.randn
matmul = torch.matmul
int32 = torch.int32
int64 = torch.int64
float32 = torch.float32
concat = torch.cat
stack = torch.stack
abs = torch.abs
eye = torch.eye
sigmoid = torch.sigmoid
batch_matmul = torch.bmm


def numpy(x: torch.Tensor, *args: Any, **kwargs: Any) -> np.ndarray:
    """x as a numpy array, detached from autograd (x must be on the CPU)."""
    return x.detach().numpy(*args, **kwargs)


def size(x: torch.Tensor) -> int:
    """Number of elements of x."""
    return x.numel()


def reshape(x: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
    """x.reshape(shape)."""
    return x.reshape(*args, **kwargs)


def to(x: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
    """x.to(device or dtype)."""
    return x.to(*args, **kwargs)


def reduce_sum(x: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
    """x.sum(dim, keepdim=...): the sum of all elements, or along dim."""
    return x.sum(*args, **kwargs)


def reduce_mean(x: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
    """x.mean(dim, keepdim=...)."""
    return x.mean(*args, **kwargs)


def argmax(x: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
    """x.argmax(dim) (the book writes axis=1, which torch accepts too)."""
    return x.argmax(*args, **kwargs)


def astype(x: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
    """x converted to a dtype, x.type(dtype)."""
    return x.type(*args, **kwargs)


def transpose(x: torch.Tensor) -> torch.Tensor:
    """The transpose of a matrix (x.t())."""
    return x.t()


def expand_dims(x: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
    """x with a new axis of length 1 at dim (x.unsqueeze(dim))."""
    return x.unsqueeze(*args, **kwargs)


def swapaxes(x: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
    """x with two axes exchanged (x.swapaxes(axis0, axis1))."""
    return x.swapaxes(*args, **kwargs)


def repeat(x: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
    """x tiled along each axis (x.repeat(*sizes))."""
    return x.repeat(*args, **kwargs)
