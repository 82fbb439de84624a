"""The Sharpe loss (``model.loss = "sharpe"``): train one network to size a portfolio.

In the spirit of Zhang, Zohren and Roberts (2020), "Deep learning for portfolio
optimisation": instead of forecasting each ticker's return and sizing afterwards, the network's
outputs for every ticker of a week are sized into weights by a differentiable copy of the
LSTM-signal sizing rule, and the network is trained to maximise the Sharpe ratio of the
portfolio those weights make.

What the loss sees, for each week ``t`` of a minibatch (training weeks only):

- the network's output ``s_i`` for every ticker ``i`` with a complete input window ending at
  ``t`` (its features up to ``t``);
- :func:`size` turns them into weights under the run's limits (``spec.max_weight``,
  ``spec.gross``, ``spec.allow_short``: its profile's, else ``[strategy]``'s, carried by the
  spec): ``s - mean(s)`` over those tickers, negative ones set to 0 when shorts are off, scaled
  so that ``sum |w| = gross``, each ``|w|`` capped at ``max_weight`` with the excess handed to
  the names under the cap (what :func:`strategies.sizing.signal_weights` does to the centred
  scores the model's forecasts give the strategy);
- the realised return ``r_i`` of each such ticker over week ``t+1`` (its target);
- the portfolio's return ``R_t = sum_i w_i r_i``; the loss is ``-mean(R) / std(R)`` over the
  minibatch's weeks.

Only windows whose target week is on or before ``train_end`` are in the training and
validation weeks (:func:`models.forecaster.train` splits them as for MSE), so the loss never
sees a return after ``train_end``. The strategy then sizes the model's centred outputs
(:meth:`models.forecaster.Forecaster.forecast` returns them as ``predicted_return``: a score in
return units, not a forecast) with the same limits, so it trades the weights the network was
trained to hold. The rest of a profile (volatility target, drawdown guard, exclusions, ...) is
not in the loss.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from models.errors import TrainingDataError
from models.spec import ModelSpec
from models.train import EpochCallback, FitResult, train_epochs

_EPS = 1e-12


def centre(scores: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``(weeks, tickers)`` scores less each week's mean over its tickers in ``mask``;
    0 outside the mask."""
    counts = mask.sum(dim=1, keepdim=True).clamp(min=1)
    masked = torch.where(mask, scores, torch.zeros_like(scores))
    mean = masked.sum(dim=1, keepdim=True) / counts
    return torch.where(mask, scores - mean, torch.zeros_like(scores))


def size(
    scores: torch.Tensor,
    mask: torch.Tensor,
    *,
    max_weight: float,
    gross: float,
    allow_short: bool,
) -> torch.Tensor:
    """Differentiable sizing: ``(weeks, tickers)`` scores -> weights (0 outside ``mask``).

    :func:`strategies.sizing.signal_weights` on each week's centred scores: the scores less
    their mean over the week's tickers in ``mask``; with ``allow_short`` False the negative
    ones set to 0; scaled to ``sum |w| = gross``; then capped at ``max_weight`` as
    :func:`strategies.sizing.cap_weights` does: the excess of a capped name goes to the names
    under the cap in proportion to their size, until none is over, and what nobody can take
    stays in cash. All-zero scores (every score of the week equal) give all-zero weights.

    What differs from the strategy's rule: the gradient. It is defined almost everywhere but
    treats as constant which names are capped and, without shorts, which are set to 0; such a
    name's weight has no gradient, and its score moves the others' weights through the week's
    mean only. (The cap's test is ``max_weight + 1e-9``, the strategy's ``+ 1e-12``, and the
    scaling divides by ``sum |s| + 1e-12``: differences far below a share's rounding.)

    >>> s = torch.tensor([[3.0, 1.0, -1.0, 1.0]]); m = torch.ones(1, 4, dtype=torch.bool)
    >>> w = size(s, m, max_weight=1 / 3, gross=1.0, allow_short=True)  # centred [2, 0, -2, 0]
    >>> w.squeeze().tolist()  # -> [0.5, 0, -0.5, 0], capped
    [0.3333333432674408, 0.0, -0.3333333432674408, 0.0]
    >>> size(s, m, max_weight=0.25, gross=0.5, allow_short=False).squeeze().tolist()
    [0.25, 0.0, 0.0, 0.0]
    """
    centred = centre(scores, mask)
    if not allow_short:
        centred = centred.clamp(min=0.0)
    total = centred.abs().sum(dim=1, keepdim=True)
    w = gross * centred / (total + _EPS)
    magnitude, sign = w.abs(), torch.sign(w).detach()
    capped = torch.zeros_like(mask)
    for _ in range(scores.shape[1]):
        over = (magnitude > max_weight + 1e-9) & ~capped
        if not bool(over.any()):
            break
        excess = torch.where(over, magnitude - max_weight, torch.zeros_like(magnitude)).sum(
            dim=1, keepdim=True
        )
        magnitude = torch.where(over, torch.full_like(magnitude, max_weight), magnitude)
        capped = capped | over
        free = ~capped & (magnitude > 0)
        free_total = torch.where(free, magnitude, torch.zeros_like(magnitude)).sum(
            dim=1, keepdim=True
        )
        share = torch.where(free, magnitude / free_total.clamp(min=_EPS), torch.zeros_like(w))
        magnitude = magnitude + excess * share
    return sign * magnitude


