"""Users' picture files: real test images saved by Pillow in many forms, read back as model input."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from fmnist import data
from fmnist.images import ImageError, load_image, top_k
from fmnist.rundir import RunDir
from fmnist.settings import Config
from fmnist.train import train

pytestmark = pytest.mark.realdata


@pytest.fixture(scope="module")
def real(real_dir, tmp_path_factory) -> SimpleNamespace:
    """The real test set and a model trained on the real data for 2 epochs (once for the module),
    with the user's cache and settings kept out as conftest's isolation does for each test."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("cache")))
        mp.delenv("FMNIST_DATA", raising=False)
        dataset = data.load(real_dir)
        out = tmp_path_factory.mktemp("runs") / "two-epochs"
        train(Config(epochs=2), out, log=lambda line: None, progress=False)
        net, _ = RunDir(out).load_model()
    return SimpleNamespace(images=dataset.test_images, labels=dataset.test_labels, net=net)


def grey_u8(image: torch.Tensor) -> np.ndarray:
    """A dataset image float [1, 28, 28] as the uint8 [28, 28] it was parsed from."""
    return (image[0] * 255).round().to(torch.uint8).numpy()


def save(image: Image.Image, path: Path, **kwargs) -> Path:
    image.save(path, **kwargs)
    return path


def variants(u8: np.ndarray, folder: Path) -> dict[str, Path]:
    """Picture files of one item, as users might have them (all light-on-dark or dark-on-light)."""
    grey = Image.fromarray(u8)
    tint = np.array([1.0, 0.85, 0.6])  # a warm colour: R, G, B scaled differently
    colour = Image.fromarray((u8[..., None] * tint).round().astype(np.uint8))
    on_paper = Image.fromarray((235 - u8 * (200 / 255)).round().astype(np.uint8))  # dark item on light grey
    return {
        "upscaled": save(grey.resize((280, 280), Image.Resampling.BICUBIC), folder / "upscaled.png"),
        "colour-jpeg": save(colour.resize((280, 280), Image.Resampling.BICUBIC), folder / "colour.jpg", quality=92),
        "inverted": save(Image.fromarray(255 - u8).resize((112, 112)), folder / "inverted.png"),
        "on-paper-jpeg": save(on_paper.resize((224, 224), Image.Resampling.LANCZOS), folder / "paper.jpeg"),
    }


