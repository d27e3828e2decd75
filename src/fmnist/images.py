"""Users' picture files as model input: grey, 28x28, light clothing on a dark background.

Fashion-MNIST shows each item light on black, its longest side filling the 28 pixels. A
picture file may be any size, colour or grey, with transparency, and often dark on light
(a photo on a white table): load_image brings it to the dataset's form.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import UserError

SIZE = 28


class ImageError(UserError):
    """A picture file is missing, unreadable or empty; the message names the file."""


def load_image(path: Path) -> torch.Tensor:
    """The picture at path as float32 [1, 28, 28] in [0, 1], light on dark like Fashion-MNIST.

    Transparent parts become the background; the grey picture is inverted when its border is
    light, the background level is moved to 0, and the picture is scaled (antialiased) so its
    longest side is 28 pixels, centred and padded with background.
    """
    grey = _read_grey(Path(path))
    if _border(grey).median() > 0.5:  # dark on light: invert to light on dark
        grey = 1 - grey
    background = _border(grey).median()
    grey = ((grey - background) / (1 - background)).clamp_(0, 1)  # background <= 0.5 after the inversion
    return _fit(grey)


def _read_grey(path: Path) -> torch.Tensor:
    """The picture's luminance float32 [H, W] in [0, 1], transparent parts on a contrasting background."""
    try:
        with Image.open(path) as opened:
            picture = ImageOps.exif_transpose(opened)  # decodes the whole file; turns phone photos upright
    except FileNotFoundError:
        raise ImageError(f"{path} does not exist.") from None
    except IsADirectoryError:
        raise ImageError(f"{path} is a folder, not a picture file.") from None
    except PermissionError:
        raise ImageError(f"{path} cannot be read (permission denied).") from None
    except UnidentifiedImageError:
        if path.stat().st_size == 0:
            raise ImageError(f"{path} is empty (0 bytes), not a picture.") from None
        raise ImageError(f"{path} is not a picture in a format Pillow reads (PNG, JPEG, ...).") from None
    except Image.DecompressionBombError:
        raise ImageError(f"{path} has too many pixels to be a picture of one item.") from None
    except Exception:  # Pillow reports damaged data as OSError, SyntaxError, ValueError, EOFError, ...
        raise ImageError(f"{path} is damaged or truncated; Pillow cannot decode it.") from None
    if picture.width == 0 or picture.height == 0:
        raise ImageError(f"{path} is an empty picture (0 pixels).")
    if picture.mode.startswith("I"):  # 16-bit grey: Pillow's convert("L") would clip it, not scale it
        levels = np.asarray(picture, dtype=np.float64) * (255 / 65535)
        picture = Image.fromarray(levels.round().clip(0, 255).astype(np.uint8))
    if picture.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in picture.info:
        return _flatten_alpha(picture.convert("RGBA").convert("LA"))
    return _to_tensor(picture.convert("L"))


def _to_tensor(grey: Image.Image) -> torch.Tensor:
    """An 8-bit grey picture as float32 [H, W] in [0, 1], divided exactly as fmnist.data does."""
    return torch.from_numpy(np.array(grey, dtype=np.uint8)).float().div_(255)


def _flatten_alpha(grey_alpha: Image.Image) -> torch.Tensor:
    """Composite a grey+alpha picture onto its border's colour, or, when the border is mostly
    transparent, onto black for light content and white for dark content."""
    grey, alpha = (_to_tensor(band) for band in grey_alpha.split())
    ring, ring_alpha = _border(grey), _border(alpha)
    if (ring_alpha > 0.5).float().mean() >= 0.5:
        background = ring[ring_alpha > 0.5].median()
    else:
        content = (grey * alpha).sum() / alpha.sum().clamp(min=1e-6)
        background = torch.tensor(0.0 if content > 0.5 else 1.0)
    return grey * alpha + background * (1 - alpha)


def _border(grey: torch.Tensor) -> torch.Tensor:
    """The outermost ring of pixels of [H, W], flat."""
    return torch.cat([grey[0], grey[-1], grey[1:-1, 0], grey[1:-1, -1]])


def _fit(grey: torch.Tensor) -> torch.Tensor:
    """[H, W] scaled to longest side SIZE keeping the aspect ratio, centred on black: [1, SIZE, SIZE]."""
    h, w = grey.shape
    scale = SIZE / max(h, w)
    new_h, new_w = max(1, round(h * scale)), max(1, round(w * scale))
    if (new_h, new_w) != (h, w):
        grey = F.interpolate(grey[None, None], size=(new_h, new_w), mode="bicubic", antialias=True)[0, 0]
    top, left = (SIZE - new_h) // 2, (SIZE - new_w) // 2
    return F.pad(grey, (left, SIZE - new_w - left, top, SIZE - new_h - top))[None].clamp_(0, 1)


def top_k(probs: torch.Tensor, names: Sequence[str], k: int = 3) -> list[dict]:
    """The k most probable classes of probs float [C]: dicts {"label", "index", "prob"}, highest first."""
    values, indices = probs.detach().cpu().topk(min(k, len(probs)))
    return [{"label": names[i], "index": i, "prob": p} for p, i in zip(values.tolist(), indices.tolist(), strict=True)]
