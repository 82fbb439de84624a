"""The Sharpe loss (``model.loss = "sharpe"``): train one network to size a portfolio.

In the spirit of Zhang, Zohren and Roberts (2020), "Deep learning for portfolio
optimisation": instead of forecasting each ticker's return and sizing afterwards, the network's
outputs for every ticker of a week are sized into weights by a differentiable copy of the
LSTM-signal sizing rule, and the network is trained to maximise the Sharpe ratio of the
portfolio those weights make.

What the loss sees, for each week ``t`` of a minibatch (training weeks only):

- the network's output ``s_i`` for every ticker ``i`` with a complete input window ending at
  ``t`` (its features up to ``t``);
- :func:`size` turns them into weights: ``s - mean(s)`` over those tickers, scaled so that
  ``sum |w| = GROSS``, each ``|w|`` capped at ``CAP`` with the excess handed to the names under
  the cap (exactly :func:`strategies.sizing.apply_limits` on mixed-sign scores, which centred
  scores are);
- the realised return ``r_i`` of each such ticker over week ``t+1`` (its target);
- the portfolio's return ``R_t = sum_i w_i r_i``; the loss is ``-mean(R) / std(R)`` over the
  minibatch's weeks.

Only windows whose target week is on or before ``train_end`` are in the training and
validation weeks (:func:`models.forecaster.train` splits them as for MSE), so the loss never
sees a return after ``train_end``. The sizing uses the paper's limits (cap 1/3, gross 1,
shorts on) whatever the strategy's; the strategy then sizes the model's centred outputs with
its own limits and profile (:meth:`models.forecaster.Forecaster.forecast` returns them as
``predicted_return``: a score in return units, not a forecast).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from models.errors import TrainingDataError
from models.spec import ModelSpec
from models.train import EpochCallback, FitResult, train_epochs

#: The limits the loss sizes with (seed 001's: cap 1/3 per ticker, fully invested, shorts on).
CAP = 1 / 3
GROSS = 1.0
_EPS = 1e-12


def centre(scores: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``(weeks, tickers)`` scores less each week's mean over its tickers in ``mask``;
    0 outside the mask."""
    counts = mask.sum(dim=1, keepdim=True).clamp(min=1)
    masked = torch.where(mask, scores, torch.zeros_like(scores))
    mean = masked.sum(dim=1, keepdim=True) / counts
    return torch.where(mask, scores - mean, torch.zeros_like(scores))


def size(
    scores: torch.Tensor, mask: torch.Tensor, cap: float = CAP, gross: float = GROSS
) -> torch.Tensor:
    """Differentiable sizing: ``(weeks, tickers)`` scores -> weights (0 outside ``mask``).

    Centred scores scaled to ``sum |w| = gross``, then capped at ``cap`` as
    :func:`strategies.sizing.cap_weights` does: the excess of a capped name goes to the names
    under the cap in proportion to their size, until none is over. Differentiable almost
    everywhere (the cap's set of capped names is piecewise constant).

    >>> s = torch.tensor([[3.0, 1.0, -1.0, 1.0]]); m = torch.ones(1, 4, dtype=torch.bool)
    >>> size(s, m).squeeze().tolist()  # centred: [2, 0, -2, 0] -> [0.5, 0, -0.5, 0], capped
    [0.3333333432674408, 0.0, -0.3333333432674408, 0.0]
    """
    centred = centre(scores, mask)
    total = centred.abs().sum(dim=1, keepdim=True)
    w = gross * centred / (total + _EPS)
    magnitude, sign = w.abs(), torch.sign(w).detach()
    capped = torch.zeros_like(mask)
    for _ in range(scores.shape[1]):
        over = (magnitude > cap + 1e-9) & ~capped
        if not bool(over.any()):
            break
        excess = torch.where(over, magnitude - cap, torch.zeros_like(magnitude)).sum(
            dim=1, keepdim=True
        )
        magnitude = torch.where(over, torch.full_like(magnitude, cap), magnitude)
        capped = capped | over
        free = ~capped & (magnitude > 0)
        free_total = torch.where(free, magnitude, torch.zeros_like(magnitude)).sum(
            dim=1, keepdim=True
        )
        share = torch.where(free, magnitude / free_total.clamp(min=_EPS), torch.zeros_like(w))
        magnitude = magnitude + excess * share
    return sign * magnitude


def portfolio_returns(
    net: nn.Module, x: torch.Tensor, mask: torch.Tensor, returns: torch.Tensor
) -> torch.Tensor:
    """Each week's portfolio return: ``x`` ``(weeks, tickers, window[, features])`` inputs,
    ``mask`` the (week, ticker) pairs with a window, ``returns`` their realised next-week
    returns (0 outside the mask)."""
    weeks, tickers = mask.shape
    scores = net(x.reshape(weeks * tickers, *x.shape[2:])).reshape(weeks, tickers)
    return (size(scores, mask) * returns).sum(dim=1)


def negative_sharpe(portfolio: torch.Tensor) -> torch.Tensor:
    """``-mean / std`` of weekly portfolio returns (population std; weekly, not annualised).

    >>> round(float(negative_sharpe(torch.tensor([0.01, 0.03]))), 4)  # 1e-8 keeps std > 0
    -2.0
    """
    return -portfolio.mean() / (portfolio.std(unbiased=False) + 1e-8)


def evaluate(net: nn.Module, x: torch.Tensor, mask: torch.Tensor, returns: torch.Tensor) -> float:
    """The negative Sharpe ratio of the weeks in ``x``, without autograd."""
    net.eval()
    with torch.inference_mode():
        return float(negative_sharpe(portfolio_returns(net, x, mask, returns)))


def fit_sharpe(
    net: nn.Module,
    train: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    val: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    spec: ModelSpec,
    generator: torch.Generator,
    on_epoch: EpochCallback | None = None,
) -> FitResult:
    """Train ``net`` in place on the Sharpe loss and leave it with its best validation
    epoch's weights (the lowest negative Sharpe ratio on the validation weeks).

    ``train`` and ``val`` are ``(x, mask, returns)`` per week, as :func:`portfolio_returns`
    takes them; minibatches are ``spec.batch`` weeks, shuffled within the training weeks.
    """
    x_train, m_train, r_train = train
    n = len(m_train)
    if n < 2 or len(m_val := val[1]) < 2:
        raise TrainingDataError(
            f"the Sharpe loss needs at least 2 training and 2 validation weeks (got {n} and "
            f"{len(m_val)}); give more history or a later model.train_end"
        )

    def epoch(order: torch.Tensor, optimizer: torch.optim.Optimizer) -> float:
        total, steps = 0.0, 0
        for start in range(0, n, spec.batch):
            pick = order[start : start + spec.batch]
            if len(pick) < 2:
                continue  # a Sharpe ratio needs two weeks
            optimizer.zero_grad(set_to_none=True)
            weeks = portfolio_returns(net, x_train[pick], m_train[pick], r_train[pick])
            loss = negative_sharpe(weeks)
            loss.backward()
            optimizer.step()
            total += loss.item()
            steps += 1
        return total / max(steps, 1)

    return train_epochs(
        net, spec, (n, len(m_val)), generator, epoch, lambda: evaluate(net, *val), on_epoch
    )


def portfolio_sharpe(
    net: nn.Module, x: torch.Tensor, mask: torch.Tensor, returns: torch.Tensor
) -> float:
    """The annualised Sharpe ratio (sqrt 52) of the sized portfolio over the weeks given;
    NaN for fewer than two weeks."""
    if len(mask) < 2:
        return math.nan
    return -evaluate(net, x, mask, returns) * math.sqrt(52)
