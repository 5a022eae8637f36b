"""Exact, pickle-free checkpoints of CMAES: save/load/continue is bit-identical; bad files fail clearly."""

import io
import json
import zipfile

import numpy as np
import pytest

import esopt
from esopt import CMAES
from esopt import testfunctions as tf
from esopt.checkpoint import read_state

GENERATIONS = 70
pytestmark = pytest.mark.filterwarnings("ignore:CMAES.*non-finite:RuntimeWarning")


def _objective(X):
    f = tf.rosenbrock(X)
    f[::7] = np.nan  # exercise the non-finite path too
    return f


def _make(**kw):
    return CMAES(np.zeros(6), 0.5, seed=11, **kw)


def _run(es, gens, asked=None):
    for _ in range(gens):
        X = es.ask()
        if asked is not None:
            asked.append(X.copy())
        es.tell(X, _objective(X))


def _final(es):
    r = es.result
    return [r.x, np.array([r.f, r.sigma]), r.mean, es.C, es.pc, es.ps, es.B, es.D]


@pytest.mark.parametrize("kw", [{}, {"active": False, "bounds": (-0.3, 2.0), "popsize": 9}])
def test_save_load_continue_is_bit_identical(tmp_path, kw):
    ref_asked: list = []
    ref = _make(**kw)
    _run(ref, GENERATIONS, ref_asked)
    stops = sorted(np.random.default_rng(123).choice(np.arange(1, GENERATIONS), size=4, replace=False))
    for g in [0, *stops]:
        for pending in (False, True):
            es = _make(**kw)
            _run(es, g)
            asked = []
            if pending:  # checkpoint between ask and tell
                X = es.ask()
                asked.append(X.copy())
            path = tmp_path / f"ck_{g}_{pending}.npz"
            esopt.save(es, path)
            del es
            es = esopt.load(path)
            assert isinstance(es, CMAES)
            if pending:
                es.tell(X, _objective(X))
            _run(es, GENERATIONS - g - pending, asked)
            for a, b in zip(asked, ref_asked[g:]):
                assert np.array_equal(a, b), f"ask output differs after resuming at generation {g}"
            for a, b in zip(_final(es), _final(ref)):
                assert np.array_equal(a, b), f"final state differs after resuming at generation {g}"
            assert es.stop() == ref.stop()
            assert es.result.nfev == ref.result.nfev


def test_state_dict_is_plain_data():
    es = _make()
    _run(es, 3)
    d = es.state_dict()
    for k, v in d.items():
        assert v is None or isinstance(v, (np.ndarray, bool, int, float, str)), (k, type(v))
        if isinstance(v, np.ndarray):
            assert v.dtype != object
    assert json.loads(d["rng"])["bit_generator"] == "PCG64"
    es2 = CMAES.from_state_dict(d)
    X1, X2 = es.ask(), es2.ask()
    assert np.array_equal(X1, X2)


def test_checkpoint_bytes_round_trip():
    from esopt.checkpoint import state_to_npz_bytes

    es = _make()
    _run(es, 5)
    es2 = esopt.load(state_to_npz_bytes(es.state_dict()))
    assert np.array_equal(es.ask(), es2.ask())


def test_truncated_file_raises(tmp_path):
    es = _make()
    _run(es, 5)
    path = esopt.save(es, tmp_path / "ck.npz")
    data = path.read_bytes()
    for cut in (len(data) // 3, len(data) - 10, 20):
        bad = tmp_path / f"cut{cut}.npz"
        bad.write_bytes(data[:cut])
        with pytest.raises(ValueError, match="truncated or corrupt"):
            esopt.load(bad)


def _rewrite_meta(path, out, change):
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    meta = json.loads(str(arrays.pop("__meta__")))
    change(meta)
    with open(out, "wb") as fh:
        np.savez(fh, __meta__=np.array(json.dumps(meta)), **arrays)
    return out


def test_other_format_version_raises(tmp_path):
    es = _make()
    _run(es, 2)
    path = esopt.save(es, tmp_path / "ck.npz")
    bad = _rewrite_meta(path, tmp_path / "v99.npz", lambda m: m.update(format_version=99))
    with pytest.raises(ValueError, match="format version 99"):
        esopt.load(bad)
    bad = _rewrite_meta(path, tmp_path / "s99.npz", lambda m: m["scalars"].update(version=99))
    with pytest.raises(ValueError, match="version 99"):
        esopt.load(bad)


def test_other_class_raises(tmp_path):
    es = _make()
    _run(es, 2)
    d = es.state_dict()
    d["class"] = "sepcmaes"
    with pytest.raises(ValueError, match="sepcmaes"):
        CMAES.from_state_dict(d)
    path = esopt.save(es, tmp_path / "ck.npz")
    with pytest.raises(ValueError, match="expected SepCMAES"):
        esopt.load(path, expected_class=esopt.SepCMAES)
    bad = _rewrite_meta(path, tmp_path / "other.npz", lambda m: m["scalars"].update({"class": "nosuch"}))
    with pytest.raises(ValueError, match="nosuch"):
        esopt.load(bad)


def test_not_a_checkpoint_and_pickled_content_raise(tmp_path):
    plain = tmp_path / "plain.npz"
    np.savez(plain, a=np.ones(3))
    with pytest.raises(ValueError, match="not an esopt checkpoint"):
        esopt.load(plain)
    # an object array needs pickle: it must be refused, never unpickled
    buf = io.BytesIO()
    np.savez(buf, __meta__=np.array("{}"), evil=np.array([{"a": 1}], dtype=object))
    with pytest.raises(ValueError):
        read_state(buf.getvalue())
    with pytest.raises(FileNotFoundError):
        esopt.load(tmp_path / "missing.npz")
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"not a zip file at all")
    with pytest.raises(ValueError, match="truncated or corrupt"):
        esopt.load(junk)
    assert zipfile.is_zipfile(esopt.save(_make(), tmp_path / "ok.npz"))


