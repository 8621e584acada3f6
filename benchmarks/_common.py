"""Helpers shared by the benchmarks in this folder (not a benchmark itself).

- `run_process`: one child process, timed around Popen … os.wait4, with the child's own peak
  RSS (`ru_maxrss` from wait4, which Linux carries over from the forking parent: a peak at or
  under the parent's RSS may be the parent's, and `run_process` says so on stderr); optionally a time limit and a guard that stops the child
  before it exhausts the machine's memory.
- `refenv_python`: the reference env (torch + transformers) and its versions.
- `machine_info`, `loadavg`, `quartiles`, `md_table`: the machine notes and report pieces.

Scripts in this folder import it as `_common` (run as `python benchmarks/NAME.py`, the folder
is on sys.path).
"""

from __future__ import annotations

import datetime as _dt
import importlib.metadata
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# The default model's files, shipped inside attn: the reference env's transformers reads the same folder.
BUNDLED_MODEL = ROOT / "attn_cli" / "bundled" / "all-MiniLM-L6-v2"

REFENV_PROBE = """
import importlib.metadata as md, json
print(json.dumps({
    "torch": md.version("torch"),
    "transformers": md.version("transformers"),
}))
"""


# ---------------------------------------------------------------------------------------------
# Running a child process


@dataclass
class Run:
    wall: float  # seconds, Popen … wait4
    maxrss_kib: int  # the child's own peak RSS (ru_maxrss, KiB on Linux)
    status: int  # exit code; negative: killed by that signal
    stdout: bytes
    stderr: bytes
    stopped: str | None = None  # why we stopped the child ("timeout …", "memory guard …"), else None
    cpu: float = 0.0  # seconds of CPU, user + system, of the child and the children it waited for (wait4's rusage)
    floor_kib: int = 0  # the parent's RSS when it forked the child: ru_maxrss is never below it

    @property
    def maxrss_known(self) -> bool:
        """Whether maxrss_kib is the child's: Linux keeps the forking parent's RSS as the start of
        the child's ru_maxrss (across exec), so a figure at or under it may be the parent's."""
        return self.maxrss_kib > self.floor_kib * 1.02

    @property
    def maxrss_mib(self) -> float:
        return self.maxrss_kib / 1024


def _raise_oom_score() -> None:
    """In the child, before exec: if the kernel must kill something for memory, kill this."""
    try:
        Path("/proc/self/oom_score_adj").write_text("1000")
    except OSError:
        pass


def own_rss_kib() -> int:
    """This process's resident memory now (VmRSS, KiB), 0 where /proc cannot say."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def mem_available_mib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def run_process(
    argv: list[str],
    env: dict[str, str] | None = None,
    capture: bool = False,
    stdin: str | Path | None = None,
    timeout: float | None = None,
    min_available_mib: float | None = None,
) -> Run:
    """Run one fresh process: wall time around Popen … os.wait4 and the child's own peak RSS.

    stdout goes to /dev/null unless `capture`; stderr to a temp file (never a pipe, which a
    chatty child could fill and block on while we sit in wait4); stdin from the file `stdin`,
    else /dev/null.

    `timeout` (seconds) and `min_available_mib` make us poll instead of blocking in wait4: the
    child is killed (SIGKILL, by its pid) when it runs past the timeout, or when the machine's
    MemAvailable drops below `min_available_mib` (so that a reference run that needs more memory
    than the machine has stops cleanly instead of pushing other people's processes into the OOM
    killer). With either set, the child's oom_score_adj is raised to 1000 so that, if the kernel
    has to kill something anyway, it is this child. `Run.stopped` says why we stopped it.
    """
    guarded = timeout is not None or min_available_mib is not None
    with tempfile.TemporaryFile() as err, tempfile.TemporaryFile() as out:
        stdin_file = open(stdin, "rb") if stdin is not None else subprocess.DEVNULL  # noqa: SIM115
        floor = own_rss_kib()
        try:
            start = time.perf_counter()
            proc = subprocess.Popen(
                argv,
                stdin=stdin_file,
                stdout=out if capture else subprocess.DEVNULL,
                stderr=err,
                env=env,
                preexec_fn=_raise_oom_score if guarded else None,
            )
            stopped = None
            if not guarded:
                _, status, usage = os.wait4(proc.pid, 0)
            else:
                while True:
                    pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
                    if pid:
                        break
                    if timeout is not None and time.perf_counter() - start > timeout and stopped is None:
                        stopped = f"timeout: still running after {timeout:.0f} s"
                        os.kill(proc.pid, signal.SIGKILL)
                    if min_available_mib is not None and stopped is None:
                        avail = mem_available_mib()
                        if avail is not None and avail < min_available_mib:
                            stopped = f"memory guard: the machine's MemAvailable fell to {avail:.0f} MiB (< {min_available_mib:.0f} MiB)"
                            os.kill(proc.pid, signal.SIGKILL)
                    time.sleep(0.02)
            wall = time.perf_counter() - start
        finally:
            if stdin is not None:
                stdin_file.close()
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped by wait4: tell Popen
        err.seek(0)
        out.seek(0)
        cpu = usage.ru_utime + usage.ru_stime
        run = Run(wall, usage.ru_maxrss, proc.returncode, out.read() if capture else b"", err.read(), stopped, cpu, floor)
        if not run.maxrss_known:
            print(
                f"note: {Path(argv[0]).name}'s peak RSS ({run.maxrss_mib:.0f} MiB) is not above this script's own ({floor / 1024:.0f} MiB),"
                " from which Linux starts it: it may be this script's; import less in the benchmark's parent",
                file=sys.stderr,
            )
        return run


def failure_tail(run: Run, lines: int = 5) -> str:
    tail = run.stderr.decode(errors="replace").strip().splitlines()[-lines:]
    return "\n  ".join(tail)


def last_json_line(data: bytes) -> dict:
    """The last line of a child's stdout, parsed as JSON (children print their result last)."""
    return json.loads(data.decode().strip().splitlines()[-1])


