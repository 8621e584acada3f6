"""Benchmark of `attn explore`: start to first paint, and key press to redrawn screen.

Run from the repo root:

    uv run python benchmarks/bench_explore.py [--runs 7] [--presses 60] [--markdown PATH]

First paint: a fresh `attn explore` process on a pseudo-terminal of 80×24, timed from fork to
the moment its first full screen has been written (the pinned line "Top-attended" appears on
the terminal: the first frame, drawn before Textual loads), then sent → and timed to the screen
that answers it (Textual running), then sent `q`. The reference is the cold `attn inspect` of the same text (a
fresh process, stdout to /dev/null), measured interleaved in the same run, so that machine
load hits both alike. Texts: the README's sentence on the bundled MiniLM, and a 500-token text
(read from stdin, as `attn explore - < file`, so the keys then come from the terminal).

Redraw: in one process, the app driven by Textual's Pilot at 80×24; for each key press the time
from sending it (`pilot.press`) to the next screen Textual composes (its refresh timer runs at
most 60 times a second, so this includes up to ~17 ms of waiting for the tick), per key: its
first press (the view computed for the first time), and the median over `--presses` presses
of ← → ↑ ↓ ] [ and of the view keys a s n w g (each twice: open, back); beside each, the CPU
time of the redraw and of Textual's layout and composition of the next screen, which a loaded
machine stretches far less than the wall time.

Targets (printed as PASS/MISS; never an exit status): first paint ≤ 1.5 × cold inspect;
every key ≤ 30 ms, its median and its first press. This is a benchmark, not a test.
"""

from __future__ import annotations

import argparse
import asyncio
import fcntl
import os
import pty
import select
import statistics
import struct
import sys
import tempfile
import termios
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import find_attn, loadavg, machine_info, md_table, plain_table, run_process  # noqa: E402
from scale_long512 import long_text  # noqa: E402

SENTENCE = "The Transformer is making it possible to understand language."
TARGET_FIRST_PAINT = 1.5
TARGET_REDRAW_MS = 30.0
MARKER = b"Top-attended"
ANSWERED = b"(token 6)"  # the header once → has moved the query from token 5
KEYS = ["right", "left", "up", "down", "right_square_bracket", "left_square_bracket"]
VIEW_KEYS = ["a", "a", "s", "s", "n", "n", "w", "w", "g", "g"]
NAMES = {"right": "→", "left": "←", "up": "↑", "down": "↓", "right_square_bracket": "]", "left_square_bracket": "["}


def first_paint(argv: list[str], stdin: Path | None, cols: int = 80, rows: int = 24, timeout: float = 60.0) -> tuple[float, float]:
    """Seconds from fork to the first full screen of `argv` on a fresh pseudo-terminal, and to
    the screen that answers a first key (→, sent as soon as the first screen is there: the query
    moves from token 5 to token 6), which needs Textual loaded and running."""
    env = dict(os.environ, TERM="xterm-256color")
    env.pop("NO_COLOR", None)
    start = time.perf_counter()
    pid, fd = pty.fork()
    if pid == 0:  # the child: size the terminal, take the text on stdin if any, become attn
        fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        if stdin is not None:
            os.dup2(os.open(stdin, os.O_RDONLY), 0)
        os.execve(argv[0], argv, env)
    seen, painted, answered = b"", None, None
    try:
        while time.perf_counter() - start < timeout:
            ready, _, _ = select.select([fd], [], [], 0.5)
            if not ready:
                continue
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                break
            if not chunk:
                break
            seen += chunk
            if painted is None and MARKER in seen:
                painted = time.perf_counter() - start
                seen = seen[seen.index(MARKER):]
                os.write(fd, b"\x1b[C")
            elif painted is not None and answered is None and ANSWERED in seen:
                answered = time.perf_counter() - start
                os.write(fd, b"q")
        _, status = os.waitpid(pid, 0)
    finally:
        os.close(fd)
    if answered is None or os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"attn explore did not paint, answer → or exit cleanly: {seen[-400:]!r}")
    return painted, answered


async def _redraws(text: str, presses: int) -> dict[str, list[float]]:
    """Seconds from each key press to the next composed screen, per key (its first press: the
    view computed for the first time; then its repeats), over `presses` presses of the moves,
    then of the view keys (each twice: open, then back), then `r` once."""
    from textual.screen import Screen

    from attn_cli.compute.explore import trace_text
    from attn_cli.loading.model import load_model
    from attn_cli.views.explorer.app import Explorer
    from attn_cli.views.explorer.state import View

    traced = trace_text(load_model(), text)
    # Layer L-2, head 1, token 5: every key of KEYS moves (↑ to the last layer and ↓ back, …).
    app = Explorer(traced, View(layer=traced.model.spec.layers - 2, head=1, query=None, query_index=5, last_head=1))
    times: dict[str, list[float]] = {}
    shown = [0.0]  # when the screen was last composed (headless: composed, not written out)
    display = app._display

    def spy(screen, renderable) -> None:
        display(screen, renderable)
        shown[0] = time.perf_counter()

    app._display = spy
    work = [0.0]  # CPU seconds spent redrawing: our redraw, then Textual's layout and composition

    patched = []

    def timed(owner, name: str) -> None:
        method = getattr(owner, name)
        patched.append((owner, name, method))

        def run(*args, **kwargs):
            t = time.thread_time()
            try:
                return method(*args, **kwargs)
            finally:
                work[0] += time.thread_time() - t

        setattr(owner, name, run)

    timed(app, "redraw")
    timed(Screen, "_refresh_layout")
    timed(Screen, "_compositor_refresh")
    keys = [KEYS[n % len(KEYS)] for n in range(presses)] + [VIEW_KEYS[n % len(VIEW_KEYS)] for n in range(presses)] + ["r"]
    try:
        await _press(app, keys, times, shown, work)
    finally:
        for owner, name, method in patched:
            setattr(owner, name, method)
    return times


