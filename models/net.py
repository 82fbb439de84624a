"""The networks: one shape for every architecture, built by :func:`make_net`.

Every network maps a batch of scaled weekly windows to one scaled prediction per window,
``(batch, window)`` float32 -> ``(batch,)``, and is a :class:`WindowNet`. ``model.arch`` picks
the architecture:

- ``lstm``: stacked LSTM, one linear head on the last hidden state (seed 001).
- ``lstm_attention``: the same LSTM with additive (Bahdanau) attention over the window's
  hidden states; :meth:`AttentionLSTM.attention` returns the weights.
- ``transformer``: a small encoder (sinusoidal positions, :data:`HEADS` heads, ``layers``
  encoder layers, ``d_model = hidden``), one linear head on the last position.

Training (:mod:`models.forecaster`) and loading (:mod:`models.artifacts`) build networks only
through :func:`make_net`, so a stored spec always rebuilds the network its weights belong to.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from models.spec import HEADS, ModelSpec


class WindowNet(nn.Module):
    """A forecaster network: ``forward`` maps ``(batch, window)`` float32 scaled prices (a
    closes-only model) or ``(batch, window, n_features)`` scaled features (closes first) to
    ``(batch,)`` scaled next-week predictions. No state besides its parameters."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


def _steps(x: torch.Tensor) -> torch.Tensor:
    """``(batch, window)`` or ``(batch, window, n_features)`` -> ``(batch, window, n)``."""
    return x.unsqueeze(-1) if x.dim() == 2 else x


def _lstm(hidden: int, layers: int, dropout: float, n_features: int) -> nn.LSTM:
    """torch's fused LSTM over ``n_features`` inputs per week (oneDNN on CPU)."""
    return nn.LSTM(
        input_size=n_features,
        hidden_size=hidden,
        num_layers=layers,
        dropout=dropout if layers > 1 else 0.0,
        batch_first=True,
    )


