"""Pictures drawn with matplotlib.

Figures are made with matplotlib.figure.Figure, not pyplot, so that writing a PNG never
needs a display or touches pyplot's global state; the book's functions, which should show
inline in Jupyter, pass in a pyplot figure instead.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure


def image_grid(
    images: torch.Tensor | np.ndarray,
    num_rows: int,
    num_cols: int,
    titles: Sequence[str] | None = None,
    scale: float = 1.5,
    fig: Figure | None = None,
) -> tuple[Figure, np.ndarray]:
    """Grey images in a num_rows x num_cols grid with optional titles, on fig or a new Figure.

    images: [N, H, W] or [N, 1, H, W], floats in [0, 1] or uint8, N <= num_rows * num_cols.
    Returns the figure and the flat array of its Axes (cells beyond N are left blank).
    """
    pixels = torch.as_tensor(images).detach().cpu()
    if pixels.dim() == 4:
        pixels = pixels[:, 0]
    if fig is None:
        fig = Figure(figsize=(num_cols * scale, num_rows * scale))
    axes: np.ndarray = fig.subplots(num_rows, num_cols, squeeze=False).flatten()
    vmax = 255 if pixels.dtype == torch.uint8 else 1
    for i, ax in enumerate(axes):
        _blank(ax)
        if i < len(pixels):
            ax.imshow(pixels[i].numpy(), cmap="gray", vmin=0, vmax=vmax)
            if titles is not None and i < len(titles):
                ax.set_title(titles[i], fontsize=9)
    fig.tight_layout()
    return fig, axes


def _blank(ax: Axes) -> None:
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)
