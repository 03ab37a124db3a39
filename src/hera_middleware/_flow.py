"""Rule-file values written back as one-line YAML flow text, for explanations."""

from __future__ import annotations

import json
import re
from typing import Any

__all__ = ["flow"]

# Plain scalars that YAML would read back as the same string.
_PLAIN = re.compile(r"[A-Za-z0-9_/.$\-][A-Za-z0-9_/.$\-{}<>:| ]*")
_KEYWORDS = frozenset({"true", "false", "null", "~", "yes", "no", "on", "off"})


def flow(value: Any) -> str:
    """``{prefix: /welcome}``, ``[400, 401]``, ``present``, ``"a: b"``, ``true``, ``null``."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"{flow(k)}: {flow(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(flow(v) for v in value) + "]"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    text = str(value)
    if (
        _PLAIN.fullmatch(text)
        and not text.endswith(" ")
        and ": " not in text
        and text.lower() not in _KEYWORDS
        and not _is_number(text)
    ):
        return text
    return json.dumps(text, ensure_ascii=False)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
