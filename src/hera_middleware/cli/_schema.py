"""``hera-middleware schema rules|events``: the JSON Schemas shipped in the package."""

from __future__ import annotations

import argparse
from importlib import resources

__all__ = ["run", "schema_text"]


def schema_text(kind: str) -> str:
    """The text of ``schemas/<kind>.schema.json`` (``rules`` or ``events``)."""
    return (resources.files("hera_middleware") / "schemas" / f"{kind}.schema.json").read_text(
        encoding="utf-8"
    )


def run(args: argparse.Namespace) -> int:
    """Print the schema, as shipped."""
    print(schema_text(args.kind), end="")
    return 0
