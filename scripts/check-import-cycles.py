#!/usr/bin/env python3
"""Fails when modules import each other in a circle.

Rust (every crate's `src/`): each file is a module; a path it names (`crate::a::b`,
`super::x`, `use` trees with braces) is an edge to the module that path points into. An
edge is lifted to the children of the two modules' closest common parent, so
`engine::queue::lease -> engine::templates` counts as `queue -> templates` inside
`engine`; a module naming its own parent or child is not an edge (that is how a folder
module works). Python (the `file_orbit` package): `from .x import` / `import
file_orbit.x` between the package's modules. Any circle among siblings is printed with
the files and lines that close it, and the exit status is 1.

`--self-test` checks the checker on a small crate with a circle and one without.
"""

from __future__ import annotations

import re
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RUST_CRATES = ["src", "librclone-sys/src", "file-orbit-core/src", "file-orbit-py/src"]
PYTHON_PACKAGE = "file-orbit-py/python/file_orbit"

Module = tuple[str, ...]
# (from module, to module) -> where the edge was seen ("file:line")
Edges = dict[tuple[Module, Module], str]


def rust_modules(src: Path) -> dict[Path, Module]:
    """Each .rs file under a crate's src/ and the module path it defines."""
    modules = {}
    for path in sorted(src.rglob("*.rs")):
        parts = list(path.relative_to(src).with_suffix("").parts)
        if parts[-1] in ("mod", "lib", "main"):
            parts.pop()
        modules[path] = tuple(parts)
    return modules


def without_comments_and_tests(text: str) -> list[str]:
    """The file's lines, with comments blanked and an inline `mod tests { .. }` dropped
    (its `super::` means the file itself, and tests may reach anywhere)."""
    lines = []
    for line in text.splitlines():
        if re.match(r"\s*mod tests\s*\{", line):
            break
        lines.append(re.sub(r"//.*", "", line))
    return lines


def expand_use_tree(tree: str) -> list[str]:
    """`a::{b, c::{d, e}}` -> `a::b`, `a::c::d`, `a::c::e` (the leaves' names kept, so
    a leaf that is a module is resolved as one)."""
    tree = re.sub(r"\s+", "", tree)
    brace = tree.find("{")
    if brace < 0:
        return [re.sub(r"\bas\w+$", "", tree)]
    prefix, inner = tree[:brace], tree[brace + 1 : tree.rfind("}")]
    items, depth, start = [], 0, 0
    for i, ch in enumerate(inner):
        depth += {"{": 1, "}": -1}.get(ch, 0)
        if ch == "," and depth == 0:
            items.append(inner[start:i])
            start = i + 1
    items.append(inner[start:])
    paths = []
    for item in filter(None, items):
        for leaf in expand_use_tree(item):
            paths.append(prefix + leaf if leaf != "self" else prefix.rstrip(":"))
    return paths


def resolve(path: str, here: Module, known: set[Module]) -> Module | None:
    """The module a `crate::` / `super::` / `self::` path points into, if any."""
    segments = [s for s in path.split("::") if s]
    if not segments:
        return None
    if segments[0] == "crate":
        base: list[str] = []
        segments = segments[1:]
    elif segments[0] in ("super", "self"):
        base = list(here)
        while segments and segments[0] in ("super", "self"):
            if segments.pop(0) == "super":
                if not base:
                    return None
                base.pop()
    else:
        return None
    target = tuple(base)
    for segment in segments:
        if target + (segment,) not in known:
            break
        target += (segment,)
    return target


def rust_edges(src: Path) -> Edges:
    modules = rust_modules(src)
    known = set(modules.values()) | {()}
    edges: Edges = {}
    for path, here in modules.items():
        lines = without_comments_and_tests(path.read_text())
        text = "\n".join(lines)
        found: list[tuple[str, int]] = []
        for m in re.finditer(r"\buse\s+([^;]+);", text):
            for leaf in expand_use_tree(m.group(1)):
                found.append((leaf, text.count("\n", 0, m.start()) + 1))
        for m in re.finditer(r"\b(?:crate|super|self)(?:::\w+)+", text):
            found.append((m.group(0), text.count("\n", 0, m.start()) + 1))
        for reference, line in found:
            target = resolve(reference, here, known)
            if target is not None:
                add_edge(edges, here, target, f"{path.relative_to(ROOT)}:{line}")
    return edges


