"""Where attn's output goes and how it stops, as real processes: pipes that close, stdout closed
or full, encodings that cannot hold the text, a terminal on stderr only, signals, and batch
workers whose parent is killed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

TINY = Path(__file__).parent / "fixtures" / "tiny"
BERT = str(TINY / "bert")
ENTRY = [sys.executable, "-c", "from attn_cli.cli import main; main()"]
SENTENCE = "The cat sat on the mat."

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="uses /proc, /dev/full and prctl")


def _process(*args: str, **kwargs) -> subprocess.Popen:
    return subprocess.Popen([*ENTRY, *args], **kwargs)


def test_a_reader_that_stops_early_gets_the_quiet_exit_of_coreutils():
    # `attn … | head -1`, with a reader that is gone before attn writes.
    head = subprocess.Popen([sys.executable, "-c", "pass"], stdin=subprocess.PIPE)
    head.wait(timeout=10)
    args = ["inspect", SENTENCE, "-q", "cat", "--json", "-m", BERT]
    run = _process(*args, stdout=head.stdin, stderr=subprocess.PIPE)
    head.stdin.close()
    _, err = run.communicate(timeout=60)
    assert run.returncode == 141
    assert err == b""  # no "Exception ignored … BrokenPipeError"


def test_help_into_a_closed_pipe_is_the_same_quiet_exit():
    head = subprocess.Popen([sys.executable, "-c", "pass"], stdin=subprocess.PIPE)
    head.wait(timeout=10)
    run = _process("inspect", "--help", stdout=head.stdin, stderr=subprocess.PIPE)
    head.stdin.close()
    _, err = run.communicate(timeout=60)
    assert (run.returncode, err) == (141, b"")


def test_a_closed_stdout_is_an_output_failure_not_silent_success():
    run = subprocess.run([*ENTRY, "inspect", SENTENCE, "-q", "cat", "-m", BERT], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                         preexec_fn=lambda: os.close(1), timeout=60)
    assert run.returncode == 7
    assert run.stderr.startswith("attn: error: cannot write the output: stdout is closed — ")


@linux_only
@pytest.mark.parametrize("args", [["inspect", SENTENCE, "-q", "cat"], ["inspect", SENTENCE, "-q", "cat", "--json"], ["--help"]])
def test_a_full_disk_is_one_line_and_exit_7(args):
    with open("/dev/full", "w") as full:
        run = subprocess.run([*ENTRY, *args, *(["-m", BERT] if args[0] != "--help" else [])], stdout=full, stderr=subprocess.PIPE, text=True, timeout=60)
    assert run.returncode == 7
    assert run.stderr.count("\n") == 1 and "the disk is full" in run.stderr


def test_a_file_size_limit_is_an_output_failure_and_leaves_no_half_file(tmp_path):
    import resource

    out = tmp_path / "out.json"

    def limit():
        resource.setrlimit(resource.RLIMIT_FSIZE, (1000, 1000))

    with out.open("w") as f:
        run = subprocess.run([*ENTRY, "inspect", SENTENCE, "-q", "cat", "--json", "-m", BERT], stdout=f, stderr=subprocess.PIPE, text=True,
                             preexec_fn=limit, timeout=60)
    assert run.returncode == 7
    assert "file size limit" in run.stderr
    assert out.stat().st_size == 1000  # what the limit let through: the kernel's doing, reported

@pytest.mark.parametrize("encoding", ["ascii", "latin-1"])
def test_an_encoding_that_cannot_hold_the_text_gets_escapes_and_valid_json(encoding):
    def run(*args):
        return subprocess.run([*ENTRY, *args, "-m", BERT], capture_output=True, encoding=encoding, env={**os.environ, "PYTHONIOENCODING": encoding}, timeout=60)

    table = run("inspect", "Le café coûte 3 €.", "-q", "café")
    assert table.returncode == 0, table.stderr
    assert "Layer 1 of 0\\u20131" in table.stdout  # an en dash, in neither encoding: escaped, not a crash
    doc = run("inspect", "Le café coûte 3 €.", "-q", "café", "--json")
    assert doc.returncode == 0
    assert json.loads(doc.stdout)["text"] == "Le café coûte 3 €."
    error = run("inspect", "Le café coûte 3 €.", "-q", "thé", "--json")
    assert error.returncode == 3
    assert json.loads(error.stderr)["error"]["candidates"][-2] == "€"


def test_batch_writes_its_data_to_stdout_while_the_progress_bar_is_on_a_terminal(tmp_path):
    lines = tmp_path / "lines.txt"
    lines.write_text("The cat sat.\nThe dog ran.\nThe bird flew.\n")
    out = tmp_path / "out.ndjson"
    primary, secondary = os.openpty()
    try:
        with out.open("wb") as f:
            run = subprocess.run([*ENTRY, "batch", str(lines), "-q", "the", "-m", BERT], stdout=f, stderr=secondary, timeout=120)
        os.set_blocking(primary, False)
        drawn = os.read(primary, 65536)
    finally:
        os.close(secondary)
        os.close(primary)
    assert b"attn batch" in drawn  # the bar was on the terminal, and the data in the file:
    assert run.returncode == 0
    assert [json.loads(line)["line"] for line in out.read_text().splitlines()] == [1, 2, 3]


def _wait_for_output(process: subprocess.Popen, timeout: float = 60) -> None:
    os.set_blocking(process.stdout.fileno(), True)
    deadline = time.monotonic() + timeout
    assert process.stdout.readline(), "no output before the deadline"
    assert time.monotonic() < deadline


def _lines(n: int, path: Path) -> Path:
    path.write_text("".join(f"The cat sat on mat number {i}.\n" for i in range(n)))
    return path


@pytest.mark.parametrize("signum, status, message", [(signal.SIGINT, 130, "attn: interrupted\n"), (signal.SIGTERM, 143, "attn: terminated (signal 15)\n")])
def test_one_signal_stops_with_its_status_and_one_line(tmp_path, signum, status, message):
    run = _process("batch", str(_lines(3000, tmp_path / "many.txt")), "-q", "cat", "-m", BERT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _wait_for_output(run)
    run.send_signal(signum)
    _, err = run.communicate(timeout=30)
    assert run.returncode == status
    assert err.decode() == message


# Loaded by every Python process started with PYTHONPATH on its folder, but active only in
# worker processes (spawned with --multiprocessing-fork): a chunk of lines after the first takes
# a minute, far longer than the grace `cli.signals` gives a stopping run to clean up.
SLOW_WORKERS = """
import sys
if "--multiprocessing-fork" in sys.argv:
    import time
    from attn_cli.compute import batch
    fast = batch._run_chunk
    def slow(*args):  # (state, jobs)
        if args[-1][0].number > 1:
            time.sleep(60)
        return fast(*args)
    batch._run_chunk = slow
