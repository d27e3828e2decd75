"""Many softmax-regression trials trained together: one pass over each batch for all of them.

A softmax-regression trial spends its epoch gathering batches and running tiny matmuls.
Trials whose SHARED settings are equal (batch size, seed, normalisation, validation split,
augmentation, device, threads) see the same batches in the same order and start from the same
weights, so a TrialGroup trains K of them as one parameter tensor P [10, K, ROW]: P[:, k] is
trial k's nn.Linear weight [10, 784], then its bias, then zeros to the end of the row. Per batch,
one gather of the images for all trials, one matmul for every trial's logits (the inputs
[B, ROW], pixels then 1 then zeros, by P as a matrix [10*K, ROW]), one for every trial's
gradient, and each trial's own optimizer (make_optimizer's three: optim.SGD, torch.optim.SGD
with weight decay and/or Nesterov momentum, AdamW), learning rate, schedule, weight decay and
label smoothing applied to its slice P[:, k] by arithmetic vectorised over K (a per-trial value
is a vector of K that broadcasts). Trials may differ in epochs: a trial leaves the group after
its last one, as a trial the caller stops (pruning) or one whose loss stops being finite does,
and the others go on with fewer columns.

Per trial, the result is that of training it alone through fmnist's own path (SingleTrial,
which is fmnist train's loop without the run folder) to float rounding: the matmuls sum in
another order, and the gradients are worked out by hand (as fmnist.scratch does) instead of by
autograd, so weights and losses agree to about 1e-6 relative after an epoch, and an accuracy can
differ by an example whose two largest logits tie to that precision. The optimizer arithmetic
itself is torch.optim's, operation for operation (tests/test_trials.py checks it bit for bit).

    groups, alone = trials.group(configs)
    for indices in groups:
        trials_ = trials.TrialGroup([configs[i] for i in indices], dataset)
        for epoch, rows in trials_.epochs():          # rows: {index in the group: metrics row}
            for i in rows: ... trials_.stop(i) ...     # pruned: leaves before the next epoch
        trials_.outcomes                               # status, rows and error of each trial
    # each index in alone trains as SingleTrial(configs[i], dataset), the same interface
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
from torch import nn

from . import data, metrics, model, train
from .settings import Config, threads_for

SHARED = ("batch_size", "seed", "normalize", "val_size", "augment", "device", "threads")
KINDS = ("plain", "sgd", "adamw")  # train.optimizer_kind's: optim.SGD, torch.optim.SGD, torch.optim.AdamW
BETAS, ADAM_EPS = (0.9, 0.999), 1e-8  # torch.optim.AdamW's defaults, which make_optimizer keeps
PIXELS, CLASSES = 784, metrics.NUM_CLASSES
# A row of P: 784 weights, the bias, and zeros up to a multiple of 8 floats (32 bytes): matmuls on
# rows of 792 took 10-20% less time than on rows of 785.
ROW = 792


def unsupported(config: Config) -> str | None:
    """Why config cannot train in a TrialGroup (a phrase), or None when it can."""
    if config.model != "softmax":
        return f"model {config.model} is not softmax regression"
    if config.impl != "concise":
        return f"--impl {config.impl} trains its own way"
    return None


def group(configs: Sequence[Config]) -> tuple[list[list[int]], dict[int, str]]:
    """(groups, alone): the indices of configs that can train together, as lists whose SHARED
    settings are equal (in order of first appearance), and {index: why} for those that must
    train alone (SingleTrial)."""
    groups: dict[tuple, list[int]] = {}
    alone = {}
    for i, config in enumerate(configs):
        if (reason := unsupported(config)) is not None:
            alone[i] = reason
        else:
            groups.setdefault(tuple(getattr(config, name) for name in SHARED), []).append(i)
    return list(groups.values()), alone


@dataclass
class Outcome:
    """What became of one trial: status "running", "done" (all its epochs), "stopped" (by the
    caller) or "failed" (its loss or weights stopped being finite; error says so, as fmnist
    train does); rows: fmnist's metrics rows of its finished epochs (epoch, train_loss,
    train_acc, val_acc with a validation split, test_acc when asked for, seconds)."""

    config: Config
    status: str = "running"
    rows: list[dict] = field(default_factory=list)
    error: str = ""


@contextmanager
def torch_threads(device: torch.device, threads: int) -> Iterator[None]:
    """PyTorch's intra-op threads set to threads inside the block (on the CPU), restored after."""
    before = torch.get_num_threads()
    if device.type == "cpu":
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class SingleTrial:
    """One trial of any model trained alone, as fmnist train trains it (train.Session: the same calls in the
    same order, so the same bits) but without a run folder; TrialGroup's interface with one index, 0.

    For a config that group() leaves alone, and the reference TrialGroup is checked against.
    Its first epoch seeds PyTorch's global generator as fmnist train does (dropout draws from it),
    so train one SingleTrial at a time for fmnist train's results.
    """

    def __init__(self, config: Config, dataset: data.FashionMNIST, test: bool = False) -> None:
        self.outcomes = [Outcome(config)]
        self.device = train.resolve_device(config.device)
        self.dataset, self.test = dataset.to(self.device), test
        self.session: train.Session | None = None

    def stop(self, index: int) -> None:
        """Stop the trial (pruned): no epoch after the one just yielded."""
        _stop(self.outcomes, index)

    def model(self, index: int) -> nn.Module:
        """The trial's model after its last trained epoch (ValueError before the first)."""
        if index != 0 or self.session is None:
            raise ValueError(f"no trained trial {index}")
        return self.session.net

    def epochs(self) -> Iterator[tuple[int, dict[int, dict]]]:
        """Train epoch by epoch; after each, yields (epoch, {0: row}), or (epoch, {}) when the loss
        stopped being finite (outcomes[0] then says so). Ends when the trial is done or stopped."""
        config, outcome = self.outcomes[0].config, self.outcomes[0]
        while outcome.status == "running":
            epoch = len(outcome.rows) + 1
            with torch_threads(self.device, threads_for(config)):
                if self.session is None:
                    self.session = train.Session(config, self.dataset, self.device, self.test)
                try:
                    row = self.session.epoch(epoch, progress=False)
                except train.TrainingError as e:
                    outcome.status, outcome.error = "failed", str(e)
                    yield epoch, {}
                    return
            outcome.rows.append(row)
            if epoch == config.epochs:
                outcome.status = "done"
            yield epoch, {0: row}


