"""The import structure, checked statically (as Ray's train/v2/tests/test_circular_imports.py does):
dependencies point one way, `hyena_platform` commands/cli -> jobs -> shared machinery -> `hyena`
-> torch. Reads source only; every import counts, module-level, function-level and
TYPE_CHECKING alike, because a function-level import still couples the two modules."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ROOTS = {"hyena": REPO / "hyena", "hyena_platform": REPO / "platform" / "hyena_platform"}
HEAVY = ("ray", "mlflow", "pyarrow")


def _modules() -> dict[str, Path]:
    mods = {}
    for pkg, root in ROOTS.items():
        for f in sorted(root.rglob("*.py")):
            parts = [p for p in f.relative_to(root).with_suffix("").parts if p != "__init__"]
            mods[".".join([pkg, *parts])] = f
    return mods


def _imports(name: str, path: Path) -> set[str]:
    """Every module name `name` imports (absolute, relative imports resolved)."""
    out = set()
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package[: len(package) - node.level + 1] + ([base] if base else []))
            out.add(base)
            out.update(f"{base}.{a.name}" for a in node.names)
    return out


def _internal(target: str, mods: dict[str, Path]) -> str | None:
    while target and target not in mods:
        target = target.rpartition(".")[0]
    return target or None


def _graph() -> dict[str, set[str]]:
    mods = _modules()
    return {name: {d for t in _imports(name, path) if (d := _internal(t, mods)) and d != name}
            for name, path in mods.items()}


def _is_cli(name: str) -> bool:
    return name == "hyena_platform.cli" or name.startswith("hyena_platform.commands")


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def test_the_model_library_imports_no_platform_and_no_heavy_dependency():
    mods = _modules()
    bad = sorted(f"{name} imports {t}" for name, path in mods.items() if name.startswith("hyena.")
                 or name == "hyena" for t in _imports(name, path)
                 if t.split(".")[0] in (*HEAVY, "hyena_platform"))
    assert bad == []


def test_library_modules_never_import_the_cli_layer():
    bad = sorted(f"{name} imports {dep}" for name, deps in _graph().items()
                 if name.startswith("hyena_platform") and not _is_cli(name) for dep in deps if _is_cli(dep))
    assert bad == []


def test_there_are_no_import_cycles():
    assert _cycles(_graph()) == []


def test_the_checks_see_what_they_guard():
    """The graph is real: known edges exist, and a planted cycle and upward import are found."""
    edges = _graph()
    assert "hyena.checkpoint" in edges["hyena.model"]
    assert "hyena_platform.submission" in edges["hyena_platform.train.config"]
    assert "hyena_platform.commands.common" in edges["hyena_platform.commands.pretrain"]
    planted = {k: set(v) for k, v in edges.items()}
    planted["hyena.checkpoint"].add("hyena.model")
    assert ["hyena.checkpoint", "hyena.model"] in _cycles(planted)
    assert _is_cli("hyena_platform.commands.shard") and not _is_cli("hyena_platform.data.shard_job")


def test_only_the_tracking_layer_imports_mlflow():
    mods = _modules()
    users = sorted(name for name, path in mods.items() if any(t.split(".")[0] == "mlflow" for t in _imports(name, path)))
    assert users == ["hyena_platform.tracking"]


def test_commands_never_import_the_cli_module():
    """cli.py imports every command (by name, through importlib): a command importing it back
    would be a cycle the import statements alone do not show."""
    bad = sorted(name for name, deps in _graph().items()
                 if name.startswith("hyena_platform.commands") and "hyena_platform.cli" in deps)
    assert bad == []
