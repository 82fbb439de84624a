"""Sizing rules (pure functions) and the backtrader adapter that trades to target weights.

Never imports torch: predictions arrive through the signal-provider interface (DESIGN.md).
"""

from strategies.sizing import Limits, apply_limits, equal_weight

__all__ = ["Limits", "apply_limits", "equal_weight"]
