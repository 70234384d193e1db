"""The ``observability.otel`` block: OpenTelemetry spans over OTLP (ADR-011 Tier 2).

Every field left unset falls back to the standard ``OTEL_*`` environment variables,
exactly as the OpenTelemetry SDK reads them (``OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT``,
``..._PROTOCOL``, ``..._HEADERS``, ``..._TIMEOUT``, ``OTEL_SERVICE_NAME``,
``OTEL_RESOURCE_ATTRIBUTES``, ``OTEL_BSP_*``); a value set here wins, as an argument
to the SDK's constructors does.
"""

from __future__ import annotations

import re
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator

from configurable_agents.config.base import StrictModel

OTLPProtocol = Literal["http/protobuf", "grpc"]

# RFC 7230 token characters; gRPC metadata keys must also be lowercase.
_HEADER_NAME = re.compile(r"^[a-z0-9!#$%&'*+.^_`|~-]+$")


class OTelConfig(StrictModel):
    """Where and how the OpenTelemetry sink sends its spans."""

    enabled: bool = False
    endpoint: str | None = Field(
        default=None,
        description="OTLP endpoint. http/protobuf: a base URL (http://host:4318, /v1/traces is "
        "appended) or a full .../v1/traces URL; grpc: http(s)://host:4317. "
        "Unset: OTEL_EXPORTER_OTLP_TRACES_ENDPOINT or OTEL_EXPORTER_OTLP_ENDPOINT.",
    )
    protocol: OTLPProtocol | None = Field(
        default=None,
        description="Unset: OTEL_EXPORTER_OTLP_TRACES_PROTOCOL / OTEL_EXPORTER_OTLP_PROTOCOL, "
        "then http/protobuf.",
    )
    headers: dict[str, str] = Field(
        default_factory=dict,
        description="Sent with every export (e.g. x-mlflow-experiment-id, authorization). "
        "Empty: OTEL_EXPORTER_OTLP_TRACES_HEADERS / OTEL_EXPORTER_OTLP_HEADERS.",
    )
    service_name: str | None = Field(
        default=None,
        description="service.name; unset: OTEL_SERVICE_NAME, then 'configurable-agents'.",
    )
    resource_attributes: dict[str, str] = Field(
        default_factory=dict,
        description="Merged over OTEL_RESOURCE_ATTRIBUTES (these win).",
    )
    capture_content: bool = Field(
        default=False,
        description="Put prompts, responses and tool arguments/results on the spans "
        "(redacted when redact_pii is on).",
    )
    timeout_s: float | None = Field(
        default=None,
        gt=0,
        le=600,
        description="Per-export timeout in seconds; unset: OTEL_EXPORTER_OTLP_TIMEOUT.",
    )
    queue_size: int = Field(
        default=1000, ge=1,
        description="Accepted for old configs, no effect: spans wait in the SDK's "
                    "BatchSpanProcessor queue (OTEL_BSP_MAX_QUEUE_SIZE).")
    flush_timeout_s: float = Field(default=10.0, gt=0, le=3600)

    @field_validator("endpoint")
    @classmethod
    def _check_endpoint(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = value.strip()
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(
                "endpoint must be an http:// or https:// URL with a host, "
                "e.g. http://127.0.0.1:4318 (http/protobuf) or http://127.0.0.1:4317 (grpc)"
            )
        return value

    @field_validator("headers")
    @classmethod
    def _check_headers(cls, value: dict[str, str]) -> dict[str, str]:
        for name, text in value.items():
            if not _HEADER_NAME.match(name):
                raise ValueError(
                    f"header name {name[:60]!r} is not valid: use lowercase letters, digits and -_."
                )
            if "\n" in text or "\r" in text:
                raise ValueError(f"header {name!r} has a line break in its value")
        return value
