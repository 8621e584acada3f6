"""The package's layers import one way: maths → models → loading → compute → views → api/cli.

Each module may import from its own layer and the layers before it, never after; the math imports
nothing of ours; only the CLI knows Typer, and only views and the CLI know Rich. Lazy imports
inside functions count too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "attn_cli"
# Rank of each layer; a module may import modules of equal or lower rank.
LAYERS = {"errors": 0, "exit_status": 0, "records": 0, "maths": 1, "models": 2, "loading": 3, "compute": 4, "views": 5, "api": 6, "cli": 7}


def modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if p != PACKAGE / "__init__.py")


def layer_of(module: str) -> str:
    """attn_cli.loading.model -> "loading"; attn_cli.errors -> "errors"."""
    return module.split(".")[1] if "." in module else "errors"  # attn_cli itself: __version__


def imports_of(path: Path) -> set[str]:
    """Absolute names of everything `path` imports (relative imports resolved)."""
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    package = parts[:-1]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
                for alias in node.names:  # `from . import x`: x may be a module or a name
                    found.add(f"{target}.{alias.name}" if is_module(f"{target}.{alias.name}") else target)
            else:
                found.add(node.module or "")
    return found


def is_module(name: str) -> bool:
    path = PACKAGE.parent.joinpath(*name.split("."))
    return path.is_dir() or path.with_suffix(".py").is_file()


def ours(names: set[str]) -> set[str]:
    return {n for n in names if n == "attn_cli" or n.startswith("attn_cli.")}


def test_every_module_belongs_to_a_layer():
    assert {layer_of("attn_cli." + ".".join(p.relative_to(PACKAGE).with_suffix("").parts)) for p in modules()} <= set(LAYERS)


@pytest.mark.parametrize("path", modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_flow_one_way(path: Path):
    me = layer_of("attn_cli." + ".".join(path.relative_to(PACKAGE).with_suffix("").parts))
    upward = sorted(n for n in ours(imports_of(path)) if LAYERS[layer_of(n)] > LAYERS[me])
    assert not upward, f"{me} must not import {upward}"


@pytest.mark.parametrize("path", sorted((PACKAGE / "maths").rglob("*.py")), ids=lambda p: p.name)
def test_the_math_imports_nothing_of_ours(path: Path):
    assert not ours(imports_of(path)) and not any(n.startswith(("rich", "typer", "tokenizers")) for n in imports_of(path))


@pytest.mark.parametrize("path", modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_only_the_cli_knows_typer_and_only_views_know_rich(path: Path):
    me = layer_of("attn_cli." + ".".join(path.relative_to(PACKAGE).with_suffix("").parts))
    names = imports_of(path)
    if me != "cli":
        assert not any(n == "typer" or n.startswith("typer.") or n.startswith("click") for n in names)
    if me not in ("views", "cli"):
        assert not any(n == "rich" or n.startswith("rich.") for n in names)


def test_the_resolver_sees_relative_and_lazy_imports(tmp_path):
    """The checks above are only as good as `imports_of`: it must see an upward import made
    lazily inside a function, relative at any depth."""
    fake = PACKAGE / "models" / "_probe_for_layout_test.py"
    fake.write_text("def f():\n    from ..views.plot import write_heatmap\n    from .. import api\n", encoding="utf-8")
    try:
        assert {"attn_cli.views.plot", "attn_cli.api"} <= imports_of(fake)
    finally:
        fake.unlink()
