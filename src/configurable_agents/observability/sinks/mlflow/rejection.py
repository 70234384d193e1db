"""Tell "MLflow refused this workflow" apart from "MLflow is down".

A refused write (a 4xx-type error: bad key, value MLflow will not store) says
nothing about the backend's health: retrying it, spooling it or tripping the
breaker on it would let one poison workflow block every healthy one behind it.
Auth, not-found-the-endpoint, timeouts and throttling are 4xx too but are about
the backend, so they still count as "down".
"""

from __future__ import annotations

from mlflow.exceptions import MlflowException

_REJECTING_CODES = frozenset({
    "INVALID_PARAMETER_VALUE",
    "BAD_REQUEST",
    "INVALID_STATE",
    "RESOURCE_ALREADY_EXISTS",
    "MALFORMED_REQUEST",
})
_BACKEND_STATUSES = frozenset({401, 403, 404, 407, 408, 429})


def is_rejection(exc: BaseException) -> bool:
    """True when MLflow refused the data itself (retrying unchanged cannot help)."""
    if isinstance(exc, UnicodeError):
        return True  # our data could not even be encoded into a request
    if not isinstance(exc, MlflowException):
        return False
    try:
        status = int(exc.get_http_status_code())
    except Exception:
        status = 500
    if status in _BACKEND_STATUSES or status >= 500:
        return False
    code = str(getattr(exc, "error_code", ""))
    return 400 <= status < 500 or code in _REJECTING_CODES
