"""reds.quant.ops, the int8 definition, against arithmetic done another way: Python's exact
integers and fractions (gemmlowp's rules written out scalar by scalar)."""
from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from reds.quant import ops


def _round_half_away(q: Fraction) -> int:
    n = abs(q)
    r = int(n) + (1 if n - int(n) >= Fraction(1, 2) else 0)
    return r if q >= 0 else -r


@pytest.mark.parametrize("real", [0.3, 0.999999, 1e-3, -0.75, 2.5, 1e-9, 1000.0, 2 ** -31 * 1.5])
def test_quantize_multiplier_reconstructs_the_real_value(real):
    m, e = ops.quantize_multiplier(real)
    assert 2 ** 30 <= abs(m) < 2 ** 31 and -31 <= e <= 30
    assert abs(m * 2.0 ** (e - 31) - real) <= abs(real) * 2 ** -30
    assert (m < 0) == (real < 0)


def test_quantize_multiplier_zero_tiny_and_huge():
    assert ops.quantize_multiplier(0.0) == (0, 0)
    assert ops.quantize_multiplier(1e-12) == (0, 0)
    with pytest.raises(ValueError):
        ops.quantize_multiplier(2.0 ** 31)
    with pytest.raises(ValueError):
        ops.quantize_multiplier(float("nan"))


def test_srdhm_is_the_rounded_high_half_of_the_doubled_product():
    rng = np.random.default_rng(0)
    a = rng.integers(ops.INT32_MIN, ops.INT32_MAX, 2000, endpoint=True)
    b = rng.integers(ops.INT32_MIN + 1, ops.INT32_MAX, 2000, endpoint=True)
    got = ops.srdhm(a, b)
    want = [_round_half_away(Fraction(int(x) * int(y), 2 ** 31)) for x, y in zip(a, b)]
    assert got.tolist() == want
    assert int(ops.srdhm(ops.INT32_MIN, ops.INT32_MIN)) == ops.INT32_MAX


def test_rounding_divide_by_pot_rounds_half_away_from_zero():
    x = np.arange(-70, 71)
    for e in range(0, 6):
        want = [_round_half_away(Fraction(int(v), 2 ** e)) for v in x]
        assert ops.rounding_divide_by_pot(x, e).tolist() == want


def test_requantize_is_within_one_step_of_the_exact_product_and_saturates():
    rng = np.random.default_rng(1)
    x = rng.integers(-(2 ** 20), 2 ** 20, 500)
    for real in (0.0123, 0.5, -0.37, 3.0, 17.5):
        m, e = ops.quantize_multiplier(real)
        got = ops.requantize(x, m, e)
        exact = np.array([_round_half_away(Fraction(int(v)) * Fraction(m, 2 ** (31 - e))) for v in x])
        assert np.abs(got - exact).max() <= 1
    m, e = ops.quantize_multiplier(4.0)  # left shift: saturates to int32 before the multiply
    assert int(ops.requantize(2 ** 30, m, e)) == int(ops.requantize(ops.INT32_MAX, m, 0))


def test_store_clamps_and_applies_the_leaky_slope_to_the_negative_side():
    m, e = ops.quantize_multiplier(0.5)
    slope = ops.quantize_multiplier(0.25)
    y = ops.store(np.array([-400, -8, 8, 400]), m, e, zy=-10, lo=-128, hi=127, slope=slope)
    assert y.tolist() == [-10 - 50, -10 - 1, -10 + 4, 127]
    relu = ops.store(np.array([-400, 40]), m, e, zy=-128, lo=-128, hi=127)
    assert relu.tolist() == [-128, -108]


def test_conv_padding_taps_are_real_zeros():
    """A 3x3 conv with 'same' padding of a constant map equal to the zero point is the bias."""
    x = np.full((2, 4, 4), 7)
    w = np.ones((3, 2, 3, 3), dtype=np.int64)
    m, e = ops.quantize_multiplier(1.0)
    y = ops.conv2d(x, w, [1, 2, 3], [m] * 3, [e] * 3, zx=7, zy=0, lo=-128, hi=127, pads=(1, 1, 1, 1))
    assert (y == np.array([1, 2, 3]).reshape(3, 1, 1)).all()
    x = np.full((1, 2, 2), 8)  # one step above the zero point: corners see 4 taps, the sum is 4
    y = ops.conv2d(x, np.ones((1, 1, 3, 3)), [0], [m], [e], zx=7, zy=0, lo=-128, hi=127, pads=(1, 1, 1, 1))
    assert (y == 4).all()


def test_quantize_input_rounds_half_up_in_float32():
    qa, qb = ops.input_coefficients([1.0], [0.0], s0=0.5, z0=3)
    x = np.array([[[0.25, -0.25, 100.0, -100.0]]], dtype=np.float32)  # /0.5 = 0.5, -0.5, 200, -200
    assert ops.quantize_input(x, qa, qb, "channel").tolist() == [[[4, 3, 127, -128]]]
