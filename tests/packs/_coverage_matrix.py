"""The coverage matrix, ``docs/coverage.md``, generated from the pack tests' markers.

A pack test says what it shows with ``@pytest.mark.produces(pack, target, via=...)``
(the pack emits it, deciding from ``via``) or ``@pytest.mark.not_possible(pack, target,
why=...)`` (it cannot, or emits ``null`` for that field). ``target`` is a catalog event
(``pkce_failed``), one of its fields (``social_login_completed.first_login``) or one
value of a field (``pkce_failed.reason=challenge_invalid``).

The pack tests are collected (``pytest --collect-only``: nothing runs, nothing needs a
configured Django) and their markers rendered: one matrix event × server, then one
section per server. ``python3 tasks.py coverage`` runs this file to rewrite the page;
``--json FILE`` writes the collected markers instead (``test_coverage_matrix.py``
renders them and compares). Only the standard library, pytest and the catalog.
"""

from __future__ import annotations

import contextlib
import functools
import io
import json
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from hera_middleware.catalog import EventType

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "coverage.md"
ADAPTERS = ROOT / "adapters"
#: The pack tests, relative to the repository root.
PATHS = ("tests/packs", "tests/test_authlib_preset.py")
COMMAND = "python3 tasks.py coverage"
#: The marker name and the keyword each one takes.
KINDS = {"produces": "via", "not_possible": "why"}


@functools.cache
def catalog() -> tuple[Mapping[str, EventType], Mapping[tuple[str, str], Sequence[str]]]:
    """The catalog, and its closed vocabularies by (event, field); other fields take any value.

    Imported late: the pytest run collecting the tests must import hera_middleware itself
    (its pytest plugin is rewritten for assertions).
    """
    from hera_middleware import catalog as c

    vocabularies: dict[tuple[str, str], Sequence[str]] = {
        ("pkce_failed", "reason"): c.PKCE_FAILED_REASONS,
        ("captcha_failed", "reason"): c.CAPTCHA_FAILED_REASONS,
        ("breach_check_failed", "reason"): c.BREACH_CHECK_FAILED_REASONS,
    }
    for event in c.CATALOG.values():
        for field, values in (("method", c.MFA_METHODS), ("flow", c.FLOWS)):
            if field in event.fields:
                vocabularies[event.name, field] = values
    return c.CATALOG, vocabularies


TARGET = re.compile(r"(?P<event>[a-z0-9_]+)(?:\.(?P<field>[a-z0-9_]+)(?:=(?P<value>\S+))?)?")


@dataclass(frozen=True)
class Mark:
    """One valid marker: ``kind`` is ``produces`` or ``not_possible``, ``text`` its via/why."""

    kind: str
    pack: str
    target: str
    text: str


def packs() -> list[str]:
    """The rule packs: folders of ``adapters/`` holding a ``rules.yaml``, sorted."""
    return sorted(p.parent.name for p in ADAPTERS.glob("*/rules.yaml"))


# -- collecting ------------------------------------------------------------------------


class _Collector:
    """A pytest plugin keeping the coverage markers of every collected item."""

    def __init__(self) -> None:
        self.items: list[dict[str, Any]] = []

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        for item in session.items:
            marks = [
                {"kind": mark.name, "args": list(mark.args), "kwargs": dict(mark.kwargs)}
                for mark in item.iter_markers()
                if mark.name in KINDS
            ]
            if marks:
                self.items.append({"nodeid": item.nodeid, "marks": marks})


def collect() -> list[dict[str, Any]]:
    """The marked pack tests, as ``{"nodeid", "marks": [{"kind", "args", "kwargs"}]}``."""
    collector = _Collector()
    args = ["--collect-only", "-q", "-p", "no:cacheprovider", "--rootdir", str(ROOT)]
    output = io.StringIO()
    with contextlib.redirect_stdout(output):
        code = pytest.main([*args, *(str(ROOT / p) for p in PATHS)], plugins=[collector])
    if code != pytest.ExitCode.OK:
        sys.stderr.write(output.getvalue())
        raise SystemExit(f"collecting the pack tests failed (pytest exit code {int(code)})")
    return collector.items


# -- checking --------------------------------------------------------------------------


def target_problem(target: object) -> str | None:
    """What is wrong with a marker's target, or None when it names the catalog."""
    match = TARGET.fullmatch(target) if isinstance(target, str) else None
    if match is None:
        return f"target {target!r} is not of the form event, event.field or event.field=value"
    event, field, value = match.group("event", "field", "value")
    events, vocabularies = catalog()
    if event not in events:
        return f"{event!r} is not a catalog event (src/hera_middleware/catalog.py)"
    if field is not None and field not in events[event].fields:
        return f"{event} has no field {field!r} (its fields: {', '.join(events[event].fields)})"
    allowed = vocabularies.get((event, field or ""))
    if value is not None and allowed is not None and value not in allowed:
        return f"{value!r} is not a value of {event}.{field} ({', '.join(allowed)})"
    return None


def mark_problem(mark: Mapping[str, Any], known_packs: Iterable[str]) -> str | None:
    """What is wrong with one collected marker, or None when it is a valid one."""
    kind, args, kwargs = mark["kind"], mark["args"], mark["kwargs"]
    keyword = KINDS[kind]
    if len(args) != 2 or set(kwargs) != {keyword}:
        return f"{kind} takes (pack, target, {keyword}=...), not args {args!r} kwargs {kwargs!r}"
    pack, target = args
    text = kwargs[keyword]
    if not isinstance(pack, str) or pack not in set(known_packs):
        return f"{pack!r} is not a rule pack folder in adapters/ (one with a rules.yaml)"
    if not isinstance(text, str) or not text.strip():
        return f"{keyword}= of {kind}({pack!r}, {target!r}) must say something"
    return target_problem(target)


