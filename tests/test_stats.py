"""Statistics over many runs, against values computed by hand on small inputs."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import norm

from simulator.metrics import probabilistic_sharpe
from simulator.stats import EULER_GAMMA, deflated_sharpe, expected_max_sharpe, pbo


def test_expected_max_sharpe_by_hand() -> None:
    # N = 100, V = 0.04: Z(0.99) = 2.326348, Z(1 - 1/(100 e)) = Z(0.9963212) = 2.680210.
    z1, z2 = norm.ppf(0.99), norm.ppf(1 - 1 / (100 * math.e))
    assert z2 == pytest.approx(2.680210, abs=1e-6)
    expected = 0.2 * ((1 - EULER_GAMMA) * z1 + EULER_GAMMA * z2)
    assert expected_max_sharpe(0.04, 100) == pytest.approx(expected, rel=1e-12)
    assert expected_max_sharpe(0.04, 100) == pytest.approx(0.2 * 2.530603, abs=1e-6)
    assert expected_max_sharpe(0.04, 1) == 0.0
    assert expected_max_sharpe(0.0, 50) == 0.0
    with pytest.raises(ValueError, match="trials must be at least 1"):
        expected_max_sharpe(0.04, 0)


def test_deflated_sharpe_by_hand() -> None:
    # SR = 0.2 weekly over 53 weeks, skew -0.5, kurtosis 5, SR0 = 0.1:
    # denominator 1 + 0.1 + 4/4 * 0.04 = 1.14; z = 0.1 * sqrt(52) / sqrt(1.14) = 0.675382.
    z = 0.1 * math.sqrt(52) / math.sqrt(1.14)
    assert z == pytest.approx(0.675382, abs=1e-6)
    assert deflated_sharpe(0.2, 0.1, 53, -0.5, 5.0) == pytest.approx(norm.cdf(z), rel=1e-12)
    assert deflated_sharpe(0.2, 0.1, 53, -0.5, 5.0) == pytest.approx(0.750283, abs=1e-6)


def test_deflated_sharpe_with_no_threshold_is_the_probabilistic_sharpe() -> None:
    rng = np.random.default_rng(3)
    import pandas as pd

    r = pd.Series(rng.normal(0.003, 0.02, 80))
    c = probabilistic_sharpe(r)
    weekly = c["sharpe"] / math.sqrt(52)
    got = deflated_sharpe(weekly, 0.0, int(c["weeks"]), c["skew"], c["kurtosis"])
    assert got == pytest.approx(c["psr"], rel=1e-12)


def test_pbo_of_a_config_best_everywhere_is_zero() -> None:
    m = np.array([[2.0, 1.0, 0.0], [2.0, 0.5, 1.0], [3.0, 0.0, 1.0], [2.5, 1.0, 0.2]])
    got = pbo(m)
    assert got.splits == 6 and got.pbo == 0.0
    # config 0 is best out of sample in every split: rank 3 of 3, w = 3/4, logit ln 3
    assert got.logits == pytest.approx((math.log(3),) * 6)


def test_pbo_by_hand_on_four_blocks() -> None:
    # Config A shines in blocks 0 and 1, B in blocks 2 and 3, C is middling everywhere.
    m = np.array(
        [
            [1.0, 0.0, 0.5],
            [1.0, 0.0, 0.5],
            [0.0, 1.0, 0.5],
            [0.0, 1.0, 0.4],
        ]
    )
    got = pbo(m)
    # 6 splits of 2 blocks in sample. {0,1}: A best in; out (blocks 2,3) A=0, B=1, C=0.45 ->
    # A worst: rank 1, w = 1/4, logit ln(1/3). {2,3}: B best; out B=0 worst: ln(1/3).
    # {0,2}, {0,3}, {1,2}, {1,3}: in-sample means A=0.5, B=0.5 (tie: A, the first) or C;
    # {0,2}: A 0.5, B 0.5, C 0.5 -> A; out {1,3}: A 0.5, B 0.5, C 0.45 -> A ties B for best,
    # average rank 2.5, w = 2.5/4, logit ln(5/3).
    # {0,3}: A 0.5, B 0.5, C 0.45 -> A; out {1,2}: A 0.5, B 0.5, C 0.5 -> all tie: rank 2, 0.
    # {1,2}: A 0.5, B 0.5, C 0.5 -> A; out {0,3}: A 0.5, B 0.5, C 0.45: ln(5/3).
    # {1,3}: A 0.5, B 0.5, C 0.45 -> A; out {0,2}: all 0.5: logit 0.
    expected = [
        math.log(1 / 3),
        math.log(5 / 3),
        0.0,
        math.log(5 / 3),
        0.0,
        math.log(1 / 3),
    ]
    assert got.logits == pytest.approx(expected)
    assert got.pbo == pytest.approx(4 / 6)


@pytest.mark.parametrize(
    ("matrix", "message"),
    [
        (np.zeros((3, 2)), "even number of blocks"),
        (np.zeros((2, 1)), "at least 2 configs"),
        (np.array([[1.0, np.nan], [0.0, 1.0]]), "NaN"),
    ],
)
def test_pbo_refuses_what_it_cannot_split(matrix: np.ndarray, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        pbo(matrix)
