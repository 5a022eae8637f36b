"""Ray token authentication for the campaign driver (Ray >= 2.52; ``ray start`` enables it by default).

A Ray cluster started with ``ray start --head`` while a token exists (``~/.ray/auth_token``, which
any earlier ``ray.init()`` on that machine creates) only accepts clients that send that token.
Ray's client sends it only when ``RAY_AUTH_MODE=token`` is set in the driver's environment, and
otherwise retries for ~20 s before "Failed to connect".  So, before joining a cluster by address:

* :func:`prepare_join` asks the cluster's GCS (``host:port``; about a second) whether it accepts
  this driver.  If it requires a token and ``RAY_AUTH_MODE`` is unset, it sets
  ``RAY_AUTH_MODE=token`` when a token is available to the driver: ``RAY_AUTH_TOKEN`` (the token
  itself), ``RAY_AUTH_TOKEN_PATH`` (a file) or ``~/.ray/auth_token``, in Ray's order, and asks again;
* without a (valid) token it raises :class:`ConnectionError` at once, saying exactly what to set.

A local instance that esopt starts itself needs no token from the user: :func:`prepare_local`
sets ``RAY_AUTH_MODE=token`` (when unset), so Ray creates ``~/.ray/auth_token`` if missing and
uses it silently instead of warning on every run that "Token authentication is enabled".
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

__all__ = ["find_token", "prepare_join", "prepare_local", "AUTH_MODE_ENV", "HOW_TO_SET"]

AUTH_MODE_ENV = "RAY_AUTH_MODE"
_PROBE_TIMEOUT_S = 5.0

#: What a driver must set to join a token-authenticated cluster (appended to the error messages).
HOW_TO_SET = (
    "get the cluster's token on its head node (`ray get-auth-token`, or the file ~/.ray/auth_token there) and "
    "give it to this driver: export RAY_AUTH_TOKEN=<token> (or RAY_AUTH_TOKEN_PATH=<file with the token>, or "
    "copy the file to ~/.ray/auth_token here); esopt then sets RAY_AUTH_MODE=token itself"
)


def find_token() -> tuple[str, str] | None:
    """``(where, token)`` of the first token available to this process, in Ray's order:
    ``RAY_AUTH_TOKEN``, the file ``RAY_AUTH_TOKEN_PATH``, ``~/.ray/auth_token``; None if none."""
    value = os.environ.get("RAY_AUTH_TOKEN", "").strip()
    if value:
        return "RAY_AUTH_TOKEN", value
    candidates = [os.environ.get("RAY_AUTH_TOKEN_PATH"), str(Path.home() / ".ray" / "auth_token")]
    for path in filter(None, candidates):
        try:
            token = Path(path).read_text().strip()
        except OSError:
            continue
        if token:
            return path, token
    return None


def _set_token_mode() -> None:
    """``RAY_AUTH_MODE=token`` for this process and its children; refresh Ray's cached config and token."""
    os.environ[AUTH_MODE_ENV] = "token"
    try:
        from ray._raylet import AuthenticationTokenLoader, Config  # Ray caches the mode and the token

        Config.initialize("")
        AuthenticationTokenLoader.instance().reset_cache()
    except (ImportError, AttributeError):  # pragma: no cover - a Ray without token authentication
        pass


def prepare_local() -> None:
    """Before starting a local instance: token mode, silently, unless ``RAY_AUTH_MODE`` is set."""
    if os.environ.get(AUTH_MODE_ENV) is None:
        _set_token_mode()


def prepare_join(address: str) -> None:
    """Before ``ray.init(address=address)`` with a ``host:port`` address: check that the cluster
    answers and accepts this driver; if it requires a token and ``RAY_AUTH_MODE`` is unset, set
    ``RAY_AUTH_MODE=token`` when a token is available (:func:`find_token`) and check again.

    ``"auto"`` (Ray enables the token itself for a cluster it finds) and ``ray://`` (Ray Client)
    addresses are left to ``ray.init``.  Token mode is only switched on for a cluster that requires
    it: a driver in token mode cannot run tasks on a cluster without authentication (the workers
    do not send the token back to it).

    Raises
    ------
    ConnectionError
        Nothing accepts connections at ``host:port`` (within 5 s), or the cluster requires a token
        this driver does not have or rejects the one it has; the message says what to set.
    """
    if address == "auto" or "://" in address or ":" not in address:
        return
    _check_reachable(address)
    if _accepted(address):
        return
    token, mode = find_token(), os.environ.get(AUTH_MODE_ENV)
    if token is not None and mode is None:
        _set_token_mode()
        if _accepted(address):
            return
        why = f"it rejected the token from {token[0]} (a token of another cluster?)"
    elif token is None:
        why = "this driver has no token"
    elif mode != "token":
        why = f"{AUTH_MODE_ENV}={mode} is set, so the token from {token[0]} is not sent; unset it or set it to token"
    else:
        why = f"it rejected the token from {token[0]} (a token of another cluster?)"
    raise ConnectionError(f"the Ray cluster at {address} requires token authentication and {why}: {HOW_TO_SET}")


def _check_reachable(address: str) -> None:
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=_PROBE_TIMEOUT_S):
            pass
    except (OSError, ValueError) as e:
        raise ConnectionError(
            f"nothing accepts connections at {address} ({type(e).__name__}: {e}); check the head node's "
            "address and port (`ray start --head --port=PORT` prints it) and that this machine can reach it"
        ) from None


def _accepted(address: str) -> bool:
    """One GCS request with Ray's own client (about a second): False if the cluster refused this
    driver's authentication, True otherwise (other errors are left to ``ray.init`` to report)."""
    try:
        from ray._raylet import GcsClient
        from ray.exceptions import AuthenticationError
    except ImportError:  # pragma: no cover - a Ray without token authentication
        return True
    try:
        GcsClient(address=address)
    except AuthenticationError:
        return False
    except Exception:  # noqa: BLE001 - not ours to diagnose: ray.init reports it
        return True
    return True
