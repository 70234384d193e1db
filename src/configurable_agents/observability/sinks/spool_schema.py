"""The schema a spool file must match before anything in it is written (pydantic).

A spool file is untrusted input: anyone who can write to the spool directory can
forge one, and a crash can truncate one. Parsing is bounded (a size cap before
this; JSON nesting by the parser's recursion guard; the run tree's depth here) and
every field is typed, so a bad file fails here with one reason instead of a
TypeError deep inside a replay.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictStr, ValidationError

from configurable_agents.observability.sinks.run_plan import RunPlan

SPOOL_VERSION = 1
MAX_PLAN_DEPTH = 64  # nested node runs; real graphs are a few levels deep
_RUN_ID = r"^[A-Za-z0-9_\-.:]+$"


class PlanModel(BaseModel):
    model_config = ConfigDict(extra="ignore")

    run_name: StrictStr = Field(max_length=10_000)
    start_ms: int = Field(ge=0, strict=True)
    end_ms: int = Field(ge=0, strict=True)
    status: Literal["FINISHED", "FAILED", "KILLED", "RUNNING"]
    params: dict[StrictStr, StrictStr] = Field(default_factory=dict)
    metrics: dict[StrictStr, float] = Field(default_factory=dict)
    tags: dict[StrictStr, StrictStr] = Field(default_factory=dict)
    artifacts: dict[StrictStr, StrictStr] = Field(default_factory=dict)
    children: list[PlanModel] = Field(default_factory=list)

    def to_plan(self) -> RunPlan:
        return RunPlan(
            run_name=self.run_name,
            start_ms=self.start_ms,
            end_ms=self.end_ms,
            status=self.status,
            params=dict(self.params),
            metrics=dict(self.metrics),
            tags=dict(self.tags),
            artifacts=dict(self.artifacts),
            children=[c.to_plan() for c in self.children],
        )


class SpoolFileModel(BaseModel):
    model_config = ConfigDict(extra="ignore")

    version: Literal[1]
    experiment: StrictStr = Field(min_length=1, max_length=500)
    langchain_run_id: StrictStr = Field(pattern=_RUN_ID, max_length=256)
    mlflow_run_id: StrictStr | None = Field(
        default=None, pattern=r"^[A-Za-z0-9_\-]+$", max_length=64
    )
    plan: PlanModel
    trace: dict[str, Any] | None = None


class SpoolFormatError(ValueError):
    """The file is not a spooled workflow; the message is one line, safe to print."""


def parse_spool_file(raw: bytes) -> SpoolFileModel:
    """Validate one spool file's bytes; raises :class:`SpoolFormatError` with the reason."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SpoolFormatError(f"not UTF-8 ({exc.reason} at byte {exc.start})") from None
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise SpoolFormatError(f"not valid JSON ({_first_line(exc)})") from None  # or too deep
    if not isinstance(data, dict):
        raise SpoolFormatError(f"top level is {type(data).__name__}, not an object")
    if _plan_depth(data.get("plan")) > MAX_PLAN_DEPTH:
        raise SpoolFormatError(f"run tree deeper than {MAX_PLAN_DEPTH} levels")
    try:
        return SpoolFileModel.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "<root>"
        raise SpoolFormatError(
            f"invalid field {where}: {first['msg']} ({exc.error_count()} errors)"
        ) from None


def _plan_depth(plan: Any) -> int:
    depth, level = 0, [plan]
    while level:
        depth += 1
        level = [
            c
            for p in level
            if isinstance(p, dict) and isinstance(p.get("children"), list)
            for c in p["children"]
        ]
        if depth > MAX_PLAN_DEPTH:
            break
    return depth - 1 if plan is not None else 0


def _first_line(exc: BaseException) -> str:
    return str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
