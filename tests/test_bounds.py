"""BoxBounds: periodic reflection into the box, identity inside, errors on bad bounds."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from esopt import CMAES, BoxBounds


def test_identity_inside_and_inverse():
    b = BoxBounds([-1.0, 0.0], [1.0, 5.0], 2)
    Y = np.array([[0.3, 4.9], [-1.0, 0.0], [1.0, 5.0]])
    assert np.array_equal(b.transform(Y), Y)
    assert np.array_equal(b.inverse(Y), Y) and b.inverse(Y) is not Y


def test_reflection_values():
    b = BoxBounds(0.0, 1.0, 1)
    y = np.array([[-0.25], [1.25], [2.25], [-1.75], [3.0]])
    np.testing.assert_allclose(b.transform(y), [[0.25], [0.75], [0.25], [0.25], [1.0]])


def test_one_sided_and_unbounded_coordinates():
    b = BoxBounds([0.0, -np.inf, -np.inf], [np.inf, 2.0, np.inf], 3)
    x = b.transform(np.array([-3.0, 5.0, -1e9]))
    np.testing.assert_array_equal(x, [3.0, -1.0, -1e9])


@settings(max_examples=60, deadline=None)
@given(
    lo=st.floats(-1e3, 1e3),
    width=st.floats(1e-3, 1e3),
    y=arrays(np.float64, (7, 1), elements=st.floats(-1e5, 1e5)),
)
def test_always_inside_periodic_and_continuous(lo, width, y):
    b = BoxBounds(lo, lo + width, 1)
    x = b.transform(y)
    assert np.all(x >= lo) and np.all(x <= lo + width)
    # period 2w, mirror symmetry at the lower bound
    np.testing.assert_allclose(b.transform(y + 2 * width), x, atol=1e-6 * (1 + np.abs(y).max()))
    np.testing.assert_allclose(b.transform(2 * lo - y), x, atol=1e-6 * (1 + np.abs(y).max()))
    assert np.array_equal(b.contains(x), np.ones(7, bool))


@pytest.mark.parametrize(
    "lower,upper,n,match",
    [
        (1.0, 1.0, 2, "lower must be < upper"),
        ([0.0, 2.0], [1.0, 1.0], 2, r"lower\[1\]"),
        (np.zeros(3), 1.0, 2, "shape"),
        (np.nan, 1.0, 2, "NaN"),
    ],
)
def test_bad_bounds(lower, upper, n, match):
    with pytest.raises(ValueError, match=match):
        BoxBounds(lower, upper, n)


def test_bounds_argument_errors_in_strategy():
    with pytest.raises(ValueError, match="pair"):
        CMAES(np.zeros(2), 1.0, bounds=(0.0, 1.0, 2.0))
    with pytest.raises(ValueError, match="outside the bounds"):
        CMAES(np.array([0.5, 3.0]), 1.0, bounds=(0.0, 1.0))
    with pytest.raises(TypeError, match="lower"):
        CMAES(np.zeros(2), 1.0, bounds=("a", 1.0))


def test_strategy_inside_box_behaves_as_unbounded():
    # far from the bounds the reflection is the identity: identical runs
    a = CMAES(np.zeros(3), 1e-3, seed=4)
    b = CMAES(np.zeros(3), 1e-3, seed=4, bounds=(-10.0, 10.0))
    for _ in range(20):
        Xa, Xb = a.ask(), b.ask()
        assert np.array_equal(Xa, Xb)
        f = np.sum((Xa - 1e-3) ** 2, axis=1)
        a.tell(Xa, f)
        b.tell(Xb, f)
    assert np.array_equal(a.mean, b.mean)


def test_error_messages_show_plain_numbers_not_numpy_reprs():
    """Issue 11 item 16: ``lower[0]=np.float64(1.0)`` leaked into messages."""
    msgs = []
    for make in (
        lambda: CMAES(np.zeros(2), 1.0, bounds=(np.ones(2), np.zeros(2))),
        lambda: CMAES(np.zeros(2), np.float64(-1.0)),
        lambda: CMAES(np.zeros(2), 1.0, tolerances={"tolfun": np.float64(-1.0)}),
    ):
        with pytest.raises(ValueError) as e:
            make()
        msgs.append(str(e.value))
    assert "lower[0]=1.0 >= upper[0]=0.0" in msgs[0]
    assert msgs[1].endswith("got -1.0") and msgs[2].endswith("got -1.0")
    assert not any("np.float64" in m for m in msgs)


def test_scipy_bounds_object_is_the_same_box_as_the_pair():
    from scipy.optimize import Bounds

    from esopt import IPOP

    a = CMAES(np.full(3, 0.5), 0.8, seed=2, bounds=([0.0, -1.0, 0.0], [1.0, 1.0, 2.0]))
    b = CMAES(np.full(3, 0.5), 0.8, seed=2, bounds=Bounds([0.0, -1.0, 0.0], [1.0, 1.0, 2.0]))
    for _ in range(5):
        Xa, Xb = a.ask(), b.ask()
        assert np.array_equal(Xa, Xb)
        a.tell(Xa, np.sum(Xa**2, axis=1))
        b.tell(Xb, np.sum(Xb**2, axis=1))
    assert np.array_equal(a.mean, b.mean)
    # a restart wrapper rebuilds its inner strategy from the argument given and checkpoints the box
    r = IPOP("cmaes", np.full(2, 0.5), 0.3, seed=1, bounds=Bounds(0.0, 1.0))
    r2 = IPOP.from_state_dict(r.state_dict())
    assert np.array_equal(r2.bounds.lower, [0.0, 0.0]) and np.array_equal(r2.bounds.upper, [1.0, 1.0])


def test_scipy_style_pairs_are_refused_with_the_way_to_pass_them():
    # n = 3: three (min, max) pairs are not a (lower, upper) pair
    with pytest.raises(ValueError, match=r"shape \(3, 2\).*zip\(\*pairs\)"):
        CMAES(np.zeros(3), 1.0, bounds=[(-1, 1), (-1, 1), (-1, 1)])
    # n = 2: the pairs read as lower=(0, 3), upper=(0, 3); the message names the likely mix-up
    with pytest.raises(ValueError, match=r"lower\[0\]=0.0 >= upper\[0\]=0.0.*scipy-style"):
        CMAES(np.ones(2), 1.0, bounds=[(0, 3), (0, 3)])
    # a valid (lower, upper) pair of shape (2, 2) stays valid
    assert np.array_equal(CMAES(np.ones(2), 1.0, bounds=[(0, 0), (3, 3)]).bounds.upper, [3.0, 3.0])


def test_outside_marks_each_coordinate_and_contains_is_its_row_negation():
    b = BoxBounds([0.0, -np.inf], [1.0, 2.0], 2)
    X = np.array([[0.5, -1e9], [1.5, 2.0], [0.0, np.nan], [-0.1, 3.0]])
    np.testing.assert_array_equal(b.outside(X), [[False, False], [True, False], [False, True], [True, True]])
    np.testing.assert_array_equal(b.contains(X), [True, False, False, False])
    assert b.outside(X[0]).shape == (2,) and bool(b.contains(X[0]))
