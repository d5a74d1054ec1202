"""How long a case is, and how often it quotes requirement IDs: a measure of how much a case reads as a script.

Run: ``python benchmarks/case_lines.py [ROOT]`` (default ``suites/``). For every test function (``def test_*`` and
``async def test_*``) it counts the non-blank lines of the body without its docstring, and prints their count, median
and 90th percentile; then the number of requirement-ID string literals (IDs of the catalog, conformance/catalog.py)
quoted inside case bodies, in total and in how many cases. Decorators (the ``requirement`` marker) are not the body.
"""

from __future__ import annotations

import argparse
import ast
import statistics
import sys
from pathlib import Path

from conformance.catalog import load_catalog


def _body_lines(fn: ast.FunctionDef | ast.AsyncFunctionDef, source: list[str]) -> int:
    body = fn.body
    first_stmt = body[0] if body else None
    if isinstance(first_stmt, ast.Expr) and isinstance(first_stmt.value, ast.Constant):
        body = body[1:] if isinstance(first_stmt.value.value, str) else body
    if not body:
        return 0
    first, last = body[0].lineno, max(n.end_lineno or n.lineno for n in body)
    return sum(1 for line in source[first - 1 : last] if line.strip())


def _id_literals(fn: ast.FunctionDef | ast.AsyncFunctionDef, ids: set[str]) -> int:
    return sum(
        1
        for stmt in fn.body
        for node in ast.walk(stmt)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in ids
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("root", nargs="?", default="suites")
    args = parser.parse_args()
    ids = set(load_catalog())
    lines: list[int] = []
    quoted = cases_quoting = 0
    for path in sorted(Path(args.root).rglob("test_*.py")):
        text = path.read_text()
        source = text.splitlines()
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name.startswith("test_"):
                lines.append(_body_lines(node, source))
                n = _id_literals(node, ids)
                quoted += n
                cases_quoting += n > 0
    if not lines:
        sys.stderr.write(f"no test functions under {args.root}\n")
        return 1
    p90 = statistics.quantiles(lines, n=10, method="inclusive")[-1]
    out = sys.stdout
    out.write(f"test functions: {len(lines)}\n")
    out.write(f"body lines (non-blank, no docstring): median {statistics.median(lines):g}, p90 {p90:g}, ")
    out.write(f"total {sum(lines)}\n")
    out.write(f"requirement-ID literals in case bodies: {quoted} (in {cases_quoting} cases)\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