def add_edge(edges: Edges, source: Module, target: Module, where: str) -> None:
    """Records `source -> target` lifted to siblings under their closest common parent;
    an ancestor/descendant pair is not an edge."""
    common = 0
    while common < min(len(source), len(target)) and source[common] == target[common]:
        common += 1
    if common == len(source) or common == len(target):
        return
    key = (source[: common + 1], target[: common + 1])
    edges.setdefault(key, where)


def python_edges(package: Path) -> Edges:
    edges: Edges = {}
    name = package.name
    for path in sorted(package.glob("*.py")):
        here = (path.stem,)
        if path.stem == "__init__":
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            m = re.match(rf"\s*from\s+(?:\.|{name}\.?)(\w*)\s+import\s+(.+)", line) or re.match(
                rf"\s*import\s+{name}\.(\w+)", line
            )
            if not m:
                continue
            targets = [m.group(1)] if m.group(1) else []
            if not targets and m.lastindex == 2:  # `from . import a, b`
                targets = [t.strip().split(" ")[0] for t in m.group(2).strip("()").split(",")]
            for target in targets:
                if (package / f"{target}.py").exists() and target != path.stem:
                    add_edge(edges, here, (target,), f"{path.relative_to(ROOT)}:{number}")
    return edges


def cycles(edges: Edges) -> list[list[Module]]:
    """Each strongly connected group of more than one module (Tarjan)."""
    graph: dict[Module, list[Module]] = defaultdict(list)
    for a, b in edges:
        graph[a].append(b)
    index: dict[Module, int] = {}
    low: dict[Module, int] = {}
    stack: list[Module] = []
    on_stack: set[Module] = set()
    groups: list[list[Module]] = []

    def visit(node: Module) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in list(graph):
        if node not in index:
            visit(node)
    return groups


def report(label: str, edges: Edges) -> int:
    found = cycles(edges)
    if not found:
        print(f"{label}: {len(edges)} imports between sibling modules, no circle")
    for group in found:
        members = set(group)
        names = ", ".join("::".join(m) for m in group)
        print(f"import circle in {label}: {names}")
        for (a, b), where in sorted(edges.items()):
            if a in members and b in members:
                print(f"  {'::'.join(a)} -> {'::'.join(b)}  ({where})")
    return len(found)


def check(root: Path) -> int:
    circles = 0
    for crate in RUST_CRATES:
        if (root / crate).is_dir():
            circles += report(crate, rust_edges(root / crate))
    if (root / PYTHON_PACKAGE).is_dir():
        circles += report(PYTHON_PACKAGE, python_edges(root / PYTHON_PACKAGE))
    return circles


def self_test() -> None:
    global ROOT
    with tempfile.TemporaryDirectory() as tmp:
        ROOT = Path(tmp)
        src = ROOT / "src"
        (src / "engine").mkdir(parents=True)
        (src / "lib.rs").write_text("pub mod engine;\npub mod store;\n")
        (src / "engine/mod.rs").write_text("mod audit;\nuse self::audit::Log;\n")
        (src / "engine/audit.rs").write_text("use super::super::store::{Store, pool};\n")
        (src / "store.rs").write_text("// crate::engine in a comment is no edge\npub struct Store;\n")
        assert rust_edges(src) and not cycles(rust_edges(src)), "a clean crate has a circle"
        (src / "store.rs").write_text("use crate::{engine::{self, Orbit}};\n")
        found = cycles(rust_edges(src))
        assert found == [[("engine",), ("store",)]], f"missed the circle: {found}"
        package = ROOT / "file_orbit"
        package.mkdir()
        (package / "_a.py").write_text("from ._b import B\n")
        (package / "_b.py").write_text("from . import _c\n")
        (package / "_c.py").write_text("import json\n")
        assert not cycles(python_edges(package)), "a clean package has a circle"
        (package / "_c.py").write_text("from file_orbit._a import A\n")
        found = cycles(python_edges(package))
        assert found == [[("_a",), ("_b",), ("_c",)]], f"missed the circle: {found}"
    print("self-test: a circle is found, a clean tree passes")


if __name__ == "__main__":
    if "--self-test" in sys.argv:
        self_test()
        sys.exit(0)
    sys.exit(1 if check(ROOT) else 0)
