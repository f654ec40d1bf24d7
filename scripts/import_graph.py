"""Measure the import structure of ``src/deepfake_detect`` (standard library only).

Reads every module of the package with :mod:`ast` (nothing is imported or run) and builds
the graph of intra-package imports, module -> module, in two versions:

* **run time**: every import that can execute, including imports inside functions and
  methods (lazy imports), but not those under ``if TYPE_CHECKING:``;
* **all**: the run-time imports plus the ``if TYPE_CHECKING:`` ones.

An import names one module: ``from .x import y`` points at ``x.y`` when ``x/y.py`` exists,
else at ``x``; ``import a.b`` points at ``a.b``. The parent packages whose ``__init__`` Python
runs on the way are not added as edges (so a module importing a sibling does not depend on
its own package's ``__init__``).

It prints, for each version, the strongly connected components with more than one module
(the import cycles), largest first, and then:

* the private names (``_x``, not dunders) imported from another module
  (``from .mod import _x``), exact; listed apart, the private modules (``pkg._mod``)
  imported from outside their package ``pkg``;
* the private attributes of another module's objects read by name (``obj._x``), found by
  a heuristic: ``obj`` is an intra-package module or a name imported from one, a parameter
  annotated with a class defined in another module, a local bound to a call of such a class
  (``det = Detector.from_pretrained(...)``), or a parameter/local called ``detector`` or
  ``det`` (taken as a ``detector.Detector``). ``getattr(obj, "_x")`` with a literal counts
  too. It misses attributes reached through other expressions and can name an attribute
  that the other module sets on purpose; read its lines as leads, not verdicts.

Usage: ``python scripts/import_graph.py [--root src/deepfake_detect] [--edges]``.
"""

from __future__ import annotations

import argparse
import ast
import sys
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

PACKAGE = "deepfake_detect"
DETECTOR_NAMES = {"detector", "det"}
DETECTOR_CLASS = ("deepfake_detect.detector", "Detector")


@dataclass(frozen=True)
class Edge:
    """One import statement's target, seen from the importing module."""

    source: str
    target: str
    line: int
    type_checking: bool
    in_function: bool


@dataclass(frozen=True)
class PrivateUse:
    """A private name of ``owner`` used in ``user`` (import or attribute read)."""

    user: str
    line: int
    owner: str
    name: str
    how: str


def is_private(name: str) -> bool:
    """``_x`` but not ``__x__`` (dunders such as ``__version__`` are public)."""
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def module_names(root: Path) -> dict[str, Path]:
    """Dotted module name -> file, for every ``.py`` under ``root`` (the package folder)."""
    modules: dict[str, Path] = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path
    return modules


def is_type_checking_test(test: ast.expr) -> bool:
    """``TYPE_CHECKING`` or ``typing.TYPE_CHECKING``."""
    if isinstance(test, ast.Name):
        return test.id == "TYPE_CHECKING"
    return isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"


