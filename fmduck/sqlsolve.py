"""The SQL backend of the one OLS algorithm (:mod:`fmduck.ols`): the solve runs inside the engine.

:func:`solve_layers` runs :func:`fmduck.ols.solve` on symbols instead of arrays. Every operation
records a node; a node used once is written inline into the expression that uses it, a node used
more than once becomes a column of a layer (a CTE ``SELECT`` over the previous layer), so the SQL
grows linearly with the algorithm, never exponentially. The nodes keep the operations and their
order, so each engine computes the same IEEE doubles as the numpy backend for every well-posed
group; undefined steps give NULL (a guard on every division and square root, because PostgreSQL and
Spark's ANSI mode raise where numpy and DuckDB return inf or NaN), and the group is flagged.

The layers are rendered by ``sql/solve.sql.j2`` after the moments CTEs (``fmduck.moments``); the
output has the group keys and ``nobs``, ``ok``, ``reason``, ``e<j>`` / ``s<j>`` (estimate and standard
error of parameter j, the intercept first), ``r2``, ``adj_r2``, ``rmse``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fmduck import ols

_ONE = "CAST(1 AS DOUBLE)"


def _number(x: float) -> str:
    """A double constant written exactly (string cast: no decimal literal rounding on any engine)."""
    x = float(x)
    return f"CAST({int(x)} AS DOUBLE)" if x.is_integer() and abs(x) < 2**53 else f"CAST('{x!r}' AS DOUBLE)"


class _Program:
    def __init__(self) -> None:
        self.nodes: list[tuple[str, tuple]] = []  # (format with {0}, {1}, ...; argument node ids)
        self.columns: dict[int, tuple[str, ...]] = {}  # leaf -> the input columns its text reads

    def leaf(self, text: str, *columns: str) -> Sym:
        sym = self.node(text)
        self.columns[sym.i] = columns
        return sym

    def node(self, fmt: str, *args: Any) -> Sym:
        ids = tuple(a.i if isinstance(a, Sym) else self.node(_number(a) if not isinstance(a, str) else a).i
                    for a in args)
        self.nodes.append((fmt, ids))
        return Sym(self, len(self.nodes) - 1)


class Sym:
    """A value of the SQL backend: one node of the program."""

    __slots__ = ("program", "i")

    def __init__(self, program: _Program, i: int) -> None:
        self.program, self.i = program, i

    def _bin(self, op: str, other: Any, reverse: bool = False) -> Sym:
        if op == "*" and isinstance(other, float) and other == 1.0:
            return self  # x·1 = x exactly (IEEE): the numpy backend multiplies by a Python 1.0 here
        left, right = (other, self) if reverse else (self, other)
        return self.program.node(f"({{0}} {op} {{1}})", left, right)

    def __add__(self, o: Any) -> Sym: return self._bin("+", o)
    def __radd__(self, o: Any) -> Sym: return self._bin("+", o, True)
    def __sub__(self, o: Any) -> Sym: return self._bin("-", o)
    def __rsub__(self, o: Any) -> Sym: return self._bin("-", o, True)
    def __mul__(self, o: Any) -> Sym: return self._bin("*", o)
    def __rmul__(self, o: Any) -> Sym: return self._bin("*", o, True)
    def __neg__(self) -> Sym: return self.program.node("(-{0})", self)


class SqlOps:
    """:mod:`fmduck.ols`'s namespace on SQL symbols (NULL where numpy has NaN)."""

    nan = "CAST(NULL AS DOUBLE)"

    def __init__(self, program: _Program) -> None:
        self.p = program

    def where(self, cond: Sym, a: Any, b: Any) -> Sym:
        return self.p.node("CASE WHEN {0} THEN {1} ELSE {2} END", cond, a, b)

    def sqrt(self, x: Any) -> Sym:
        return self.p.node("CASE WHEN {0} >= 0 THEN SQRT({0}) END", x)

    def div(self, a: Any, b: Any) -> Sym:
        return self.p.node("({0} / NULLIF({1}, 0))", a, b)

    def gt(self, a: Any, b: Any) -> Sym:
        return self.p.node("COALESCE({0} > {1}, FALSE)", a, b)

    def lt(self, a: Any, b: Any) -> Sym:
        return self.p.node("COALESCE({0} < {1}, FALSE)", a, b)

    def both(self, a: Sym, b: Sym) -> Sym:
        return self.p.node("({0} AND {1})", a, b)

    def negate(self, a: Sym) -> Sym:
        return self.p.node("(NOT {0})", a)

    def maximum0(self, x: Any) -> Sym:
        return self.p.node("CASE WHEN {0} < 0 THEN CAST(0 AS DOUBLE) ELSE {0} END", x)