def _stop(outcomes: list[Outcome], index: int) -> None:
    """Mark outcomes[index] stopped if it is still running (a finished or failed trial stays so)."""
    if not 0 <= index < len(outcomes):
        raise IndexError(f"no trial {index}; there are {len(outcomes)}")
    if outcomes[index].status == "running":
        outcomes[index].status = "stopped"


class TrialGroup:
    """Softmax-regression trials trained together (see the module's docstring).

    configs must all be supported (unsupported() is None) and agree on SHARED, else ValueError.
    test: also score every trial on the test set after each epoch (test_acc); a search should
    choose on the validation split alone. The trials train with the threads the configs ask for
    (settings.threads_for: one for "auto"), on their device.
    """

    def __init__(self, configs: Sequence[Config], dataset: data.FashionMNIST, test: bool = False) -> None:
        if not configs:
            raise ValueError("a TrialGroup needs at least one config")
        for config in configs:
            if (reason := unsupported(config)) is not None:
                raise ValueError(f"cannot train {config} in a group: {reason}")
            if differ := [name for name in SHARED if getattr(config, name) != getattr(configs[0], name)]:
                raise ValueError(f"the configs of a group must share {', '.join(differ)}")
        first = configs[0]
        self.outcomes = [Outcome(config) for config in configs]
        self.device = train.resolve_device(first.device)
        self.threads = threads_for(first)
        dataset = dataset.to(self.device)
        given = train.inputs(first, dataset, test)
        self.stats, self.batches = given.stats, given.batches
        self.scored = given.scored  # name -> (images [N, 1, 28, 28], labels [N])
        with torch.random.fork_rng(devices=[]):  # the initial weights of fmnist train, the caller's RNG untouched
            torch.manual_seed(first.seed)
            linear = model.softmax_regression()[-1]
        initial = torch.zeros(CLASSES, 1, ROW)
        initial[:, 0, :PIXELS], initial[:, 0, PIXELS] = linear.weight.detach(), linear.bias.detach()
        self.P = initial.to(self.device).repeat(1, len(configs), 1)  # [10, K, ROW]
        # the trials in P's columns (its dimension 1), ordered by kind so that each optimizer updates one slice
        self.live = sorted(range(len(configs)), key=lambda i: KINDS.index(train.optimizer_kind(configs[i])))
        kinds = {train.optimizer_kind(config) for config in configs}
        # optimizer state, a column per trial like P: Nesterov momentum; AdamW's two moments
        self.state = {name: torch.zeros_like(self.P) for name in ("momentum",) if "sgd" in kinds}
        self.state.update({name: torch.zeros_like(self.P) for name in ("exp_avg", "exp_avg_sq") if "adamw" in kinds})
        self.adam_steps = 0  # every trial of a group takes every step, so they share the count
        self.epoch = 0
        self.left: dict[int, torch.Tensor] = {}  # P's column [10, ROW] of each trial that left the group

    def _inputs(self, size: int) -> torch.Tensor:
        """Room for size inputs [size, ROW] as _fill writes them: 1 under the bias, 0 in the padding."""
        inputs = torch.zeros(size, ROW, device=self.device)
        inputs[:, PIXELS] = 1
        return inputs

    def _fill(self, inputs: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
        """inputs[:n] (from _inputs) holding images [n, 1, 28, 28] as rows of pixels, normalised as
        the model's Normalize layer does; so inputs[:n] @ P.view(-1, ROW).T = X W^T + b."""
        n = len(images)
        pixels = inputs[:n, :PIXELS]
        if self.stats is None:
            pixels.copy_(images.reshape(n, PIXELS))
        else:
            torch.sub(images.reshape(n, PIXELS), self.stats[0], out=pixels).div_(self.stats[1])
        return inputs[:n]

    def stop(self, index: int) -> None:
        """Stop trial index (pruned): it leaves the group before the next epoch, its rows kept."""
        _stop(self.outcomes, index)

    def model(self, index: int) -> model.SoftmaxRegression:
        """Trial index's model with its latest weights (after the last epoch it trained), and the
        group's normalisation."""
        column = self.left[index] if index in self.left else self.P[:, self.live.index(index)]
        normalize = self.outcomes[index].config.normalize
        net = model.softmax_regression(None if normalize == "none" else normalize)
        with torch.no_grad():
            net[-1].weight.copy_(column[:, :PIXELS])
            net[-1].bias.copy_(column[:, PIXELS])
        if self.stats is not None:
            model.set_normalization(net, *self.stats)
        return net.to(self.device)

    def epochs(self) -> Iterator[tuple[int, dict[int, dict]]]:
        """Train epoch by epoch; after each, yields (epoch, {index: row}) for every trial that
        finished that epoch with a finite loss (row: fmnist's metrics row; seconds: the whole
        group's epoch). A trial whose loss or weights stopped being finite is marked failed and
        left out. Trials that are done, failed or stopped (stop(), between two yields) leave
        the group before the next epoch; ends when none is left."""
        while self._leave():
            self.epoch += 1
            start = time.perf_counter()
            with torch_threads(self.device, self.threads):
                trained = list(self.live)
                losses, accuracies = self._train_epoch()
                finite = torch.isfinite(self.P).all(dim=2).all(dim=0).tolist()
                for i, loss, ok in zip(trained, losses, finite, strict=True):
                    if not (ok and math.isfinite(loss)):
                        outcome = self.outcomes[i]
                        outcome.status, outcome.error = "failed", train.divergence(outcome.config, loss, self.epoch)
                self._leave()  # the failed ones are not scored
                scores = {name: self._accuracy(images, y) for name, (images, y) in self.scored.items()}
            seconds = round(time.perf_counter() - start, 4)
            loss_of, accuracy_of = dict(zip(trained, losses, strict=True)), dict(zip(trained, accuracies, strict=True))
            rows = {}
            for j, i in enumerate(self.live):
                row = {"epoch": self.epoch, "train_loss": loss_of[i], "train_acc": accuracy_of[i]}
                rows[i] = {**row, **{name: score[j] for name, score in scores.items()}, "seconds": seconds}
                outcome = self.outcomes[i]
                outcome.rows.append(rows[i])
                if self.epoch == outcome.config.epochs:
                    outcome.status = "done"
            yield self.epoch, rows

    def _leave(self) -> bool:
        """Drop the columns of the trials that are no longer running (each keeps its column in
        self.left); True while any trial is left."""
        keep = [j for j, i in enumerate(self.live) if self.outcomes[i].status == "running"]
        if len(keep) < len(self.live):
            for j, i in enumerate(self.live):
                if j not in keep:
                    self.left[i] = self.P[:, j].clone()
            index = torch.tensor(keep, dtype=torch.int64, device=self.device)
            self.P = self.P.index_select(1, index)
            self.state = {name: s.index_select(1, index) for name, s in self.state.items()}
            self.live = [self.live[j] for j in keep]
        return bool(self.live)

    def _vector(self, values: Sequence[float], dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """One value per live trial, [K], broadcasting along the trials' dimension of the logits
        [B, 10, K]; .view(K, 1) for P [10, K, ROW]."""
        return torch.tensor(values, dtype=dtype, device=self.device)

    def _train_epoch(self) -> tuple[list[float], list[float]]:
        """One pass over the training batches for every live trial; (mean loss per example in nats,
        accuracy in [0, 1]) of each column, those of the weights before each step as in train_epoch.

        Per batch of inputs X [B, ROW] (pixels, 1, 0s: _fill) and labels y [B], the logits are
        Z = X P^T [B, 10, K] (P as a matrix [10*K, ROW], row c*K + k being class c of trial k: its
        weights, bias and 0s). With q the trial's target distribution ((1 - smoothing) on the
        label, smoothing / 10 on every class), the gradient of its mean cross-entropy is
        dZ = (softmax(Z) - q) / B, so grad P = dZ^T X [10*K, ROW] (its column 784, the bias's, is
        dZ summed over the batch; the padding's is 0). Then each trial's optimizer steps.
        """
        K, n_seen, size = len(self.live), len(self.batches.labels), self.batches.batch_size
        configs = [self.outcomes[i].config for i in self.live]
        smoothing = [config.label_smoothing for config in configs]
        smoothed = any(smoothing)
        keep = self._vector([1 - s for s in smoothing])  # q's extra mass on the label
        spread = self._vector([s / CLASSES for s in smoothing])  # q's mass on every class
        G, spare = torch.empty_like(self.P), torch.empty_like(self.P)  # gradients; the optimizers' scratch
        updates = self._updates(configs, G, spare)
        weights, grad = self.P.view(CLASSES * K, ROW), G.view(CLASSES * K, ROW)
        inputs, logits = self._inputs(size), torch.empty(size, CLASSES * K, device=self.device)
        log_p = torch.empty(size, CLASSES, K, device=self.device)
        one_hot = torch.eye(CLASSES, device=self.device)
        nll = torch.zeros(K, device=self.device)  # summed over the examples, nats
        uniform = torch.zeros(K, device=self.device)  # -(sum of the log-probabilities of all classes)
        correct = torch.zeros(K, dtype=torch.int64, device=self.device)
        for images, y in self.batches:
            n = len(y)
            X = self._fill(inputs, images)
            Z = torch.mm(X, weights.T, out=logits[:n]).view(n, CLASSES, K)
            correct += hits(Z, y)
            dZ = torch.log_softmax(Z, dim=1, out=log_p[:n])
            nll -= dZ.gather(1, y.view(n, 1, 1).expand(n, 1, K)).sum(dim=0).view(K)
            if smoothed:
                uniform -= dZ.sum(dim=(0, 1))
            target = one_hot.index_select(0, y).view(n, CLASSES, 1)
            dZ.exp_()  # softmax
            if smoothed:
                dZ.sub_(spread).addcmul_(target, keep, value=-1)
            else:
                dZ.sub_(target)
            torch.addmm(grad, dZ.view(n, CLASSES * K).T, X, beta=0, alpha=1 / n, out=grad)
            for update in updates:
                update()
        losses = [((1 - s) * a + s / CLASSES * u) / n_seen
                  for s, a, u in zip(smoothing, nll.tolist(), uniform.tolist(), strict=True)]  # fmt: skip
        return losses, [c / n_seen for c in correct.tolist()]

    def _updates(self, configs: list[Config], G: torch.Tensor, spare: torch.Tensor) -> list[Callable[[], None]]:
        """This epoch's optimizer steps: one per kind of optimizer among configs (the live trials,
        ordered by kind), each updating its slice of P's columns from the gradients in G (which it
        may overwrite, as it may spare, a tensor of P's shape)."""
        rates = [train.learning_rate(config, self.epoch) for config in configs]
        steps = {"plain": self._plain_step, "sgd": self._sgd_step, "adamw": self._adamw_step}
        updates, start = [], 0
        for name in KINDS:
            count = sum(train.optimizer_kind(config) == name for config in configs)
            if count:
                columns = slice(start, start + count)
                updates.append(steps[name](columns, configs[columns], rates[columns], G[:, columns], spare[:, columns]))
                start += count
        return updates

    def _plain_step(self, columns: slice, configs: list[Config], rates: list[float], grad: torch.Tensor,
                    spare: torch.Tensor) -> Callable[[], None]:  # fmt: skip
        """optim.SGD's step, p <- p - lr grad, for columns."""
        P, minus_lr = self.P[:, columns], self._vector([-lr for lr in rates]).view(-1, 1)
        return lambda: P.addcmul_(grad, minus_lr)  # p.add_(grad, alpha=-lr), bit for bit

    def _sgd_step(self, columns: slice, configs: list[Config], rates: list[float], grad: torch.Tensor,
                  spare: torch.Tensor) -> Callable[[], None]:  # fmt: skip
        """torch.optim.SGD's step for columns, with per-trial weight decay wd and Nesterov
        momentum mu (0 for sgd with weight decay): g = grad + wd p; buf = mu buf + g (buf starts
        at 0, so its first value is grad as torch's); g = g + mu buf; p <- p - lr g."""
        P, buf = self.P[:, columns], self.state["momentum"][:, columns]
        wd = self._vector([config.weight_decay for config in configs]).view(-1, 1)
        momenta = [train.MOMENTUM if config.optimizer == "momentum" else 0.0 for config in configs]
        mu, minus_lr = self._vector(momenta).view(-1, 1), self._vector([-lr for lr in rates]).view(-1, 1)
        decays, moves = any(config.weight_decay for config in configs), any(momenta)

        def step() -> None:
            if decays:
                grad.addcmul_(P, wd)  # grad.add(p, alpha=wd)
            if moves:
                buf.mul_(mu).add_(grad)
                grad.addcmul_(buf, mu)  # grad.add(buf, alpha=mu)
            P.addcmul_(grad, minus_lr)

        return step

    def _adamw_step(self, columns: slice, configs: list[Config], rates: list[float], grad: torch.Tensor,
                    denom: torch.Tensor) -> Callable[[], None]:  # fmt: skip
        """torch.optim.AdamW's step for columns (its single-tensor form, the one used on the CPU),
        with per-trial learning rate and weight decay; the step count is the group's."""
        P = self.P[:, columns]
        exp_avg, exp_avg_sq = self.state["exp_avg"][:, columns], self.state["exp_avg_sq"][:, columns]
        decay = self._vector([1 - lr * config.weight_decay for lr, config in zip(rates, configs, strict=True)])
        decay = decay.view(-1, 1)
        decays = any(config.weight_decay for config in configs)
        lr = self._vector(rates, torch.float64).view(-1, 1)
        beta1, beta2 = BETAS

        def step() -> None:
            self.adam_steps += 1
            correction1, correction2 = 1 - beta1**self.adam_steps, 1 - beta2**self.adam_steps
            if decays:
                P.mul_(decay)
            exp_avg.lerp_(grad, 1 - beta1)
            exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
            torch.sqrt(exp_avg_sq, out=denom).div_(correction2**0.5).add_(ADAM_EPS)
            step_size = torch.mul(exp_avg, (lr / -correction1).float(), out=grad)
            P.addcdiv_(step_size, denom)  # p.addcdiv_(exp_avg, denom, value=-lr / correction1), bit for bit

        return step

    def _accuracy(self, images: torch.Tensor, y: torch.Tensor) -> list[float]:
        """Each live trial's accuracy on images [N, 1, 28, 28] with labels y [N], scored in chunks
        of metrics.EVAL_BATCH_SIZE as fmnist train scores them."""
        K, size = len(self.live), metrics.EVAL_BATCH_SIZE
        weights, inputs = self.P.view(CLASSES * K, ROW), self._inputs(size)
        correct = torch.zeros(K, dtype=torch.int64, device=self.device)
        for start in range(0, len(y), size):
            X = self._fill(inputs, images[start : start + size])
            correct += hits((X @ weights.T).view(len(X), CLASSES, K), y[start : start + size])
        return [c / len(y) for c in correct.tolist()]


def hits(Z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Per trial, how many examples' first largest logit is their label's: what
    (Z.argmax(dim=1) == labels[:, None]).sum(0) counts for logits Z [N, 10, K] and labels int64 [N]
    (for finite logits), as int64 [K]; argmax over the short class dimension is several times slower."""
    label = labels.view(-1, 1, 1)
    top = Z.amax(dim=1)  # [N, K]
    at_label = Z.gather(1, label.expand(-1, 1, Z.shape[2])).squeeze(1)
    classes = torch.arange(CLASSES, device=Z.device).view(1, CLASSES, 1)
    before = torch.where(classes < label, Z, -math.inf).amax(dim=1)  # the largest logit of a class before the label
    return ((at_label == top) & (before < top)).sum(dim=0)
