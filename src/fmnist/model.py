"""Models, and the mapping between a model and the names of its tensors on disk.

Every model takes X [B, 1, 28, 28] with pixels in [0, 1] and returns logits [B, 10].
A model may start with a Normalize layer, so the input standardisation travels with
the weights.
"""

from __future__ import annotations

import torch
from torch import nn

NORMALIZE_SHAPES = {"pixel": (784,), "global": (1,)}  # per pixel (row by row) or one for all


class Normalize(nn.Module):
    """(x - mean) / std with mean and std stored as buffers (saved with the weights)."""

    def __init__(self, shape: tuple[int, ...]) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(shape))
        self.register_buffer("std", torch.ones(shape))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # mean and std of shape (784,) meet a flat [B, 784] input; of shape (1,), any input
        return (x - self.mean) / self.std


class SoftmaxRegression(nn.Sequential):
    """nn.Sequential(nn.Flatten(), nn.Linear(784, 10)), optionally with Normalize between the
    two; its own class only so that its tensors can be saved under the documented names."""


def softmax_regression(normalize: str | None = None) -> SoftmaxRegression:
    """The seed's model: Flatten then Linear(784, 10); weight ~ N(0, 0.01^2), bias 0.

    With normalize ("pixel" or "global") a Normalize layer sits between the two; the model
    stays one linear map of the pixels.
    """
    layers: list[nn.Module] = [nn.Flatten()]
    if normalize:
        layers.append(Normalize(NORMALIZE_SHAPES[normalize]))
    layers.append(nn.Linear(784, 10))
    net = SoftmaxRegression(*layers)
    nn.init.normal_(net[-1].weight, std=0.01)
    nn.init.zeros_(net[-1].bias)
    return net


def mlp(normalize: str | None = None, dropout: float = 0.0, hidden: int = 256) -> nn.Sequential:
    """The book's multilayer perceptron: 784 -> hidden ReLU units -> 10, weights ~ N(0, 0.01^2)."""
    layers: list[nn.Module] = [nn.Flatten()]
    if normalize:
        layers.append(Normalize(NORMALIZE_SHAPES[normalize]))
    layers += [nn.Linear(784, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, 10)]
    net = nn.Sequential(*layers)
    for layer in net:
        if isinstance(layer, nn.Linear):
            nn.init.normal_(layer.weight, std=0.01)
            nn.init.zeros_(layer.bias)
    return net


def cnn(normalize: str | None = None, dropout: float = 0.0) -> nn.Sequential:
    """A small LeNet-style network with ReLU, max pooling and batch normalisation:
    [conv 3x3 -> BN -> ReLU -> max pool] x 2 (16, 32 channels), then 128 ReLU units.
    (32 and 64 channels took 2.7x as long per epoch on 2 CPU cores.)"""
    layers: list[nn.Module] = []
    if normalize:
        layers.append(Normalize((1,)))
    for c_in, c_out in ((1, 16), (16, 32)):
        layers += [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(),
                   nn.MaxPool2d(2)]  # fmt: skip
    layers += [nn.Flatten(), nn.Linear(32 * 7 * 7, 128), nn.ReLU(), nn.Dropout(dropout), nn.Linear(128, 10)]
    return nn.Sequential(*layers)


def lenet() -> nn.Sequential:
    """The book's LeNet-5: sigmoid activations, average pooling, Xavier-initialised weights."""
    net = nn.Sequential(
        nn.Conv2d(1, 6, kernel_size=5, padding=2), nn.Sigmoid(), nn.AvgPool2d(2, stride=2),
        nn.Conv2d(6, 16, kernel_size=5), nn.Sigmoid(), nn.AvgPool2d(2, stride=2),
        nn.Flatten(),
        nn.Linear(16 * 5 * 5, 120), nn.Sigmoid(),
        nn.Linear(120, 84), nn.Sigmoid(),
        nn.Linear(84, 10),
    )  # fmt: skip
    for layer in net:
        if isinstance(layer, (nn.Linear, nn.Conv2d)):
            nn.init.xavier_uniform_(layer.weight)
    return net


def build(name: str, normalize: str | None = None, dropout: float = 0.0) -> nn.Module:
    """A freshly initialised model by name (settings.Config's model, which checks what each model can apply:
    normalize and dropout); uses the global torch RNG. ValueError for an unknown name."""
    normalize = None if normalize == "none" else normalize
    if name == "softmax":
        return softmax_regression(normalize)
    if name == "mlp":
        return mlp(normalize, dropout)
    if name == "cnn":
        return cnn(normalize, dropout)
    if name == "lenet":
        return lenet()
    raise ValueError(f"unknown model {name!r}")


def set_normalization(net: nn.Module, mean: torch.Tensor, std: torch.Tensor) -> None:
    """Fill net's Normalize layer (if it has one) with mean and std of its shape."""
    for layer in net.modules():
        if isinstance(layer, Normalize):
            layer.mean.copy_(mean.reshape(layer.mean.shape))
            layer.std.copy_(std.reshape(layer.std.shape))


def export_tensors(net: nn.Module) -> dict[str, torch.Tensor]:
    """The model's tensors under their names on disk.

    Softmax regression uses the documented names: weight [10, 784], bias [10], and mean and
    std ((784,) or (1,)) when it normalises. Other models use their state_dict names.
    """
    if isinstance(net, SoftmaxRegression):
        tensors = {"weight": net[-1].weight, "bias": net[-1].bias}
        for layer in net:
            if isinstance(layer, Normalize):
                tensors.update(mean=layer.mean, std=layer.std)
        return {k: v.detach() for k, v in tensors.items()}
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
    spreads = [name for name in own if name.split(".")[-1] == "std" and not (tensors[name] > 0).all()]
    if spreads:
        raise ValueError(f"tensor {spreads[0]!r}, the input's spread it divides by, is not positive everywhere")
    with torch.no_grad():
        for name, target in own.items():
            target.copy_(tensors[name])


def pixel_weights(net: nn.Module) -> torch.Tensor:
    """The first layer's weights as pictures in pixel space, float32 [units, h, w] on the CPU.

    Softmax regression: its 10 rows as 28x28, one template per class; mlp: each hidden unit's 784
    weights as 28x28; cnn and lenet: the first convolution's k x k filters. A Normalize layer in
    front is folded in (weight / std): then a picture shows, for every model, how much the unit's
    input changes per unit of pixel brightness (pixels in [0, 1]), with or without standardisation.
    """
    std = torch.ones(1)
    for layer in net.modules():
        if isinstance(layer, Normalize):
            std = layer.std.detach().float().cpu()
    # the first weight in parameter order is the first layer's (also for fmnist.scratch's model)
    weight = next(p for name, p in net.named_parameters() if name.endswith("weight")).detach().float().cpu()
    if weight.dim() == 4:  # convolution [out, 1, k, k]: one channel in, and a global std
        return weight[:, 0] / std.reshape(-1, 1, 1)
    return (weight / std).reshape(-1, 28, 28)


def evidence(net: nn.Module, images: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
    """Pixel times weight for each image's class, float32 [N, 28, 28]: softmax regression only.

    images: [N, 1, 28, 28] pixels in [0, 1]; classes: int64 [N]. The weights are in pixel space
    (pixel_weights), so an image's map sums, with the class's bias in pixel space
    (bias - weight @ (mean / std)), to its logit. ValueError for any other model, whose
    decision is not a sum over pixels.
    """
    if not isinstance(net, SoftmaxRegression):
        raise ValueError("only softmax regression scores a class as a sum of pixel times weight")
    return images.detach().cpu().reshape(-1, 28, 28) * pixel_weights(net)[classes.cpu()]