def test_missing_key_raises():
    d = _make().state_dict()
    del d["state.C"]
    with pytest.raises(ValueError, match="state.C"):
        CMAES.from_state_dict(d)


def test_atomic_write_bytes_replaces_and_leaves_no_temporary_file(tmp_path):
    from esopt.checkpoint import atomic_write_bytes

    target = tmp_path / "state.bin"
    assert atomic_write_bytes(target, b"first") == target and target.read_bytes() == b"first"
    atomic_write_bytes(target, b"second")
    assert target.read_bytes() == b"second"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.bin"]
    with pytest.raises(TypeError, match="bytes"):
        atomic_write_bytes(target, "text")
    with pytest.raises(FileNotFoundError):
        atomic_write_bytes(tmp_path / "missing" / "x.bin", b"x")
    assert target.read_bytes() == b"second"


def test_atomic_write_bytes_keeps_the_old_file_when_the_write_fails(tmp_path, monkeypatch):
    import os

    from esopt.checkpoint import atomic_write_bytes

    target = tmp_path / "ckpt.npz"
    esopt.save(_make(), target)
    before = target.read_bytes()

    def failing_fsync(fd):
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", failing_fsync)
    with pytest.raises(OSError, match="disk full"):
        atomic_write_bytes(target, b"half")
    assert target.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt.npz"]


def test_one_json_converter_for_numpy_values():
    from esopt.jsonutil import dumps, json_default, to_jsonable

    value = {
        "a": np.float32(1.5),
        2: np.arange(3),
        "dtype": np.float32,
        "t": (np.int64(4), np.bool_(True)),
        "bad": [np.nan, np.inf],
        "nested": {"m": np.eye(2)},
    }
    out = to_jsonable(value)
    assert out == {
        "a": 1.5,
        "2": [0, 1, 2],
        "dtype": "float32",
        "t": [4, True],
        "bad": [out["bad"][0], np.inf],
        "nested": {"m": [[1.0, 0.0], [0.0, 1.0]]},
    }
    assert np.isnan(out["bad"][0]) and type(out["a"]) is float and type(out["t"][0]) is int
    assert to_jsonable(value, nonfinite="null")["bad"] == [None, None]
    assert json.loads(dumps(value, nonfinite="null", allow_nan=False))["bad"] == [None, None]
    assert json.dumps({"x": np.int32(3)}, default=json_default) == '{"x": 3}'
    with pytest.raises(TypeError, match="object"):
        to_jsonable(object())
    with pytest.raises(ValueError, match="nonfinite"):
        to_jsonable(1.0, nonfinite="drop")


def test_state_dict_is_format_2_and_a_format_1_dict_still_loads():
    es = _make()
    _run(es, 5)
    d = es.state_dict()
    assert d["version"] == esopt.base.STATE_FORMAT_VERSION == 2
    assert "state.Z" in d and not any(k.startswith("state._") for k in d)
    # the same state in 0.1.0's layout: version 1, private names with an underscore
    v1 = {("state._Z" if k == "state.Z" else k): v for k, v in d.items()}
    v1["version"] = 1
    loaded = CMAES.from_state_dict(v1)
    assert np.array_equal(loaded.ask(), es.ask())


def test_save_to_a_directory_says_so_and_writes_nothing(tmp_path):
    es = CMAES(np.zeros(3), 1.0, seed=0)
    with pytest.raises(IsADirectoryError, match=r"is a directory; give a file name, e\.g\. .*es\.npz"):
        esopt.save(es, tmp_path)
    assert list(tmp_path.iterdir()) == []
