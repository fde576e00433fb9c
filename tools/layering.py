"""The dependency contract of zgos: imports point down the layers, never up, and never into
another network's insides. ``make lint`` runs it (``python tools/layering.py``); so does
``tests/unit/test_layering.py``.

Layers, lowest first (``LAYERS``; the architecture's "Layout" names them):

    core ← runtime ← chain ← networks ← provenance ← explorer ← devnet ← cli

- **core**: ``zgos/core/`` and ``zgos/__init__.py`` (the version string).
- **runtime**: ``zgos/runtime/`` (ports, data dirs, processes, the guarded edge).
- **chain**: ``zgos/chain/``.
- **networks**: ``storage``, ``kv``, ``da``, ``compute``, ``inft``, ``alignment``, side by side.
- **provenance**, then the top: **explorer** (a service the devnet runs), **devnet** (assembles
  and runs every network), **cli** (drives all of them).

The rules, checked on every ``zgos/**/*.py`` (``import x`` and ``from x import y``, relative
ones resolved, at module level, in functions and under ``if TYPE_CHECKING:`` alike):

1. **Layers** - a module imports its own layer and the layers below it, never one above.
2. **Client surface** - a network imports another network only through its client surface
   (``is_client_surface``): a module named ``client`` or ``contracts`` at any depth
   (``storage/client.py``, ``compute/user/client.py``) or listed in ``CLIENT_MODULES``, anything under a ``spec/`` package, and
   the engines listed in ``SPEC_MODULES`` (the storage tree hashers: native code and worker
   pools that compute what ``storage/spec/merkle.py`` states). Nodes, services, ``devnet.py`` and ``cli`` modules stay private. (The
   layers above the networks may import any of their modules: rule 1 is all they keep.)
3. **CLI modules are the top layer wherever they sit** - the ``zgos/cli/`` package (the ``zg``
   executable, its root group and context, the chain's, devnet's and explorer's commands), and
   every module named ``cli``, ending in ``cli`` or under a ``cli/``
   package: each network keeps its ``zg`` commands beside it, but they belong to the cli layer,
   so they may use the CLI context and any layer, and nothing outside the cli layer may import
   them (rule 1 says it, since the cli layer is the top).
4. **No cycles between files**, counting every import: a function-local or ``TYPE_CHECKING``
   import does not remove a cycle, it only hides it from the interpreter. The report marks
   those imports "deferred" (in a function, or under TYPE_CHECKING): each is where a cycle
   was broken by hand. A deferred import that closes no cycle (kept lazy for start-up time)
   is fine.
5. **No cycles between networks** - two networks may not each use the other's client surface.

Every zgos module must belong to a layer (a new top-level module is placed here first).
``KNOWN_VIOLATIONS`` lists today's exceptions, each with its reason. It may only shrink: the
check fails on a violation it does not list, and on an entry that no longer occurs.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "zgos"

NETWORKS = "networks"
CLI = "cli"
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("core", ("zgos.core",)),  # and zgos/__init__.py itself, see layer_of
    ("runtime", ("zgos.runtime",)),
    ("chain", ("zgos.chain",)),
    (NETWORKS, ("zgos.storage", "zgos.kv", "zgos.da", "zgos.compute", "zgos.inft", "zgos.alignment")),
    ("provenance", ("zgos.provenance",)),
    ("explorer", ("zgos.explorer",)),
    ("devnet", ("zgos.devnet",)),
    (CLI, ("zgos.cli", "zgos.tour")),  # the tour is a command: it drives every network like a user
)

CLIENT_NAMES = frozenset({"client", "contracts"})
# Client modules with another name: encrypted upload and decrypting download are what a storage
# client does with a key (the KV CLI and the INFT oracle use them).
CLIENT_MODULES = frozenset({
    "zgos.storage.encrypted",
    # what an auditor (a client of every network) needs: one node's connection, the user's
    # checks of a signed answer, the broker's wire headers, the model package it re-executes on,
    # and DA's sampling client
    "zgos.storage.nodeclient", "zgos.compute.user.verification", "zgos.compute.provider.wire", "zgos.compute.model",
    "zgos.da.retriever",
    # the storage challenge calls of the registry (a typed contract wrapper, like contracts.py):
    # alignment's contract wrapper extends it
    "zgos.storage.challenges",
})
# Pure rules another network may reuse (a file's Merkle tree: fine-tuning checks the dataset it
# fetched from storage). A module joins this list only when it is pure and another network needs it.
SPEC_MODULES = frozenset({
    "zgos.storage.hasher", "zgos.storage.fasthash",
})

# Today's exceptions: key (as the check prints it) -> why it is still here. It only shrinks.
KNOWN_VIOLATIONS: dict[str, str] = {
}


@dataclass(frozen=True)
class Layer:
    """Where a module sits: its layer's rank (0 = core) and its package within the layer."""

    rank: int
    name: str
    package: str


