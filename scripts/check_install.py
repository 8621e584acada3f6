"""Install attn as users do, each way into fresh temporary folders, and check each install.

    python3 scripts/check_install.py                 # pip, uv tool and pipx
    python3 scripts/check_install.py --methods pip   # one of them
    python3 scripts/check_install.py --json          # the measurements as JSON on stdout

For each of `pip install .` (a fresh venv), `uv tool install .` (UV_TOOL_DIR and UV_TOOL_BIN_DIR
in a temporary folder) and `pipx install .` (pipx itself pip-installed into a temporary venv, with
PIPX_HOME and PIPX_BIN_DIR there too), it runs the installed `attn inspect` on the bundled model
and checks that its JSON equals the uv project's (`uv run attn …` here, the checkout's .venv),
every number the same but the model's path; that the bundled model is read from inside the
install (the wheel carries it); that neither torch nor transformers nor sentence-transformers is
installed; and that the install is under 400 MB. Needs the network for PyPI (the dependencies,
and pipx); nothing from Hugging Face. Exits 1 naming what failed. tests/test_install.py runs it
when ATTN_TEST_INSTALL=1.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TEXT = "The Transformer is making it possible to understand language."
ARGS = ["inspect", TEXT, "-q", "making", "--json"]
LIMIT_MB = 400
HEAVY = ("torch", "transformers", "sentence_transformers", "triton", "nvidia")
METHODS = ("pip", "uv-tool", "pipx")


def uv() -> list[str]:
    return ["uv"] if shutil.which("uv") else [sys.executable, "-m", "uv"]


def run(cmd: list[str], env: dict | None = None) -> str:
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.exit(f"check_install: `{' '.join(map(str, cmd[:4]))} …` failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return done.stdout


def size_mb(folder: Path) -> float:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and not p.is_symlink()) / 1e6


def site_packages(venv: Path) -> Path:
    return next(venv.glob("lib/python3*/site-packages"))


def install_pip(tmp: Path) -> tuple[Path, Path]:
    venv = tmp / "venv"
    run([sys.executable, "-m", "venv", str(venv)])
    run([str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", str(ROOT)])
    return venv, venv / "bin" / "attn"


def install_uv_tool(tmp: Path) -> tuple[Path, Path]:
    env = dict(os.environ, UV_TOOL_DIR=str(tmp / "tools"), UV_TOOL_BIN_DIR=str(tmp / "bin"))
    run([*uv(), "tool", "install", "--quiet", str(ROOT)], env)
    return tmp / "tools" / "attn-cli", tmp / "bin" / "attn"


def install_pipx(tmp: Path) -> tuple[Path, Path]:
    helper = tmp / "pipx-venv"  # pipx itself lives apart, so that only attn's venv is measured
    run([sys.executable, "-m", "venv", str(helper)])
    run([str(helper / "bin" / "python"), "-m", "pip", "install", "--quiet", "pipx"])
    env = dict(os.environ, PIPX_HOME=str(tmp / "pipx"), PIPX_BIN_DIR=str(tmp / "bin"), PIPX_MAN_DIR=str(tmp / "man"))
    run([str(helper / "bin" / "pipx"), "install", "--quiet", str(ROOT)], env)
    return tmp / "pipx" / "venvs" / "attn-cli", tmp / "bin" / "attn"


INSTALL = {"pip": install_pip, "uv-tool": install_uv_tool, "pipx": install_pipx}


def without_path(result: dict) -> dict:
    return {**result, "model": {k: v for k, v in result["model"].items() if k != "path"}}


def check(method: str, reference: dict) -> dict:
    with tempfile.TemporaryDirectory(prefix=f"attn-install-{method}-") as name:
        tmp = Path(name)
        start = time.perf_counter()
        venv, attn = INSTALL[method](tmp)
        installed_s = time.perf_counter() - start
        start = time.perf_counter()
        result = json.loads(run([str(attn), *ARGS], dict(os.environ, ATTN_CACHE=str(tmp / "cache"))))
        first_run_s = time.perf_counter() - start
        packages = site_packages(venv)
        heavy = sorted(p.name for p in packages.iterdir() if p.name.split("-")[0].lower() in HEAVY)
        biggest = sorted(((size_mb(p), p.name) for p in packages.iterdir() if p.is_dir()), reverse=True)[:5]
        found = {
            "method": method,
            "install_s": round(installed_s, 1),
            "first_run_s": round(first_run_s, 2),
            "size_mb": round(size_mb(venv), 1),
            "biggest_mb": {n: round(s, 1) for s, n in biggest},
            "heavy": heavy,
            "model_inside": Path(result["model"]["path"]).resolve().is_relative_to(venv.resolve()),
            "same_json": without_path(result) == without_path(reference),
        }
    found["ok"] = found["same_json"] and found["model_inside"] and not heavy and found["size_mb"] < LIMIT_MB
    return found


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS))
    ap.add_argument("--json", action="store_true", help="print the measurements as JSON")
    args = ap.parse_args()
    reference = json.loads(run([*uv(), "run", "--project", str(ROOT), "attn", *ARGS]))
    results = []
    for method in args.methods:
        print(f"check_install: {method} …", file=sys.stderr)
        results.append(check(method, reference))
        r = results[-1]
        print(
            f"check_install: {method}: {'ok' if r['ok'] else 'FAILED'} · {r['size_mb']} MB · install {r['install_s']} s · "
            f"first run {r['first_run_s']} s · same JSON {r['same_json']} · model inside {r['model_inside']} · heavy {r['heavy'] or 'none'}",
            file=sys.stderr,
        )
    if args.json:
        print(json.dumps(results, indent=1))
    sys.exit(0 if all(r["ok"] for r in results) else 1)


if __name__ == "__main__":
    main()