"""


@pytest.mark.parametrize("signum, status, message", [(signal.SIGINT, 130, "attn: interrupted\n"), (signal.SIGTERM, 143, "attn: terminated (signal 15)\n")])
def test_a_signal_to_batch_stops_busy_workers_at_once_with_one_line(tmp_path, signum, status, message):
    (tmp_path / "sitecustomize.py").write_text(SLOW_WORKERS)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), *filter(None, [os.environ.get("PYTHONPATH")])])}
    run = _process("batch", str(_lines(100, tmp_path / "many.txt")), "-q", "cat", "--workers", "2", "-m", BERT,
                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    _wait_for_output(run)  # line 1; the workers are now busy with the slow chunks
    time.sleep(0.5)
    run.send_signal(signum)  # to the main process only, as `kill PID` does
    started = time.monotonic()
    _, err = run.communicate(timeout=30)  # to the end of stderr: the resource tracker's too
    assert (run.returncode, err.decode()) == (status, message)  # no resource_tracker warning after it
    assert time.monotonic() - started < 10


def test_ctrl_c_during_imports_is_an_interruption_not_a_traceback():
    # The signal arrives just before `main` imports Typer and the commands.
    code = (
        "import os, signal, attn_cli.cli as cli; blas = cli._single_threaded_blas; "
        "cli._single_threaded_blas = lambda: (blas(), os.kill(os.getpid(), signal.SIGINT)); cli.main()"
    )
    run = subprocess.run([sys.executable, "-c", code, "inspect", "x", "-q", "x"], capture_output=True, text=True, timeout=60)
    assert (run.returncode, run.stderr) == (130, "attn: interrupted\n")


@linux_only
def test_batch_workers_die_with_their_parent(tmp_path):
    run = _process("batch", str(_lines(3000, tmp_path / "many.txt")), "-q", "cat", "--workers", "2", "-m", BERT,
                   stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    _wait_for_output(run)
    children = subprocess.run(["pgrep", "-P", str(run.pid)], capture_output=True, text=True).stdout.split()
    assert len(children) >= 2  # the workers (and multiprocessing's resource tracker)
    run.kill()  # SIGKILL: no handler, no cleanup in the parent
    run.wait(timeout=10)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(Path(f"/proc/{c}").exists() for c in children):
        time.sleep(0.1)
    assert not [c for c in children if Path(f"/proc/{c}").exists()]


def test_a_plot_over_the_file_size_limit_is_an_output_failure_and_leaves_nothing(tmp_path):
    import resource

    out = tmp_path / "grid.html"
    run = subprocess.run([*ENTRY, "plot", SENTENCE, "-q", "cat", "-o", str(out), "-m", BERT], capture_output=True, text=True, timeout=60,
                         preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (512, 512)))
    assert run.returncode == 7, run.stderr
    assert run.stderr.startswith(f"attn: error: cannot write {out}: File too large — ")
    assert list(tmp_path.iterdir()) == [] and run.stdout == ""
