"""Secret masking for printed configuration (``config validate``, error messages).

A config dump is pasted into tickets and chats, so every secret-bearing field is masked
before it is printed: every value of a ``headers`` mapping (OTLP ``authorization`` and
the like), any value whose key names a secret (a ``key``, ``token``, ``password``,
``secret``, ``auth``, ``credential``, ``cookie`` part, in any case or separator style),
and the credentials of any URL (``user:pass@``, ``?token=``).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

MASK = "***"
_SECRET_PARTS = frozenset({
    "key", "apikey", "token", "password", "passwd", "pwd", "secret", "auth",
    "authorization", "credential", "credentials", "cookie", "bearer", "passphrase",
    "signature", "sig",
})
_WHOLE_MAPPINGS = frozenset({"headers"})  # every value is masked, whatever its key
_PARTS = re.compile(r"[A-Z]?[a-z0-9]+|[A-Z]+(?![a-z])")


def secret_key(key: str) -> bool:
    """True when a key's name says its value is a secret (``api_key``, ``X-Auth-Token``)."""
    return any(part.lower() in _SECRET_PARTS for part in _PARTS.findall(key))


def masked(value: Any, mask_uri: Callable[[str], str]) -> Any:
    """A copy of JSON-ready ``value`` with every secret masked (see the module doc)."""

    def walk(item: Any, *, hide: bool) -> Any:
        if isinstance(item, dict):
            return {k: walk(v, hide=hide or secret_key(str(k)) or str(k) in _WHOLE_MAPPINGS)
                    for k, v in item.items()}
        if isinstance(item, list):
            return [walk(v, hide=hide) for v in item]
        if hide and isinstance(item, str | int | float) and not isinstance(item, bool):
            return MASK if item != "" else item
        if isinstance(item, str) and "://" in item:
            return mask_uri(item)
        return item

    return walk(value, hide=False)
