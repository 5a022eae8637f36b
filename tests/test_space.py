"""cluster.Space: named hyperparameters <-> the unit cube (log10 scale, ints, bounds)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cluster import Param, Space

SPACE = {
    "lr": {"lower": 3.0e-5, "upper": 0.1, "scale": "log10"},
    "momentum": {"lower": 0.0, "upper": 0.99},
    "T_0": {"lower": 1, "upper": 20, "type": "int"},
    "width": {"lower": 8, "upper": 512, "type": "int", "scale": "log10"},
}


def test_names_dim_bounds_and_centre():
    s = Space(SPACE)
    assert s.names == ["lr", "momentum", "T_0", "width"] and s.dim == 4
    lo, up = s.bounds
    assert lo.tolist() == [0.0] * 4 and up.tolist() == [1.0] * 4
    assert s.x0.tolist() == [0.5] * 4
    c = s.decode(s.x0)
    assert c["lr"] == pytest.approx(math.sqrt(3.0e-5 * 0.1), rel=1e-12)  # centre of a log range: geometric mean
    assert c["momentum"] == pytest.approx(0.495)
    assert c["T_0"] in (10, 11) and isinstance(c["T_0"], int)
    assert isinstance(c["lr"], float)


def test_init_sets_the_starting_point():
    s = Space({"lr": {"lower": 1e-4, "upper": 1.0, "scale": "log10", "init": 1e-3}})
    assert s.x0[0] == pytest.approx(0.25)
    assert s.decode(s.x0)["lr"] == pytest.approx(1e-3, rel=1e-12)


@settings(max_examples=200, deadline=None)
@given(lr=st.floats(3.0e-5, 0.1), m=st.floats(0.0, 0.99), t0=st.integers(1, 20), w=st.integers(8, 512))
def test_round_trip_own_units(lr, m, t0, w):
    s = Space(SPACE)
    params = {"lr": lr, "momentum": m, "T_0": t0, "width": w}
    x = s.encode(params)
    assert x.shape == (4,) and np.all((x >= 0) & (x <= 1))
    back = s.decode(x)
    assert back["lr"] == pytest.approx(lr, rel=1e-12)
    assert back["momentum"] == pytest.approx(m, rel=1e-12, abs=1e-15)
    assert back["T_0"] == t0 and back["width"] == w  # ints come back exactly


@settings(max_examples=200, deadline=None)
@given(u=st.lists(st.floats(0.0, 1.0), min_size=4, max_size=4))
def test_round_trip_unit_cube_for_floats(u):
    s = Space(SPACE)
    p = s.decode(u)
    x = s.encode(p)
    assert x[0] == pytest.approx(u[0], abs=1e-12) and x[1] == pytest.approx(u[1], abs=1e-12)
    # ints are rounded at decode time: re-encoding lands inside the same integer's interval
    assert s.decode(x) == p


def test_ints_own_equal_intervals_on_their_scale():
    lin = Param("k", 1, 5, type="int")
    u = np.linspace(0, 1, 100_001)
    vals = np.array([lin.from_unit(v) for v in u])
    counts = np.bincount(vals)[1:]
    assert counts.tolist() == pytest.approx([20_000] * 5, abs=2)  # each of 1..5 owns a fifth
    log = Param("w", 1, 100, type="int", scale="log10")
    assert log.from_unit(0.0) == 1 and log.from_unit(1.0) == 100
    # the continuous log range is [log10(0.5), log10(100.5)]
    a, b = math.log10(0.5), math.log10(100.5)
    assert log.to_unit(10) == pytest.approx((1.0 - a) / (b - a), rel=1e-12)


def test_decode_clips_into_the_bounds():
    s = Space(SPACE)
    lo = s.decode([-0.5, -0.5, -0.5, -0.5])
    up = s.decode([1.5, 1.5, 1.5, 1.5])
    assert lo == {"lr": 3.0e-5, "momentum": 0.0, "T_0": 1, "width": 8}
    assert up == {"lr": 0.1, "momentum": 0.99, "T_0": 20, "width": 512}


def test_decode_many_and_to_dict():
    s = Space(SPACE)
    X = np.random.default_rng(0).random((5, 4))
    assert s.decode_many(X) == [s.decode(x) for x in X]
    assert Space(s.to_dict()) == s
    assert s.to_dict()["lr"] == {"lower": 3.0e-5, "upper": 0.1, "scale": "log10", "type": "float"}


@pytest.mark.parametrize(
    "spec, match",
    [
        ({"a": {"lower": 1.0, "upper": 1.0}}, r"space\.a\.lower must be < upper"),
        (
            {"a": {"lower": 0.0, "upper": 1.0, "scale": "log10"}},
            r"space\.a\.lower must be > 0 on the log10 scale",
        ),
        (
            {"a": {"lower": 0.5, "upper": 3, "type": "int"}},
            r"space\.a: an int parameter needs integer bounds",
        ),
        ({"a": {"lower": 0, "upper": 1, "scale": "ln"}}, r"space\.a\.scale must be one of"),
        ({"a": {"lower": 0, "upper": 1, "init": 2}}, r"space\.a\.init=2 lies outside"),
        ({"a": {"lower": 0, "upper": 1, "step": 2}}, r"space\.a: unknown key"),
        ({"a": {"upper": 1}}, r"space\.a\.lower is required"),
        ({}, "at least one hyperparameter"),
    ],
)
def test_invalid_spaces_name_the_key(spec, match):
    with pytest.raises(ValueError, match=match):
        Space(spec)


def test_encode_and_decode_check_their_input():
    s = Space(SPACE)
    with pytest.raises(ValueError, match=r"missing \['width'\]"):
        s.encode({"lr": 1e-3, "momentum": 0.5, "T_0": 3})
    with pytest.raises(ValueError, match=r"unknown \['zz'\]"):
        s.encode({"lr": 1e-3, "momentum": 0.5, "T_0": 3, "width": 9, "zz": 1})
    with pytest.raises(ValueError, match=r"shape \(4,\)"):
        s.decode([0.5, 0.5])


def test_log_is_another_name_of_log10():
    p = Param("lr", 1e-4, 1.0, scale="log")  # trials.HParam's old scale name
    assert p.scale == "log10" and p == Param("lr", 1e-4, 1.0, scale="log10")
    assert p.to_unit(1e-2) == pytest.approx(0.5)
    with pytest.raises(ValueError, match=r"space\.lr\.lower must be > 0 on the log10 scale"):
        Param("lr", 0.0, 1.0, scale="log")


def test_param_errors_carry_the_key_path_and_a_plain_message():
    from cluster.space import ParamError

    cases = [
        ({"lower": 1.0, "upper": 1.0}, "space.a.lower", "must be < upper"),
        ({"lower": 0, "upper": 1, "init": 2}, "space.a.init", "2 lies outside [0, 1]"),
        ({"lower": 0.5, "upper": 3, "type": "int"}, "space.a", "an int parameter needs integer bounds"),
        ({"lower": 0, "upper": 1, "step": 2}, "space.a.step", "unknown key"),
        ({"upper": 1}, "space.a.lower", "is required"),
        ({"lower": np.float64(2.0), "upper": np.float64(1.0)}, "space.a.lower", "got lower=2.0 >= upper=1.0"),
    ]
    for spec, path, detail in cases:
        with pytest.raises(ParamError) as exc:
            Param.from_mapping("a", spec)
        assert exc.value.path == path and detail in exc.value.detail, exc.value.detail
        assert "np.float64" not in str(exc.value)
    p = Param.from_mapping("a", {"lower": np.float64(0.5), "upper": np.int64(3)})
    assert type(p.lower) is float and type(p.upper) is int  # plain Python numbers: to_dict is JSON-safe


# ------------------------------------------------------------------------------- mixed spaces (issue 15)
MIXED = {**SPACE, "opt": {"choices": ["adamw", "sgdw", "radam", "nadam"]}}


def test_mixed_coordinates_integers_categories_and_bounds():
    s = Space(MIXED, mixed=True)
    assert s.kinds == ("unit", "unit", "integer", "unit", "categorical")  # a log10 int stays a unit coordinate
    assert s.integers == [2] and s.categories == {4: 4}
    lo, up = s.bounds
    assert lo.tolist() == [0.0, 0.0, 1.0, 0.0, 0.0] and up.tolist() == [1.0, 1.0, 20.0, 1.0, 3.0]
    assert s.x0.tolist() == [0.5, 0.5, 10.5, 0.5, 0.0]  # centre of the int's range, the first choice
    unit = Space(SPACE)
    x = np.array([0.2, 0.7, 13.0, 0.9, 2.0])
    d = s.decode(x)
    assert d["T_0"] == 13 and isinstance(d["T_0"], int) and d["opt"] == "radam"
    assert {k: d[k] for k in ("lr", "momentum", "width")} == {
        k: v for k, v in unit.decode([0.2, 0.7, 0.5, 0.9]).items() if k != "T_0"
    }
    assert s.encode(d)[2:].tolist() == [13.0, pytest.approx(0.9, abs=0.01), 2.0]
    # out-of-range coordinates are rounded and clipped, as for ints
    assert s.decode([0.0, 0.0, 25.4, 0.0, 3.6])["T_0"] == 20 and s.decode([0.0, 0.0, 0.0, 0.0, -0.7])["opt"] == "adamw"
    with pytest.raises(ValueError, match=r"opt='lion' is not one of the choices"):
        s.encode({**d, "opt": "lion"})


def test_strategy_options_give_integer_coordinates_sigma0_as_a_fraction_of_their_range():
    s = Space(MIXED, mixed=True)  # T_0: linear int 1..20 (20 integers); the others unit or categorical
    opts = s.strategy_options()
    assert opts["integers"] == [2] and opts["categories"] == {4: 4}
    assert opts["stds"].tolist() == [1.0, 1.0, 20.0, 1.0, 1.0]
    # the strategy built from them samples T_0 with sigma0 * 20 integers, the unit ones with sigma0
    import esopt

    es = esopt.make_strategy("catcmawm", s.x0, 0.2, popsize=2000, seed=0, bounds=s.bounds, **opts)
    Y = es._sample()
    np.testing.assert_allclose(Y[:, [0, 1, 2, 3]].std(axis=0), [0.2, 0.2, 4.0, 0.2], rtol=0.06)
    only_cat = Space({"lr": SPACE["lr"], "opt": MIXED["opt"]}, mixed=True)
    assert only_cat.strategy_options() == {"categories": {1: 4}}  # no integer: no stds
    assert Space(SPACE).strategy_options() == {}


def test_a_categorical_needs_the_mixed_coordinates_and_init_sets_x0():
    with pytest.raises(ValueError, match=r"space\.opt\.choices needs the mixed strategy"):
        Space(MIXED)
    s = Space(
        {"flag": {"choices": [True, False], "init": False}, "k": {"lower": 2, "upper": 5, "type": "int", "init": 3}},
        mixed=True,
    )
    assert s.x0.tolist() == [1.0, 3.0]
    assert s.to_dict() == {
        "flag": {"choices": [True, False], "init": False},
        "k": {"lower": 2, "upper": 5, "scale": "linear", "type": "int", "init": 3},
    }
    assert Space(s.to_dict(), mixed=True) == s and Space(s.to_dict(), mixed=True) != Space({"k": s.to_dict()["k"]})


def test_without_mixed_the_unit_cube_is_unchanged():
    s, m = Space(SPACE), Space(SPACE, mixed=False)
    assert s == m and s.integers == [] and s.categories == {} and s.to_dict() == Space(s.to_dict()).to_dict()
    x = np.array([0.13, 0.77, 0.41, 0.59])
    assert s.decode(x) == {p.name: p.from_unit(u) for p, u in zip(s.params, x)}
    assert s.encode(s.decode(x)).tolist() == [p.to_unit(v) for p, v in zip(s.params, s.decode(x).values())]
