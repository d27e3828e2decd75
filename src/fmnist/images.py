"""Users' picture files as model input: grey, 28x28, light clothing on a dark background.

Fashion-MNIST shows each item light on black, its longest side filling the 28 pixels. A
picture file may be any size, colour or grey, with transparency, and often dark on light
(a photo on a white table): load_image brings it to the dataset's form.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError

from .errors import UserError

SIZE = 28
WORK_SIZE = 1024  # longest side a picture is reduced to first: plenty for 28 pixels, cheap to process
MAX_PIXELS = 4096 * 4096  # about 100 MB while decoding; a 13,300 x 13,300 PNG took 5.8 GB before this limit


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
    """The picture's luminance float32 [H, W] in [0, 1], at most WORK_SIZE pixels on its longest side,
    transparent parts on a contrasting background."""
    if path.exists() and not path.is_file() and not path.is_dir():
        raise ImageError(f"{path} is not a regular file (a FIFO, a device or a socket), so it is not read.")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # _decode_small checks the size
            with Image.open(path) as opened:
                grey, alpha = _decode_small(opened, path)
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
    except Image.DecompressionBombError:  # over twice Pillow's own limit: refused while opening
        raise ImageError(f"{path} has more pixels than the {MAX_PIXELS:,} fmnist decodes; scale it down "
                         "first.") from None
    except ImageError:
        raise
    except Exception:  # Pillow reports damaged data as OSError, SyntaxError, ValueError, EOFError, ...
        raise ImageError(f"{path} is damaged or truncated; Pillow cannot decode it.") from None
    return grey if alpha is None else _flatten_alpha(grey, alpha)


def _decode_small(opened: Image.Image, path: Path) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Grey level and opacity (None when the picture has no transparency), float32 [H, W] in [0, 1],
    turned upright (a phone photo's EXIF orientation) and reduced by averaging blocks to at most
    about WORK_SIZE pixels on the longest side. ImageError, before decoding, above MAX_PIXELS.

    JPEG is decoded at a reduced scale directly; other formats are decoded whole and their bands
    taken one at a time, so memory stays within about 6 bytes per pixel.
    """
    if opened.width == 0 or opened.height == 0:
        raise ImageError(f"{path} is an empty picture (0 pixels).")
    opened.draft("L" if opened.mode in ("RGB", "L") else None, (WORK_SIZE, WORK_SIZE))  # JPEG only; a no-op else
    if opened.width * opened.height > MAX_PIXELS:
        raise ImageError(f"{path} is {opened.width}x{opened.height} pixels, more than the {MAX_PIXELS:,} fmnist "
                         "decodes; scale it down first.")  # fmt: skip
    orientation = opened.getexif().get(ExifTags.Base.Orientation, 1)
    opened.load()
    factor = max(opened.size) // WORK_SIZE

    def small(band: Image.Image) -> Image.Image:
        return band.reduce(factor) if factor > 1 else band

    deep = opened.mode.startswith("I")  # 16-bit grey: Pillow's convert("L") would clip it, not scale it
    if deep:
        bands = {"L": small(opened.convert("I"))}
    elif opened.mode in ("RGBA", "LA", "RGBa", "La"):
        bands = {"L": small(opened.convert("L")), "A": small(opened.getchannel("A"))}
    elif opened.mode == "PA" or "transparency" in opened.info:  # a palette or a colour key marks transparency
        bands = dict(zip("LA", small(opened.convert("RGBA")).convert("LA").split(), strict=True))  # reduced first
    else:
        bands = {"L": small(opened.convert("L"))}
    tensors = {}
    for name, band in bands.items():
        band.getexif()[ExifTags.Base.Orientation] = orientation
        tensors[name] = _to_tensor(ImageOps.exif_transpose(band), 65535 if deep else 255)
    return tensors["L"].clamp_(0, 1), tensors.get("A")


def _to_tensor(band: Image.Image, levels: int) -> torch.Tensor:
    """One band's values divided by levels, float32 [H, W] (for 8 bits, exactly as fmnist.data divides)."""
    return torch.from_numpy(np.array(band)).float().div_(levels)


def _flatten_alpha(grey: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """grey [H, W] composited by its opacity alpha [H, W] onto its border's colour, or, when the border is
    mostly transparent, onto black for light content and white for dark content."""
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