def correlation(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(np.corrcoef(a.flatten().numpy(), b.flatten().numpy())[0, 1])


def test_unscaled_png_of_a_test_image_reproduces_its_pixels_exactly(real, tmp_path):
    for i in range(100):
        path = save(Image.fromarray(grey_u8(real.images[i])), tmp_path / f"{i}.png")
        assert torch.equal(load_image(path), real.images[i]), i


def test_inverted_and_transparent_pictures_come_back_light_on_dark(real, tmp_path):
    u8 = grey_u8(real.images[0])
    white_item = np.stack([np.full_like(u8, 255)] * 3 + [u8], axis=-1)  # light item, opacity = intensity
    black_item = np.stack([np.zeros_like(u8)] * 3 + [u8], axis=-1)  # dark item on a transparent background
    paths = [
        save(Image.fromarray(255 - u8), tmp_path / "inverted.png"),
        save(Image.fromarray(white_item), tmp_path / "white-item.png"),
        save(Image.fromarray(black_item), tmp_path / "black-item.png"),
        save(Image.fromarray(np.stack([255 - u8, np.full_like(u8, 255)], -1)), tmp_path / "la.png"),
    ]
    for path in paths:
        assert torch.allclose(load_image(path), real.images[0], atol=1e-6), path.name


def test_a_light_background_becomes_black_and_the_item_keeps_its_shades(real, tmp_path):
    u8 = grey_u8(real.images[2])
    on_paper = (235 - u8 * (200 / 255)).round().astype(np.uint8)  # dark item on light grey (235) paper
    x = load_image(save(Image.fromarray(on_paper), tmp_path / "paper.png"))
    # inverted, the paper is 20 and the item 20 + 200/255 * original; moved to 0, then stretched by 255/235
    expected = real.images[2] * (200 / 235)
    assert (x - expected).abs().max() < 1.5 / 255


def test_every_variant_is_model_input_close_to_the_original(real, tmp_path):
    for i in range(5):
        folder = tmp_path / str(i)
        folder.mkdir()
        for name, path in variants(grey_u8(real.images[i]), folder).items():
            x = load_image(path)
            assert x.shape == (1, 28, 28) and x.dtype == torch.float32, name
            assert 0 <= x.min() and x.max() <= 1, name
            assert correlation(x, real.images[i]) > 0.97, (i, name)  # the same picture ...
            if name in ("upscaled", "inverted"):  # ... and, without colour or paper, the same brightness
                assert (x - real.images[i]).abs().mean() < 0.05, (i, name)


def test_non_square_pictures_keep_their_aspect_ratio_centred(real, tmp_path):
    u8 = grey_u8(real.images[1])
    tall = load_image(save(Image.fromarray(u8).resize((200, 300)), tmp_path / "tall.png"))
    wide = load_image(save(Image.fromarray(u8).resize((300, 200)), tmp_path / "wide.jpg"))
    # 200 x 300 becomes 19 x 28 (width x height): 4 black columns left, 5 right; likewise for rows
    assert tall[0, :, :4].max() == 0 and tall[0, :, 23:].max() == 0 and tall[0, :, 4:23].max() > 0.5
    assert wide[0, :4].max() == 0 and wide[0, 23:].max() == 0 and wide[0, 4:23].max() > 0.5
    reference = Image.fromarray(u8).resize((19, 28), Image.Resampling.BILINEAR)
    assert correlation(tall[0, :, 4:23], torch.from_numpy(np.asarray(reference, np.float32))) > 0.97


def test_predictions_on_picture_files_of_easy_classes_stay_right(real, tmp_path):
    with torch.no_grad():
        probs = real.net(real.images).softmax(dim=1)
    confident = (probs.argmax(dim=1) == real.labels) & (probs.max(dim=1).values > 0.9)
    chosen = [int(i) for k in (1, 7, 8, 9) for i in ((real.labels == k) & confident).nonzero().flatten()[:3]]
    assert len(chosen) == 12
    for i in chosen:
        folder = tmp_path / str(i)
        folder.mkdir()
        files = variants(grey_u8(real.images[i]), folder)
        X = torch.stack([load_image(path) for path in files.values()])
        with torch.no_grad():
            predicted = real.net(X).argmax(dim=1)
        assert predicted.tolist() == [int(real.labels[i])] * len(files), (i, list(files))


@pytest.mark.parametrize(
    ("name", "content", "problem"),
    [
        ("text.png", b"not a picture, just some text\n", "not a picture"),
        ("empty.png", b"", "empty"),
        ("truncated.png", None, "damaged or truncated"),
    ],
)
def test_bad_files_give_one_sentence_naming_the_file(real, tmp_path, name, content, problem):
    path = tmp_path / name
    if content is None:
        good = save(Image.fromarray(grey_u8(real.images[0])).resize((200, 200)), tmp_path / "good.png")
        content = good.read_bytes()[: good.stat().st_size // 2]
    path.write_bytes(content)
    with pytest.raises(ImageError) as error:
        load_image(path)
    message = str(error.value)
    assert str(path) in message and problem in message
    assert message.endswith(".") and "\n" not in message and message.count(". ") == 0


def test_missing_file_and_folder_are_image_errors(tmp_path):
    with pytest.raises(ImageError, match="does not exist"):
        load_image(tmp_path / "nowhere.png")
    with pytest.raises(ImageError, match="folder"):
        load_image(tmp_path)


def test_top_k_lists_the_most_probable_classes_first():
    probs = torch.tensor([0.05, 0.6, 0.0, 0.1, 0.0, 0.0, 0.2, 0.0, 0.05, 0.0])
    assert top_k(probs, data.LABELS, 3) == [
        {"label": "trouser", "index": 1, "prob": pytest.approx(0.6)},
        {"label": "shirt", "index": 6, "prob": pytest.approx(0.2)},
        {"label": "dress", "index": 3, "prob": pytest.approx(0.1)},
    ]
