"""The training loop of the MSE loss, one for every architecture (the Sharpe loss's is in
:mod:`models.portfolio`; both stop early through :class:`EarlyStopping`).

Minibatch Adam/AdamW on MSE, validation under ``torch.inference_mode`` after each epoch,
early stopping on validation loss with the reason recorded, and the best weights restored.
Seeded: the same network, data, spec and thread count give bit-identical weights.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from models.errors import TrainingDataError
from models.spec import ModelSpec

#: Called after every epoch with ``(epoch, train_loss, val_loss)``; epochs count from 1.
EpochCallback = Callable[[int, float, float], None]

_EVAL_CHUNK = 4096


@dataclass(frozen=True)
class FitResult:
    """How one network's training went.

    ``train_loss`` and ``val_loss`` hold one value per epoch: MSE on the scaled target (the
    training loss is the mean over the epoch's minibatches, weighted by their size), or with
    the Sharpe loss the negative weekly Sharpe ratio (the mean over the epoch's minibatches).
    """

    train_loss: tuple[float, ...]
    val_loss: tuple[float, ...]
    best_epoch: int
    stop_reason: str
    seconds: float
    n_train: int
    n_val: int

    @property
    def epochs(self) -> int:
        return len(self.train_loss)

    @property
    def best_val_loss(self) -> float:
        return self.val_loss[self.best_epoch - 1]


def make_optimizer(net: nn.Module, spec: ModelSpec) -> torch.optim.Optimizer:
    if spec.optimizer == "adamw":
        return torch.optim.AdamW(net.parameters(), lr=spec.lr, weight_decay=spec.weight_decay)
    return torch.optim.Adam(net.parameters(), lr=spec.lr, weight_decay=spec.weight_decay)


def evaluate(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Mean squared error of ``net`` on ``(x, y)``, without autograd."""
    net.eval()
    total = 0.0
    with torch.inference_mode():
        for start in range(0, len(y), _EVAL_CHUNK):
            err = net(x[start : start + _EVAL_CHUNK]) - y[start : start + _EVAL_CHUNK]
            total += float((err * err).sum())
    return total / len(y)


class EarlyStopping:
    """The bookkeeping of early stopping on validation loss, for every loss.

    :meth:`update` after each epoch (True: stop now); :meth:`finish` restores the best
    epoch's weights and returns the :class:`FitResult`.
    """

    def __init__(self, net: nn.Module, spec: ModelSpec) -> None:
        self.net = net
        self.spec = spec
        self.train_hist: list[float] = []
        self.val_hist: list[float] = []
        self.best = math.inf
        self.best_epoch = 0
        self.best_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
        self.stale = 0
        self.reason = f"reached max_epochs ({spec.max_epochs})"

    def update(self, epoch: int, train_loss: float, val_loss: float) -> bool:
        self.train_hist.append(train_loss)
        self.val_hist.append(val_loss)
        if not (math.isfinite(train_loss) and math.isfinite(val_loss)):
            self.reason = f"loss became non-finite at epoch {epoch}; kept epoch {self.best_epoch}"
            return True
        if val_loss < self.best:
            self.best, self.best_epoch, self.stale = val_loss, epoch, 0
            self.best_state = {k: v.detach().clone() for k, v in self.net.state_dict().items()}
            return False
        self.stale += 1
        if self.stale >= self.spec.patience:
            self.reason = (
                f"validation loss did not improve for {self.spec.patience} epochs "
                f"(best {self.best:.6g} at epoch {self.best_epoch})"
            )
            return True
        return False

    def finish(self, seconds: float, n_train: int, n_val: int) -> FitResult:
        if self.best_epoch == 0:
            raise TrainingDataError(
                f"training diverged: the loss was not finite in epoch 1 ({self.spec.optimizer}, "
                f"lr {self.spec.lr}); check the prices for gaps or extreme values, or lower "
                "model.lr"
            )
        self.net.load_state_dict(self.best_state)
        self.net.eval()
        return FitResult(
            tuple(self.train_hist),
            tuple(self.val_hist),
            self.best_epoch,
            self.reason,
            seconds,
            n_train,
            n_val,
        )


#: One epoch of minibatches over the training rows in ``order`` with ``optimizer``; returns
#: the epoch's training loss.
Epoch = Callable[[torch.Tensor, torch.optim.Optimizer], float]


def train_epochs(
    net: nn.Module,
    spec: ModelSpec,
    n_rows: tuple[int, int],
    generator: torch.Generator,
    epoch: Epoch,
    validate: Callable[[], float],
    on_epoch: EpochCallback | None = None,
) -> FitResult:
    """The loop every loss trains in: each epoch a seeded permutation of the ``n_rows[0]``
    training rows, ``epoch`` over them, ``validate`` (the validation loss), and early stopping
    (:class:`EarlyStopping`); ``net`` is left with its best validation epoch's weights."""
    n, n_val = n_rows
    optimizer = make_optimizer(net, spec)
    started = time.perf_counter()
    stopping = EarlyStopping(net, spec)
    for number in range(1, spec.max_epochs + 1):
        net.train()
        train_loss = epoch(torch.randperm(n, generator=generator), optimizer)
        val_loss = validate()
        if on_epoch is not None:
            on_epoch(number, train_loss, val_loss)
        if stopping.update(number, train_loss, val_loss):
            break
    return stopping.finish(time.perf_counter() - started, n, n_val)


def fit(
    net: nn.Module,
    train: tuple[torch.Tensor, torch.Tensor],
    val: tuple[torch.Tensor, torch.Tensor],
    spec: ModelSpec,
    generator: torch.Generator,
    on_epoch: EpochCallback | None = None,
) -> FitResult:
    """Train ``net`` on MSE in place and leave it holding the weights of its best validation
    epoch.

    Parameters
    ----------
    train, val
        ``(inputs (n, window[, n_features]), targets (n,))`` float32 tensors, already scaled.
    generator
        Seeded generator for the minibatch order (shuffled within the training split only;
        the splits themselves are chronological).
    """
    x_train, y_train = train
    x_val, y_val = val
    n = len(y_train)

    def epoch(order: torch.Tensor, optimizer: torch.optim.Optimizer) -> float:
        # One gather per epoch, then contiguous slices: no per-step indexing cost.
        xs, ys = x_train[order], y_train[order]
        total = 0.0
        for start in range(0, n, spec.batch):
            xb, yb = xs[start : start + spec.batch], ys[start : start + spec.batch]
            optimizer.zero_grad(set_to_none=True)
            loss = nn.functional.mse_loss(net(xb), yb)
            loss.backward()
            optimizer.step()
            total += loss.item() * len(yb)
        return total / n

    return train_epochs(
        net, spec, (n, len(y_val)), generator, epoch, lambda: evaluate(net, x_val, y_val), on_epoch
    )
