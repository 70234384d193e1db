"""Silence third-party chatter in our commands and the demo, unless ``-v``.

MLflow logs INFO lines ("Creating initial MLflow database tables..."), warns that a local
dataset source "can be interpreted in multiple ways", draws tqdm bars while evaluating and
prints a coloured "Evaluation completed" banner on *stdout*, where it breaks
``--format json | jq``. None of it is about the user's data, and our commands print their
own summary. Environment defaults are set before MLflow and tqdm are imported (both read
them at import time), so call :func:`quiet_third_party` first; what the user has set wins.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import sys
import warnings
from collections.abc import Iterator

_ENV_DEFAULTS = {
    "MLFLOW_LOGGING_LEVEL": "WARNING",
    "TQDM_DISABLE": "1",
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
}
_CHATTY_LOGGERS = ("mlflow", "alembic")

_verbose = False


def quiet_third_party(verbose: bool = False) -> None:
    """Quiet MLflow's INFO logs, tqdm bars and the dataset-source warning (not with ``-v``)."""
    global _verbose
    _verbose = verbose
    if verbose:
        return
    for name, value in _ENV_DEFAULTS.items():
        os.environ.setdefault(name, value)
    if "mlflow" in sys.modules:  # already imported: its loggers are configured
        for name in _CHATTY_LOGGERS:
            logging.getLogger(name).setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    warnings.filterwarnings(
        "ignore", message="The specified dataset source can be interpreted in multiple ways"
    )


@contextlib.contextmanager
def stdout_is_ours() -> Iterator[None]:
    """Keep what libraries print off stdout while our command works.

    Dropped unless ``-v``, then sent to stderr: stdout carries only the command's result.
    """
    sink = sys.stderr if _verbose else io.StringIO()
    with contextlib.redirect_stdout(sink):
        yield
