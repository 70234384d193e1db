"""Our writer's MLflow client: one request per call, our own retries, idempotent creates.

MLflow's REST client retries every request itself (``MLFLOW_HTTP_REQUEST_MAX_RETRIES``,
default 7, backoff up to minutes), including ``runs/create``: when a response is lost
after the server committed, the blind retry makes a second run. So our writer's client
sends each request once (MLflow's retries off for this client only, the app's globals
untouched) with a bounded per-request timeout, and :class:`RetryingClient` owns the
retries: capped backoff with jitter inside a total time budget, and before re-sending a
create whose outcome is unknown it looks the run up by its identity tag (the LangChain
run id, or a rollup's id) and returns the run it already made.

Every other call we make is idempotent by nature (``log_batch`` of the same values,
``set_terminated``, artifact uploads to the same path, lookups), so re-sending is safe.
A refused connection is not retried here: nothing answers, the sink's breaker decides.
"""

from __future__ import annotations

import json
import random
import re
import time
from collections.abc import Callable
from typing import Any

from mlflow.exceptions import MlflowException
from mlflow.store.tracking.rest_store import RestStore
from mlflow.tracing.client import TracingClient
from mlflow.tracking import MlflowClient
from mlflow.tracking._tracking_service.client import TrackingServiceClient
from mlflow.utils.credentials import get_default_host_creds
from mlflow.utils.proto_json_utils import parse_dict
from mlflow.utils.rest_utils import http_request, verify_rest_response

from configurable_agents.names import Tag
from configurable_agents.observability.sinks.mlflow.rejection import is_rejection

DEFAULT_REQUEST_TIMEOUT_S = 15.0
DEFAULT_RETRY_BUDGET_S = 8.0
FIRST_DELAY_S = 0.2
MAX_DELAY_S = 2.0
_IDENTITY_TAGS = (Tag.LANGCHAIN_RUN_ID, Tag.ROLLUP_ID)
_FILTER_SAFE = re.compile(r"[\w\-.:]{1,256}")
_ANSWERS = frozenset({"RESOURCE_DOES_NOT_EXIST"})  # a real answer: re-asking cannot change it
_REFUSED = ("connection refused", "failed to establish a new connection")


class OneShotRestStore(RestStore):
    """MLflow's REST store sending each request once, with our timeout.

    ``RestStore._call_endpoint`` reads the retry count and timeout from process-wide
    environment variables on every call; this override passes them per call instead,
    so the app's own MLflow client keeps whatever it configured.
    """

    def __init__(self, tracking_uri: str, timeout_s: float) -> None:
        super().__init__(lambda: get_default_host_creds(tracking_uri))
        self.timeout_s = timeout_s

    def _call_endpoint(self, api: Any, json_body: Any = None, endpoint: str | None = None,
                       retry_timeout_seconds: Any = None, response_proto: Any = None) -> Any:
        method_to_info = self._V3_METHOD_TO_INFO if api in self._V3_APIS else self._METHOD_TO_INFO
        self._validate_workspace_support_if_specified()
        default_endpoint, method = method_to_info[api]
        endpoint = endpoint or default_endpoint
        response_proto = response_proto or api.Response()
        body = json.loads(json_body) if json_body is not None else None
        kwargs = {"params": body} if method == "GET" else {"json": body}
        response = http_request(self.get_host_creds(), endpoint, method, max_retries=0,
                                backoff_factor=0, timeout=self.timeout_s, **kwargs)
        response = verify_rest_response(response, endpoint)
        if response.status_code == 204:
            return response_proto
        parse_dict(js_dict=json.loads(response.text), message=response_proto)
        return response_proto


    def log_spans(self, location: str, spans: list[Any], tracking_uri: Any = None) -> list[Any]:
        """MLflow's ``RestStore.log_spans`` (OTLP to ``/v1/traces``), sent once, our timeout.

        Upstream posts with module-level ``http_request`` defaults (the process-wide
        retries, minutes against a dead server); a span batch is an upsert of the same
        rows, so :class:`~.traces.TraceWriter` re-sends or spools it itself.
        """
        from mlflow.store.tracking import rest_store as upstream

        if not spans:
            return []
        self._validate_workspace_support_if_specified()
        server_version = self._get_server_version(self.get_host_creds())
        if server_version is None or server_version < upstream.Version("3.4"):
            raise NotImplementedError(
                f"log_spans is not supported by MLflow server version {server_version}")
        request = upstream.ExportTraceServiceRequest()
        resource_spans = request.resource_spans.add()
        resource = getattr(spans[0]._span, "resource", None)
        resource_spans.resource.CopyFrom(upstream.resource_to_otel_proto(resource))
        resource_spans.scope_spans.add().spans.extend(span.to_otel_proto() for span in spans)
        response = http_request(
            self.get_host_creds(), upstream.OTLP_TRACES_PATH, "POST", max_retries=0,
            backoff_factor=0, timeout=self.timeout_s, data=request.SerializeToString(),
            extra_headers={"Content-Type": "application/x-protobuf",
                           upstream.MLFLOW_EXPERIMENT_ID_HEADER: location},
        )
        verify_rest_response(response, upstream.OTLP_TRACES_PATH)
        return spans


