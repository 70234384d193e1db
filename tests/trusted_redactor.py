"""A custom redactor the tests load by import path (``tests.trusted_redactor:names``)."""

from __future__ import annotations

import os

run_shell = os.system  # a re-export of a refused target: loading it must fail


def names(text: str) -> str:
    return text.replace("Alice Smith", "<PERSON>")
