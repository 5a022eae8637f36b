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
    assert info["counts"] == {"pending": 2, "running": 0, "done": 1, "failed": 0, "cancelled": 1}
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
