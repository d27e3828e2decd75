"""Every model and recipe: shapes, saved tensors, validation split, resume with optimizer state."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch
from conftest import quiet_train
from safetensors.numpy import load_file

from fmnist import cli, data, model, recipes, rundir
from fmnist.rundir import CHECKPOINT
from fmnist.settings import Config
from fmnist.train import Interrupted, learning_rate, split, train


def test_recipes_name_the_models_there_are():
    for name, named in recipes.RECIPES.items():
        for recipe in named:
            Config(**recipes.recipe_settings(name, recipe))  # every setting is a Config field the model can apply
    with pytest.raises(ValueError, match="unknown model 'resnet'"):
        model.build("resnet")


@pytest.mark.parametrize("name", recipes.MODELS)
def test_every_model_maps_images_to_ten_logits(name):
    config = Config(**recipes.recipe_settings(name))
    net = model.build(config.model, config.normalize, config.dropout)
    assert net(torch.rand(3, 1, 28, 28)).shape == (3, 10)


def test_cosine_schedule_by_hand():
    config = Config(lr=0.2, epochs=4, schedule="cosine")
    assert [round(learning_rate(config, e), 6) for e in (1, 2, 3, 4)] == [0.2, 0.170711, 0.1, 0.029289]
    assert learning_rate(Config(lr=0.2), 3) == 0.2


def test_validation_split_is_disjoint_fixed_by_the_seed_and_complete(small_data):
    dataset = data.load(small_data)
    tx, ty, vx, vy = split(dataset, 50, seed=4)
    assert (len(tx), len(vx)) == (150, 50)
    rows = {tuple(x.flatten().tolist()) for x in torch.cat([tx, vx])}
    assert len(rows) == 200  # nothing lost, nothing twice
    assert torch.equal(split(dataset, 50, seed=4)[3], vy)
    assert not torch.equal(split(dataset, 50, seed=5)[3], vy)


def test_val_size_adds_a_validation_column(small_data, tmp_path):
    summary = quiet_train(Config(epochs=2, batch_size=30, val_size=50), tmp_path / "run")
    with open(tmp_path / "run" / "metrics.csv") as f:
        reader = csv.DictReader(f)
        assert reader.fieldnames == ["epoch", "train_loss", "train_acc", "val_acc", "test_acc", "seconds"]
        rows = list(reader)
    assert float(rows[-1]["val_acc"]) == summary["val_acc"]
    assert summary["val_acc"] in {k / 50 for k in range(51)}  # a fraction of the 50 held-out images


def test_standardisation_is_saved_with_the_weights_and_means_what_it_says(small_data, small_arrays, tmp_path):
    quiet_train(Config(epochs=2, batch_size=40, optimizer="adam", lr=0.01, normalize="pixel"), tmp_path / "run")
    tensors = load_file(str(tmp_path / "run" / "model.safetensors"))
    assert sorted(tensors) == ["bias", "mean", "std", "weight"] and tensors["mean"].shape == (784,)
    pixels = small_arrays["train_images"].reshape(-1, 784) / np.float32(255)
    np.testing.assert_allclose(tensors["mean"], pixels.mean(axis=0), atol=1e-6)
    assert tensors["std"].min() >= 0.05 - 1e-7  # constant pixels get a floor, not a division by 0

    x = small_arrays["test_images"].reshape(-1, 784) / np.float32(255)
    logits = ((x - tensors["mean"]) / tensors["std"]) @ tensors["weight"].T + tensors["bias"]
    net, _ = rundir.RunDir(tmp_path / "run").load_model()
    with torch.no_grad():
        ours = net(torch.from_numpy(x).view(-1, 1, 28, 28)).numpy()
    np.testing.assert_allclose(ours, logits, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name", ["mlp", "cnn", "lenet"])
def test_other_models_train_save_and_evaluate(small_data, tmp_path, capsys, name):
    config = Config(**{**recipes.recipe_settings(name), "epochs": 1, "batch_size": 50, "augment": "none"})
    summary = quiet_train(config, tmp_path / "run")
    assert cli.main(["eval", str(tmp_path / "run"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["test_acc"] == summary["test_acc"]


def test_resume_with_adam_and_cosine_is_bit_identical(small_data, tmp_path):
    config = Config(model="mlp", epochs=3, batch_size=40, optimizer="adam", lr=0.003, schedule="cosine",
                    dropout=0.2, augment="shift", normalize="global")  # fmt: skip
    quiet_train(config, tmp_path / "whole")

    def stop_after_epoch_1(line: str) -> None:  # as a Ctrl-C right after the first epoch's line would
        if line.startswith("epoch   1/"):
            raise KeyboardInterrupt

    with pytest.raises(Interrupted):
        train(config, tmp_path / "parts", log=stop_after_epoch_1, progress=False)
    quiet_train(config, tmp_path / "parts", resume=True)
    whole, parts = (rundir.read_checkpoint(tmp_path / r / CHECKPOINT).tensors for r in ("whole", "parts"))
    assert any(k.startswith("optimizer.") for k in whole)  # Adam's moments travel with the checkpoint
    assert whole.keys() == parts.keys() and all(torch.equal(whole[k], parts[k]) for k in whole)


def test_a_model_without_its_recipe_is_refused(capsys):
    assert cli.main(["train", "--model", "cnn", "--recipe", "seed"]) == 2
    assert "model cnn has no recipe 'seed'; choose one of tuned" in capsys.readouterr().err


def test_impl_scratch_writes_the_same_kind_of_run_close_to_concise(small_data, tmp_path, capsys):
    concise = quiet_train(Config(epochs=2, batch_size=32), tmp_path / "concise")
    ours = quiet_train(Config(epochs=2, batch_size=32, impl="scratch"), tmp_path / "scratch")
    assert sorted(p.name for p in (tmp_path / "scratch").iterdir()) == sorted(
        p.name for p in (tmp_path / "concise").iterdir())  # fmt: skip
    a, b = (load_file(str(tmp_path / r / "model.safetensors")) for r in ("concise", "scratch"))
    assert np.abs(a["weight"] - b["weight"]).max() < 1e-4 and np.abs(a["bias"] - b["bias"]).max() < 1e-4
    assert ours["train_loss"] == pytest.approx(concise["train_loss"], abs=1e-5)
    assert cli.main(["eval", str(tmp_path / "scratch"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["test_acc"] == ours["test_acc"]


def test_impl_scratch_refuses_what_it_does_not_implement(capsys):
    assert cli.main(["train", "--model", "mlp", "--impl", "scratch"]) == 1
    assert "impl scratch cannot apply --model mlp (only softmax)" in capsys.readouterr().err