# ---------------------------------------------------------------------------------------------
# Environments


def find_attn() -> Path:
    attn = Path(sys.executable).parent / "attn"
    if not attn.exists():
        sys.exit(f"bench: no attn script next to {sys.executable}; run `uv sync` and use `uv run python …`")
    return attn


def refenv_python(notes: list[str]) -> tuple[Path | None, dict]:
    """The reference env's python and its versions, or None (with a note) if it is unusable.

    The env is $ATTN_REFENV, else `.refenv` in the repo root (made by `bash scripts/refenv.sh`)."""
    where = os.environ.get("ATTN_REFENV") or ".refenv"
    base = Path(where).expanduser()
    if not base.is_absolute():
        base = ROOT / base
    python = base / "bin" / "python"
    if not python.exists():
        notes.append(f"transformers reference skipped: no reference env at {base} (create it with `bash scripts/refenv.sh`, or point $ATTN_REFENV at one).")
        return None, {}
    probe = subprocess.run([str(python), "-c", REFENV_PROBE], check=False, capture_output=True, text=True)
    try:
        info = json.loads(probe.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        info = None
    if probe.returncode != 0 or not info:
        detail = (probe.stderr.strip().splitlines() or ["no versions printed"])[-1]
        notes.append(f"transformers reference skipped: the reference env at {base} is incomplete ({detail}); re-run `bash scripts/refenv.sh`.")
        return None, {}
    return python, info


def offline_env(**extra: str) -> dict[str, str]:
    """This process's environment, with the Hugging Face libraries kept off the network."""
    return dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", **extra)


# ---------------------------------------------------------------------------------------------
# Reporting


def quartiles(values: list[float]) -> tuple[float, float]:
    if len(values) < 2:
        return values[0], values[0]
    q1, _, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return q1, q3


def loadavg() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"


def version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def git_commit() -> str:
    try:
        commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], check=False, capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"], check=False, capture_output=True, text=True
        ).stdout.strip()
        return (commit + (" (with uncommitted changes)" if dirty else "")) or "unknown"
    except OSError:
        return "unknown"


def machine_info(ref_info: dict, load_start: str, extra: list[tuple[str, str]] | None = None) -> list[tuple[str, str]]:
    """(name, value) pairs describing the machine, the environments and the load."""
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    os_name = platform.platform()
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                os_name = f"{line.split('=', 1)[1].strip(chr(34))} (kernel {platform.release()}, {platform.machine()})"
    except OSError:
        pass
    mem = "unknown"
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
                break
    except (OSError, ValueError):
        pass
    info = [
        ("date", _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC")),
        ("CPU", cpu),
        ("cores (os.cpu_count())", str(os.cpu_count())),
        ("memory (MemTotal)", mem),
        ("OS", os_name),
        ("Python", f"{platform.python_implementation()} {platform.python_version()} ({sys.executable})"),
        ("numpy", version("numpy")),
        (
            "tokenizers / rich / typer / safetensors",
            " / ".join(version(d) for d in ("tokenizers", "rich", "typer", "safetensors")),
        ),
        ("attn", f"{version('attn-cli')}, commit {git_commit()}"),
    ]
    if ref_info:
        info.append(("reference env", f"torch {ref_info['torch']}, transformers {ref_info['transformers']}"))
    info += extra or []
    info.append(("load average (1/5/15 min) at start → end", f"{load_start} → {loadavg()}"))
    pydwb = os.environ.get("PYTHONDONTWRITEBYTECODE")
    info.append(
        (
            "PYTHONDONTWRITEBYTECODE",
            f"{pydwb!r} (set: Python writes no .pyc by itself; attn's entry point caches bytecode anyway, see docs/speed.md)"
            if pydwb is not None
            else "not set",
        )
    )
    return info


def md_table(header: list[str], rows: list[list[str]], align: str | None = None) -> list[str]:
    """A Markdown table; `align` has one letter per column, l or r (default: first l, rest r)."""
    align = align or "l" + "r" * (len(header) - 1)
    sep = ["---:" if a == "r" else "---" for a in align]
    return ["| " + " | ".join(header) + " |", "| " + " | ".join(sep) + " |"] + ["| " + " | ".join(r) + " |" for r in rows]


def plain_table(header: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows)]
    line = lambda cells: "  ".join(f"{c:<{w}}" if i == 0 else f"{c:>{w}}" for i, (c, w) in enumerate(zip(cells, widths)))
    return [line(header), "-" * (sum(widths) + 2 * (len(widths) - 1))] + [line(r) for r in rows]
