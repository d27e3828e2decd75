"""Softmax-regression trials trained together (fmnist.trials) against each trial trained alone.

Tolerance: per trial, TrialGroup's weights equal SingleTrial's (fmnist train's own loop, checked
bit for bit against fmnist train here) to WEIGHT_ATOL, and its train loss to LOSS_RTOL (or
LOSS_ATOL). They are not bit-identical because the group's matmuls sum a trial's products in
another order than the one-trial matmuls, and its gradient is worked out by hand ((softmax -
target) / B) rather than by autograd; each rounds differently in the last bit of float32 (about
6e-8 relative), and a few epochs of a few hundred steps carry that to about 1e-7 in weights of size
0.1-1. (A learning rate beyond the stable range amplifies any rounding, as fmnist train's own
results change with the number of threads: the trials here train stably.) Accuracies are counts of
argmaxes, equal unless two logits of an example tie to 1e-6; the tests allow one example either
way. The optimizer arithmetic itself is torch.optim's to the bit (test_optimizer_steps_are_torch_optims).
"""

from __future__ import annotations

import csv
import math

import pytest
import torch
from conftest import quiet_train

from fmnist import data, model, optim, rundir, train, trials
from fmnist.settings import Config

WEIGHT_ATOL = 2e-6  # weights of size up to ~1
LOSS_RTOL, LOSS_ATOL = 1e-5, 1e-6  # nats; a near-zero loss -log(1 - d) carries the logits' absolute rounding

OPTIMIZERS = [  # every branch of make_optimizer, with and without weight decay, at different rates
    {"optimizer": "sgd", "lr": 0.3},
    {"optimizer": "sgd", "lr": 0.2, "weight_decay": 0.01},
    {"optimizer": "momentum", "lr": 0.05},
    {"optimizer": "momentum", "lr": 0.1, "weight_decay": 0.001},
    {"optimizer": "adam", "lr": 0.01},
    {"optimizer": "adam", "lr": 0.003, "weight_decay": 0.05},
]


def alone(config: Config, dataset: data.FashionMNIST, test: bool = True) -> trials.SingleTrial:
    """config trained alone to its end."""
    single = trials.SingleTrial(config, dataset, test)
    for _ in single.epochs():
        pass
    return single


def together(configs: list[Config], dataset: data.FashionMNIST, test: bool = True) -> trials.TrialGroup:
    """configs trained together to their ends."""
    group = trials.TrialGroup(configs, dataset, test)
    for _ in group.epochs():
        pass
    return group


def assert_same_trial(single: trials.SingleTrial, group: trials.TrialGroup, index: int, examples: dict) -> None:
    """Trial index of group has single's rows and weights within the tolerances; examples: the
    number of examples behind each accuracy."""
    rows, expected = group.outcomes[index].rows, single.outcomes[0].rows
    assert group.outcomes[index].status == single.outcomes[0].status == "done"
    assert [list(r) for r in rows] == [list(r) for r in expected]  # the same columns, in fmnist's order
    for row, want in zip(rows, expected, strict=True):
        assert row["epoch"] == want["epoch"]
        assert math.isclose(row["train_loss"], want["train_loss"], rel_tol=LOSS_RTOL, abs_tol=LOSS_ATOL)
        for name in set(examples) & set(want):
            assert abs(row[name] - want[name]) <= 1 / examples[name] + 1e-12, (name, row, want)
    mine, theirs = group.model(index), single.model(0)
    for (name, a), (_, b) in zip(mine.state_dict().items(), theirs.state_dict().items(), strict=True):
        torch.testing.assert_close(a, b, atol=WEIGHT_ATOL, rtol=0, msg=f"{name} of {group.outcomes[index].config}")
    assert not torch.equal(mine[-1].bias, torch.zeros(10))  # it did train


