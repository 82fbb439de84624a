"""The pure sizing rules: exact weights on hand-made scores."""

from __future__ import annotations

import pandas as pd
import pytest

from strategies.sizing import Limits, apply_limits, cap_weights, equal_weight


def test_equal_weight_splits_gross_evenly() -> None:
    w = equal_weight(["A", "B", "C", "D", "E"], Limits(gross=1.0))
    assert w.to_dict() == pytest.approx({t: 0.2 for t in "ABCDE"}, abs=1e-15)


def test_equal_weight_with_fewer_than_three_names_keeps_the_rest_in_cash() -> None:
    w = equal_weight(["A", "B"], Limits(max_weight=1 / 3))
    assert w.tolist() == pytest.approx([1 / 3, 1 / 3])
    assert w.sum() == pytest.approx(2 / 3)


def test_equal_weight_of_nothing_is_all_cash() -> None:
    assert equal_weight([], Limits()).empty


def test_cap_hands_excess_to_uncapped_names_in_proportion() -> None:
    # 0.6 -> 0.4 capped; excess 0.2 split 0.3:0.1 -> 0.45 (capped again, 0.05 to the last).
    w = cap_weights(pd.Series({"A": 0.6, "B": 0.3, "C": 0.1}), 0.4)
    assert w.to_dict() == pytest.approx({"A": 0.4, "B": 0.4, "C": 0.2})


def test_cap_keeps_signs_of_shorts() -> None:
    w = apply_limits(pd.Series({"A": 0.5, "B": -0.3, "C": 0.2}), Limits(max_weight=0.4))
    # scaled: 0.5, -0.3, 0.2 (gross 1) -> A capped at 0.4; 0.1 to B and C by 0.3:0.2
    assert w.to_dict() == pytest.approx({"A": 0.4, "B": -0.36, "C": 0.24})
    assert w.abs().sum() == pytest.approx(1.0)


def test_shorts_off_zeroes_negative_scores_before_scaling() -> None:
    w = apply_limits(pd.Series({"A": 3.0, "B": -1.0, "C": 1.0}), Limits(allow_short=False))
    # longs 3:1 -> 0.75, 0.25; cap 1/3 binds on A, the excess goes to C, which then caps too
    assert w.to_dict() == pytest.approx({"A": 1 / 3, "B": 0.0, "C": 1 / 3})


def test_gross_exposure_scales_weights() -> None:
    w = apply_limits(pd.Series({"A": 1.0, "B": 1.0, "C": 2.0}), Limits(gross=0.8, max_weight=1.0))
    assert w.to_dict() == pytest.approx({"A": 0.2, "B": 0.2, "C": 0.4})


def test_all_zero_scores_mean_cash() -> None:
    w = apply_limits(pd.Series({"A": 0.0, "B": -1.0}), Limits(allow_short=False))
    assert w.tolist() == [0.0, 0.0]


def test_sizing_does_not_mutate_its_input() -> None:
    raw = pd.Series({"A": 0.9, "B": -0.1})
    before = raw.copy()
    apply_limits(raw, Limits())
    pd.testing.assert_series_equal(raw, before)


def test_nan_scores_are_refused() -> None:
    with pytest.raises(ValueError, match="NaN"):
        apply_limits(pd.Series({"A": float("nan")}), Limits())


@pytest.mark.parametrize(("field", "value"), [("max_weight", 0.0), ("gross", 3.0)])
def test_limits_range_checks(field: str, value: float) -> None:
    with pytest.raises(ValueError, match=field):
        Limits(**{field: value})
