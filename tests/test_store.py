"""The SQLite journal: schema, transitions, read-only access while writing, refusal of bad files."""

from __future__ import annotations

import json
import os
import sqlite3

import numpy as np
import pytest

from cluster import Campaign, Journal, JournalError, parse_config
from cluster.store import DB_NAME, SCHEMA_VERSION

CONFIG = {
    "name": "store-test",
    "objective": "helpers_objectives:sphere",
    "space": {"x": {"lower": -1.0, "upper": 1.0}, "n": {"lower": 1, "upper": 9, "type": "int"}},
    "strategy": {"name": "cmaes", "popsize": 4, "seed": 0},
    "budget": {"max_generations": 2},
}


@pytest.fixture
def journal(tmp_path):
    j = Journal.create(tmp_path / "camp", name="store-test", config=parse_config(CONFIG).raw, driver_pid=123)
    yield j
    j.close()


def _fill_generation(j: Journal, g: int = 1, rng=None):
    rng = np.random.default_rng(0) if rng is None else rng
    X = rng.random((4, 2))
    params = [{"x": float(2 * x[0] - 1), "n": int(1 + 8 * x[1])} for x in X]
    ids = j.add_generation(g, X, params)
    return X, params, ids


def test_schema_and_meta(journal):
    conn = sqlite3.connect(journal.path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    cols = {r[1] for r in conn.execute("PRAGMA table_info(trials)")}
    assert {
        "status",
        "objective",
        "generation",
        "idx",
        "x_json",
        "params_json",
        "result_json",
        "error",
        "attempts",
        "node_id",
        "worker_id",
        "started_at",
        "finished_at",
    } <= cols
    meta = dict(conn.execute("SELECT key, value FROM meta"))
    assert meta["schema_version"] == str(SCHEMA_VERSION)
    assert "esopt_version" in meta and float(meta["created_at"]) > 0
    conn.close()
    info = journal.campaign_info()
    assert info["status"] == "running" and info["driver_pid"] == 123 and info["n_trials"] == 0
    assert journal.config() == parse_config(CONFIG).raw


def test_create_refuses_existing_journal(journal):
    before = journal.path.read_bytes()
    with pytest.raises(FileExistsError):
        Journal.create(journal.path.parent, name="again", config={"name": "again"})
    assert journal.path.read_bytes() == before


def test_transitions_are_committed_and_visible_to_a_readonly_reader(journal):
    reader = Journal(journal.path.parent, readonly=True)
    X, params, ids = _fill_generation(journal)
    rows = reader.trials(1)  # pending candidates are visible before any runs
    assert [r["status"] for r in rows] == ["pending"] * 4
    assert [r["x"] for r in rows] == X.tolist()  # floats round-trip exactly
    assert [r["params"] for r in rows] == params
    journal.mark_submitted(ids[:2])
    journal.mark_started(ids[0], node_id="node-a", worker_id="w-1", started_at=10.0)
    r0 = reader.trial(ids[0])
    assert (r0["status"], r0["attempts"], r0["node_id"], r0["worker_id"], r0["started_at"]) == (
        "running",
        1,
        "node-a",
        "w-1",
        10.0,
    )
    journal.finish_trial(
        ids[0], status="done", objective=0.25, result={"objective": 0.25, "curve": [1, 0.5]}, finished_at=11.0
    )
    journal.finish_trial(
        ids[1],
        status="failed",
        objective=float("nan"),
        result={"objective": float("nan")},
        error="non-finite objective (nan)",
    )
    r0, r1 = reader.trial(ids[0]), reader.trial(ids[1])
    assert (r0["status"], r0["objective"], r0["result"]["curve"], r0["finished_at"]) == (
        "done",
        0.25,
        [1, 0.5],
        11.0,
    )
    assert r1["status"] == "failed" and r1["objective"] is None and r1["error"].startswith("non-finite")
    assert np.isnan(r1["result"]["objective"])
    # a retry records why the previous attempt failed and counts the attempt
    journal.mark_submitted([ids[1]], errors=["attempt 1 exception: ValueError: x"])
    r1 = reader.trial(ids[1])
    assert (r1["status"], r1["attempts"], r1["error"]) == ("running", 2, "attempt 1 exception: ValueError: x")
    assert journal.cancel_running(1, reason="cancelled: test") == [ids[1]]
    assert reader.trial(ids[1])["status"] == "cancelled"
    assert reader.best_trial()["id"] == ids[0]
    journal.tell(1, sigma=0.2, mean=[0.5, 0.25], best_objective=0.25, state=b"\x00state", elapsed_s=3.5)
    gens = reader.generations()
    assert gens == [
        {
            "generation": 1,
            "popsize": 4,
            "asked_at": gens[0]["asked_at"],
            "told_at": gens[0]["told_at"],
            "sigma": 0.2,
            "mean": [0.5, 0.25],
            "best_objective": 0.25,
        }
    ]
    assert journal.last_state() == (1, b"\x00state")
    info = reader.campaign_info()
    assert info["elapsed_s"] == 3.5 and info["n_generations"] == 1 and info["open_generation"] is None
    assert info["counts"] == {"pending": 2, "running": 0, "done": 1, "failed": 0, "stopped": 0, "cancelled": 1}
    journal.set_campaign(status="done", message="stopped by max_generations=1", stop={"max_generations": 1})
    assert reader.campaign_info()["stop"] == {"max_generations": 1}
    # plain sqlite3 users query the columns by name
    conn = sqlite3.connect(journal.path)
    assert conn.execute("SELECT COUNT(*) FROM trials WHERE status='done' AND objective < 1").fetchone()[0] == 1
    conn.close()
    reader.close()


def test_readonly_journal_refuses_writes(journal):
    _fill_generation(journal)
    with Journal(journal.path, readonly=True) as ro:
        with pytest.raises(ValueError, match="read-only"):
            ro.set_campaign(status="failed")
        assert ro.campaign_info()["status"] == "running"


def test_bad_inputs_raise_before_writing(journal):
    with pytest.raises(ValueError, match="status must be"):
        journal.set_campaign(status="bogus")
    with pytest.raises(ValueError, match="unknown campaign fields"):
        journal.set_campaign(name="x")
    with pytest.raises(ValueError, match="rows"):
        journal.add_generation(1, [[0.1, 0.2]], [])
    with pytest.raises(ValueError, match="finish status"):
        journal.finish_trial(1, status="running")
    assert journal.trials() == [] and journal.campaign_info()["status"] == "running"


# ------------------------------------------------------------------------- refusing bad files
def _snapshot(directory):
    return {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(directory.iterdir())}


def _make_corrupt(d):
    d.mkdir()
    (d / DB_NAME).write_bytes(np.random.default_rng(1).bytes(8192))


def _make_truncated(d):
    j = Journal.create(d, name="t", config={"name": "t"})
    _fill_generation(j)
    j.close()
    data = (d / DB_NAME).read_bytes()
    (d / DB_NAME).write_bytes(data[:100] + bytes(len(data) - 100))  # header kept, pages zeroed


def _make_foreign(d):
    d.mkdir()
    conn = sqlite3.connect(d / DB_NAME)
    conn.execute("CREATE TABLE users(id INTEGER PRIMARY KEY, name TEXT)")
    conn.execute("INSERT INTO users(name) VALUES ('ada')")
    conn.commit()
    conn.close()


def _make_newer(d):
    j = Journal.create(d, name="n", config=parse_config(CONFIG).raw)
    j.close()
    conn = sqlite3.connect(d / DB_NAME)
    conn.execute("UPDATE meta SET value=? WHERE key='schema_version'", (str(SCHEMA_VERSION + 1),))
    conn.commit()
    conn.close()


@pytest.mark.parametrize(
    "make, match",
    [
        (_make_corrupt, "not an SQLite database"),
        (_make_truncated, "corrupt"),
        (_make_foreign, "not an esopt campaign journal"),
        (_make_newer, "newer than this esopt reads"),
    ],
)
def test_bad_journal_is_refused_untouched(tmp_path, make, match):
    d = tmp_path / "camp"
    make(d)
    before = _snapshot(d)
    with pytest.raises(JournalError, match=match):
        Journal(d)
    with pytest.raises(JournalError, match=match):
        Journal(d, readonly=True)
    with pytest.raises(JournalError, match=match):
        Campaign.resume(d)
    assert _snapshot(d) == before  # same files, bytes and modification times


def test_config_mismatch_is_refused_untouched(tmp_path):
    d = tmp_path / "camp"
    Campaign(parse_config(CONFIG), d).close()
    before = _snapshot(d)
    other = parse_config(dict(CONFIG, budget={"max_generations": 5}))
    with pytest.raises(JournalError, match=r"differs in \['budget'\]"):
        Campaign.resume(d, config=other)
    assert _snapshot(d) == before
    # the stored config itself is accepted
    Campaign.resume(d, config=parse_config(CONFIG)).close()


def test_missing_journal(tmp_path):
    with pytest.raises(JournalError, match="no campaign journal"):
        Journal(tmp_path)
    with pytest.raises(JournalError, match="no campaign journal"):
        Campaign.resume(tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_campaign_refuses_a_directory_with_a_journal(tmp_path):
    d = tmp_path / "camp"
    Campaign(parse_config(CONFIG), d).close()
    with pytest.raises(FileExistsError, match="resume"):
        Campaign(parse_config(CONFIG), d)
    assert (
        json.loads(sqlite3.connect(d / DB_NAME).execute("SELECT config_json FROM campaign").fetchone()[0])
        == parse_config(CONFIG).raw
    )
    assert not os.path.exists(d / "ray_local.json")


# ------------------------------------------------------------------- typed rows, failure counts
def test_trial_rows_are_typed_and_still_read_like_dicts(journal):
    from cluster.status import FailureKind, TrialStatus
    from cluster.trialrow import TrialRow

    X, params, ids = _fill_generation(journal)
    journal.mark_submitted(ids)
    journal.finish_trial(ids[0], status=TrialStatus.DONE, objective=0.5, result={"objective": 0.5})
    journal.finish_trial(ids[1], status="failed", error="exception: ValueError: bad lr\nTraceback ...")
    journal.finish_trial(ids[2], status="failed", error="timeout")
    rows = journal.trials(1)
    assert all(isinstance(r, TrialRow) for r in rows)
    r0, r1, r2, r3 = rows
    assert r0.status is TrialStatus.DONE and r0.status == "done" and r0.objective == 0.5 and r0.x == X[0].tolist()
    assert r0["status"] == "done" and r0.get("params") == params[0] and dict(r0)["id"] == ids[0]
    assert set(r0) == set(r0.to_dict()) and json.loads(json.dumps(r0.to_dict()))["status"] == "done"
    assert (r1.failure_kind, r1.failure_reason) == (FailureKind.EXCEPTION, "ValueError: bad lr")
    assert (r2.failure_kind, r2.failure_reason) == (FailureKind.TIMEOUT, "timeout")
    assert r0.failure_kind is None and r3.status is TrialStatus.RUNNING and r3.attempts == 1
    with pytest.raises(KeyError):
        r0["no_such_column"]
    with pytest.raises(ValueError, match="finish status"):  # the enum's strings are still checked
        journal.finish_trial(ids[3], status=TrialStatus.RUNNING)


def test_failure_counts_group_by_reason(journal):
    _, _, ids1 = _fill_generation(journal, 1)
    _, _, ids2 = _fill_generation(journal, 2)
    errors = [
        "failed: ValueError: dataset 'mnist' needs spec.data_dir",
        "exception: ValueError: dataset 'mnist' needs spec.data_dir",
        "timeout",
        "non-finite objective (nan)",
    ]
    for i, err in zip(ids1, errors):
        journal.finish_trial(i, status="failed", error=err)
    for i in ids2[:3]:
        journal.finish_trial(i, status="failed", error="exception: TypeError: f() takes 0 positional arguments\n  ...")
    journal.finish_trial(ids2[3], status="done", objective=1.0)
    assert journal.failure_counts(1) == {
        "ValueError: dataset 'mnist' needs spec.data_dir": 2,
        "non-finite objective (nan)": 1,
        "timeout": 1,
    }
    allc = journal.failure_counts()
    assert list(allc.items())[0] == ("TypeError: f() takes 0 positional arguments", 3)  # most frequent first
    assert sum(allc.values()) == 7 and journal.failure_counts(3) == {}


def test_failure_kinds_decide_the_policy():
    from cluster.status import FailureKind

    for kind in FailureKind:
        msg = kind.message("x")
        assert FailureKind.of(msg) is kind and FailureKind.of(f"attempt 2 {msg}") is kind
    assert FailureKind.of("timeout") is FailureKind.TIMEOUT and FailureKind.of("cancelled: Ctrl-C") is None
    assert {k for k in FailureKind if not k.policy_applies} == {FailureKind.DIVERGED, FailureKind.SYSTEM}


def test_campaign_config_reads_the_stored_config(journal):
    cfg = journal.campaign_config()
    assert cfg == parse_config(CONFIG) and cfg.strategy.popsize == 4


# ------------------------------------------------------------------- journals written by 0.1.0
DATA = os.path.join(os.path.dirname(__file__), "data", "journal_v010")


@pytest.fixture
def v010(tmp_path):
    """A copy of the journal that esopt 0.1.0 wrote (tests/data/make_journal_v010.py) and what it saw."""
    import shutil

    d = tmp_path / "v010"
    shutil.copytree(DATA, d)
    with open(d / "expected.json") as fh:
        expected = json.load(fh)
    return d, expected


def _sha(b):
    import hashlib

    return hashlib.sha256(b).hexdigest()


def test_a_010_journal_is_read(v010):
    from cluster.status import TrialStatus
    from cluster.store import check_config_match

    d, exp = v010
    before = _snapshot(d)
    with Journal(d, readonly=True) as j:
        assert j.meta()["esopt_version"] == "0.1.0" and j.campaign_info()["status"] == exp["campaign_status"]
        stored = j.config()
        assert stored["strategy"]["stop_on_convergence"] is True  # a 0.1.0 campaign resumes as it ran
        assert stored["scheduler"] == {"mode": "sync"}  # ... generation by generation
        assert {k: v for k, v in stored.items() if k not in ("strategy", "scheduler")} == {
            k: v for k, v in exp["config"].items() if k != "strategy"
        }
        cfg = j.campaign_config()
        assert cfg.name == "v010-sphere" and cfg.space.names == ["a", "b", "n", "c"]
        assert cfg.strategy.stop_on_convergence is True and cfg.budget.max_generations == 4
        rows = j.trials()
        assert [(r.generation, r.idx, r.status, r.objective) for r in rows] == [
            (t["generation"], t["idx"], TrialStatus(t["status"]), t["objective"]) for t in exp["trials"]
        ]
        assert [r.x for r in rows] == [json.loads(t["x_json"]) for t in exp["trials"]]  # exact floats
        assert [r.params for r in rows] == [json.loads(t["params_json"]) for t in exp["trials"]]
        told = [g for g in exp["generations"] if g["told"]]
        assert [_sha(j.state(g["generation"])) for g in told] == [g["state_sha256"] for g in told]
        assert j.last_state()[0] == 2 and j.campaign_info()["open_generation"] == 3
        # today's parse of the config the user wrote then is accepted for this journal
        check_config_match(j.config(), parse_config(exp["config"]).raw, j.path)
        check_config_match(Journal._validate(j.path), parse_config(exp["config"]).raw, j.path)
    assert _snapshot(d) == before  # reading wrote nothing


def test_a_010_journal_continues_at_journal_level(v010):
    d, exp = v010
    with Journal(d) as j:
        pending = [r.id for r in j.trials(3) if r.status == "pending"]
        assert len(pending) == 2
        j.set_campaign(status="running", driver_pid=os.getpid())
        j.mark_submitted(pending)
        for k, i in enumerate(pending):
            j.finish_trial(i, status="done", objective=float(k))
        j.tell(3, sigma=0.1, mean=[0.5] * 4, best_objective=0.0, state=b"s3", elapsed_s=1.0)
        ids = j.add_generation(4, [[0.5] * 4] * 4, [{"a": 0.0, "b": 1.0, "n": 3, "c": 1.0}] * 4)
        assert len(ids) == 4 and j.last_state() == (3, b"s3")
    with Journal(d, readonly=True) as j:  # reopened (validated) with today's code after writing
        info = j.campaign_info()
        assert info["n_generations"] == 3 and info["open_generation"] == 4 and info["n_trials"] == 16
        assert [r.objective for r in j.trials(1)] == [t["objective"] for t in exp["trials"][:4]]


def _close(a, b) -> bool:
    """Equal to rounding (1e-9 relative): 0.1.0 wrote this journal with another BLAS kernel
    (OpenBLAS Haswell); with SkylakeX the same code differs in the last bits after a few tells."""
    return bool(np.allclose(np.asarray(a, dtype=float), np.asarray(b, dtype=float), rtol=1e-9, atol=1e-12))


def test_a_010_journal_resumes_to_completion_as_010_did(v010, ray_local):
    d, exp = v010
    result = Campaign.resume(d).run()
    resumed = exp["resumed"]  # what 0.1.0 itself did when resuming a copy of this journal
    assert result.status == resumed["campaign_status"] == "done" and result.message == resumed["message"]
    with Journal(d, readonly=True) as j:
        got = [(r.generation, r.idx, r.status.value) for r in j.trials()]
        assert got == [(t["generation"], t["idx"], t["status"]) for t in resumed["trials"]]
        assert _close([r.objective for r in j.trials()], [t["objective"] for t in resumed["trials"]])
        assert _close([r.x for r in j.trials()], [json.loads(t["x_json"]) for t in resumed["trials"]])
        # the strategy's path after the resume (the checkpoint bytes themselves may be of a newer format)
        gens = j.generations()
        assert [g["generation"] for g in gens] == [g["generation"] for g in resumed["generations"]]
        for key, stored in (("sigma", "sigma"), ("mean", "mean_json"), ("best_objective", "best_objective")):
            ref = [json.loads(g[stored]) if stored == "mean_json" else g[stored] for g in resumed["generations"]]
            assert _close([g[key] for g in gens], ref), key
        # the generations 0.1.0 had told keep their checkpoint bytes unchanged
        assert [_sha(j.state(g)) for g in (1, 2)] == [g["state_sha256"] for g in resumed["generations"][:2]]


def test_restarts_are_journaled_in_generation_order_and_idempotently(journal):
    journal.add_restart(7, {"stop": {"tolfun": 1e-11}, "popsize": 16})
    journal.add_restart(3, {"stop": {"tolflatfitness": 1}, "popsize": 8})
    journal.add_restart(3, {"stop": {"tolflatfitness": 1}, "popsize": 8})  # a resume writes it again
    got = journal.restarts()
    assert [r["after_generation"] for r in got] == [3, 7] and got[1]["popsize"] == 16
    with pytest.raises(ValueError, match="after_generation"):
        journal.add_restart(-1, {})
    assert len(journal.restarts()) == 2