def counts(dataset: data.FashionMNIST, config: Config) -> dict:
    """The number of examples behind each accuracy of config's rows."""
    n = {"train_acc": len(dataset.train_labels) - config.val_size, "test_acc": len(dataset.test_labels)}
    return n | ({"val_acc": config.val_size} if config.val_size else {})


@pytest.mark.parametrize(
    "group_settings",
    [
        {"normalize": "none"},
        {"normalize": "pixel", "val_size": 50},
        {"normalize": "global", "val_size": 30, "batch_size": 17},
        {"augment": "shift", "seed": 3},
    ],
    ids=["none", "pixel-val", "global-val", "shift"],
)
def test_each_trial_of_a_group_is_the_trial_trained_alone(small_data, group_settings):
    dataset = data.load(small_data)
    settings = {"batch_size": 32, "epochs": 3, "device": "cpu", **group_settings}
    configs = [Config(**settings, **o, **extra) for o in OPTIMIZERS
               for extra in ({}, {"schedule": "cosine", "label_smoothing": 0.1})]  # fmt: skip
    group = together(configs, dataset)
    for i, config in enumerate(configs):
        assert_same_trial(alone(config, dataset), group, i, counts(dataset, config))


def test_trials_of_other_lengths_leave_after_their_last_epoch(small_data):
    dataset = data.load(small_data)
    configs = [Config(epochs=e, schedule="cosine", optimizer="adam", lr=0.01, batch_size=40, device="cpu")
               for e in (4, 1, 2)]  # fmt: skip
    group = trials.TrialGroup(configs, dataset, test=True)
    columns = []
    for _, rows in group.epochs():
        columns.append((sorted(rows), group.P.shape[1]))
    assert columns == [([0, 1, 2], 3), ([0, 2], 2), ([0], 1), ([0], 1)]  # P shrinks once an epoch has ended
    for i, config in enumerate(configs):
        assert_same_trial(alone(config, dataset), group, i, counts(dataset, config))


def test_stopped_trials_leave_and_the_others_go_on_unchanged(small_data):
    dataset = data.load(small_data)
    configs = [Config(epochs=3, lr=lr, batch_size=25, val_size=40, device="cpu") for lr in (0.05, 0.1, 0.2, 0.4)]
    group = trials.TrialGroup(configs, dataset)
    widths = []
    for epoch, rows in group.epochs():
        assert sorted(rows) == [i for i in range(4) if epoch == 1 or i % 2]
        assert all(set(row) == {"epoch", "train_loss", "train_acc", "val_acc", "seconds"} for row in rows.values())
        widths.append(group.P.shape[1])
        if epoch == 1:
            group.stop(0)
            group.stop(2)
    assert widths == [4, 2, 2]
    assert not group.P[..., trials.PIXELS + 1 :].any()  # the rows' padding stays 0
    assert [o.status for o in group.outcomes] == ["stopped", "done", "stopped", "done"]
    assert [len(o.rows) for o in group.outcomes] == [1, 3, 1, 3]
    for i in (1, 3):
        assert_same_trial(alone(configs[i], dataset, test=False), group, i, counts(dataset, configs[i]))
    one_epoch = alone(Config(**{**vars(configs[0]), "epochs": 1}), dataset, test=False)
    assert group.outcomes[0].rows[0]["val_acc"] == one_epoch.outcomes[0].rows[0]["val_acc"]
    torch.testing.assert_close(group.model(0)[-1].weight, one_epoch.model(0)[-1].weight, atol=WEIGHT_ATOL, rtol=0)


def test_epochs_go_on_where_an_abandoned_loop_left_them(small_data):
    dataset = data.load(small_data)
    configs = [Config(epochs=3, batch_size=40, device="cpu", optimizer="momentum", lr=lr) for lr in (0.01, 0.05)]
    cases = [(trials.SingleTrial(configs[0], dataset), alone(configs[0], dataset, test=False)),
             (trials.TrialGroup(configs, dataset), together(configs, dataset, test=False))]  # fmt: skip
    for trained, whole in cases:
        assert next(trained.epochs())[0] == 1  # the caller leaves the loop after epoch 1 ...
        assert [epoch for epoch, _ in trained.epochs()] == [2, 3]  # ... and a new loop trains on
        strip = [[{k: v for k, v in row.items() if k != "seconds"} for row in o.rows] for o in trained.outcomes]
        assert strip == [[{k: v for k, v in row.items() if k != "seconds"} for row in o.rows] for o in whole.outcomes]
        assert [o.status for o in trained.outcomes] == ["done"] * len(trained.outcomes)
        assert list(trained.epochs()) == []