class LSTMForecaster(WindowNet):
    """Stacked LSTM over a window of scaled prices, one linear head on the last hidden state.

    ``forward``: ``(batch, window)`` float32 -> ``(batch,)`` scaled next-week prediction.
    """

    def __init__(self, hidden: int, layers: int, dropout: float = 0.0, n_features: int = 1) -> None:
        super().__init__()
        self.lstm = _lstm(hidden, layers, dropout, n_features)
        self.head = nn.Linear(hidden, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.lstm(_steps(x))
        return self.head(out[:, -1]).squeeze(-1)


class AttentionLSTM(WindowNet):
    """Stacked LSTM with additive attention over the window's hidden states.

    With the top layer's outputs ``h_1 .. h_T`` (``T = window``), the score of step ``t`` is
    ``v^T tanh(W h_t + U h_T + b)``; the weights ``a = softmax(scores)`` over the ``T`` steps
    give the context ``c = sum_t a_t h_t``, and one linear head maps ``[c, h_T]`` to the
    prediction. ``W``, ``U`` are ``hidden x hidden``, ``v`` has ``hidden`` entries.

    ``forward``: ``(batch, window)`` float32 -> ``(batch,)``;
    :meth:`attention`: ``(batch, window)`` -> ``(batch, window)`` weights.
    """

    def __init__(self, hidden: int, layers: int, dropout: float = 0.0, n_features: int = 1) -> None:
        super().__init__()
        self.lstm = _lstm(hidden, layers, dropout, n_features)
        self.w = nn.Linear(hidden, hidden, bias=False)
        self.u = nn.Linear(hidden, hidden)
        self.v = nn.Linear(hidden, 1, bias=False)
        self.head = nn.Linear(2 * hidden, 1)

    def _attend(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(weights (batch, T), context (batch, H), last hidden state (batch, H))``."""
        out, _ = self.lstm(_steps(x))  # (batch, T, H)
        last = out[:, -1]
        scores = self.v(torch.tanh(self.w(out) + self.u(last).unsqueeze(1))).squeeze(-1)
        weights = torch.softmax(scores, dim=1)
        context = torch.bmm(weights.unsqueeze(1), out).squeeze(1)
        return weights, context, last

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, context, last = self._attend(x)
        return self.head(torch.cat([context, last], dim=1)).squeeze(-1)

    def attention(self, x: torch.Tensor) -> torch.Tensor:
        """The attention weights of each window over its weeks, oldest first.

        Parameters
        ----------
        x
            ``(batch, window)`` (or ``(batch, window, n_features)``) float32 scaled inputs,
            as ``forward`` takes them (e.g.
            ``torch.from_numpy(scaler.inputs(prices))``).

        Returns
        -------
        ``(batch, window)`` non-negative weights, each row summing to 1; column ``t`` weighs
        the hidden state after week ``t`` of the window (the last column is the as-of week).
        Computed exactly as in ``forward`` (call it on a network in eval mode, as loaded
        networks are, and under ``torch.inference_mode()`` when only reading them).
        """
        return self._attend(x)[0]


def positions(window: int, d_model: int) -> torch.Tensor:
    """Sinusoidal positional encoding ``(window, d_model)`` (Vaswani et al. 2017):
    ``PE[p, 2i] = sin(p / 10000^(2i/d))``, ``PE[p, 2i+1] = cos(p / 10000^(2i/d))``.

    >>> positions(3, 4)[0].tolist()  # sin 0, cos 0, sin 0, cos 0
    [0.0, 1.0, 0.0, 1.0]
    """
    position = torch.arange(window, dtype=torch.float64).unsqueeze(1)
    rate = torch.exp(torch.arange(0, d_model, 2, dtype=torch.float64) * (-math.log(1e4) / d_model))
    table = torch.zeros(window, d_model, dtype=torch.float64)
    table[:, 0::2] = torch.sin(position * rate)
    table[:, 1::2] = torch.cos(position * rate)[:, : d_model // 2]
    return table.float()


#: The transformer's feed-forward width, as a multiple of ``d_model``.
FEEDFORWARD = 2


class TransformerForecaster(WindowNet):
    """A small transformer encoder over the window, one linear head on the last position.

    Each week's scaled features are projected to ``d_model`` (``nn.Linear(n_features,
    d_model)``), the
    sinusoidal encoding of its position (:func:`positions`) is added, and ``layers``
    pre-norm encoder layers follow (:data:`~models.spec.HEADS` attention heads, feed-forward
    width ``FEEDFORWARD * d_model``, ReLU, ``dropout``; every week attends to every week of
    the window, all of which are at or before the as-of week). A final LayerNorm and one
    linear head map the last position (the as-of week) to the prediction.

    ``forward``: ``(batch, window)`` float32 -> ``(batch,)``.
    """

    def __init__(
        self, d_model: int, layers: int, dropout: float, window: int, n_features: int = 1
    ) -> None:
        super().__init__()
        self.embed = nn.Linear(n_features, d_model)
        # Not a parameter and not stored: rebuilt from the spec's window and d_model.
        self.register_buffer("pe", positions(window, d_model), persistent=False)
        layer = nn.TransformerEncoderLayer(
            d_model,
            HEADS,
            dim_feedforward=FEEDFORWARD * d_model,
            dropout=dropout,
            batch_first=True,
            norm_first=True,
        )
        # Nested tensors only speed up padded batches; ours are never padded, and with
        # norm_first torch would warn that it cannot use them.
        self.encoder = nn.TransformerEncoder(
            layer, layers, norm=nn.LayerNorm(d_model), enable_nested_tensor=False
        )
        self.head = nn.Linear(d_model, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.embed(_steps(x)) + self.pe
        return self.head(self.encoder(tokens)[:, -1]).squeeze(-1)


def make_net(spec: ModelSpec) -> WindowNet:
    """The untrained network of ``spec`` (``spec.arch``), initialised from torch's global RNG
    (seed it first for reproducible weights)."""
    n = len(spec.features)
    if spec.arch == "transformer":
        return TransformerForecaster(spec.hidden, spec.layers, spec.dropout, spec.window, n)
    if spec.arch == "lstm_attention":
        return AttentionLSTM(spec.hidden, spec.layers, spec.dropout, n)
    return LSTMForecaster(spec.hidden, spec.layers, spec.dropout, n)
