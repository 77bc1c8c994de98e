"""Input text at the boundary: what counts as empty."""

from __future__ import annotations

import unicodedata

# Unicode categories that show nothing: separators (Z*), controls (Cc) and format characters (Cf:
# zero-width space, word joiner, BOM, soft hyphen, direction marks)
INVISIBLE_CATEGORIES = ("Z", "Cc", "Cf")


def has_visible_text(text: str) -> bool:
    """Whether ``text`` holds a character outside the categories Z*, Cc and Cf; a text without one
    is empty for every entry point (``predict`` raises ``ValueError``, a file becomes an error row)."""
    return any(not unicodedata.category(ch).startswith(INVISIBLE_CATEGORIES) for ch in text)
