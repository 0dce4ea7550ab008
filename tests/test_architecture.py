"""The import drawing of the package (docs/architecture.md): no import circles, and nothing in the lower
layers importing the verbs above them. Read from the source's syntax trees, so nothing is imported."""

import ast
from pathlib import Path

from conftest import REPO

PACKAGE = REPO / "src" / "transferkit"

# The layers below the verbs: they raise errors with data and know nothing of the verbs or the CLI.
LOWER = ("store", "engines", "backbones", "heads", "data")
# The verbs and the front doors to them.
VERBS = ("api", "extraction", "training", "prediction", "cli", "comparison", "demo")

# Imports from a lower layer up to a verb that remain, each with why (none: TrainedModel.predict runs
# heads/image_prediction.py, the pipeline under transferkit.predict too).
ALLOWED_UPWARD: set[tuple[str, str]] = set()
# Circles through imports inside functions that remain (none at module level), each with why.
KNOWN_CYCLES: list[set[str]] = []


def _modules() -> dict[str, tuple[Path, bool]]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        out[".".join(parts[:-1] if is_package else parts)] = (path, is_package)
    return out


MODULES = _modules()


def _imports(name: str) -> list[tuple[str, bool]]:
    """(imported transferkit module, at module level?) for every import in ``name``; ``from x import y``
    counts as importing ``x.y`` when that is a module, else ``x``. ``if TYPE_CHECKING:`` blocks are skipped."""
    path, is_package = MODULES[name]
    package = name if is_package else name.rpartition(".")[0]
    found = []

    def visit(node, top: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Import):
                found.extend((a.name, top) for a in child.names if a.name.split(".")[0] == "transferkit")
            elif isinstance(child, ast.ImportFrom):
                if child.level:
                    base = package.split(".")[: len(package.split(".")) - child.level + 1]
                    module = ".".join(base + ([child.module] if child.module else []))
                else:
                    module = child.module or ""
                if module.split(".")[0] != "transferkit":
                    continue
                for a in child.names:
                    sub = f"{module}.{a.name}"
                    found.append((sub if sub in MODULES else module, top))
            elif isinstance(child, ast.If) and getattr(child.test, "id", None) == "TYPE_CHECKING":
                continue
            else:
                inner = isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
                visit(child, top and not inner)

    visit(ast.parse(path.read_text(encoding="utf-8")), True)
    return [(m, top) for m, top in found if m in MODULES and m != name]


IMPORTS = {name: _imports(name) for name in MODULES}


def _cycles(edges: dict[str, set[str]]) -> list[set[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on_stack, out = {}, {}, [], set(), []

    def strong(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges[v]):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.add(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(component)

    for v in sorted(edges):
        if v not in index:
            strong(v)
    return out


def _layer(module: str) -> str:
    return module.split(".")[1] if "." in module else ""


def test_the_drawing_sees_the_package():
    assert len(MODULES) > 80 and "transferkit.store.reader" in MODULES
    assert ("transferkit.heads.model_file", True) in IMPORTS["transferkit.heads"]
    assert ("transferkit.distributed", False) in IMPORTS["transferkit.extraction"]
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [{"a", "b", "c"}]


def test_no_circles_among_module_level_imports():
    edges = {m: {t for t, top in imports if top} for m, imports in IMPORTS.items()}
    assert _cycles(edges) == []


def test_no_circles_through_function_level_imports_but_the_known_ones():
    edges = {m: {t for t, _ in imports} for m, imports in IMPORTS.items()}
    cycles = _cycles(edges)
    assert [c for c in cycles if c not in KNOWN_CYCLES] == []
    assert [c for c in KNOWN_CYCLES if c not in cycles] == [], "a known circle is gone: take it off the list"


def test_lower_layers_do_not_import_the_verbs():
    upward = {
        (m, t)
        for m, imports in IMPORTS.items()
        if _layer(m) in LOWER
        for t, _ in imports
        if _layer(t) in VERBS
    }
    assert upward == ALLOWED_UPWARD
