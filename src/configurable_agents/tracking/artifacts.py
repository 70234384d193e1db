"""Where an experiment's artifacts go when we create it: beside a sqlite store's database.

MLflow's default artifact location for a new experiment on ``sqlite:///path/mlflow.db``
is ``./mlruns`` of the *current directory*, so the same store would scatter artifacts
across every directory a command ran in. The handler and ``eval`` both create
experiments through this, so runs and evaluations keep theirs in one place.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from urllib.parse import urlsplit


def default_artifact_location(tracking_uri: str, experiment_name: str) -> str | None:
    """``<db dir>/mlartifacts/<experiment>-<ms>-<pid>`` for sqlite; None (MLflow's) otherwise."""
    if not tracking_uri.startswith("sqlite:///"):
        return None
    db_path = Path(urlsplit(tracking_uri).path)
    if tracking_uri.startswith("sqlite:////"):
        db_path = Path("/" + str(db_path).lstrip("/"))
    else:
        db_path = Path(tracking_uri[len("sqlite:///") :])
    root = db_path.resolve().parent / "mlartifacts"
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in experiment_name)
    return (root / f"{safe}-{int(time.time() * 1000)}-{os.getpid()}").as_uri()
