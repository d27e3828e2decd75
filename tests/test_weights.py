"""Weight pictures and evidence maps: weights in pixel space, read back from the rendered PNG."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import make_small_dataset
from matplotlib.figure import Figure
from PIL import Image
from safetensors.numpy import load_file
from test_plots import prediction_rows

from fmnist import cli, data, model, plots, results
from fmnist.settings import Config
from fmnist.train import train


def class_templates() -> np.ndarray:
    """Each class's mean training image minus the mean of all, [10, 28, 28] in [-1, 1]: a positive band
    where the class is bright, negative where the others are."""
    arrays = make_small_dataset()
    images, labels = arrays["train_images"] / 255, arrays["train_labels"]
    means = np.stack([images[labels == k].mean(axis=0) for k in range(10)])
    return means - images.mean(axis=0)


def standardised_model(templates: np.ndarray) -> torch.nn.Module:
    """Softmax regression with per-pixel standardisation whose weights in pixel space are templates:
    weight = templates * std, as training on standardised inputs would store them."""
    generator = torch.Generator().manual_seed(0)
    net = model.softmax_regression("pixel")
    mean, std = torch.rand(784, generator=generator), 0.1 + 2 * torch.rand(784, generator=generator)
    model.set_normalization(net, mean, std)
    with torch.no_grad():
        net[-1].weight.copy_(torch.as_tensor(templates, dtype=torch.float32).reshape(10, 784) * std)
        net[-1].bias.copy_(torch.randn(10, generator=generator))
    return net


def rendered_grid(path, fig: Figure) -> np.ndarray:
    """The values the PNG at path shows for the one image of fig's first axes, cell by cell: each cell's
    centre pixel mapped back through the diverging colour map (NaN where it is the white of a gap, or
    no colour of the map, as the text of a label)."""
    ax = fig.axes[0]
    rows, columns = ax.images[0].get_array().shape
    limit = ax.images[0].norm.vmax
    with Image.open(path) as picture:
        rgb = np.asarray(picture.convert("RGB")).astype(float)
    j, i = np.meshgrid(np.arange(columns), np.arange(rows))
    x, y = ax.transData.transform(np.column_stack([j.ravel(), i.ravel()])).T  # cell centres, in display pixels
    sampled = rgb[(rgb.shape[0] - y).astype(int), x.astype(int)]
    colours, cell_colour = np.unique(sampled, axis=0, return_inverse=True)  # a few hundred: matched once each
    lut = plots.DIVERGING(np.linspace(0, 1, 256))[:, :3] * 255
    distance = np.abs(colours[:, None, :] - lut[None, :, :]).sum(axis=2)
    values = -limit + 2 * limit * distance.argmin(axis=1) / 255
    values[(colours == 255).all(axis=1) | (distance.min(axis=1) > 6)] = np.nan
    return values[cell_colour.ravel()].reshape(rows, columns)


def tiles(grid: np.ndarray) -> list[np.ndarray]:
    """The blocks of non-NaN cells between rows and columns that are mostly NaN (gaps, label text), in
    reading order."""

    def runs(mask: np.ndarray) -> list[slice]:
        edges = np.flatnonzero(np.diff(np.concatenate([[0], mask.astype(int), [0]])))
        return [slice(a, b) for a, b in zip(edges[::2], edges[1::2], strict=True)]

    filled = ~np.isnan(grid)
    blocks = [grid[r, c] for r in runs(filled.mean(axis=1) > 0.5) for c in runs(filled.mean(axis=0) > 0.5)]
    return [b for b in blocks if not np.isnan(b).all()]


def test_pixel_weights_fold_the_standardisation_back():
    templates = class_templates()
    net = standardised_model(templates)
    assert np.allclose(model.pixel_weights(net).numpy(), templates, atol=1e-6)
    cnn = model.cnn("global")
    model.set_normalization(cnn, torch.tensor([0.3]), torch.tensor([0.25]))
    assert torch.allclose(model.pixel_weights(cnn), cnn[1].weight[:, 0].detach() * 4)
    assert model.pixel_weights(model.mlp()).shape == (256, 28, 28)
    assert model.pixel_weights(model.lenet()).shape == (6, 5, 5)


def draw_weights(net, model_name, path):
    """weights.png of net, as fmnist eval draws it."""
    weights, title, titles = results.weights_picture(net, model_name)
    plots.plot_weights(weights, path, title, titles)


def test_weights_png_shows_each_class_template_in_its_colours(tmp_path, drawn):
    templates = class_templates()
    draw_weights(standardised_model(templates), "softmax", tmp_path / "weights.png")
    fig = drawn[0]
    shown = tiles(rendered_grid(tmp_path / "weights.png", fig))
    norm = fig.axes[0].images[0].norm
    limit = norm.vmax  # a few of the largest weights may lie beyond the ends of the scale
    assert norm.vmin == -limit and np.percentile(np.abs(templates), 99) <= limit <= np.abs(templates).max()
    assert len(shown) == 10
    for k, tile in enumerate(shown):
        # three steps of the colour map's 256: near white its neighbouring colours differ by 1 in 255
        assert np.abs(tile - np.clip(templates[k], -limit, limit)).max() <= 3 * 2 * limit / 255
    labels = sorted(fig.axes[0].texts, key=lambda t: (round(t.get_position()[1]), t.get_position()[0]))
    assert [t.get_text() for t in labels] == list(data.LABELS)
    with Image.open(tmp_path / "weights.png") as picture:
        rgb = np.asarray(picture.convert("RGB")).astype(int)
    red, blue = rgb[..., 0] - rgb[..., 2], rgb[..., 2] - rgb[..., 0]
    assert (red > 100).sum() > 1000 and (blue > 100).sum() > 1000  # positive in red, negative in blue


def test_first_layer_pictures_of_the_other_models(tmp_path, drawn):
    for name, count, title in (("mlp", 64, "the first 64 of the 256 hidden units"), ("cnn", 16, "the 16 filters"),
                               ("lenet", 6, "the 6 filters")):  # fmt: skip
        net = model.build(name)
        draw_weights(net, name, tmp_path / f"{name}.png")
        shown = tiles(rendered_grid(tmp_path / f"{name}.png", drawn[-1]))
        assert len(shown) == count and title in drawn[-1].axes[0].get_title()
        weights = model.pixel_weights(net).numpy()
        limit = drawn[-1].axes[0].images[0].norm.vmax
        assert all(np.abs(tile - np.clip(w, -limit, limit)).max() <= 3 * 2 * limit / 255
                   for tile, w in zip(shown, weights[:count], strict=True))  # fmt: skip


def test_evidence_sums_with_the_bias_to_the_logit():
    net = standardised_model(class_templates())
    images = torch.rand(5, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    classes = torch.tensor([0, 3, 3, 9, 5])
    maps = model.evidence(net, images, classes)
    normalize, linear = net[1], net[-1]
    pixel_bias = linear.bias - linear.weight @ (normalize.mean / normalize.std)
    logits = net(images).detach()
    assert torch.allclose(maps.sum(dim=(1, 2)) + pixel_bias[classes].detach(), logits[torch.arange(5), classes],
                          atol=1e-4)  # fmt: skip
    with pytest.raises(ValueError, match="only softmax regression"):
        model.evidence(model.mlp(), images, classes)


@pytest.fixture
def standardised_run(small_data, tmp_path):
    out = tmp_path / "run"
    train(Config(epochs=2, batch_size=20, lr=0.5, normalize="pixel"), out, log=lambda line: None, progress=False)
    return out


def test_predict_explain_draws_pixel_times_weight_beside_each_picture(standardised_run, small_arrays, tmp_path,
                                                                      monkeypatch, drawn, capsys):  # fmt: skip
    monkeypatch.chdir(tmp_path)
    assert cli.main(["predict", str(standardised_run), "--test-index", "0", "4", "--explain"]) == 0
    assert "predictions.png" in capsys.readouterr().out  # --explain draws; without --plot into predictions.png
    assert len(drawn[0].axes) == 3  # the inputs, their evidence, the probabilities: a column each
    rows = prediction_rows(drawn[0], 2)
    norm = drawn[0].axes[1].images[0].norm
    assert norm.vmin == -norm.vmax == -1  # every map scaled to [-1, 1] by its own largest |value|: centred on 0
    tensors = load_file(str(standardised_run / "model.safetensors"))  # read without fmnist
    weight = tensors["weight"] / tensors["std"]
    titles = [t.get_text() for t in drawn[0].texts if t.get_text().startswith("evidence for ")]
    for row, i, title in zip(rows, (0, 4), titles, strict=True):
        x = small_arrays["test_images"][i].reshape(784) / np.float32(255)
        logits = ((x - tensors["mean"]) / tensors["std"]) @ tensors["weight"].T + tensors["bias"]
        top = int(logits.argmax())
        evidence = (x * weight[top]).reshape(28, 28)
        assert np.allclose(row["pictures"][1], evidence / np.abs(evidence).max(), atol=1e-5)
        assert title == f"evidence for {data.LABELS[top]}" and row["bold"] == [data.LABELS[top]]
    with Image.open(tmp_path / "predictions.png") as picture:
        assert picture.width > picture.height


def test_predict_explain_refuses_other_models_in_one_sentence(small_data, tmp_path, capsys):
    out = tmp_path / "mlp"
    train(Config(model="mlp", epochs=1, batch_size=50), out, log=lambda line: None, progress=False)
    assert cli.main(["predict", str(out), "--test-index", "0", "--explain", "--plot", str(tmp_path / "p.png")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--explain works for softmax regression only" in err and "'mlp'" in err
    assert not (tmp_path / "p.png").exists()