@dataclass(frozen=True)
class Layers:
    """The solve as SQL: ``layers`` (each a list of (column, expression)) and the final ``outputs``;
    ``carry[i]`` lists the columns layer i keeps from the layer before it (keys first)."""

    layers: list[list[tuple[str, str]]]
    carry: list[list[str]]
    outputs: list[tuple[str, str]]


def solve_layers(m: int, shifts: list[tuple[str, tuple[str, ...]]], *, keys: list[str], intercept: bool = True,
                 min_df: int = 1, rcond: float = ols.RCOND) -> Layers:
    """The layered SQL of :func:`fmduck.ols.solve` over a relation with columns ``n``, ``s_v<i>``,
    ``p_v<i>_v<j>`` (the moments of ``m`` variables, dependent last) and ``shifts``: per variable the SQL
    of its shift and the columns that SQL reads."""
    program = _Program()
    ops = SqlOps(program)
    n = program.leaf("CAST(n AS DOUBLE)", "n")
    sums = [program.leaf(f"s_v{i}", f"s_v{i}") for i in range(m)]
    products = {(i, j): program.leaf(f"p_v{i}_v{j}", f"p_v{i}_v{j}") for i in range(m) for j in range(i, m)}
    shift = [program.leaf(f"({text})", *columns) for text, columns in shifts]
    sol = ols.solve(ops, n, sums, lambda i, j: products[(min(i, j), max(i, j))], shift, intercept=intercept,
                    min_df=min_df, rcond=rcond)
    reason = program.node(
        f"CASE WHEN {{0}} THEN '{ols.TOO_FEW}' WHEN {{1}} THEN '{ols.SINGULAR}' "
        f"WHEN {{2}} THEN '{ols.NO_VARIATION}' END", sol.too_few, sol.singular, sol.flat_y)
    outputs = [("nobs", program.leaf("n", "n")), ("ok", sol.ok), ("reason", reason)]
    outputs += [(f"e{j}", e) for j, e in enumerate(sol.params)]
    outputs += [(f"s{j}", s) for j, s in enumerate(sol.std_errors)]
    outputs += [("r2", sol.r2), ("adj_r2", sol.adj_r2), ("rmse", sol.rmse)]
    return _layout(program, outputs, keys)


def _layout(program: _Program, outputs: list[tuple[str, Sym]], keys: list[str]) -> Layers:
    nodes = program.nodes
    uses = [0] * len(nodes)
    seen: set[int] = set()
    stack = [s.i for _, s in outputs]
    for i in stack:
        uses[i] += 1
    while stack:  # count the uses of every node reachable from the outputs
        i = stack.pop()
        if i in seen:
            continue
        seen.add(i)
        for a in nodes[i][1]:
            uses[a] += 1
            stack.append(a)
    leaf = [not args for _, args in nodes]
    shared = [not leaf[i] and uses[i] > 1 for i in range(len(nodes))]
    depth: dict[int, int] = {}

    def level(i: int) -> int:  # the layer a node's value is available in (leaves: 0)
        if i not in depth:
            inner = max((level(a) for a in nodes[i][1]), default=0)
            depth[i] = inner + 1 if shared[i] else inner
        return depth[i]

    def text(i: int, defining: bool = False) -> str:
        if shared[i] and not defining:
            return f"fmduck_x{i}"
        fmt, args = nodes[i]
        return fmt.format(*(text(a) for a in args)) if args else fmt

    for _, s in outputs:
        level(s.i)
    top = max((depth[i] for i in seen if shared[i]), default=0)
    layers: list[list[tuple[str, str]]] = [[] for _ in range(top)]
    for i in sorted(seen):
        if shared[i]:
            layers[depth[i] - 1].append((f"fmduck_x{i}", text(i, defining=True)))
    # the columns each layer needs from the one before: the leaves' source columns stay available
    # throughout (carried), shared nodes until their last use
    last_use = {}
    for i in seen:
        for a in nodes[i][1]:
            if shared[a]:
                last_use[a] = max(last_use.get(a, 0), depth[i] if shared[i] else top + 1)
    for _, s in outputs:
        if shared[s.i]:
            last_use[s.i] = top + 1
    base = list(dict.fromkeys(c for i in sorted(seen) for c in program.columns.get(i, ())))
    carry = []
    for layer in range(1, top + 1):
        kept = [f"fmduck_x{i}" for i in sorted(last_use) if depth[i] < layer and last_use[i] >= layer]
        carry.append([*keys, *base, *kept])
    return Layers(layers, carry, [(name, text(s.i)) for name, s in outputs])
