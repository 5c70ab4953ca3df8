"""The shape docs/architecture.md promises, checked on the source: no import cycles, and no
backend named outside its own folder and the backend registry."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("lpstream", "signaling")
BACKEND_FOLDERS = ("lpstream/meshwarp", "lpstream/liveportrait")
BACKEND_WORDS = ("meshwarp", "liveportrait", "live_portrait", "builtin")
API_NAMES = {"LivePortraitMotion"}
"""Names of the public API other tools call (lpstream.protocol's, kept for them)."""
ALLOWED_TO_NAME_BACKENDS = {
    "lpstream/backend_registry.py",  # the table of backends, in preference order
    "lpstream/__main__.py",  # the CLI's commands `weights` and `export-onnx` are LivePortrait's
}


def modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    return found


def imported(tree: ast.AST, name: str, is_package: bool) -> set[str]:
    """Every module named by an import anywhere in the file (TYPE_CHECKING and function
    bodies included: a cycle hidden there is still a cycle)."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:
                base = name if is_package else name.rpartition(".")[0]
                for _ in range(node.level - 1):
                    base = base.rpartition(".")[0]
                module = f"{base}.{module}" if module else base
            names.add(module)
            names.update(f"{module}.{alias.name}" for alias in node.names)
    return names


def import_graph() -> dict[str, set[str]]:
    known = modules()

    def resolve(name: str) -> str | None:
        while name and name not in known:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {}
    for name, path in known.items():
        tree = ast.parse(path.read_text(), str(path))
        own_packages = {name.rsplit(".", depth)[0] for depth in range(1, name.count(".") + 1)}
        edges: set[str] = set()
        for target in imported(tree, name, path.name == "__init__.py"):
            module = resolve(target)
            while module:  # importing a.b.c runs a/__init__ and a/b/__init__ first
                if module not in own_packages:
                    edges.add(module)
                module = module.rpartition(".")[0] if "." in module else ""
                module = module if module in known else ""
        edges.discard(name)
        graph[name] = edges
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for other in graph.get(node, ()):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in graph:
        if node not in index:
            visit(node)
    return found


def test_no_import_cycles() -> None:
    assert cycles(import_graph()) == []


def test_the_cycle_finder_finds_a_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c"]]


def backend_mentions(path: Path, root: Path = ROOT) -> list[str]:
    """Backend names in code: identifiers, attribute names, strings and imported modules,
    not in comments or docstrings."""
    tree = ast.parse(path.read_text(), str(path))
    docstrings = {
        id(node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
    }
    words: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            words.append((node.lineno, node.id))
        elif isinstance(node, ast.Attribute):
            words.append((node.lineno, node.attr))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            # Prose (help texts, messages) may speak of a backend; a bare word may not:
            # that is a name some code compares or looks up.
            if id(node) not in docstrings and not any(c.isspace() for c in node.value):
                words.append((node.lineno, node.value))
        elif isinstance(node, ast.ImportFrom) and node.module:
            words.append((node.lineno, node.module))
        elif isinstance(node, ast.Import | ast.ImportFrom):
            words += [(node.lineno, alias.name) for alias in node.names]
    return [
        f"{path.relative_to(root)}:{line}: {text[:60]!r}"
        for line, text in words
        if text not in API_NAMES and any(word in text.lower() for word in BACKEND_WORDS)
    ]


def test_no_backend_is_named_outside_its_folder_and_the_registry() -> None:
    offenders = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            relative = path.relative_to(ROOT).as_posix()
            if relative.startswith(BACKEND_FOLDERS) or relative in ALLOWED_TO_NAME_BACKENDS:
                continue
            offenders += backend_mentions(path)
    assert offenders == []


def test_the_backend_name_check_sees_code_but_not_docs(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text(
        '"""About meshwarp."""\n# liveportrait\nchoice = "meshwarp"\nhelp = "the meshwarp way"\n'
    )
    assert backend_mentions(sample, tmp_path) == ["sample.py:3: 'meshwarp'"]