def describe_limits(spec: ModelSpec) -> str:
    """The limits of a Sharpe spec in words (metrics, model card).

    >>> describe_limits(ModelSpec("m", mode="pooled", loss="sharpe", gross=0.5, allow_short=False))
    'cap 0.3333, gross 0.5, shorts off'
    """
    shorts = "on" if spec.allow_short else "off"
    return f"cap {spec.max_weight:.4g}, gross {spec.gross:.4g}, shorts {shorts}"


def portfolio_returns(
    net: nn.Module, spec: ModelSpec, x: torch.Tensor, mask: torch.Tensor, returns: torch.Tensor
) -> torch.Tensor:
    """Each week's portfolio return under ``spec``'s limits: ``x``
    ``(weeks, tickers, window[, features])`` inputs, ``mask`` the (week, ticker) pairs with a
    window, ``returns`` their realised next-week returns (0 outside the mask)."""
    weeks, tickers = mask.shape
    scores = net(x.reshape(weeks * tickers, *x.shape[2:])).reshape(weeks, tickers)
    weights = size(
        scores, mask, max_weight=spec.max_weight, gross=spec.gross, allow_short=spec.allow_short
    )
    return (weights * returns).sum(dim=1)


def negative_sharpe(portfolio: torch.Tensor) -> torch.Tensor:
    """``-mean / std`` of weekly portfolio returns (population std; weekly, not annualised).

    >>> round(float(negative_sharpe(torch.tensor([0.01, 0.03]))), 4)  # 1e-8 keeps std > 0
    -2.0
    """
    return -portfolio.mean() / (portfolio.std(unbiased=False) + 1e-8)


def evaluate(
    net: nn.Module, spec: ModelSpec, x: torch.Tensor, mask: torch.Tensor, returns: torch.Tensor
) -> float:
    """The negative Sharpe ratio of the weeks in ``x`` under ``spec``'s limits, without
    autograd."""
    net.eval()
    with torch.inference_mode():
        return float(negative_sharpe(portfolio_returns(net, spec, x, mask, returns)))


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
    takes them; minibatches are ``spec.batch`` weeks, shuffled within the training weeks, sized
    under ``spec``'s limits.
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
            weeks = portfolio_returns(net, spec, x_train[pick], m_train[pick], r_train[pick])
            loss = negative_sharpe(weeks)
            loss.backward()
            optimizer.step()
            total += loss.item()
            steps += 1
        return total / max(steps, 1)

    return train_epochs(
        net, spec, (n, len(m_val)), generator, epoch, lambda: evaluate(net, spec, *val), on_epoch
    )


def portfolio_sharpe(
    net: nn.Module, spec: ModelSpec, x: torch.Tensor, mask: torch.Tensor, returns: torch.Tensor
) -> float:
    """The annualised Sharpe ratio (sqrt 52) of the portfolio sized under ``spec``'s limits
    over the weeks given; NaN for fewer than two weeks."""
    if len(mask) < 2:
        return math.nan
    return -evaluate(net, spec, x, mask, returns) * math.sqrt(52)
