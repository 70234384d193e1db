"""Invisible characters: detection reads through them, the output keeps them.

A zero-width space (U+200B) or joiner inside ``jane@example.com``, an API key or a
card number hides it from every pattern while a human (or a model) still reads it.
So the redactor matches on the text *without* these characters and then puts each
one back where it was, except inside a replaced value: an emoji sequence joined by
U+200D or a Persian word with U+200C comes out exactly as it went in.
"""

from __future__ import annotations

import bisect
import re

# Zero-width space/non-joiner/joiner, direction marks and embeddings, word joiner,
# invisible operators, isolates, byte-order mark / zero-width no-break space, soft
# hyphen and the Mongolian vowel separator: all render as nothing.
INVISIBLE = re.compile("[\u00ad\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff]+")

# (position in the stripped text, the run of invisible characters removed there)
Removed = list[tuple[int, str]]
# (start, end, length of the placeholder) of each replacement, in the text it was made in
Replacements = list[tuple[int, int, int]]


def strip_invisible(text: str) -> tuple[str, Removed]:
    """``text`` without invisible characters, and where each run was."""
    removed: Removed = []
    pieces: list[str] = []
    pos = 0
    gone = 0
    for m in INVISIBLE.finditer(text):
        pieces.append(text[pos : m.start()])
        removed.append((m.start() - gone, m.group()))
        gone += m.end() - m.start()
        pos = m.end()
    pieces.append(text[pos:])
    return "".join(pieces), removed


def move_through(removed: Removed, replacements: Replacements) -> Removed:
    """Where the removed runs sit after ``replacements``; runs inside a replaced value go.

    A run at the very start of a replaced value stays before its placeholder, one at
    its end after it.
    """
    if not replacements:
        return removed
    ends = [end for _, end, _ in replacements]
    shifts = [0]
    for start, end, size in replacements:
        shifts.append(shifts[-1] + size - (end - start))
    moved: Removed = []
    for at, run in removed:
        i = bisect.bisect_right(ends, at)  # replacements ending at or before ``at``
        if i < len(replacements) and replacements[i][0] < at:
            continue  # strictly inside a replaced value: part of the secret
        moved.append((at + shifts[i], run))
    return moved


def restore_invisible(text: str, removed: Removed) -> str:
    """Put the runs back at their (moved) positions."""
    if not removed:
        return text
    pieces: list[str] = []
    pos = 0
    for at, run in removed:
        pieces.append(text[pos:at])
        pieces.append(run)
        pos = at
    pieces.append(text[pos:])
    return "".join(pieces)