def problems(items: Iterable[Mapping[str, Any]], known_packs: Iterable[str]) -> list[str]:
    """Every invalid marker, as ``nodeid: problem``."""
    known = list(known_packs)
    found: list[str] = []
    for item in items:
        for mark in item["marks"]:
            problem = mark_problem(mark, known)
            if problem is not None:
                found.append(f"{item['nodeid']}: {problem}")
    return found


def marks_of(items: Iterable[Mapping[str, Any]], known_packs: Iterable[str]) -> set[Mark]:
    """The valid markers, each once (a parametrized test carries its markers many times)."""
    known = list(known_packs)
    return {
        Mark(mark["kind"], *mark["args"], " ".join(mark["kwargs"][KINDS[mark["kind"]]].split()))
        for item in items
        for mark in item["marks"]
        if mark_problem(mark, known) is None
    }


# -- rendering -------------------------------------------------------------------------

STATUS = {
    frozenset({"produces"}): "produced",
    frozenset({"not_possible"}): "not possible",
    frozenset(KINDS): "produced, with limits",
    frozenset(): "—",
}
LABEL = {"produces": "produced, from", "not_possible": "not possible:"}


def _event(target: str) -> str:
    return re.split(r"[.=]", target, maxsplit=1)[0]


def _order(target: str) -> tuple[int, int, str]:
    match = TARGET.fullmatch(target)
    assert match is not None
    event, field, value = match.group("event", "field", "value")
    events = catalog()[0]
    fields = events[event].fields
    return (list(events).index(event), -1 if field is None else fields.index(field), value or "")


def _status(marks: Sequence[Mark]) -> str:
    kinds = frozenset(mark.kind for mark in marks)
    return STATUS[kinds]


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def render(marks: Iterable[Mark], servers: Sequence[str]) -> str:
    """The page: a header saying how it is made, the matrix, then one section per server."""
    marks = sorted(
        set(marks), key=lambda m: (m.pack, _order(m.target), m.kind != "produces", m.text)
    )
    events = list(catalog()[0])
    by = {
        (s, e): [m for m in marks if m.pack == s and _event(m.target) == e]
        for s in servers
        for e in events
    }
    lines = [
        "# Coverage matrix",
        "",
        "Which catalog event each rule pack produces, with the facts it decides from, and",
        "which it cannot produce, and why. Generated from the markers on the packs' tests",
        "(`@pytest.mark.produces` and `@pytest.mark.not_possible` in `tests/packs/` and",
        f"`tests/test_authlib_preset.py`): do not edit it by hand, run `{COMMAND}`.",
        "`tests/packs/test_coverage_matrix.py` fails when this page is out of date, when a",
        "marker names no pack or no catalog event, or when a marked test did not pass.",
        "",
        "**produced**: a test shows the pack emitting the event (or a field of it);",
        "**not possible**: a test shows the pack cannot emit it (or emits `null` for a field),",
        "or, for a feature its library does not have, that the pack has no rule for it",
        "(`tests/packs/test_pack_scope.py`);",
        "**produced, with limits**: both, for the event or one of its fields or values;",
        "**—**: not covered, no test of the pack says either.",
        "",
        "| Event | " + " | ".join(f"[{s}](#{s})" for s in servers) + " |",
        "|---|" + "---|" * len(servers),
    ]
    lines += [f"| `{e}` | " + " | ".join(_status(by[s, e]) for s in servers) + " |" for e in events]
    for server in servers:
        folder = f"../adapters/{server}"
        lines += ["", f"## {server}", ""]
        lines += [
            f"Rules: [rules.yaml]({folder}/rules.yaml); settings and limits: "
            f"[README.md]({folder}/README.md).",
            "",
        ]
        own = [m for m in marks if m.pack == server]
        if own:
            lines += ["| Event | Coverage |", "|---|---|"]
            targets = sorted({m.target for m in own}, key=_order)
            for target in targets:
                for kind in KINDS:
                    texts = [m.text for m in own if m.target == target and m.kind == kind]
                    if texts:
                        lines.append(
                            f"| `{_cell(target)}` | {LABEL[kind]} {_cell('; '.join(texts))} |"
                        )
            lines.append("")
        missing = [f"`{e}`" for e in events if not by[server, e]]
        if not own:
            lines.append("No test of this pack carries a marker yet: no event is covered.")
        elif missing:
            lines.append(
                f"Not covered (no test says produced or not possible): {', '.join(missing)}."
            )
        else:
            lines.append("Every catalog event is covered.")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str]) -> int:
    if argv[:1] == ["--json"] and len(argv) == 2:
        Path(argv[1]).write_text(json.dumps(collect(), default=repr), encoding="utf-8")
        return 0
    if argv:
        print("usage: python tests/packs/_coverage_matrix.py [--json FILE]", file=sys.stderr)
        return 2
    items, servers = collect(), packs()
    DOC.write_text(render(marks_of(items, servers), servers), encoding="utf-8")
    print(f"wrote {DOC.relative_to(ROOT)}", file=sys.stderr)
    found = problems(items, servers)
    for problem in found:
        print(f"left out, invalid marker: {problem}", file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
