"""Imports point down only (README "Layout"): every import of the source tree, top-level or inside a function.

Order, lowest first (a module may import its own layer or any layer below, never above):
compression < profiling.{paths, filelock, settings, schema} < profiling.{inputs, measure, store}
< profiling.{jobs, report} < profiling.cli < dashboard < pages, app.py. Nothing below dashboard imports streamlit.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# (module prefix, layer); the longest matching prefix wins.
LAYERS: dict[str, int] = {
    "compression": 0,
    "profiling": 1,  # the package itself (profiling/__init__.py, __main__.py) and its bottom modules
    "profiling.paths": 1,
    "profiling.filelock": 1,
    "profiling.settings": 1,
    "profiling.schema": 1,
    "profiling.inputs": 2,
    "profiling.measure": 2,
    "profiling.store": 2,
    "profiling.jobs": 3,
    "profiling.report": 3,
    "profiling.cli": 4,
    "profiling.__main__": 4,  # `python -m profiling` runs the CLI
    "dashboard": 5,
    "pages": 6,
    "app": 6,
}
LAYER_NAMES = {
    0: "compression",
    1: "profiling.{paths, filelock, settings, schema}",
    2: "profiling.{inputs, measure, store}",
    3: "profiling.{jobs, report}",
    4: "profiling.cli",
    5: "dashboard",
    6: "pages/app.py",
}
STREAMLIT_FROM = LAYERS["dashboard"]
SOURCES = ("compression", "profiling", "dashboard", "pages", "app.py")


def layer_of(module: str) -> int | None:
    best = None
    for prefix, layer in LAYERS.items():
        if (module == prefix or module.startswith(prefix + ".")) and (best is None or len(prefix) > len(best[0])):
            best = (prefix, layer)
    return None if best is None else best[1]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def source_files() -> list[Path]:
    out = []
    for name in SOURCES:
        p = ROOT / name
        out.extend([p] if p.is_file() else sorted(q for q in p.rglob("*.py") if "__pycache__" not in q.parts))
    return out


def imported_modules(tree: ast.AST, module: str, is_package: bool) -> list[tuple[int, str, str]]:
    """(line, imported module, source text of the statement) for every import in the tree, nested ones too."""
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                out.append((node.lineno, alias.name, f"import {alias.name}"))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".") if is_package else module.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)] if node.level > 1 else base
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            names = ", ".join(a.name for a in node.names)
            text = f"from {'.' * node.level}{node.module or ''} import {names}"
            # `from profiling import jobs` (or `from . import x`) may name submodules: check each name as one
            if node.module is None or target == "profiling":
                for alias in node.names:
                    out.append((node.lineno, f"{target}.{alias.name}", text))
            else:
                out.append((node.lineno, target, text))
    return out


def violations() -> list[str]:
    found = []
    for path in source_files():
        module = module_name(path)
        own = layer_of(module)
        assert own is not None, f"{path} is in no layer of LAYERS: add it"
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        rel = path.relative_to(ROOT)
        for line, target, text in imported_modules(tree, module, path.name == "__init__.py"):
            if target.split(".")[0] == "streamlit" and own < STREAMLIT_FROM:
                found.append(f"{rel}:{line}: `{text}`: streamlit below dashboard (layer {LAYER_NAMES[own]})")
                continue
            theirs = layer_of(target)
            if theirs is not None and theirs > own:
                found.append(
                    f"{rel}:{line}: `{text}`: {LAYER_NAMES[own]} imports {target} from the higher layer "
                    f"{LAYER_NAMES[theirs]}"
                )
    return found


def test_imports_point_down_only():
    found = violations()
    assert not found, (
        f"{len(found)} import(s) point up the layer order "
        "(compression < profiling.{paths, filelock, settings, schema} < profiling.{inputs, measure, store} "
        "< profiling.{jobs, report} < profiling.cli < dashboard < pages/app.py; see README 'Layout'). "
        "Move the code down, or pass what it needs in as an argument:\n  " + "\n  ".join(found)
    )


def test_the_checker_sees_nested_and_relative_imports():
    tree = ast.parse("def f():\n    from ..jobs import runner\n    import dashboard.state\n")
    found = imported_modules(tree, "profiling.measure.child", is_package=False)
    targets = [t for _, t, _ in found]
    assert sorted(targets) == ["dashboard.state", "profiling.jobs"]
    assert layer_of("profiling.jobs.runner") == 3
    assert layer_of("profiling.settings") == 1
    assert layer_of("profiling") == 1
    assert layer_of("json") is None