def test_a_diverging_trial_fails_without_spoiling_the_others(small_data):
    dataset = data.load(small_data)
    # weight decay 1 at lr 100 multiplies the weights by -99 at every step: they overflow within an epoch
    bad = Config(epochs=3, lr=100, weight_decay=1, batch_size=5, device="cpu")
    good = [Config(epochs=3, lr=lr, weight_decay=0.01, batch_size=5, device="cpu") for lr in (0.1, 0.3)]
    group = trials.TrialGroup([good[0], bad, good[1]], dataset)
    seen = [sorted(rows) for _, rows in group.epochs()]
    assert seen == [[0, 2], [0, 2], [0, 2]]
    failed = group.outcomes[1]
    single = trials.SingleTrial(bad, dataset)
    assert [rows for _, rows in single.epochs()] == [{}]
    assert failed.status == single.outcomes[0].status == "failed" and failed.rows == []
    assert failed.error == single.outcomes[0].error
    assert failed.error.startswith("the training loss became nan in epoch 1; try a smaller learning rate")
    for i in (0, 2):
        assert_same_trial(alone(group.outcomes[i].config, dataset, test=False), group, i, {"train_acc": 200})


def test_a_failed_trial_says_what_fmnist_train_says(small_data, tmp_path):
    bad = Config(epochs=3, lr=100, weight_decay=1, batch_size=5, device="cpu")
    with pytest.raises(train.TrainingError) as raised:
        quiet_train(bad, tmp_path / "run")
    group = together([bad, Config(epochs=3, batch_size=5, device="cpu")], data.load(small_data))
    assert [o.status for o in group.outcomes] == ["failed", "done"]
    assert group.outcomes[0].error == str(raised.value)


def test_optimizer_steps_are_torch_optims(small_data):
    """The group's per-trial update, fed the same gradients, is bit for bit what make_optimizer's
    optimizer (optim.SGD, torch.optim.SGD with Nesterov momentum, AdamW) does to the same weights."""
    configs = [Config(epochs=2, schedule="cosine", **o) for o in OPTIMIZERS]
    configs += [Config(optimizer="sgd", lr=0.3, weight_decay=0.1), Config(optimizer="adam", lr=0.02)]
    group = trials.TrialGroup(configs, data.load(small_data))
    group.epoch = 2  # the cosine schedule's second epoch
    columns = [group.outcomes[i].config for i in group.live]  # ordered by optimizer kind
    G = torch.empty_like(group.P)
    updates = group._updates(columns, G, torch.empty_like(G))
    references = []
    for j, config in enumerate(columns):
        params = [torch.nn.Parameter(group.P[:, j, :784].clone()), torch.nn.Parameter(group.P[:, j, 784].clone())]
        optimizer = train.make_optimizer(config, params)
        for g in optimizer.param_groups:
            g["lr"] = train.learning_rate(config, 2)
        references.append((params, optimizer))
    assert {type(o).__name__ for _, o in references} == {"SGD", "AdamW"} and any(
        isinstance(o, optim.SGD) for _, o in references
    )
    generator = torch.Generator().manual_seed(0)
    for _ in range(5):
        G.copy_(torch.randn(G.shape, generator=generator))
        for j, (params, optimizer) in enumerate(references):
            params[0].grad, params[1].grad = G[:, j, :784].clone(), G[:, j, 784].clone()
            optimizer.step()
        for update in updates:  # they may overwrite G
            update()
    for j, (params, _) in enumerate(references):
        assert torch.equal(group.P[:, j, :784], params[0].detach()), columns[j]
        assert torch.equal(group.P[:, j, 784], params[1].detach()), columns[j]


