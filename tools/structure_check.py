"""The structure rules of fmduck/ (issue 15), checked on the source by an ast scan (nothing is imported).

1. No import cycles among fmduck's modules. Every ``import`` counts, also one inside a function: a
   deferred import only hides a cycle from the interpreter, the two modules still depend on each
   other. An import of a package's submodule is an edge to that submodule (``from fmduck import
   store`` -> fmduck.store), a name imported from a package is an edge to its ``__init__``; the
   implicit import of parent packages is not counted (every module would depend on fmduck/__init__).
   Imports under ``if TYPE_CHECKING:`` do not run and are not counted.
2. No access to another object's underscored attribute: ``x._name`` where x is not ``self``, ``cls``
   or ``super()`` (dunders such as ``__name__`` and the public namedtuple API ``_replace``/``_asdict``/
   ``_fields``/``_make`` are not private).
3. No ``from x import _name``.
4. No file over ``MAX_LINES`` lines.

``python tools/structure_check.py`` prints every finding and exits 1 if there is one that is not in
``KNOWN`` (the findings that were there when the check was written, kept for the lead to decide; an
entry that no longer occurs is printed, to be removed, so the list only shrinks). tests/test_structure.py runs
the same check under pytest (``make test``).
"""

from __future__ import annotations

import ast
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "fmduck"
MAX_LINES = 400
PUBLIC_UNDERSCORED = frozenset({"_replace", "_asdict", "_fields", "_make", "_field_defaults"})
OWN = frozenset({"self", "cls"})

# Findings present when the check was written (see the report of branch tests-core); each is
# "<rule>: <where>: <what>" exactly as printed. The lead removes entries as the code is fixed (none left).
KNOWN: frozenset[str] = frozenset({
})


@dataclass(frozen=True, order=True)
class Finding:
    rule: str  # cycle | private-attribute | private-import | long-file
    where: str  # path[:line] or the modules of a cycle
    what: str

    def __str__(self) -> str:
        return f"{self.rule}: {self.where}: {self.what}"


def modules(root: Path = ROOT) -> dict[str, Path]:
    """Dotted module name -> file, for every .py file of the package."""
    out = {}
    for path in sorted((root / PACKAGE).rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _is_package(name: str, known: dict[str, Path]) -> bool:
    return known[name].name == "__init__.py"


def _resolve(module: str, node: ast.ImportFrom, known: dict[str, Path]) -> str:
    """The absolute module an ``ImportFrom`` reads from (relative imports resolved)."""
    if not node.level:
        return node.module or ""
    base = module.split(".")
    if not _is_package(module, known):
        base = base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _type_checking_only(node: ast.AST) -> bool:
    test = node.test if isinstance(node, ast.If) else None
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _walk(tree: ast.AST):
    """Every node except those under ``if TYPE_CHECKING:``."""
    stack = [tree]
    while stack:
        node = stack.pop()
        yield node
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _type_checking_only(child):
                stack.extend(child.orelse)
                continue
            stack.append(child)


def imports(module: str, tree: ast.AST, known: dict[str, Path]) -> dict[str, int]:
    """The fmduck modules that ``module`` imports (anywhere in the file), with the first line of each."""
    out: dict[str, int] = {}

    def add(target: str, line: int) -> None:
        if target in known and target != module:
            out.setdefault(target, line)

    for node in _walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                add(alias.name, node.lineno)
        elif isinstance(node, ast.ImportFrom):
            source = _resolve(module, node, known)
            for alias in node.names:
                sub = f"{source}.{alias.name}"
                add(sub if sub in known else source, node.lineno)
    return out


def cycles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, {})):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(out)


def private_access(tree: ast.AST, rel: str) -> list[Finding]:
    out = []
    for node in _walk(tree):
        if isinstance(node, ast.Attribute) and _private(node.attr):
            owner = node.value
            if isinstance(owner, ast.Name) and owner.id in OWN:
                continue
            if isinstance(owner, ast.Call) and isinstance(owner.func, ast.Name) and owner.func.id == "super":
                continue
            out.append(Finding("private-attribute", f"{rel}:{node.lineno}", f"{ast.unparse(owner)}.{node.attr}"))
        elif isinstance(node, ast.ImportFrom):
            for alias in node.names:
                if _private(alias.name):
                    out.append(Finding("private-import", f"{rel}:{node.lineno}",
                                       f"from {'.' * node.level}{node.module or ''} import {alias.name}"))
    return out


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__")) \
        and name not in PUBLIC_UNDERSCORED


def scan(root: Path = ROOT, max_lines: int = MAX_LINES) -> list[Finding]:
    """Every finding of the four rules in ``root/fmduck``."""
    known = modules(root)
    graph: dict[str, dict[str, int]] = {}
    findings: list[Finding] = []
    for name, path in known.items():
        text = path.read_text(encoding="utf-8")
        rel = path.relative_to(root).as_posix()
        tree = ast.parse(text, filename=rel)
        graph[name] = imports(name, tree, known)
        findings += private_access(tree, rel)
        lines = len(text.splitlines())
        if lines > max_lines:
            findings.append(Finding("long-file", rel, f"{lines} lines (limit {max_lines})"))
    for component in cycles(graph):
        members = set(component)
        edges = [f"{a} -> {b} ({known[a].relative_to(root).as_posix()}:{line})"
                 for a in component for b, line in sorted(graph[a].items()) if b in members]
        findings.append(Finding("cycle", ", ".join(component), "; ".join(edges)))
    return sorted(findings)


def check(root: Path = ROOT, known: frozenset[str] = KNOWN) -> tuple[list[Finding], list[str]]:
    """(findings not in ``known``, entries of ``known`` that no longer occur)."""
    findings = scan(root)
    keys = {_key(f) for f in findings}
    return [f for f in findings if _key(f) not in known], sorted(known - keys)


def _key(f: Finding) -> str:
    """What identifies a finding across edits: line numbers and line counts left out."""
    where = f.where.split(":")[0] if f.rule != "cycle" else f.where
    what = f.what if f.rule in ("private-attribute", "private-import") else ""
    return f"{f.rule}: {where}: {what}".rstrip(": ")


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    root = Path(args[0]) if args else ROOT
    findings = scan(root)
    new, gone = check(root)
    for f in findings:
        print(("  " if f in new else "  (known) ") + str(f))
    for entry in gone:
        print(f"  no longer found, remove from KNOWN: {entry}")
    print(f"{len(findings)} finding(s), {len(new)} new, {len(gone)} known entries gone")
    return 1 if new else 0


if __name__ == "__main__":
    sys.exit(main())
