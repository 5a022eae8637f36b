"""esopt.testfunctions: values, shapes, vectorization, fixed rotation."""

import numpy as np
import pytest

from esopt import testfunctions as tf

ALL = list(tf.FUNCTIONS.items())


@pytest.mark.parametrize("name,f", ALL)
def test_single_and_population_shapes_agree(name, f):
    X = np.random.default_rng(0).uniform(-2, 2, (6, 5))
    v = f(X)
    assert v.shape == (6,) and v.dtype == np.float64
    for i in range(6):
        s = f(X[i])
        assert isinstance(s, float) and s == v[i]  # bit-identical to the batched value


@pytest.mark.parametrize("name,f", ALL)
def test_minimum(name, f):
    opt = np.ones(4) if name == "rosenbrock" else np.zeros(4)
    assert f(opt) == 0.0
    X = opt + np.random.default_rng(1).uniform(-1, 1, (50, 4))
    assert np.all(f(X) > 0)


def test_conditioning():
    e = np.eye(5)
    assert tf.ellipsoid(e[-1]) / tf.ellipsoid(e[0]) == pytest.approx(1e6)
    np.testing.assert_allclose(tf.ellipsoid(e), 1e6 ** (np.arange(5) / 4))
    np.testing.assert_allclose(tf.cigar(e), [1.0, 1e6, 1e6, 1e6, 1e6])
    np.testing.assert_allclose(tf.discus(e), [1e6, 1.0, 1.0, 1.0, 1.0])
    np.testing.assert_allclose(tf.diffpowers(0.5 * e), 0.5 ** (2 + np.arange(5)))
    assert tf.ellipsoid(np.ones(1)) == 1.0  # n = 1


def test_rotated_ellipsoid_uses_a_fixed_cached_rotation():
    R = tf.rotation(6, seed=0)
    assert R is tf.rotation(6, seed=0) and not R.flags.writeable
    np.testing.assert_allclose(R @ R.T, np.eye(6), atol=1e-12)
    assert not np.allclose(R, tf.rotation(6, seed=1))
    X = np.random.default_rng(2).standard_normal((4, 6))
    np.testing.assert_allclose(tf.rotated_ellipsoid(X), tf.ellipsoid(X @ R.T), rtol=1e-12)
    # same eigenvalues as the axis-parallel ellipsoid: f(R^T e_i) = 1e6^(i/(n-1))
    np.testing.assert_allclose(tf.rotated_ellipsoid(R), tf.ellipsoid(np.eye(6)), rtol=1e-9)  # rows R^T e_i
    assert not np.allclose(tf.rotated_ellipsoid(np.eye(6)), tf.ellipsoid(np.eye(6)))


def test_rosenbrock_and_rastrigin_values():
    assert tf.rosenbrock(np.zeros(3)) == 2.0
    assert tf.rosenbrock(np.array([1.0, 2.0])) == 100.0
    assert tf.rastrigin(np.array([1.0, -2.0])) == pytest.approx(5.0)
    assert tf.rastrigin(np.array([0.5, 0.0])) == pytest.approx(20.25)


@pytest.mark.parametrize("bad", [np.ones((2, 2, 2)), np.ones((3, 0)), np.float64(1.0)])
def test_bad_shapes(bad):
    with pytest.raises(ValueError, match="shape"):
        tf.sphere(bad)
    with pytest.raises(ValueError, match="n >= 2"):
        tf.rosenbrock(np.ones(1))