@dataclass(frozen=True)
class Import:
    source: str  # the importing module
    target: str  # the imported zgos module
    path: Path  # the importing file, relative to ROOT
    line: int
    deferred: str  # "" at module level (runs when ``source`` is imported), else "in a function"
    #                or "under TYPE_CHECKING"


@dataclass(frozen=True)
class Violation:
    key: str  # stable (no line numbers): what KNOWN_VIOLATIONS lists
    message: str  # where and which rule, for a person


# --- Reading the imports -------------------------------------------------------------------


def module_name(path: Path) -> str:
    """``zgos/storage/client.py`` -> ``zgos.storage.client``; a package is its ``__init__``."""
    parts = path.with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def find_modules(root: Path = ROOT) -> dict[str, Path]:
    """Every module of the zgos package, by name, with its path relative to ``root``."""
    return {module_name(p.relative_to(root)): p.relative_to(root) for p in sorted((root / PACKAGE).rglob("*.py"))}


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _import_nodes(nodes: Iterable[ast.AST], deferred: str = "") -> Iterator[tuple[ast.Import | ast.ImportFrom, str]]:
    """Every import statement under ``nodes``, and why it does not run on import ("" if it does)."""
    for node in nodes:
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node, deferred
        elif isinstance(node, ast.If) and _is_type_checking(node.test):
            yield from _import_nodes(node.body, deferred or "under TYPE_CHECKING")
            yield from _import_nodes(node.orelse, deferred)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            yield from _import_nodes(ast.iter_child_nodes(node), deferred or "in a function")
        else:
            yield from _import_nodes(ast.iter_child_nodes(node), deferred)


def _known(name: str, modules: dict[str, Path]) -> str | None:
    """The zgos module ``name`` denotes: itself, or the module defining it (its longest prefix)."""
    while name not in modules:
        if "." not in name:
            return None
        name = name.rsplit(".", 1)[0]
    return name


def _targets(node: ast.Import | ast.ImportFrom, source: str, is_package: bool,
             modules: dict[str, Path]) -> set[str]:
    """The zgos modules one import statement loads (``from a import b``: ``a.b`` if it is a
    module, else ``a``)."""
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    else:
        base = node.module or ""
        if node.level:  # relative: up from the importing module's package
            package = source.split(".") if is_package else source.split(".")[:-1]
            anchor = package[: len(package) - (node.level - 1)]
            base = ".".join([*anchor, *([base] if base else [])])
        names = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names]
    found = {_known(name, modules) for name in names if name == PACKAGE or name.startswith(PACKAGE + ".")}
    return {name for name in found if name is not None}


def read_imports(root: Path, modules: dict[str, Path]) -> list[Import]:
    """Every import of a zgos module by a zgos module, one entry per statement and target."""
    imports = []
    for source, path in modules.items():
        tree = ast.parse((root / path).read_text(), filename=str(path))
        for node, deferred in _import_nodes(tree.body):
            for target in sorted(_targets(node, source, path.name == "__init__.py", modules)):
                if target != source:
                    imports.append(Import(source, target, path, node.lineno, deferred))
    return imports


def edges(imports: Iterable[Import]) -> dict[tuple[str, str], Import]:
    """One import per (importing, imported) pair: one at module level if any, else the first."""
    chosen: dict[tuple[str, str], Import] = {}
    for item in sorted(imports, key=lambda i: (bool(i.deferred), i.line)):
        chosen.setdefault((item.source, item.target), item)
    return chosen


# --- The rules -------------------------------------------------------------------------------


def is_cli(module: str) -> bool:
    """Rule 3: a module named or ending in ``cli`` (``zgos.cli`` itself), or under a ``cli/`` package."""
    parts = module.split(".")
    return parts[-1].endswith("cli") or "cli" in parts[:-1]


