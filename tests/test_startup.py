"""What every cold start relies on: compiled bytecode, cached once.

A CLI run is a fresh process. Without cached .pyc files each `attn` re-compiles NumPy, Rich,
Typer and attn from source (~1 s instead of ~0.2 s), and uv installs no bytecode by default."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path

from helpers import attn

ROOT = Path(__file__).resolve().parent.parent


def test_the_entry_point_caches_bytecode_even_under_pythondontwritebytecode(tmp_path):
    cache = tmp_path / "pycache"
    done = attn("inspect", "a cat sat", "--query", "cat", "--json", env={"PYTHONDONTWRITEBYTECODE": "1", "PYTHONPYCACHEPREFIX": str(cache)})
    assert done.returncode == 0, done.stderr
    written = {p.relative_to(cache).as_posix() for p in cache.rglob("*.pyc")}
    assert any("attn_cli/compute/inspect." in p for p in written), sorted(written)[:5]
    assert any("numpy/_core/" in p for p in written)


def test_uv_is_not_asked_to_recompile_site_packages_on_every_run():
    # `compile-bytecode = true` makes every `uv run` compile all of site-packages again
    # (astral-sh/uv#12202): +0.2-0.45 s and a "Bytecode compiled" line on each run.
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert not config.get("tool", {}).get("uv", {}).get("compile-bytecode", False)


def test_no_bytecode_is_cached_under_a_file_size_limit(tmp_path):
    # CPython ignores short writes of .pyc files: under `ulimit -f` it would install truncated
    # ones, and every later import of those modules would fail ("marshal data too short").
    import resource
    import subprocess
    import sys

    cache = tmp_path / "pycache"
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "PYTHONPYCACHEPREFIX": str(cache)}
    done = subprocess.run(
        [sys.executable, "-c", "from attn_cli.cli import main; main()", "inspect", "a cat sat", "--query", "cat", "--json"],
        env=env, capture_output=True, timeout=120, preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (512, 512)),
    )
    assert done.returncode == 0, done.stderr
    assert not list(cache.rglob("*.pyc"))


def test_a_short_inspect_imports_no_thread_pool():
    # The pool is for inputs of 256+ tokens; concurrent.futures brings logging (~3 ms of each start).
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "from attn_cli.cli import main; main()", "inspect", "a cat sat", "--query", "cat", "--json"],
        capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr[-500:]
    imported = {line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines() if line.startswith("import time:")}
    assert "attn_cli.compute.inspect" in imported
    assert not imported & {"concurrent.futures", "logging"}
