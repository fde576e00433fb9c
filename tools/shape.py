"""The size contract of zgos: a module a newcomer reads in one sitting, a function seen whole
on one screen. ``make lint`` runs it (``python tools/layering.py`` is its sibling).

- **MAX_MODULE_LINES** - no hand-written module under ``zgos/`` is longer (generated gRPC
  stubs, ``*_pb2*.py``, are not hand-written).
- **MAX_FUNCTION_LINES** - no function or method is longer, counted from its ``def`` line to its
  last line, decorators excluded. A nested function counts inside the one that holds it, so a
  router built inside one function is one long function.

``KNOWN_OVERSIZE`` lists today's exceptions. It may only shrink: the check fails on an
oversize it does not list, and on an entry that is no longer oversize.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 40

# "path" for a module, "path:function" for a function.
KNOWN_OVERSIZE: frozenset[str] = frozenset()


def is_hand_written(path: Path) -> bool:
    return "_pb2" not in path.name


def module_lines(text: str) -> int:
    return text.count("\n")


def long_functions(tree: ast.AST) -> Iterator[tuple[str, int]]:
    """Every function longer than MAX_FUNCTION_LINES, with its length in lines."""
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            length = (node.end_lineno or node.lineno) - node.lineno + 1
            if length > MAX_FUNCTION_LINES:
                yield node.name, length


def oversize(root: Path) -> dict[str, int]:
    """Each oversize module or function under ``root/zgos`` mapped to its length in lines."""
    found: dict[str, int] = {}
    for path in sorted((root / "zgos").rglob("*.py")):
        if not is_hand_written(path):
            continue
        name = path.relative_to(root).as_posix()
        text = path.read_text()
        if module_lines(text) > MAX_MODULE_LINES:
            found[name] = module_lines(text)
        for function, length in long_functions(ast.parse(text, filename=name)):
            found[f"{name}:{function}"] = length
    return found


def problems(found: dict[str, int]) -> list[str]:
    new = [f"{name}: {length} lines" for name, length in sorted(found.items()) if name not in KNOWN_OVERSIZE]
    gone = [f"{name}: no longer oversize, delete it from KNOWN_OVERSIZE" for name in sorted(KNOWN_OVERSIZE - found.keys())]
    return new + gone


def main() -> int:
    report = problems(oversize(ROOT))
    for line in report:
        print(line)
    if report:
        print(f"{len(report)} size problem(s): modules <= {MAX_MODULE_LINES} lines, functions <= {MAX_FUNCTION_LINES}")
    return 1 if report else 0


if __name__ == "__main__":
    sys.exit(main())
