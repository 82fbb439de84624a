"""Decision rules (one interface, :mod:`strategies.rule`), the sizing rules they call (pure
functions) and the backtrader adapter that trades to target weights.

Never imports torch: predictions arrive through the signal-provider interface
(../shared/docs/DESIGN.md beside the checkout).
"""

from strategies.rule import Decision, DecisionRule, History, State
from strategies.sizing import Limits, apply_limits, equal_weight

__all__ = [
    "Decision",
    "DecisionRule",
    "History",
    "Limits",
    "State",
    "apply_limits",
    "equal_weight",
]
