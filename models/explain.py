"""Integrated Gradients for one forecast: which input weeks drove the predicted return.

:func:`explain_window` attributes a network's predicted next-week return to each week (and
feature) of its input window with Captum's Integrated Gradients (Sundararajan, Taly and Yan
2017), integrating the gradient along the straight path from a baseline input to the real one.

- **Baseline**: a flat price history, every week of the window at the window's last close (a
  market that stood still for ``window`` weeks), and every other feature (volume, index,
  rate, range) at its training-split mean in every week (scaled input 0). With ``window``
  scaling the closes' network input is ``(0 - in_mean) / in_std`` in every step; with
  ``ticker`` scaling it is the last close's standardised level. ``baseline_prediction`` is
  the forecast the network makes for it: the attributions say how the path the prices (and
  the other features) actually took moved the forecast away from it.
- **Units**: everything is a next-week return (a fraction). The network's output is mapped to
  a return by an affine map fixed by the window (``out * out_std + out_mean``, divided by the
  last close and minus one for ``ticker`` scaling), so the attributions of the output are
  scaled by the same slope, and completeness holds in return units: the attributions sum to
  ``prediction - baseline_prediction``.
- **Precision**: the network is explained in float64 (a copy) with Gauss-Legendre quadrature;
  the step count doubles, from 64 up to 4096, until the completeness gap is under ``tol``.
- The last week of a ``window``-scaled input equals its baseline (``p_last / p_last - 1 = 0``),
  so its attribution is always 0: the last close is the level the others are measured against.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from models.windows import Scaler

#: Completeness tolerance (return units) and the quadrature steps tried in turn.
TOLERANCE = 1e-6
STEPS = (64, 128, 256, 512, 1024, 2048, 4096)


@dataclass(frozen=True)
class Explanation:
    """One forecast, attributed.

    Attributes
    ----------
    prediction, baseline_prediction
        Predicted next-week return for the real window and for the flat baseline.
    attributions
        ``(window, n_features)``: each input week's (row, oldest first) and feature's share of
        ``prediction - baseline_prediction``.
    gap
        ``|sum(attributions) - (prediction - baseline_prediction)|``: the quadrature error.
    steps
        Integration steps used.
    attention
        ``(window,)`` the network's attention weights over the input weeks (summing to 1) for
        a network with attention (``lstm_attention``), else None. They say where the network
        looked, not what moved its forecast: they are not an attribution.
    """

    prediction: float
    baseline_prediction: float
    attributions: np.ndarray
    gap: float
    steps: int
    attention: np.ndarray | None = None


def baseline_prices(prices: np.ndarray) -> np.ndarray:
    """The flat history of a ``(window,)`` price window: every week at its last close.

    >>> baseline_prices(np.array([1.0, 2.0, 4.0])).tolist()
    [4.0, 4.0, 4.0]
    """
    return np.full_like(prices, prices[-1])


def _channels(inputs: np.ndarray) -> np.ndarray:
    """Network inputs as ``(batch, window, n_features)`` (a closes-only input has one)."""
    return inputs[..., None] if inputs.ndim == 2 else inputs


def explain_window(
    net: nn.Module,
    scaler: Scaler,
    prices: np.ndarray,
    tol: float = TOLERANCE,
    extras: np.ndarray | None = None,
) -> Explanation:
    """Integrated Gradients of ``net``'s predicted return for one ``(window,)`` price window
    (and ``extras``, its other features' ``(window, n_extra)`` raw values)."""
    from captum.attr import IntegratedGradients

    prices = np.asarray(prices, dtype=np.float64)
    if prices.ndim != 1 or not np.isfinite(prices).all() or (prices <= 0).any():
        raise ValueError("explain_window needs one window of positive, finite prices")
    rows = prices[None, :]
    # network output -> predicted return: slope * out + intercept (fixed by the window).
    slope = scaler.out_std if scaler.kind == "window" else scaler.out_std / prices[-1]
    intercept = scaler.out_mean if scaler.kind == "window" else scaler.out_mean / prices[-1] - 1.0
    double = copy.deepcopy(net).double().eval()

    def net_input(x: torch.Tensor) -> torch.Tensor:  # a closes-only net reads (batch, window)
        return x if scaler.extra else x[..., 0]

    def returns(x: torch.Tensor) -> torch.Tensor:  # (batch, window, features) -> (batch,)
        return double(net_input(x)) * slope + intercept

    more = None if extras is None else np.asarray(extras, dtype=np.float64)[None]
    x = torch.from_numpy(_channels(scaler.inputs(rows, np.float64, more)))
    base_np = np.zeros_like(x.numpy())
    # The closes flat; every other feature at its training mean (scaled input 0).
    base_np[..., 0] = scaler.close_inputs(baseline_prices(prices)[None, :])
    base = torch.from_numpy(base_np)
    attend = getattr(double, "attention", None)
    with torch.no_grad():
        prediction = float(returns(x)[0])
        baseline_prediction = float(returns(base)[0])
        attention = attend(net_input(x))[0].numpy() if callable(attend) else None
    ig = IntegratedGradients(returns)
    for steps in STEPS:
        attr = ig.attribute(x, baselines=base, n_steps=steps, method="gausslegendre")
        values = attr[0].detach().numpy()
        gap = abs(float(values.sum()) - (prediction - baseline_prediction))
        if gap < tol:
            break
    return Explanation(prediction, baseline_prediction, values, gap, steps, attention)