def test_single_trial_is_fmnist_train_bit_for_bit(small_data, tmp_path):
    dataset = data.load(small_data)
    config = Config(epochs=2, optimizer="momentum", lr=0.05, weight_decay=0.01, normalize="pixel", val_size=50,
                    batch_size=30, schedule="cosine")  # fmt: skip
    quiet_train(config, tmp_path / "run")
    single = alone(config, dataset)
    with open(tmp_path / "run" / "metrics.csv") as f:
        written = [{k: float(v) for k, v in row.items() if k != "seconds"} for row in csv.DictReader(f)]
    assert written == [{k: v for k, v in row.items() if k != "seconds"} for row in single.outcomes[0].rows]
    saved = model.export_tensors(rundir.RunDir(tmp_path / "run").load_model()[0])
    for name, tensor in model.export_tensors(single.model(0)).items():
        assert torch.equal(saved[name], tensor), name


def test_configs_are_grouped_by_their_data_path():
    configs = [
        Config(lr=0.1),
        Config(model="mlp"),
        Config(lr=0.2, optimizer="adam", epochs=5, weight_decay=0.1, label_smoothing=0.1, schedule="cosine"),
        Config(batch_size=128),
        Config(impl="scratch"),
        Config(seed=1),
        Config(normalize="pixel"),
        Config(lr=0.3, batch_size=128),
        Config(val_size=100),
        Config(augment="shift"),
    ]
    groups, single = trials.group(configs)
    assert groups == [[0, 2], [3, 7], [5], [6], [8], [9]]
    assert single == {1: "model mlp is not softmax regression", 4: "--impl scratch trains its own way"}


def test_a_group_refuses_configs_it_cannot_train_together(small_data):
    dataset = data.load(small_data)
    with pytest.raises(ValueError, match="must share batch_size, seed"):
        trials.TrialGroup([Config(), Config(batch_size=10, seed=1)], dataset)
    with pytest.raises(ValueError, match="model mlp is not softmax regression"):
        trials.TrialGroup([Config(), Config(model="mlp")], dataset)


def test_a_group_leaves_the_callers_threads_and_random_state_alone(small_data):
    dataset = data.load(small_data)
    threads, state = torch.get_num_threads(), torch.random.get_rng_state()
    group = trials.TrialGroup([Config(epochs=2, device="cpu", threads=1)], dataset)
    for _ in group.epochs():
        assert torch.get_num_threads() == threads
    assert torch.equal(torch.random.get_rng_state(), state)


@pytest.mark.realdata
def test_trials_together_on_the_real_data(real_dir):
    dataset = data.load(real_dir)
    settings = {"epochs": 2, "val_size": 10_000, "normalize": "pixel", "device": "cpu"}
    configs = [Config(**settings, optimizer="sgd", lr=0.1), Config(**settings, optimizer="momentum", lr=0.01),
               Config(**settings, optimizer="adam", lr=0.001, schedule="cosine", weight_decay=0.01,
                      label_smoothing=0.1)]  # fmt: skip
    group = together(configs, dataset, test=False)
    for i, config in enumerate(configs):
        assert_same_trial(alone(config, dataset, test=False), group, i, counts(dataset, config))
        assert group.outcomes[i].rows[-1]["val_acc"] > 0.8


def test_hits_count_what_argmax_counts_ties_included():
    generator = torch.Generator().manual_seed(0)
    Z = torch.randint(-2, 3, (500, 10, 7), generator=generator).float()  # small integers: many exact ties
    labels = torch.randint(0, 10, (500,), generator=generator)
    assert torch.equal(trials.hits(Z, labels), (Z.argmax(dim=1) == labels.view(-1, 1)).sum(dim=0))
