"""The ``esopt`` command: run, resume, inspect and report tuning campaigns.

::

    esopt tune CONFIG [--dir DIR] [--address ADDR] [--no-progress]
    esopt resume DIR [--address ADDR] [--no-progress]
    esopt status DIR
    esopt report DIR [--out OUT]

``tune`` validates the YAML config (``cluster.config.load_config``) before anything starts and
runs the campaign in ``DIR`` (default ``runs/<name>-<YYYYmmdd-HHMMSS>`` under the current
directory).  ``--address`` overrides the config's ``ray.address`` (``auto`` or ``ray://host:port``
joins an existing Ray cluster; absent, a local Ray instance is started).  ``status`` and
``report`` open the journal read-only and work while a campaign runs.

Exit codes: 0 the campaign is done, 1 it failed (or another driver holds its directory),
2 bad config, journal or arguments (the message names the key path; no traceback),
130 interrupted (Ctrl-C; ``esopt resume DIR`` continues it).
"""

from __future__ import annotations

import argparse
import math
import os
import shlex
import sys
import time
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

__all__ = ["main", "default_directory", "EXIT_DONE", "EXIT_FAILED", "EXIT_CONFIG", "EXIT_INTERRUPTED"]

EXIT_DONE, EXIT_FAILED, EXIT_CONFIG, EXIT_INTERRUPTED = 0, 1, 2, 130
_STATUS_EXIT = {"done": EXIT_DONE, "failed": EXIT_FAILED, "interrupted": EXIT_INTERRUPTED}
JOURNAL_FILE = "campaign.db"


def _version() -> str:
    try:
        from esopt import __version__
    except Exception:  # noqa: BLE001 - the version line must never fail
        return "unknown"
    return __version__


def _fmt(v: Any) -> str:
    """Numbers for people: ints as is, floats with 4 significant digits."""
    if isinstance(v, bool) or v is None:
        return str(v)
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return f"{v:.4g}" if math.isfinite(v) else str(v)
    return str(v)


def _err(msg: str) -> None:
    print(f"esopt: error: {msg}", file=sys.stderr)


def default_directory(name: str, root: str | Path = "runs", now: datetime | None = None) -> Path:
    """``root/<name>-<YYYYmmdd-HHMMSS>``; a ``-2``, ``-3``, ... suffix if that path exists."""
    stamp = (now or datetime.now()).strftime("%Y%m%d-%H%M%S")
    base = Path(root) / f"{name}-{stamp}"
    path, k = base, 1
    while path.exists():
        k += 1
        path = base.with_name(f"{base.name}-{k}")
    return path


def _journal_dir(directory: str) -> Path:
    """Check that ``directory`` holds a journal; raise ``FileNotFoundError`` saying what is missing."""
    d = Path(directory)
    if not (d / JOURNAL_FILE).is_file():
        raise FileNotFoundError(
            f"{d}: no campaign here (no {JOURNAL_FILE}); start one with 'esopt tune CONFIG --dir {shlex.quote(str(d))}'"
        )
    return d