class ModuleScanner(ast.NodeVisitor):
    """Collects the imports of one module and the private-attribute reads in it."""

    def __init__(self, name: str, is_package: bool, modules: dict[str, Path]) -> None:
        self.name = name
        self.is_package = is_package
        self.modules = modules
        self.edges: list[Edge] = []
        self.private_imports: list[PrivateUse] = []
        # name bound by an import -> (module it came from, object name or None for a module)
        self.imported: dict[str, tuple[str, str | None]] = {}
        self.type_checking = 0
        self.function_depth = 0
        # per function: local name -> (owner module, class name)
        self.scopes: list[dict[str, tuple[str, str]]] = []
        self.attribute_reads: list[tuple[int, str, str, tuple[str, str] | None]] = []

    # --- imports -------------------------------------------------------------------------
    def resolve_from(self, node: ast.ImportFrom) -> str | None:
        if node.level == 0:
            return node.module
        base = self.name.split(".")
        if not self.is_package:
            base = base[:-1]
        if node.level > 1:
            base = base[: len(base) - (node.level - 1)]
        return ".".join(base + ([node.module] if node.module else []))

    def add_edge(self, target: str, line: int) -> None:
        if target != self.name:
            self.edges.append(Edge(self.name, target, line, self.type_checking > 0, self.function_depth > 0))
            # a private module (``pkg._mod``) imported from outside ``pkg``
            parent, _, leaf = target.rpartition(".")
            if is_private(leaf) and not (self.name == parent or self.name.startswith(parent + ".")):
                self.private_imports.append(PrivateUse(self.name, line, target, leaf, "private module"))

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            if alias.name == PACKAGE or alias.name.startswith(PACKAGE + "."):
                target = alias.name
                while target not in self.modules and "." in target:
                    target = target.rsplit(".", 1)[0]
                self.add_edge(target, node.lineno)
                bound = alias.asname or alias.name.split(".")[0]
                self.imported[bound] = (alias.name if alias.asname else PACKAGE, None)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        base = self.resolve_from(node)
        if base is None or not (base == PACKAGE or base.startswith(PACKAGE + ".")):
            return
        for alias in node.names:
            submodule = f"{base}.{alias.name}"
            bound = alias.asname or alias.name
            if submodule in self.modules:
                self.add_edge(submodule, node.lineno)
                self.imported[bound] = (submodule, None)
                continue
            owner = base
            while owner not in self.modules and "." in owner:
                owner = owner.rsplit(".", 1)[0]
            self.add_edge(owner, node.lineno)
            self.imported[bound] = (owner, alias.name)
            if is_private(alias.name) and owner != self.name:
                self.private_imports.append(PrivateUse(self.name, node.lineno, owner, alias.name, "from-import"))

    def visit_If(self, node: ast.If) -> None:
        if is_type_checking_test(node.test):
            self.type_checking += 1
            for child in node.body:
                self.visit(child)
            self.type_checking -= 1
            for child in node.orelse:
                self.visit(child)
        else:
            self.generic_visit(node)

    # --- private attribute reads (heuristic) ---------------------------------------------
    def class_of_annotation(self, annotation: ast.expr | None) -> tuple[str, str] | None:
        """The (module, class) an annotation names, when it is an imported package class."""
        if annotation is None:
            return None
        if isinstance(annotation, ast.Constant) and isinstance(annotation.value, str):
            try:
                annotation = ast.parse(annotation.value, mode="eval").body
            except SyntaxError:
                return None
        for sub in ast.walk(annotation):
            if isinstance(sub, ast.Name) and sub.id in self.imported:
                owner, obj = self.imported[sub.id]
                if obj is not None and obj[:1].isupper():
                    return owner, obj
        return None

    def class_of_call(self, value: ast.expr) -> tuple[str, str] | None:
        """``Cls(...)`` or ``Cls.method(...)`` with ``Cls`` imported from the package."""
        if not isinstance(value, ast.Call):
            return None
        func = value.func
        while isinstance(func, ast.Attribute):
            func = func.value
        if isinstance(func, ast.Name) and func.id in self.imported:
            owner, obj = self.imported[func.id]
            if obj is not None and obj[:1].isupper():
                return owner, obj
        return None

    def visit_function(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        scope: dict[str, tuple[str, str]] = {}
        args = node.args
        for arg in [*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg]:
            if arg is None:
                continue
            known = self.class_of_annotation(arg.annotation)
            if known is None and arg.arg in DETECTOR_NAMES:
                known = DETECTOR_CLASS
            if known is not None:
                scope[arg.arg] = known
        self.scopes.append(scope)
        self.function_depth += 1
        for decorator in node.decorator_list:
            self.visit(decorator)
        for child in node.body:
            self.visit(child)
        self.function_depth -= 1
        self.scopes.pop()

    visit_FunctionDef = visit_function
    visit_AsyncFunctionDef = visit_function

    def visit_Assign(self, node: ast.Assign) -> None:
        self.generic_visit(node)
        if not self.scopes:
            return
        known = self.class_of_call(node.value)
        for target in node.targets:
            if isinstance(target, ast.Name):
                if known is not None:
                    self.scopes[-1][target.id] = known
                elif target.id in DETECTOR_NAMES:
                    self.scopes[-1][target.id] = DETECTOR_CLASS

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        self.generic_visit(node)
        if self.scopes and isinstance(node.target, ast.Name):
            known = self.class_of_annotation(node.annotation)
            if known is None and node.value is not None:
                known = self.class_of_call(node.value)
            if known is not None:
                self.scopes[-1][node.target.id] = known

    def owner_of(self, name: str) -> tuple[str, str | None] | None:
        """Which package module the object bound to ``name`` belongs to, if known."""
        for scope in reversed(self.scopes):
            if name in scope:
                return scope[name]
        return self.imported.get(name)

    def note_read(self, holder: ast.expr, attr: str, line: int) -> None:
        if not is_private(attr) or not isinstance(holder, ast.Name) or holder.id in {"self", "cls"}:
            return
        owner = self.owner_of(holder.id)
        if owner is not None:
            self.attribute_reads.append((line, holder.id, attr, (owner[0], owner[1] or "<module>")))

    def visit_Attribute(self, node: ast.Attribute) -> None:
        self.note_read(node.value, node.attr, node.lineno)
        self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        if (
            isinstance(func, ast.Name)
            and func.id in {"getattr", "setattr", "hasattr"}
            and len(node.args) >= 2
            and isinstance(node.args[1], ast.Constant)
            and isinstance(node.args[1].value, str)
        ):
            self.note_read(node.args[0], node.args[1].value, node.lineno)
        self.generic_visit(node)


def defining_module(modules_classes: dict[str, set[str]], owner: str, name: str) -> str:
    """Follow a re-export: the module that defines class ``name`` (``owner`` if unknown)."""
    if name in modules_classes.get(owner, set()):
        return owner
    matches = [module for module, classes in modules_classes.items() if name in classes]
    return matches[0] if len(matches) == 1 else owner


def strongly_connected(nodes: list[str], graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm; components in no particular order, members sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    counter = 0

    def visit(node: str) -> None:
        nonlocal counter
        index[node] = low[node] = counter
        counter += 1
        stack.append(node)
        on_stack.add(node)
        for succ in sorted(graph.get(node, ())):
            if succ not in index:
                visit(succ)
                low[node] = min(low[node], low[succ])
            elif succ in on_stack:
                low[node] = min(low[node], index[succ])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            components.append(sorted(component))

    sys.setrecursionlimit(max(1000, 10 * len(nodes)))
    for node in nodes:
        if node not in index:
            visit(node)
    return components


def short(module: str) -> str:
    return module[len(PACKAGE) + 1 :] if module.startswith(PACKAGE + ".") else module


def report_cycles(title: str, nodes: list[str], edges: list[Edge], show_edges: bool) -> int:
    graph: dict[str, set[str]] = defaultdict(set)
    for edge in edges:
        graph[edge.source].add(edge.target)
    cycles = [c for c in strongly_connected(nodes, graph) if len(c) > 1]
    cycles.sort(key=lambda c: (-len(c), c))
    n_edges = sum(len(targets) for targets in graph.values())
    print(f"\n== {title}: {n_edges} module->module edges ==")
    if not cycles:
        print("no import cycle (every strongly connected component is a single module)")
        return 0
    sizes = ", ".join(str(len(c)) for c in cycles)
    print(f"{len(cycles)} cycle(s) (strongly connected components > 1 module), sizes: {sizes}")
    for number, cycle in enumerate(cycles, 1):
        print(f"  [{number}] {len(cycle)} modules: {', '.join(short(m) for m in cycle)}")
        if show_edges:
            members = set(cycle)
            seen: set[tuple[str, str]] = set()
            for edge in sorted(edges, key=lambda e: (e.source, e.target, e.line)):
                key = (edge.source, edge.target)
                if edge.target in members and edge.source in members and key not in seen:
                    seen.add(key)
                    where = (
                        "TYPE_CHECKING" if edge.type_checking else "in function" if edge.in_function else "top level"
                    )
                    print(f"        {short(edge.source)} -> {short(edge.target)}  (line {edge.line}, {where})")
    return max(len(c) for c in cycles)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    here = Path(__file__).resolve().parent.parent
    parser.add_argument("--root", type=Path, default=here / "src" / PACKAGE, help="the package folder")
    parser.add_argument("--edges", action="store_true", help="list the imports inside each cycle")
    args = parser.parse_args(argv)

    modules = module_names(args.root)
    nodes = sorted(modules)
    edges: list[Edge] = []
    private: list[PrivateUse] = []
    classes: dict[str, set[str]] = {}
    reads: list[tuple[str, int, str, str, tuple[str, str]]] = []
    for name, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        classes[name] = {node.name for node in ast.walk(tree) if isinstance(node, ast.ClassDef)}
        scanner = ModuleScanner(name, path.name == "__init__.py", modules)
        scanner.visit(tree)
        edges.extend(scanner.edges)
        private.extend(scanner.private_imports)
        reads.extend((name, line, holder, attr, owner) for line, holder, attr, owner in scanner.attribute_reads)

    for read_user, line, holder, attr, (owner, obj) in reads:
        if obj != "<module>":
            owner = defining_module(classes, owner, obj)
        if owner != read_user:
            private.append(PrivateUse(read_user, line, owner, f"{holder}.{attr}", f"attribute of {obj}"))

    run_time = [e for e in edges if not e.type_checking]
    top_level = [e for e in run_time if not e.in_function]
    shown = args.root.resolve()
    shown = shown.relative_to(here) if shown.is_relative_to(here) else shown
    print(f"{len(modules)} modules under {shown}")
    print(
        f"{len(edges)} intra-package import statements: {len(top_level)} at module level, "
        f"{len(run_time) - len(top_level)} inside functions, {len(edges) - len(run_time)} under TYPE_CHECKING"
    )
    largest_run = report_cycles(
        "run time (module level + inside functions, no TYPE_CHECKING)", nodes, run_time, args.edges
    )
    largest_all = report_cycles("all imports (run time + TYPE_CHECKING)", nodes, edges, args.edges)
    largest_top = report_cycles(
        "extra: import time only (module level, no TYPE_CHECKING)", nodes, top_level, args.edges
    )

    imports = sorted({(p.user, p.owner, p.name, p.line) for p in private if p.how == "from-import"})
    private_modules = sorted({(p.user, p.owner, p.line) for p in private if p.how == "private module"})
    attrs = sorted({(p.user, p.owner, p.name, p.line, p.how) for p in private if p.how.startswith("attribute")})
    print(f"\n== private names imported across modules (from .mod import _x): {len(imports)} ==")
    for user, owner, name, line in imports:
        print(f"  {short(user)}:{line}  from {short(owner)} import {name}")
    print(f"\n== private modules imported from outside their package: {len(private_modules)} ==")
    for user, owner, line in private_modules:
        print(f"  {short(user)}:{line}  imports {short(owner)}")
    attr_names = {(user, owner, name.split(".", 1)[1]) for user, owner, name, _, _ in attrs}
    print(
        f"\n== private attributes of other modules' objects read by name (heuristic): "
        f"{len(attrs)} reads, {len(attr_names)} distinct (module, owner, attribute) =="
    )
    for user, owner, name, line, how in attrs:
        print(f"  {short(user)}:{line}  {name}  ({how}, defined in {short(owner)})")

    print("\n== summary ==")
    print(f"largest cycle at run time: {largest_run} modules (0 = none)")
    print(f"largest cycle counting TYPE_CHECKING imports: {largest_all} modules")
    print(f"largest cycle at import time (module level only): {largest_top} modules")
    print(f"private names imported across modules: {len(imports)}")
    print(f"private modules imported from outside their package: {len(private_modules)}")
    print(f"private attribute reads across modules (heuristic): {len(attrs)}")
    targets = [
        ("no import cycle at run time", largest_run == 0),
        ("no cycle wider than 3 modules counting TYPE_CHECKING imports", largest_all <= 3),
        ("no private name imported across modules", not imports),
    ]
    for label, met in targets:
        print(f"  target {label}: {'met' if met else 'NOT met'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