def is_client_surface(module: str) -> bool:
    """Rule 2: what other networks may import of a network."""
    parts = module.split(".")
    return parts[-1] in CLIENT_NAMES or "spec" in parts[2:] or module in SPEC_MODULES or module in CLIENT_MODULES


def layer_of(module: str) -> Layer | None:
    """The layer a module belongs to (cli modules: the top, wherever they sit), or None."""
    if is_cli(module):
        return Layer(len(LAYERS) - 1, CLI, CLI)
    if module == PACKAGE:
        return Layer(0, LAYERS[0][0], PACKAGE)
    for rank, (name, packages) in enumerate(LAYERS):
        for package in packages:
            if module == package or module.startswith(package + "."):
                return Layer(rank, name, package)
    return None


def _where(item: Import) -> str:
    return f"{item.path}:{item.line}"


def edge_violations(imports: Iterable[Import]) -> Iterator[Violation]:
    """Rules 1 and 2, once per importing and imported module."""
    for (source, target), item in sorted(edges(imports).items()):
        above, below = layer_of(source), layer_of(target)
        if above is None or below is None:
            continue  # reported once per module by ``check``
        edge = f"{source} -> {target}"
        if below.rank > above.rank:
            yield Violation(f"layer: {edge}", f"{_where(item)}: rule 1, layers: {source} ({above.name}) "
                            f"imports {target} ({below.name}), a layer above it")
        elif above.name == below.name == NETWORKS and above.package != below.package \
                and not is_client_surface(target):
            yield Violation(f"private: {edge}", f"{_where(item)}: rule 2, client surface: {source} imports "
                            f"{target}, which is not part of {below.package}'s client surface")


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm: the strongly connected components of more than one node, sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for successor in sorted(graph.get(node, ())):
            if successor not in index:
                visit(successor)
                low[node] = min(low[node], low[successor])
            elif successor in on_stack:
                low[node] = min(low[node], index[successor])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(components)


def cycle_violations(imports: Iterable[Import]) -> Iterator[Violation]:
    """Rule 4: files that import each other through any chain of imports, deferred ones included."""
    chosen = edges(imports)
    graph: dict[str, set[str]] = {}
    for source, target in chosen:
        graph.setdefault(source, set()).add(target)
    for component in strongly_connected(graph):
        inside = [i for (source, target), i in chosen.items() if source in component and target in component]
        lines = sorted(f"{_where(i)} -> {i.target}{f' (deferred: {i.deferred})' if i.deferred else ''}"
                       for i in inside)
        yield Violation(f"cycle: {' <-> '.join(component)}",
                        "rule 4, no cycles: these files import each other:\n      " + "\n      ".join(lines))


def network_cycle_violations(imports: Iterable[Import]) -> Iterator[Violation]:
    """Rule 5: networks that import each other (through their client surfaces: rule 2 holds)."""
    graph: dict[str, set[str]] = {}
    for source, target in edges(imports):
        above, below = layer_of(source), layer_of(target)
        if above and below and above.name == below.name == NETWORKS and above.package != below.package:
            graph.setdefault(above.package, set()).add(below.package)
    for component in strongly_connected(graph):
        yield Violation(f"network cycle: {' <-> '.join(component)}",
                        f"rule 5, no cycles between networks: {', '.join(component)} import each other")


def check(root: Path = ROOT) -> list[Violation]:
    """Every violation of the contract in the tree at ``root``, sorted by key."""
    modules = find_modules(root)
    imports = read_imports(root, modules)
    found = [Violation(f"unassigned: {module}", f"{path}: {module} belongs to no layer (place it in LAYERS)")
             for module, path in modules.items() if layer_of(module) is None]
    found += [*edge_violations(imports), *cycle_violations(imports), *network_cycle_violations(imports)]
    return sorted(found, key=lambda v: v.key)


def report(violations: list[Violation], known: dict[str, str]) -> list[str]:
    """What breaks the contract: violations ``known`` does not list, and entries no longer seen."""
    keys = {v.key for v in violations}
    problems = [f"{v.message}\n    [{v.key}]" for v in violations if v.key not in known]
    problems += [f"fixed, remove it from KNOWN_VIOLATIONS: {key}" for key in sorted(set(known) - keys)]
    return problems


def main() -> int:
    problems = report(check(), KNOWN_VIOLATIONS)
    for problem in problems:
        print(problem, file=sys.stderr)
    if problems:
        print(f"layering: {len(problems)} problem(s); the rules are in {Path(__file__).relative_to(ROOT)}",
              file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
