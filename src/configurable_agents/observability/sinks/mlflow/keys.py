"""MLflow's naming rules: keys it accepts, artifact names that stay inside a run, tag limits.

The documented mapping (docs/features/reliability.md, "Names MLflow accepts"); only the MLflow
sink knows it, since other sinks encode the same facts their own way.
"""

from __future__ import annotations

import re

MAX_TAG_VALUE = 8000  # MLflow's limit for a tag value
MAX_KEY_CHARS = 250  # MLflow's limit for param, metric and tag keys
MAX_ARTIFACT_SEGMENTS = 8
MAX_ARTIFACT_SEGMENT_CHARS = 120
_INVALID_NAME_CHARS = re.compile(r"[^\w\-. /:]")
_INVALID_ARTIFACT_CHARS = re.compile(r"[^\w\-. ]")


def mlflow_key(key: str) -> str:
    """A param/metric/tag key MLflow accepts.

    Characters outside ``[A-Za-z0-9_-. /:]`` become ``_``; the key is read as a path the
    way MLflow's ``path_not_unique`` check does: empty, ``.`` and ``..`` segments become
    ``_`` and leading, trailing or doubled ``/`` go; at most 250 characters.
    """
    cleaned = _INVALID_NAME_CHARS.sub("_", str(key)).strip()
    segments = [s for s in cleaned.split("/") if s]
    segments = ["_" if s.strip(".") == "" else s for s in segments]
    result = "/".join(segments)[:MAX_KEY_CHARS].rstrip("/").strip() or "_"
    return result if not result.startswith(".") or result.strip(".") else "_"


def safe_artifact_name(name: object) -> str | None:
    """A relative artifact path that can only land inside the run's folder, or None.

    Artifact names come from metadata, state, spool files and config: they are data,
    never paths. Both ``/`` and ``\\`` separate folders; empty, ``.`` and ``..`` parts
    are dropped (so ``/abs/x.txt`` -> ``abs/x.txt``, ``../../x.txt`` -> ``x.txt``); other
    characters outside ``[A-Za-z0-9_-. ]`` become ``_``. None when nothing is left.
    """
    if not isinstance(name, str):
        return None
    parts = []
    for raw in re.split(r"[/\\]+", name):
        part = _INVALID_ARTIFACT_CHARS.sub("_", raw).strip()[:MAX_ARTIFACT_SEGMENT_CHARS]
        if part.strip(".") == "":
            continue
        parts.append(part)
    if not parts or len(parts) > MAX_ARTIFACT_SEGMENTS:
        return None
    return "/".join(parts)