class _OwnStore:
    """Mixed into an MLflow client class whose ``store`` property builds the store from
    the process-wide settings: this one answers with the store it was given."""

    def __init__(self, tracking_uri: str, store: RestStore) -> None:
        self._own_store = store
        super().__init__(tracking_uri)  # type: ignore[call-arg]

    @property
    def store(self) -> RestStore:
        return self._own_store


class _OwnStoreTracking(_OwnStore, TrackingServiceClient):
    """The tracking service of our writer's ``MlflowClient``."""


class _OwnStoreTracing(_OwnStore, TracingClient):
    """Our trace writer's ``TracingClient``."""


def build_client(tracking_uri: str, timeout_s: float = DEFAULT_REQUEST_TIMEOUT_S) -> MlflowClient:
    """An ``MlflowClient`` for our writer; on a server URI, one request per call.

    ``MlflowClient`` has no per-client retry setting, so its tracking service gets our
    store (the one attribute we set on it, checked by tests/test_delivery_faults.py).
    """
    client = MlflowClient(tracking_uri=tracking_uri)
    if tracking_uri.startswith(("http://", "https://")):
        client._tracking_client = _OwnStoreTracking(  # the one private attribute: see docstring
            tracking_uri, OneShotRestStore(tracking_uri, timeout_s))
    return client


def build_tracing_client(tracking_uri: str,
                         timeout_s: float = DEFAULT_REQUEST_TIMEOUT_S) -> TracingClient:
    """MLflow's ``TracingClient`` for our trace writer; on a server URI, one request per call."""
    if not tracking_uri.startswith(("http://", "https://")):
        return TracingClient(tracking_uri)
    return _OwnStoreTracing(tracking_uri, OneShotRestStore(tracking_uri, timeout_s))


def is_transient(exc: BaseException) -> bool:
    """Worth re-sending: the backend answered badly or not at all (never a refusal)."""
    if is_rejection(exc) or getattr(exc, "error_code", "") in _ANSWERS:
        return False
    return isinstance(exc, (MlflowException, OSError, TimeoutError))


def is_refused(exc: BaseException) -> bool:
    text = str(exc).lower()
    return any(marker in text for marker in _REFUSED)


class RetryingClient:
    """Wraps an ``MlflowClient``: every call retried within a time budget, creates idempotent.

    Attribute access is forwarded, so the writer calls it like an ``MlflowClient``.
    """

    def __init__(self, client: MlflowClient, budget_s: float = DEFAULT_RETRY_BUDGET_S,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.client = client
        self.budget_s = budget_s
        self._sleep = sleep
        self.lookups_found = 0  # creates answered by a lookup after an unknown outcome

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.client, name)
        if not callable(attr):
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            return self.retry(lambda: attr(*args, **kwargs))

        return call

    def retry(self, attempt: Callable[[], Any]) -> Any:
        """Run ``attempt`` until it works, a non-transient error, or the budget is spent."""
        deadline = time.monotonic() + self.budget_s
        delay = FIRST_DELAY_S
        while True:
            try:
                return attempt()
            except Exception as exc:
                if not is_transient(exc) or is_refused(exc):
                    raise
                pause = min(delay, MAX_DELAY_S) * random.uniform(0.5, 1.0)
                if time.monotonic() + pause >= deadline:
                    raise
                self._sleep(pause)
                delay *= 2

    def create_run(self, experiment_id: str, start_time: int | None = None,
                   tags: dict[str, str] | None = None, run_name: str | None = None) -> Any:
        """Create a run once: after an unknown outcome, find the one already made first."""
        tags = tags or {}
        identity = next(((k, tags[k]) for k in _IDENTITY_TAGS if tags.get(k)), None)
        tried = False

        def attempt() -> Any:
            nonlocal tried
            if tried and identity is not None:
                found = self.find_run(experiment_id, identity, tags.get(Tag.MLFLOW_PARENT_RUN_ID))
                if found is not None:
                    self.lookups_found += 1
                    return found
            tried = True
            return self.client.create_run(experiment_id, start_time=start_time, tags=tags,
                                          run_name=run_name)

        return self.retry(attempt)

    def find_run(self, experiment_id: str, identity: tuple[str, str],
                 parent_run_id: str | None) -> Any:
        """The run carrying this identity tag (under this parent, if any), or None."""
        key, value = identity
        if not _FILTER_SAFE.fullmatch(value) or (
            parent_run_id is not None and not _FILTER_SAFE.fullmatch(parent_run_id)
        ):
            return None
        where = f"tags.`{key}` = '{value}'"
        if parent_run_id is not None:
            where += f" and tags.`{Tag.MLFLOW_PARENT_RUN_ID}` = '{parent_run_id}'"
        runs = self.client.search_runs([experiment_id], filter_string=where, max_results=1)
        return runs[0] if runs else None
