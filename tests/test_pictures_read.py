"""Users' pictures are read within bounds: huge and costly pictures, FIFOs, EXIF orientation."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from fmnist import data


def _blank_png(path: Path, width: int, height: int) -> None:
    """An all-transparent RGBA PNG of width x height, written a row at a time (a few MB of memory)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    packer, row = zlib.compressobj(9), b"\0" * (1 + 4 * width)
    body = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", body) + chunk(b"IEND", b""))


def _peak_memory_mib(*args: str) -> tuple[subprocess.CompletedProcess, float]:
    """Run `fmnist ARGS` in a child; its result and the peak resident memory of that child, MiB."""
    probe = ("import resource, subprocess, sys; done = subprocess.run(sys.argv[1:], capture_output=True, text=True); "
             "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); print(done.returncode); "
             "print(done.stdout, end=''); print(done.stderr, end='', file=sys.stderr)")  # fmt: skip
    script = str(Path(__file__).with_name("small_fmnist.py"))
    done = subprocess.run([sys.executable, "-c", probe, sys.executable, script, *args], capture_output=True,
                          text=True, timeout=300)  # fmt: skip
    peak, code, *out = done.stdout.splitlines()
    return subprocess.CompletedProcess(args, int(code), "\n".join(out), done.stderr), int(peak) / 1024


PICTURE_MEMORY_MIB = 200  # README: memory stays within about 200 MB of a normal run


@pytest.mark.slow
def test_a_huge_picture_is_refused_in_bounded_memory(run_dir, tmp_path):
    huge = tmp_path / "huge.png"
    _blank_png(huge, 13_300, 13_300)
    assert huge.stat().st_size < 2_000_000  # small on disk, 700 MB as pixels
    done, peak = _peak_memory_mib("predict", str(run_dir), str(huge))
    assert done.returncode == 1 and "is 13300x13300 pixels, more than the 16,777,216 fmnist decodes" in done.stdout
    Image.new("L", (28, 28)).save(tmp_path / "small.png")
    baseline = _peak_memory_mib("predict", str(run_dir), str(tmp_path / "small.png"))[1]
    assert peak < baseline + PICTURE_MEMORY_MIB, (peak, baseline)


def _largest(kind: str, path: Path) -> Path:
    """The largest picture predict decodes (4096 x 4096) of a kind that costs more than plain RGB to decode."""
    size = (4096, 4096)
    if kind == "RGBA":
        _blank_png(path.with_suffix(".png"), *size)
    elif kind == "RGB with a transparent colour key":
        Image.new("RGB", size).save(path.with_suffix(".png"), transparency=(0, 0, 0))
    elif kind == "palette with transparency":
        Image.new("P", size).save(path.with_suffix(".png"), transparency=0)
    else:  # the TIFFs: 32 bits a pixel, uncompressed
        Image.new("CMYK" if kind == "CMYK TIFF" else "I", size).save(path.with_suffix(".tif"))
    return next(path.parent.glob(path.name + ".*"))


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["RGBA", "RGB with a transparent colour key", "palette with transparency", "CMYK TIFF",
                                  "32-bit TIFF"])  # fmt: skip
def test_the_largest_picture_of_each_costly_kind_stays_in_bounded_memory(run_dir, tmp_path, kind):
    Image.new("L", (28, 28)).save(tmp_path / "small.png")
    baseline = _peak_memory_mib("predict", str(run_dir), str(tmp_path / "small.png"))[1]
    done, peak = _peak_memory_mib("predict", str(run_dir), str(_largest(kind, tmp_path / "largest")), "--json")
    assert done.returncode == 0 and len(json.loads(done.stdout)[0]["top"]) == 3
    assert peak < baseline + PICTURE_MEMORY_MIB, (peak, baseline)


def test_images_keep_their_exif_orientation(real_dir, tmp_path):
    from fmnist import images

    item = (data.load(real_dir).test_images[0, 0] * 255).round().byte().numpy()
    upright = Image.fromarray(np.pad(item, ((0, 0), (0, 28)))).resize((560, 280), Image.NEAREST)
    exif = Image.Exif()
    exif[0x0112] = 6  # stored turned a quarter to the left: viewers turn it right
    upright.transpose(Image.Transpose.ROTATE_90).save(tmp_path / "phone.jpg", exif=exif.tobytes(), quality=95)
    upright.save(tmp_path / "upright.png")
    turned, straight = images.load_image(tmp_path / "phone.jpg"), images.load_image(tmp_path / "upright.png")
    assert torch.allclose(turned, straight, atol=0.1)


@pytest.mark.slow
def test_a_fifo_given_as_a_picture_is_refused_not_read(run_dir, tmp_path):
    fifo = tmp_path / "picture.png"
    os.mkfifo(fifo)
    done = subprocess.run([sys.executable, str(Path(__file__).with_name("small_fmnist.py")), "predict", str(run_dir),
                           str(fifo)], capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 1 and "is not a regular file (a FIFO" in done.stdout
