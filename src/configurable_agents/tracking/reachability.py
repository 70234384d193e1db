"""Fail fast when a database tracking store does not answer.

MLflow's ``SqlAlchemyStore`` opens its engine through
``mlflow.store.db.utils.create_sqlalchemy_engine_with_retry``: up to ``MAX_RETRY_COUNT`` (10)
attempts with ``0.1 * (2**n - 1)`` s sleeps, about 100 s of "SQLAlchemy engine could not be
created" warnings before the error. No environment variable bounds that loop (the
``MLFLOW_SQLALCHEMYSTORE_*`` variables only tune the pool), and the loop also covers wrong
passwords and missing databases. The read-side commands (``report``, ``cleanup``) are run by
people and cron jobs that want one line within seconds, so before they build an
``MlflowClient`` on a database URI they make one bounded attempt of their own:

1. a TCP connect to the host and port (driver-independent; refused, unknown host, timeout);
2. one SQLAlchemy connection with the driver's connect timeout and no pool (wrong password,
   missing database, TLS settings), then nothing is kept.

When both pass, MLflow's own first attempt succeeds too. sqlite, file stores and HTTP servers
are not probed here (HTTP has its own ``MLFLOW_HTTP_REQUEST_*`` bounds).
"""

from __future__ import annotations

import socket

from configurable_agents.config.schema import redact_uri, uri_scheme
from configurable_agents.tracking.errors import flat_message, shorten

DEFAULT_TIMEOUT_S = 5.0
_DEFAULT_PORTS = {"postgresql": 5432, "mysql": 3306, "mssql": 1433}
# Connect-timeout argument name per SQLAlchemy dialect family (seconds, an int for libpq).
_TIMEOUT_ARGS = {"postgresql": "connect_timeout", "mysql": "connect_timeout"}


class StoreUnreachable(Exception):
    """One line, credentials masked: the database did not answer or refused us."""


def _family(uri: str) -> str | None:
    scheme = uri_scheme(uri).split("+", 1)[0]
    return scheme if scheme in _DEFAULT_PORTS else None


def check_reachable(uri: str, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
    """Raise :class:`StoreUnreachable` when a database tracking URI cannot be used right now.

    Does nothing for other URIs. Takes at most about ``2 * timeout_s``.
    """
    family = _family(uri)
    if family is None:
        return
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    shown = redact_uri(uri)
    try:
        url = make_url(uri)
    except (ArgumentError, ValueError) as exc:
        raise StoreUnreachable(f"cannot read tracking URI {shown}: {exc}") from None
    if url.host:  # no host: a unix socket, or the driver's own defaults; step 2 covers it
        port = url.port or _DEFAULT_PORTS[family]
        try:
            with socket.create_connection((url.host, port), timeout=timeout_s):
                pass
        except OSError as exc:
            cause = "timed out" if isinstance(exc, TimeoutError) else (
                exc.strerror or type(exc).__name__)
            raise StoreUnreachable(
                f"cannot reach tracking database {shown} ({url.host}:{port}: {cause})"
            ) from None
    _connect_once(uri, family, shown, timeout_s)


def _connect_once(uri: str, family: str, shown: str, timeout_s: float) -> None:
    from sqlalchemy import create_engine
    from sqlalchemy.pool import NullPool

    timeout_arg = _TIMEOUT_ARGS.get(family)
    connect_args = {timeout_arg: max(1, round(timeout_s))} if timeout_arg else {}
    try:
        engine = create_engine(uri, poolclass=NullPool, connect_args=connect_args)
    except Exception as exc:  # missing driver, bad options
        raise StoreUnreachable(
            f"cannot open tracking database {shown}: {shorten(flat_message(exc, uri))}"
        ) from None
    try:
        with engine.connect():
            pass
    except Exception as exc:
        raise StoreUnreachable(
            f"cannot connect to tracking database {shown}: {shorten(flat_message(exc, uri))}"
        ) from None
    finally:
        engine.dispose()
