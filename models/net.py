"""The network: LSTM layers and one linear head."""

from __future__ import annotations

import torch
from torch import nn


class LSTMForecaster(nn.Module):
    """Stacked LSTM over a window of scaled prices, one linear head on the last hidden state.

    ``forward``: ``(batch, window)`` float32 -> ``(batch,)`` scaled next-week prediction.
    """

    def __init__(self, hidden: int, layers: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.lstm = nn.LSTM(
            input_size=1,
            hidden_size=hidden,
            num_layers=layers,
            dropout=dropout if layers > 1 else 0.0,
            batch_first=True,
        )
        self.head = nn.Linear(hidden, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.lstm(x.unsqueeze(-1))
        return self.head(out[:, -1]).squeeze(-1)
