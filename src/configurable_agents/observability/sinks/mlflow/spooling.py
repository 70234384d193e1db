"""The MLflow sink's side of the spool: what goes in, once, with one owner.

A workflow is spooled when MLflow cannot take it (breaker open, retries spent), when
the queue is full, or when the process exits before its worker finished. The last
case is where a workflow used to be written twice: its worker was still writing it
while the spooled copy was replayed by another process. Now a workflow a worker is
still exporting is spooled *claimed by this process* (:meth:`Spool.put` with
``claimed``): nobody replays it while we live; the worker then removes the file
when its write landed, or releases it to the spool when it failed (not a second
file). If the process dies first, its claims are released by the next drain or
``sync``, whose replay is idempotent. A workflow already written is never spooled.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from configurable_agents.names import Tag
from configurable_agents.observability.sinks.mlflow.plan import RunPlan
from configurable_agents.observability.sinks.spool import (
    WARN_FILL_RATIO,
    Spool,
    SpoolFullError,
)

if TYPE_CHECKING:
    from configurable_agents.observability.facts.model import WorkflowFacts
    from configurable_agents.observability.sinks.mlflow.host import SinkHost
    from configurable_agents.observability.sinks.mlflow.rollups import Rollup

logger = logging.getLogger("configurable_agents.observability")


class SpoolKeeper:
    """Spools workflows and rollups for one MLflow sink; tracks in-flight handoffs."""

    def __init__(self, sink: SinkHost, spool: Spool) -> None:
        self._sink = sink
        self.spool = spool
        self._failing = False  # a disk-full episode is logged once, until a write works
        self.maybe_nonempty = True  # a previous process may have left some
        self._lock = threading.Lock()
        self._exporting: set[str] = set()
        self._handed_off: dict[str, Path] = {}

    # ---- the in-flight handoff ------------------------------------------------------------

    def begin(self, langchain_run_id: str) -> None:
        with self._lock:
            self._exporting.add(langchain_run_id)

    def end(self, langchain_run_id: str, landed: bool) -> bool:
        """The worker is done with it; True when a spilled copy was given back to the spool
        (so the failure path must not spool it again)."""
        with self._lock:
            self._exporting.discard(langchain_run_id)
            path = self._handed_off.pop(langchain_run_id, None)
        if path is None:
            return False
        if landed:
            self.spool.done(path)
            return False
        self.spool.release(path)
        self._counted_spooled()
        return True

    def journal(self, facts: WorkflowFacts) -> None:
        """durability: disk: keep the workflow on disk, claimed by us, before any export.

        Removed when its export lands (or its rollup is written), given back to the spool
        when the export fails; if the process dies, its claim is released by the next
        drain or ``sync``, which writes it (idempotently).
        """
        encoded = self._sink.encode(facts, count=False)  # its export counts a refusal
        path = self.put(facts, "journal", claimed=True, quiet=True, encoded=encoded) \
            if encoded is not None else None
        if path is not None:
            with self._lock:
                self._handed_off[facts.langchain_run_id] = path

    def take_journal(self, langchain_run_id: str) -> Path | None:
        with self._lock:
            return self._handed_off.pop(langchain_run_id, None)

    def spill(self, facts: WorkflowFacts, reason: str) -> None:
        """Queue full or exiting: spool it, claimed by us while a worker still writes it."""
        key = facts.langchain_run_id
        with self._lock:
            if self._sink.run_id_for(key) is not None:
                return  # already in MLflow
            in_flight = key in self._exporting
            if key in self._handed_off:
                if not in_flight:  # journaled, never started: hand it to the spool
                    self.spool.release(self._handed_off.pop(key))
                    self._counted_spooled()
                return  # else its worker gives it back if its write fails
            path = self.put(facts, reason, claimed=in_flight)
            if in_flight and path is not None:
                self._handed_off[key] = path

    # ---- writing the spool ----------------------------------------------------------------

    def put(self, facts: WorkflowFacts, reason: str, *, claimed: bool = False,
            quiet: bool = False, encoded: tuple[str, RunPlan] | None = None,
            early_run_id: str | None = None) -> Path | None:
        """Spool one workflow (None: not spooled, counted); ``claimed``: a journal copy.

        ``early_run_id`` is the run created at workflow start, to complete on replay;
        without it the replay finds that run by its LangChain run id tag anyway."""
        sink = self._sink
        encoded = encoded or sink.encode(facts)
        if encoded is None:
            return None  # its tenant is refused: counted as dropped, never written
        experiment, plan = encoded
        trace = self.trace_for_spool(facts, plan)
        try:
            path = self.spool.put(experiment, facts.langchain_run_id, early_run_id, plan,
                                  trace, claimed=claimed)
        except SpoolFullError as exc:
            sink.counters.add("dropped")
            sink.diagnostics.warn_once(
                "spool:full", "%s: new workflows are dropped (counted in stats().dropped) "
                "until `configurable-agents sync` or a drain makes room; raise "
                "spool_max_bytes to keep more", exc,
            )
            return None
        except OSError as exc:
            sink.counters.add("failed")
            if not self._failing:  # once per episode (e.g. until the disk has room)
                self._failing = True
                logger.warning("could not spool a workflow to %s (%s); it is lost, and so "
                               "are the next ones until the spool is writable again",
                               self.spool.directory, exc.strerror or type(exc).__name__)
            return None
        self._failing = False
        if self.spool.fill_ratio() >= WARN_FILL_RATIO:
            sink.diagnostics.warn_once(
                "spool:filling", "the spool %s is %d%% full (spool_max_bytes=%d); past it new "
                "workflows are dropped", self.spool.directory,
                int(self.spool.fill_ratio() * 100), self.spool.max_bytes,
            )
        if not claimed:  # a claimed copy counts only if its worker gives it back
            self._counted_spooled()
        if quiet:
            return path
        sink.diagnostics.warn_once(
            f"spooled:{reason}", "%s: workflows are spooled to %s and will be replayed when it "
            "is back (or run `configurable-agents sync`)", reason, path.parent,
        )
        return path

    def _counted_spooled(self) -> None:
        self.maybe_nonempty = True
        self._sink.counters.add("spooled")

    def put_rollup(self, rollup: Rollup) -> None:
        try:  # replayed like a workflow; the read side counts each rollup id once
            self.spool.put(rollup.experiment, rollup.rollup_id, None, rollup.plan, None)
            self._counted_spooled()  # balanced by "replayed" when the drain writes it
        except OSError as exc:
            self._sink.diagnostics.warn_once("spool:rollup", "could not spool a rollup run: %s",
                                             exc)

    def set_aside(self, experiment: str, facts: WorkflowFacts, plan: RunPlan,
                  exc: BaseException) -> None:
        """A workflow MLflow refused even cleaned: counted, kept in ``rejected/``; no breaker."""
        sink = self._sink
        sink.counters.add("rejected")
        reason = f"MLflow refused it: {type(exc).__name__}: {sink.diagnostics.scrub(str(exc))}"
        try:
            where = self.spool.put_rejected(experiment, facts.langchain_run_id, plan,
                                            reason[:2000])
        except OSError:
            where = None
        sink.diagnostics.warn_once(
            f"rejected:{type(exc).__name__}",
            "MLflow refused a workflow (%s); it is set aside in %s and counted in "
            "stats().rejected; other workflows keep flowing", reason[:300],
            where.parent if where else "nowhere (the spool is not writable)",
        )

    def trace_for_spool(self, facts: WorkflowFacts, plan: RunPlan) -> dict[str, Any] | None:
        """The trace to spool beside the plan (whose tags get the trace tags if it goes along).

        Built now because the spool keeps the plan, not the facts a trace is made from;
        without it a workflow that waited out an outage would have no trace.
        """
        tags = self._sink.trace_tags(facts)
        if not tags:
            return None
        from configurable_agents.observability.sinks.mlflow.traces import trace_for_spool

        trace = None
        if Tag.TRACE_ID in tags:  # else MLflow's autolog traces these calls: tag only
            try:
                trace = trace_for_spool(facts, plan, self._sink.plan_options)
            except Exception as exc:
                self._sink.diagnostics.internal_error("spool:trace", exc)
                return None
        plan.tags.update(tags)
        return trace