async def _press(app, keys: list[str], times: dict, shown: list[float], work: list[float]) -> None:
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        await asyncio.sleep(0.5)  # Textual settled after its start
        for key in keys:
            # From sending the key to the next composed screen, as Textual's own refresh timer
            # produces it (at most 60 per second), without Pilot's extra waits.
            t0, work[0] = time.perf_counter(), 0.0
            await pilot.press(key)
            handled = time.perf_counter()
            while shown[0] < handled and time.perf_counter() - handled < 2.0:
                await asyncio.sleep(0.0005)
            await pilot.pause()  # settle before the next key
            cpu = work[0]  # CPU time of the redraw and the composition: what load does not stretch
            pressed = f"first {key}" if f"first {key}" not in times else key
            times.setdefault(pressed, []).append(shown[0] - t0)
            times.setdefault(f"cpu {pressed}", []).append(cpu)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--presses", type=int, default=60)
    parser.add_argument("--markdown", type=Path)
    args = parser.parse_args()
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    load_start = loadavg()
    attn = str(find_attn())
    long, n_long = long_text(500)
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as f:
        f.write(long)
    long_file = Path(f.name)
    cases = [
        ("sentence (13 tokens)", [attn, "inspect", SENTENCE, "-q", "making"], None, [attn, "explore", SENTENCE, "-q", "making"], None),
        (f"{n_long}-token text", [attn, "inspect", "-", "-i", "5"], long_file, [attn, "explore", "-", "-i", "5"], long_file),
    ]
    rows, verdicts = [], []
    try:
        for _ in range(2 if args.runs else 0):  # warm the file cache
            for _, inspect_argv, inspect_in, explore_argv, explore_in in cases:
                run_process(inspect_argv, stdin=inspect_in)
                first_paint(explore_argv, explore_in)
        measured = {name: ([], [], []) for name, *_ in cases}
        for r in range(args.runs):  # interleaved, the order alternating
            for name, inspect_argv, inspect_in, explore_argv, explore_in in cases[:: 1 if r % 2 else -1]:
                cold = run_process(inspect_argv, stdin=inspect_in)
                if cold.status != 0:
                    raise SystemExit(f"attn inspect failed: {cold.stderr[-400:]!r}")
                measured[name][0].append(cold.wall)
                painted, answered = first_paint(explore_argv, explore_in)
                measured[name][1].append(painted)
                measured[name][2].append(answered)
        for name, (cold, paint, answer) in measured.items() if args.runs else ():  # --runs 0: the keys only
            cold_ms = f"{statistics.median(cold) * 1000:,.0f} ms"
            ratio = statistics.median(paint) / statistics.median(cold)
            rows.append([f"first paint, {name}", f"{statistics.median(paint) * 1000:,.0f} ms", cold_ms, f"{ratio:.2f}×"])
            later = statistics.median(answer) / statistics.median(cold)
            rows.append([f"first key (→) answered, {name}", f"{statistics.median(answer) * 1000:,.0f} ms", cold_ms, f"{later:.2f}×"])
            verdict = "PASS" if ratio <= TARGET_FIRST_PAINT else "MISS"
            verdicts.append((f"first paint / cold inspect, {name}", f"{ratio:.2f}×", f"≤ {TARGET_FIRST_PAINT}×", verdict))
        for name, text in (("sentence (13 tokens)", SENTENCE), (f"{n_long}-token text", long)):
            times = asyncio.run(_redraws(text, args.presses))
            for key in KEYS + VIEW_KEYS[::2]:
                again = statistics.median(times[key]) * 1000
                first = times[f"first {key}"][0] * 1000
                cpu = f"{statistics.median(times[f'cpu {key}']) * 1000:.1f} / {times[f'cpu first {key}'][0] * 1000:.1f} ms CPU"
                label, got = f"key {NAMES.get(key, key)}, {name}", f"{again:.1f} / {first:.1f} ms"
                rows.append([f"{label}: median / first press", f"{got} ({cpu})", "—", "—"])
                verdict = "PASS" if max(again, first) <= TARGET_REDRAW_MS else "MISS"
                verdicts.append((f"{label} (median / first)", got, f"≤ {TARGET_REDRAW_MS:.0f} ms", verdict))
            rows.append([f"first rollout r (every layer's mean map), {name}", f"{times['first r'][0] * 1000:.1f} ms", "—", "—"])
    finally:
        long_file.unlink()
    header = ["measurement", "attn explore", "cold attn inspect", "ratio"]
    print("\n".join(plain_table(header, rows)))
    print()
    for what, got, target, verdict in verdicts:
        print(f"{verdict}  {what}: {got} (target {target})")
    info = machine_info({}, load_start, [("runs", f"{args.runs} cold runs each, {args.presses} presses per kind")])
    print()
    for k, v in info:
        print(f"{k}: {v}")
    if args.markdown:
        lines = md_table(header, rows) + [""] + [f"- {v}: {w} = {g} (target {t})" for w, g, t, v in verdicts] + [""]
        lines += [f"- {k}: {v}" for k, v in info]
        args.markdown.write_text("\n".join(lines) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