# ---------------------------------------------------------------------------------------------
def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="esopt",
        description="Evolutionary hyperparameter tuning campaigns on Ray, journaled in SQLite.",
        epilog="Exit codes: 0 done, 1 failed, 2 bad config/journal/arguments, 130 interrupted.",
    )
    p.add_argument("--version", action="version", version=f"esopt {_version()}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)

    t = sub.add_parser(
        "tune",
        help="start a campaign from a YAML config",
        description="Validate CONFIG and run its campaign (progress bar per generation).",
    )
    t.add_argument("config", metavar="CONFIG", help="campaign YAML (see cluster/configs/)")
    t.add_argument(
        "--dir", metavar="DIR", default=None, help="campaign directory (default: runs/<name>-<YYYYmmdd-HHMMSS>)"
    )
    t.add_argument(
        "--address",
        metavar="ADDR",
        default=None,
        help="Ray address, overrides ray.address: 'auto' or 'ray://host:port' joins a cluster",
    )
    t.add_argument("--no-progress", action="store_true", help="no progress bars")

    r = sub.add_parser(
        "resume",
        help="continue an interrupted campaign",
        description="Reopen DIR's journal and continue exactly where it stopped.",
    )
    r.add_argument("directory", metavar="DIR")
    r.add_argument("--address", metavar="ADDR", default=None, help="Ray address (as for tune)")
    r.add_argument("--no-progress", action="store_true", help="no progress bars")

    s = sub.add_parser(
        "status",
        help="show a campaign's state (also while it runs)",
        description="Generations, best so far, running trials and their nodes, counts by status.",
    )
    s.add_argument("directory", metavar="DIR")

    rp = sub.add_parser(
        "report",
        help="write plots and trials.csv",
        description="PNG plots (objective, sigma, hyperparameters) and trials.csv.",
    )
    rp.add_argument("directory", metavar="DIR")
    rp.add_argument("--out", metavar="OUT", default=None, help="output directory (default: DIR/report)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``esopt`` command line on ``argv`` (default ``sys.argv[1:]``); return the exit code.

    Expected failures become messages on stderr and exit codes (see the module docstring): bad
    config / journal / directory -> 2, another driver or an unreachable Ray cluster -> 1,
    Ctrl-C -> 130.  ``--help``, ``--version`` and usage errors raise ``SystemExit`` (argparse).
    Anything else is a bug and propagates with its traceback.
    """
    args = _parser().parse_args(argv)
    from .config import ConfigError
    from .store import JournalError

    try:
        return {"tune": _cmd_tune, "resume": _cmd_resume, "status": _cmd_status, "report": _cmd_report}[args.command](
            args
        )
    except ConfigError as e:
        _err(f"bad config: {e}")
        return EXIT_CONFIG
    except JournalError as e:
        _err(f"bad journal: {e}")
        return EXIT_CONFIG
    except (FileNotFoundError, FileExistsError) as e:
        _err(str(e))
        return EXIT_CONFIG
    except ConnectionError as e:
        _err(f"cannot reach the Ray cluster: {e}")
        return EXIT_FAILED
    except KeyboardInterrupt:
        _err("interrupted")
        return EXIT_INTERRUPTED


# ---------------------------------------------------------------------------------------------
def _run(campaign, directory: Path, cfg, *, best: float | None, quiet: bool) -> int:
    from .progress import TqdmProgress

    progress = TqdmProgress(best=best, disable=quiet)
    try:
        result = campaign.run(progress=progress)
    except KeyboardInterrupt:
        progress.close()
        print(f"\ninterrupted; continue with: esopt resume {shlex.quote(str(directory))}", file=sys.stderr)
        return EXIT_INTERRUPTED
    progress.close()
    _print_summary(result, directory, cfg)
    return _STATUS_EXIT.get(getattr(result, "status", "failed"), EXIT_FAILED)


def _cmd_tune(args) -> int:
    from .config import load_config

    cfg = load_config(args.config)
    directory = Path(args.dir) if args.dir else default_directory(cfg.name)
    from .campaign import Campaign, CampaignLocked

    print(f"esopt {_version()}: campaign {cfg.name!r} in {directory}", file=sys.stderr)
    try:
        campaign = Campaign(cfg, directory, address=args.address)
        return _run(campaign, directory, cfg, best=None, quiet=args.no_progress)
    except CampaignLocked as e:
        _err(str(e))
        return EXIT_FAILED


def _cmd_resume(args) -> int:
    directory = _journal_dir(args.directory)
    from .campaign import Campaign, CampaignLocked
    from .store import Journal

    j = Journal(directory, readonly=True)
    try:
        cfg, best = j.config(), j.best_trial()
    finally:
        j.close()
    print(f"esopt {_version()}: resuming campaign in {directory}", file=sys.stderr)
    try:
        campaign = Campaign.resume(directory, address=args.address)
        return _run(campaign, directory, cfg, best=(best or {}).get("objective"), quiet=args.no_progress)
    except CampaignLocked as e:
        _err(str(e))
        return EXIT_FAILED


# ---------------------------------------------------------------------------------------------
def _uses_trials(cfg: Any) -> bool:
    from .config import TRIALS_OBJECTIVE

    objective = cfg.get("objective") if isinstance(cfg, Mapping) else getattr(cfg, "objective", None)
    return objective == TRIALS_OBJECTIVE


def _ordered(params: Mapping[str, Any] | None, cfg: Any) -> dict[str, Any]:
    """``params`` in the order of the config's search space (unknown names last)."""
    params = dict(params or {})
    raw = cfg if isinstance(cfg, Mapping) else getattr(cfg, "raw", {})
    names = [n for n in (raw.get("space") or {}) if n in params]
    return {**{n: params[n] for n in names}, **{k: v for k, v in params.items() if k not in names}}


def _params_lines(params: Mapping[str, Any], indent: str = "  ") -> list[str]:
    width = max((len(k) for k in params), default=0)
    return [f"{indent}{k:<{width}} = {_fmt(v)}" for k, v in params.items()]


def _print_summary(result, directory: Path, cfg) -> None:
    """Best hyperparameters (own units), validation and test error, directory, next commands."""
    from .store import Journal

    j = Journal(directory, readonly=True)
    try:
        best = j.best_trial()
    finally:
        j.close()
    status = getattr(result, "status", "?")
    line = (
        f"campaign {status}: {getattr(result, 'n_trials', '?')} trials finished, "
        f"{getattr(result, 'n_generations', '?')} generations told"
    )
    if getattr(result, "message", None):
        line += f" ({result.message})"
    out = ["", line]
    if best:
        out.append(
            f"best hyperparameters (trial {best.get('id')}, generation {best.get('generation')}, "
            f"index {best.get('idx')}):"
        )
        out += _params_lines(_ordered(best.get("params"), cfg))
        name = "validation error" if _uses_trials(cfg) else "objective"
        res = best.get("result") if isinstance(best.get("result"), Mapping) else {}
        test = res.get("test_error")
        out.append(
            f"{name}: {_fmt(best.get('objective'))}"
            + (f"   test error: {_fmt(test)}" if test is not None else "   (no test error reported)")
        )
    else:
        out.append("no trial finished successfully")
    q = shlex.quote(str(directory))
    out += [
        f"campaign directory: {directory}",
        f"  esopt report {q}   # PNG plots and trials.csv into {directory / 'report'}",
        f"  esopt resume {q}   # continue after Ctrl-C, a crash or a kill",
        f"  esopt status {q}   # generations, best so far, trials by status",
    ]
    print("\n".join(out))


# ---------------------------------------------------------------------------------------------
def _ago(ts: Any, now: float | None = None) -> str:
    """Time since ``ts`` (epoch seconds or ISO 8601 string) as H:MM:SS; '' if unknown."""
    from .progress import format_duration

    if ts is None:
        return ""
    if isinstance(ts, (int, float)):
        t = float(ts)
    else:
        try:
            t = datetime.fromisoformat(str(ts)).timestamp()
        except ValueError:
            return ""
    return format_duration((now or time.time()) - t)


def _pid_alive(pid: Any) -> bool | None:
    try:
        os.kill(int(pid), 0)
    except (TypeError, ValueError):
        return None
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _cmd_status(args) -> int:
    directory = _journal_dir(args.directory)
    from .store import Journal

    j = Journal(directory, readonly=True)
    try:
        info = j.campaign_info() or {}
        cfg = j.config()
        trials = j.trials()
        gens = j.generations()
        best = j.best_trial()
    finally:
        j.close()
    raw = cfg if isinstance(cfg, Mapping) else getattr(cfg, "raw", {})
    out = []
    state = info.get("status", "?")
    line = f"campaign {info.get('name', raw.get('name', '?'))}: {state}"
    pid = info.get("driver_pid")
    if state == "running" and pid:
        alive = _pid_alive(pid)
        line += (
            f" (driver pid {pid}"
            + (
                ""
                if alive is not False
                else f", not alive: killed? continue with esopt resume {shlex.quote(str(directory))}"
            )
            + ")"
        )
    if info.get("elapsed_s") is not None:
        from .progress import format_duration

        line += f", elapsed {format_duration(float(info['elapsed_s']))}"
    out.append(line)
    if info.get("message"):
        out.append(f"  {info['message']}")
    s, b = raw.get("strategy", {}), raw.get("budget", {})
    limits = ", ".join(f"{k}={v}" for k, v in b.items() if v is not None) or "none"
    out.append(f"strategy {s.get('name')} (popsize {s.get('popsize')}, seed {s.get('seed')}); budget {limits}")
    told = [g for g in gens if g.get("told_at") is not None]
    last = gens[-1] if gens else None
    gline = f"generations: {len(gens)} asked, {len(told)} told"
    if last is not None and last.get("sigma") is not None:
        gline += f"; sigma {_fmt(float(last['sigma']))} (generation {last['generation']})"
    out.append(gline)
    counts = {k: 0 for k in ("done", "running", "pending", "failed", "cancelled")}
    for t in trials:
        counts[t.get("status")] = counts.get(t.get("status"), 0) + 1
    out.append("trials: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    if best:
        params = " ".join(f"{k}={_fmt(v)}" for k, v in _ordered(best.get("params"), raw).items())
        out.append(
            f"best so far: {_fmt(best.get('objective'))} (trial {best.get('id')}, generation "
            f"{best.get('generation')}, index {best.get('idx')}): {params}"
        )
    else:
        out.append("best so far: none")
    running = [t for t in trials if t.get("status") == "running"]
    if running:
        out.append("running (submitted to Ray):")
        for t in running:
            where = (
                f"on node {t['node_id']} worker {t.get('worker_id') or '?'}"
                if t.get("node_id")
                else "waiting for resources"
            )
            since = _ago(t.get("started_at"))
            out.append(
                f"  trial {t.get('id')} (generation {t.get('generation')}, index {t.get('idx')}) "
                f"{where}" + (f", for {since}" if since else "")
            )
    print("\n".join(out))
    return EXIT_DONE


def _cmd_report(args) -> int:
    directory = _journal_dir(args.directory)
    from .report import write_report

    files = write_report(directory, args.out)
    for name, path in files.items():
        print(f"{name:<14} {path}")
    return EXIT_DONE


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
