"""Imports only point down. Each rule names a layer and what it must never import (lazy
imports inside functions included); the README's architecture paragraph describes the same
floors. A new module lands on a floor by its folder: a new folder needs a rule here."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "shadowdiff"

# The ground floor: plain data and pure helpers every floor may use. They import each other
# only.
PLAIN_DATA = {
    "shadowdiff.spec",
    "shadowdiff.observation",
    "shadowdiff.difference",
    "shadowdiff.pair",
    "shadowdiff.endpoint",
    "shadowdiff.wire",
    "shadowdiff.errors",
    "shadowdiff.json_document",
    "shadowdiff.routes",
    "shadowdiff.trace",
    "shadowdiff.backend_time",
    "shadowdiff.grpc",
    "shadowdiff.content_coding",
}

# Packages and modules above the ground floor, and what each may not import.
ORCHESTRATION = ("shadowdiff.run", "shadowdiff.cli", "shadowdiff.demo", "shadowdiff.__main__")
FORBIDDEN: dict[str, tuple[str, ...]] = {
    "shadowdiff.scenario": (
        "shadowdiff.compare",
        "shadowdiff.transport",
        "shadowdiff.replay",
        "shadowdiff.report",
        "shadowdiff.render",
        "shadowdiff.tls",
        *ORCHESTRATION,
    ),
    "shadowdiff.sources": (
        "shadowdiff.scenario.load",
        "shadowdiff.transport",
        "shadowdiff.replay",
        "shadowdiff.report",
        "shadowdiff.render",
        *ORCHESTRATION,
    ),
    "shadowdiff.plan": (
        "shadowdiff.transport",
        "shadowdiff.replay",
        "shadowdiff.compare",
        "shadowdiff.report",
        "shadowdiff.render",
        *ORCHESTRATION,
    ),
    "shadowdiff.transport": (
        "shadowdiff.scenario",
        "shadowdiff.sources",
        "shadowdiff.compare",
        "shadowdiff.replay",
        "shadowdiff.report",
        "shadowdiff.render",
        *ORCHESTRATION,
    ),
    "shadowdiff.compare": (
        "shadowdiff.transport",
        "shadowdiff.replay",
        "shadowdiff.report",
        "shadowdiff.render",
        *ORCHESTRATION,
    ),
    "shadowdiff.markers": (
        "shadowdiff.compare",
        "shadowdiff.transport",
        "shadowdiff.replay",
        "shadowdiff.report",
        "shadowdiff.render",
        *ORCHESTRATION,
    ),
    "shadowdiff.stats": ("shadowdiff.",),  # numpy and the standard library only
    # Live metrics: plain data (and the stop signals) only; the collector fills its counts and
    # the replay wires it in, never the other way round.
    "shadowdiff.metrics": (
        "shadowdiff.scenario",
        "shadowdiff.sources",
        "shadowdiff.plan",
        "shadowdiff.transport",
        "shadowdiff.replay",
        "shadowdiff.compare",
        "shadowdiff.markers",
        "shadowdiff.tls",
        "shadowdiff.stats",
        "shadowdiff.report",
        "shadowdiff.render",
        "shadowdiff.redaction",
        *ORCHESTRATION,
    ),
    "shadowdiff.tls": (
        "shadowdiff.transport",
        "shadowdiff.replay",
        "shadowdiff.report",
        "shadowdiff.render",
        *ORCHESTRATION,
    ),
    "shadowdiff.replay": ("shadowdiff.render", *ORCHESTRATION),
    # `shadowdiff watch`: sends like the replay and judges against a checkpoint; it draws
    # nothing (render/watch_table.py does, from its rows).
    "shadowdiff.watch": ("shadowdiff.render", "shadowdiff.replay", *ORCHESTRATION),
    "shadowdiff.report": (
        "shadowdiff.replay",
        "shadowdiff.transport",
        "shadowdiff.render",
        *ORCHESTRATION,
    ),
    "shadowdiff.render": (
        "shadowdiff.scenario",
        "shadowdiff.replay",
        "shadowdiff.transport",
        "shadowdiff.compare",
        "shadowdiff.tls",
        # Rows and reports only (watch/schema.py), never what sends or asks a nameserver.
        "shadowdiff.watch.loop",
        "shadowdiff.watch.dns",
        *ORCHESTRATION,
    ),
    "shadowdiff.run": ("shadowdiff.cli", "shadowdiff.render", "shadowdiff.demo"),
}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """Every shadowdiff module `path` imports, at the top or inside a function."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
            found.update(name for name in names if name.startswith("shadowdiff"))
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("shadowdiff"))
    return found


MODULES = {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix if prefix.endswith(".") else prefix + ".")


def test_every_module_is_on_a_floor() -> None:
    homeless = [
        name
        for name in MODULES
        if name != "shadowdiff"
        and name not in PLAIN_DATA
        and not any(within(name, floor) for floor in FORBIDDEN)
        and not any(within(name, top) for top in ORCHESTRATION)
        and name
        not in {
            # Utilities of their own, each imported from several floors and importing only
            # plain data or nothing of the package (checked below).
            "shadowdiff.redaction",
            "shadowdiff.memory",
            "shadowdiff.stop",
            "shadowdiff.echo",
        }
    ]
    assert homeless == []


@pytest.mark.parametrize("name", sorted(PLAIN_DATA))
def test_plain_data_imports_only_plain_data(name: str) -> None:
    path = MODULES[name]
    upward = sorted(
        imported
        for imported in imports_of(path)
        if imported != "shadowdiff" and not any(within(imported, p) for p in PLAIN_DATA)
    )
    assert upward == [], f"{name} imports {upward}"


@pytest.mark.parametrize("name", ["shadowdiff.redaction", "shadowdiff.memory", "shadowdiff.stop"])
def test_utilities_import_only_plain_data(name: str) -> None:
    upward = sorted(
        i
        for i in imports_of(MODULES[name])
        if i != "shadowdiff" and not any(within(i, p) for p in PLAIN_DATA)
    )
    assert upward == [], f"{name} imports {upward}"


@pytest.mark.parametrize("floor", sorted(FORBIDDEN))
def test_no_floor_imports_what_lies_above_it(floor: str) -> None:
    broken = sorted(
        f"{name} imports {imported}"
        for name, path in MODULES.items()
        if within(name, floor)
        for imported in imports_of(path)
        if not within(imported, floor)
        and any(within(imported, banned) for banned in FORBIDDEN[floor])
    )
    assert broken == []


def test_nothing_imports_the_command_line() -> None:
    users = sorted(
        name
        for name, path in MODULES.items()
        if name not in {"shadowdiff.cli", "shadowdiff.__main__"}
        and any(within(i, "shadowdiff.cli") for i in imports_of(path))
    )
    assert users == []


# Wire protocol libraries: what speaks on a socket is the transport's alone (the rest of the
# package sees Observations), so a protocol change stays in one folder.
WIRE_LIBRARIES = ("h2", "hpack", "httptools", "wsproto")


def test_only_the_transport_speaks_wire_protocols() -> None:
    users = sorted(
        name
        for name, path in MODULES.items()
        if not within(name, "shadowdiff.transport")
        for node in ast.walk(ast.parse(path.read_text(), str(path)))
        if (isinstance(node, ast.ImportFrom) and node.level == 0 and node.module)
        or isinstance(node, ast.Import)
        for imported in (
            [node.module] if isinstance(node, ast.ImportFrom) else [a.name for a in node.names]
        )
        if imported and imported.split(".")[0] in WIRE_LIBRARIES
    )
    assert users == []
