"""One example a scorer grades: the inputs, and the expected answer (None when there is none).

Offline evaluation reads examples from a dataset file (``evaluation.dataset``); online
evaluation builds one per live workflow, with no expected answer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Example:
    """One row: what the app gets (``inputs``) and what a correct answer is (``expected``)."""

    id: str
    inputs: dict[str, Any]
    expected: Any = None
