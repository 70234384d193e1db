"""Tracking-URI preparation shared by the exporter, reports and cleanup.

MLflow 3 refuses the old file store (``./mlruns``) unless
``MLFLOW_ALLOW_FILE_STORE=true``. The seed ADR's v0.1 default was exactly that
store, so users who still write ``file://./mlruns`` keep working: we opt in for
them and warn once, pointing at ``mlflow migrate-filestore``.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from urllib.parse import urlsplit
from urllib.request import url2pathname

from configurable_agents.config.schema import redact_uri, uri_scheme

logger = logging.getLogger(__name__)

FILE_STORE_WARNING = (
    "tracking_uri %s uses MLflow's file store, which MLflow 3 keeps in maintenance mode and "
    "refuses by default; configurable-agents enabled it for this process "
    "(MLFLOW_ALLOW_FILE_STORE=true). Migrate to sqlite with "
    "`mlflow migrate-filestore --source %s --target sqlite:///mlflow.db` and set "
    "tracking_uri: sqlite:///mlflow.db."
)

_warned: set[str] = set()
_lock = threading.Lock()


def is_file_store(uri: str) -> bool:
    scheme = uri_scheme(uri)
    return scheme == "file" or (scheme == "" and not uri.startswith("databricks"))


def _absolute_file_uri(uri: str) -> str:
    """``file://./mlruns`` as ``file:///<cwd>/mlruns``.

    The ADR writes ``file://./mlruns``, but a URI parser reads ``.`` as the *host*, so
    MLflow would store runs in ``/mlruns`` at the filesystem root. Resolving against the
    working directory gives what the user meant.
    """
    rest = uri[len("file://") :] if uri.lower().startswith("file://") else None
    if rest is not None and (rest in {".", ".."} or rest.startswith(("./", "../"))):
        return Path(rest).resolve().as_uri()
    return uri


def prepare_tracking_uri(uri: str) -> str:
    """Return ``uri`` ready for ``MlflowClient``; opt in to the file store with one warning.

    Relative ``file://./dir`` URIs come back absolute (see :func:`_absolute_file_uri`).
    """
    if not is_file_store(uri):
        return uri
    uri = _absolute_file_uri(uri)
    # Only when unset: an explicit MLFLOW_ALLOW_FILE_STORE (true/1, or false/0) is the user's.
    if os.environ.get("MLFLOW_ALLOW_FILE_STORE", "").strip() == "":
        os.environ["MLFLOW_ALLOW_FILE_STORE"] = "true"
        with _lock:
            if uri not in _warned:
                _warned.add(uri)
                source = url2pathname(urlsplit(uri).path) if uri_scheme(uri) == "file" else uri
                logger.warning(FILE_STORE_WARNING, redact_uri(uri), source)
    return uri
