"""esopt.numtypes: the predicates every option check uses to refuse bools as numbers."""

from __future__ import annotations

import numpy as np
import pytest

from esopt.numtypes import is_int, is_real


@pytest.mark.parametrize("v", [0, -3, 2**70, np.int8(4), np.int64(-1), np.uint32(7)])
def test_integers_are_int_and_real(v):
    assert is_int(v) and is_real(v)


@pytest.mark.parametrize("v", [0.5, float("nan"), float("inf"), np.float32(1.0), np.float64(-2.0)])
def test_floats_are_real_not_int(v):
    assert is_real(v) and not is_int(v)


NOT_NUMBERS = [True, False, np.True_, np.False_, None, "3", b"3", [3], np.array(3), np.array([1.0]), 1j]


@pytest.mark.parametrize("v", NOT_NUMBERS)
def test_bools_strings_containers_and_arrays_are_neither(v):
    assert not is_int(v) and not is_real(v)
