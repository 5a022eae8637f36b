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
``report`` open the journal read-only and work while a campaign runs.  ``--no-progress`` drops
the progress bars (:class:`cluster.progress.TqdmProgress`); restarts are still printed.

What ``tune``/``resume`` print at the end and ``status`` prints: the best hyperparameters (own
units) and objective (for ``trials:train_and_evaluate`` the validation and test error in percent),
and each distinct failure reason with its count (:meth:`cluster.store.Journal.failure_counts`;
each trial's full error is the journal's ``error`` column).  ``status``/``report``/``resume``
given a config file instead of a campaign directory say so and list that config's directories
under ``runs/``.

Exit codes: 0 the campaign is done, 1 it failed (or another driver holds its directory, or the
journal's disk is full: free space and ``esopt resume DIR``),
2 bad config, journal or arguments (the message names the key path; no traceback),
130 interrupted (Ctrl-C; ``esopt resume DIR`` continues it), 141 the reader of stdout went away
(``esopt status DIR | head``; no message).
"""

from __future__ import annotations

import argparse
import errno
import math
import re
import shlex
import sys
import time
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

__all__ = [
    "main",
    "default_directory",
    "check_folder",
    "EXIT_DONE",
    "EXIT_FAILED",
    "EXIT_CONFIG",
    "EXIT_INTERRUPTED",
    "EXIT_BROKEN_PIPE",
]

EXIT_DONE, EXIT_FAILED, EXIT_CONFIG, EXIT_INTERRUPTED = 0, 1, 2, 130
#: stdout closed by its reader (``esopt status DIR | head -3``): 128 + SIGPIPE, as a command the
#: shell's SIGPIPE ends; nothing is printed
EXIT_BROKEN_PIPE = 141
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
    """``esopt: error: <msg>`` on stderr, as one line (a multi-line message, e.g. from YAML, is joined)."""
    text = " ".join(part.strip() for part in str(msg).splitlines() if part.strip())
    print(f"esopt: error: {text}", file=sys.stderr)


def default_directory(name: str, root: str | Path = "runs", now: datetime | None = None) -> Path:
    """``root/<name>-<YYYYmmdd-HHMMSS>``; a ``-2``, ``-3``, ... suffix if that path exists."""
    stamp = (now or datetime.now()).strftime("%Y%m%d-%H%M%S")
    base = Path(root) / f"{name}-{stamp}"
    path, k = base, 1
    while path.exists():
        k += 1
        path = base.with_name(f"{base.name}-{k}")
    return path


def check_folder(path: Path, option: str) -> Path:
    """``path``, a folder that an option (``--dir``, ``--out``) names, to be used or created.

    Raises :class:`cluster.config.ConfigError` at ``option`` (exit 2, one line) when ``path``, or
    the nearest of its parents that exists, is a file: ``mkdir`` would fail there with
    ``FileExistsError``/``NotADirectoryError``.  Nothing is created here.
    """
    from .config import ConfigError

    for p in (path, *path.parents):
        if p.exists():
            if not p.is_dir():
                where = "is a file" if p == path else f"lies under {p}, which is a file"
                raise ConfigError(option, f"{path} {where}, not a folder; give a folder (it is created if missing)")
            break
    return path


def _journal_dir(directory: str) -> Path:
    """Check that ``directory`` holds a journal; raise ``FileNotFoundError`` saying what is missing.

    The journal file itself (``DIR/campaign.db``) stands for its directory.  A config file given
    instead of a campaign directory gets a message that says so and lists the campaign
    directories of that config found under ``runs/`` (:func:`_runs_of`).
    """
    d = Path(directory)
    if (d / JOURNAL_FILE).is_file():
        return d
    if d.name == JOURNAL_FILE and d.is_file():
        return d.parent
    if d.is_file():
        raise FileNotFoundError(_config_not_directory(d))
    raise FileNotFoundError(
        f"{d}: no campaign here (no {JOURNAL_FILE}); give the campaign directory that 'esopt tune' printed, "
        f"or start one with 'esopt tune CONFIG --dir {shlex.quote(str(d))}'"
    )


def _config_name(path: Path) -> str:
    """The campaign name a config file gives (its ``name:``, else the file's stem); never raises."""
    try:
        import yaml

        raw = yaml.safe_load(path.read_text())
    except Exception:  # noqa: BLE001 - only for a hint: any unreadable file falls back to the stem
        raw = None
    name = raw.get("name") if isinstance(raw, Mapping) else None
    return str(name) if name else path.stem


def _runs_of(name: str, roots: Sequence[Path]) -> list[Path]:
    """Campaign directories ``<root>/<name>[-sim]-<YYYYmmdd-HHMMSS>[-k]`` (:func:`default_directory`
    of ``esopt tune`` and ``esopt simulate``) holding a journal, oldest first; a directory reached
    through two roots is listed once."""
    pattern = re.compile(re.escape(name) + r"(?:-sim)?-(\d{8}-\d{6})(?:-(\d+))?")
    found: dict[Path, tuple] = {}
    for root in roots:
        if root.is_dir():
            for p in sorted(root.iterdir()):
                m = pattern.fullmatch(p.name)
                if m and (p / JOURNAL_FILE).is_file():
                    found.setdefault(p.resolve(), (m.group(1), int(m.group(2) or 0), p.name, p))
    return [v[-1] for v in sorted(found.values())]


def _config_not_directory(path: Path) -> str:
    name = _config_name(path)
    roots = [Path("runs"), path.parent / "runs"]
    runs = _runs_of(name, roots)
    msg = f"{path} is a file (a config?), not a campaign directory: give the directory 'esopt tune' printed"
    if runs:
        shown = ", ".join(str(r) for r in runs[-5:])
        return msg + f"; campaigns of {name!r}: {shown}" + (f" (and {len(runs) - 5} older)" if len(runs) > 5 else "")
    return msg + f" (default runs/{name}-<YYYYmmdd-HHMMSS>); none found under runs/"


# ---------------------------------------------------------------------------------------------
def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="esopt",
        description="Evolutionary hyperparameter tuning campaigns on Ray, journaled in SQLite.",
        epilog="Exit codes: 0 done, 1 failed, 2 bad config/journal/arguments, 130 interrupted, 141 broken pipe.",
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
        type=_address,
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
    r.add_argument("--address", metavar="ADDR", type=_address, default=None, help="Ray address (as for tune)")
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
    from .simulate import add_parser as add_simulate

    add_simulate(sub)
    return p


def _address(text: str) -> str:
    """``--address``: a non-empty Ray address (argparse's usage error, exit 2, otherwise)."""
    from .configmodel import check_address

    try:
        check_address(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    return text


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``esopt`` command line on ``argv`` (default ``sys.argv[1:]``); return the exit code.

    Expected failures become messages on stderr and exit codes (see the module docstring): bad
    config / journal / directory -> 2, another driver, an unreachable Ray cluster or a full disk
    under the journal (:class:`cluster.journalwrite.JournalFullError`, "no space left on device
    while journaling ...") -> 1, Ctrl-C -> 130, stdout closed by its reader (a
    ``BrokenPipeError``, e.g. ``esopt status DIR | head -3``) -> 141 without a message (it is a
    ``ConnectionError``, and is not the Ray cluster's).  ``--help``, ``--version`` and usage errors raise
    ``SystemExit`` (argparse).
    Anything else is a bug and propagates with its traceback.
    """
    args = _parser().parse_args(argv)
    from .config import ConfigError
    from .journalwrite import JournalFullError
    from .store import JournalError

    try:
        from .simulate import cmd_simulate

        commands = {"tune": _cmd_tune, "resume": _cmd_resume, "status": _cmd_status, "report": _cmd_report}
        return {**commands, "simulate": cmd_simulate}[args.command](args)
    except ConfigError as e:
        _err(f"bad config: {e}")
        return EXIT_CONFIG
    except JournalError as e:
        _err(f"bad journal: {e}")
        return EXIT_CONFIG
    except (FileNotFoundError, FileExistsError) as e:
        _err(str(e))
        return EXIT_CONFIG
    except BrokenPipeError:
        _quiet_stdout()
        return EXIT_BROKEN_PIPE
    except ConnectionError as e:
        _err(f"cannot reach the Ray cluster: {e}")
        return EXIT_FAILED
    except JournalFullError as e:  # the journal keeps every earlier commit: resume once there is room
        _err(str(e))
        return EXIT_FAILED
    except OSError as e:
        if e.errno not in (errno.ENOSPC, errno.EFBIG):
            raise
        _err(_full_message(e, args))  # e.g. the lock's pid file of a resume on a disk still full
        return EXIT_FAILED
    except KeyboardInterrupt:
        _err("interrupted")
        return EXIT_INTERRUPTED


def _quiet_stdout() -> None:
    """Point stdout at ``os.devnull``, so that flushing it at exit raises no second ``BrokenPipeError``."""
    import os

    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):  # replaced (e.g. captured) stdout: nothing to redirect
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, fd)
    finally:
        os.close(devnull)


def _full_message(e: OSError, args) -> str:
    """One line for an ``ENOSPC``/``EFBIG`` outside the journal's transactions (lock file, records)."""
    where = f" writing {e.filename}" if e.filename else ""
    directory = getattr(args, "dir", None) or getattr(args, "directory", None) or "DIR"
    head = "file size limit (ulimit -f) reached" if e.errno == errno.EFBIG else "no space left on device"
    return f"{head}{where}: free space and run `esopt resume {shlex.quote(str(directory))}`"


# ---------------------------------------------------------------------------------------------
def _run(campaign, directory: Path, cfg, *, best: float | None, quiet: bool) -> int:
    from .progress import TqdmProgress

    progress = TqdmProgress(best=best, disable=quiet, percent=cfg.uses_trials)
    try:
        result = campaign.run(progress=progress)
    except KeyboardInterrupt:
        progress.close()
        print(f"\ninterrupted; continue with: esopt resume {shlex.quote(str(directory))}", file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:
        progress.close()
    _print_summary(result, directory, cfg)
    return _STATUS_EXIT.get(str(getattr(result, "status", "failed")), EXIT_FAILED)


def _cmd_tune(args) -> int:
    from .config import load_config

    cfg = load_config(args.config)
    directory = check_folder(Path(args.dir), "--dir") if args.dir else default_directory(cfg.name)
    if (directory / JOURNAL_FILE).exists():
        q = shlex.quote(str(directory))
        raise FileExistsError(
            f"{directory} already holds a campaign journal: continue it with 'esopt resume {q}', "
            "or give another --dir (default: a new runs/<name>-<timestamp>)"
        )
    from .campaign import Campaign, CampaignLocked

    try:
        campaign = Campaign(cfg, directory, address=args.address)
        print(f"esopt {_version()}: campaign {cfg.name} in {directory}", file=sys.stderr)
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
        cfg, best = j.campaign_config(), j.best_trial()
    finally:
        j.close()
    print(f"esopt {_version()}: resuming campaign {cfg.name} in {directory}", file=sys.stderr)
    try:
        campaign = Campaign.resume(directory, address=args.address)
        return _run(campaign, directory, cfg, best=None if best is None else best.objective, quiet=args.no_progress)
    except CampaignLocked as e:
        _err(str(e))
        return EXIT_FAILED


# ---------------------------------------------------------------------------------------------
def _ordered(params: Mapping[str, Any] | None, cfg) -> dict[str, Any]:
    """``params`` in the order of the config's search space (unknown names last)."""
    params = dict(params or {})
    names = [n for n in cfg.space.names if n in params]
    return {**{n: params[n] for n in names}, **{k: v for k, v in params.items() if k not in names}}


def _params_lines(params: Mapping[str, Any], indent: str = "  ") -> list[str]:
    width = max((len(k) for k in params), default=0)
    return [f"{indent}{k:<{width}} = {_fmt(v)}" for k, v in params.items()]


def _error_value(v: Any, cfg) -> str:
    """An objective value for people: ``trials:train_and_evaluate`` errors (fractions) in percent."""
    if cfg.uses_trials and isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
        return f"{100.0 * float(v):.3g}%"
    return _fmt(v)


def _objective_name(cfg) -> str:
    return "validation error" if cfg.uses_trials else "objective"


def _best_lines(best, cfg) -> list[str]:
    out = [f"best hyperparameters (trial {best.id}, generation {best.generation}, index {best.idx}):"]
    out += _params_lines(_ordered(best.params, cfg))
    res = best.result if isinstance(best.result, Mapping) else {}
    test = res.get("test_error")
    out.append(
        f"{_objective_name(cfg)}: {_error_value(best.objective, cfg)}"
        + (f"   test error: {_error_value(test, cfg)}" if test is not None else "   (no test error reported)")
    )
    return out


def _failure_lines(failures: Mapping[str, int], n_finished: int, directory: Path, indent: str = "") -> list[str]:
    """``8 of 8 trials failed: ValueError: ...`` (one reason) or one line per reason with its count."""
    n_failed = sum(failures.values())
    if not n_failed:
        return []
    head = f"{indent}{n_failed} of {n_finished} finished trials failed"
    if len(failures) == 1:
        out = [f"{head}: {next(iter(failures))}"]
    else:
        width = len(str(max(failures.values())))
        out = [f"{head}, by reason:"] + [f"{indent}  {n:>{width}} x {reason}" for reason, n in failures.items()]
    q = shlex.quote(str(directory / JOURNAL_FILE))
    out.append(
        f"{indent}  each trial's error: esopt report's trials.csv, or "
        f"sqlite3 {q} \"select id, generation, idx, error from trials where status='failed'\""
    )
    return out


def _count(n: int | None, noun: str) -> str:
    """``_count(1, "trial")`` -> ``"1 trial"``, ``_count(8, "trial")`` -> ``"8 trials"``; None -> ``"? trials"``."""
    return f"{'?' if n is None else n} {noun}{'' if n == 1 else 's'}"


def _print_summary(result, directory: Path, cfg) -> None:
    """Status and why, best hyperparameters (own units), validation and test error, failure
    reasons with counts, directory, next commands."""
    from .store import Journal

    j = Journal(directory, readonly=True)
    try:
        best, failures = j.best_trial(), j.failure_counts()
        fidelity_lines = []
        if getattr(cfg, "fidelity", None) is not None:
            from .fidelityreport import fidelity_status_lines

            fidelity_lines = fidelity_status_lines(j.trials(), cfg.fidelity, max_resource=cfg.budget.max_resource)
    finally:
        j.close()
    status = str(getattr(result, "status", "?"))
    n_trials, n_gens = getattr(result, "n_trials", None), getattr(result, "n_generations", None)
    out = ["", f"campaign {status}: {_count(n_trials, 'trial')} finished, {_count(n_gens, 'generation')} told"]
    if getattr(result, "message", None):
        out.append(f"  {result.message}")
    out += fidelity_lines
    out += _best_lines(best, cfg) if best is not None else ["no trial finished successfully"]
    out += _failure_lines(failures, int(n_trials or sum(failures.values())), directory)
    q = shlex.quote(str(directory))
    out += [
        f"campaign directory: {directory}",
        f"  esopt report {q}   # PNG plots and trials.csv into {directory / 'report'}",
        f"  esopt resume {q}   # continue after Ctrl-C, a crash or a kill",
        f"  esopt status {q}   # generations, best so far, trials by status, failure reasons",
    ]
    print("\n".join(out))


# ---------------------------------------------------------------------------------------------
def _ago(ts: float | None, now: float | None = None) -> str:
    """Time since ``ts`` (Unix seconds, as journaled) as H:MM:SS; '' if unknown."""
    from .progress import format_duration

    if ts is None:
        return ""
    return format_duration((now or time.time()) - float(ts))


def _driver_line(info: Mapping[str, Any], directory: Path, simulated: bool = False) -> str:
    from .progress import format_duration
    from .status import CampaignStatus

    state = str(info.get("status", "?"))
    line = f"campaign {info.get('name', '?')}: {state}"
    pid = info.get("driver_pid")
    if state == CampaignStatus.RUNNING and pid:
        from .lock import pid_alive

        q = shlex.quote(str(directory))
        again = f"esopt simulate CONFIG --workers P --dir {q}" if simulated else f"esopt resume {q}"
        dead = f", not alive: killed? continue with {again}"
        line += f" (driver pid {pid}" + ("" if pid_alive(pid) is not False else dead) + ")"
    if info.get("elapsed_s") is not None:
        line += f", elapsed {format_duration(float(info['elapsed_s']))}"
    return line


def _running_lines(trials, simulated: bool = False) -> list[str]:
    """The running trials, where and for how long (in a simulation: since which virtual second)."""
    from .status import TrialStatus

    running = [t for t in trials if t.status is TrialStatus.RUNNING]
    if not running:
        return []
    out = ["running (on the simulated cluster, virtual seconds):" if simulated else "running (submitted to Ray):"]
    for t in running:
        where = f"on node {t.node_id} worker {t.worker_id or '?'}" if t.node_id else "waiting for resources"
        if simulated and t.started_at is not None:  # (the submission time until it starts)
            where += f", {'started' if t.node_id else 'submitted'} at {_fmt(float(t.started_at))} s"
        since = "" if simulated else _ago(t.started_at)
        out.append(
            f"  trial {t.id} (generation {t.generation}, index {t.idx}) {where}" + (f", for {since}" if since else "")
        )
    return out


def _restarts(journal) -> list[str]:
    """One line per restart of the strategy after its criteria fired (journaled by the campaign)."""
    from .campaign import restarts
    from .continuation import describe_stop

    return [
        f"restart after generation {r.get('after_generation')}: {describe_stop(r.get('stop') or {})} fired; "
        f"new popsize {r.get('popsize')}, started from the {r.get('start', 'mean')} with sigma0"
        for r in restarts(journal)
    ]


#: the order ``esopt status`` lists trial counts in
_STATUS_ORDER = ("done", "stopped", "running", "pending", "failed", "cancelled")


def _cmd_status(args) -> int:
    directory = _journal_dir(args.directory)
    from .store import Journal

    j = Journal(directory, readonly=True)
    try:
        with j.snapshot():  # one committed state: never a half-written generation
            info = j.campaign_info() or {}
            cfg = j.campaign_config()
            trials, gens, best, failures = j.trials(), j.generations(), j.best_trial(), j.failure_counts()
            restarted = _restarts(j)
            reports = j.reports() if cfg.fidelity is not None else None
    finally:
        j.close()
    from .simulate import SIM_NODE

    simulated = any(t.node_id == SIM_NODE for t in trials)
    out = [_driver_line({"name": cfg.name, **info}, directory, simulated)]
    if info.get("message"):
        out.append(f"  {info['message']}")
    s = cfg.strategy
    limits = ", ".join(f"{k}={_fmt(v)}" for k, v in cfg.budget.model_dump().items() if v is not None) or "none"
    popsize = gens[-1]["popsize"] if gens else s.popsize if s.popsize is not None else "default"
    if s.surrogate:  # a journal generation is one round, not a population
        popsize = s.popsize if s.popsize is not None else "default"
    lq = f", surrogate {s.surrogate}" if s.surrogate else ""
    out.append(
        f"strategy {s.name} (popsize {popsize}, seed {s.seed}{lq}); budget {limits}; scheduler {cfg.scheduler.mode}"
    )
    told = [g for g in gens if g.get("told_at") is not None]
    gline = f"generations: {len(gens)} asked, {len(told)} told"
    if gens and gens[-1].get("sigma") is not None:
        gline += f"; sigma {_fmt(float(gens[-1]['sigma']))} (generation {gens[-1]['generation']})"
    out.append(gline)
    out += restarted
    counts = {str(k): 0 for k in _STATUS_ORDER}
    for t in trials:
        counts[str(t.status)] += 1
    if cfg.fidelity is None and not counts["stopped"]:
        del counts["stopped"]  # only multi-fidelity campaigns stop trials
    out.append("trials: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    if cfg.fidelity is not None:
        from .fidelityreport import fidelity_status_lines

        out += fidelity_status_lines(trials, cfg.fidelity, max_resource=cfg.budget.max_resource, reports=reports)
    out += _failure_lines(failures, counts["done"] + counts["failed"], directory)
    if best is not None:
        params = " ".join(f"{k}={_fmt(v)}" for k, v in _ordered(best.params, cfg).items())
        out.append(
            f"best so far: {_error_value(best.objective, cfg)}"
            + (" validation error" if cfg.uses_trials else "")
            + f" (trial {best.id}, generation {best.generation}, index {best.idx}): {params}"
        )
    else:
        out.append("best so far: none")
    out += _running_lines(trials, simulated)
    print("\n".join(out))
    return EXIT_DONE


def _cmd_report(args) -> int:
    directory = _journal_dir(args.directory)
    from .report import write_report

    files = write_report(directory, None if args.out is None else check_folder(Path(args.out), "--out"))
    for name, path in files.items():
        print(f"{name:<14} {path}")
    return EXIT_DONE


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
