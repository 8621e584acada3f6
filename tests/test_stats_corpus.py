"""`attn stats --file` as a corpus tool: streamed in bounded memory, the same numbers from one
process, worker processes and Ray, workers that never outlive the run, CSV and the metric grid."""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from helpers import validate
from option_registry import covers
from typer.testing import CliRunner

from attn_cli.cli import app
from attn_cli.compute.stats import corpus_statistics
from attn_cli.maths.headsums import METRICS

TINY = str(Path(__file__).parent / "fixtures" / "tiny" / "bert")
WORDS = "the cat sat on a mat dog ran far , . and it was".split()
runner = CliRunner()


def corpus(path: Path, lines: int, seed: int = 1) -> Path:
    rng = np.random.default_rng(seed)
    path.write_text("".join(" ".join(rng.choice(WORDS, size=rng.integers(3, 10))) + "\n" for _ in range(lines)), encoding="utf-8")
    return path


def need_ray():
    """Ray, or a skip outside CI; in CI (where the test group installs it) its absence fails."""
    try:
        import ray
    except ImportError:
        if os.environ.get("CI"):
            pytest.fail("ray is not installed: CI must run `uv run --group test pytest`")
        pytest.skip("ray is not installed (uv sync --group test)")
    return ray


def metrics_equal(a, b, rtol: float) -> None:
    assert (a.texts, a.tokens) == (b.texts, b.tokens)
    for name in METRICS:
        np.testing.assert_allclose(a.metrics[name], b.metrics[name], rtol=rtol, atol=1e-7, equal_nan=True, err_msg=name)
    assert (a.histogram == b.histogram).all()


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> Path:
    return corpus(tmp_path_factory.mktemp("corpus") / "small.txt", 70)


@pytest.fixture(scope="module")
def local(small):
    return corpus_statistics(TINY, str(small))


def test_a_corpus_equals_its_texts_pooled_by_hand(small, local):
    from attn_cli.compute.stats import head_statistics
    from attn_cli.loading.model import load_model

    lines = small.read_text().splitlines()
    one, two = (head_statistics(load_model(TINY), [(None, t) for t in part]) for part in (lines[:30], lines[30:]))
    for name in ("first_token", "previous_token", "duplicate_token_mul", "sink_rate", "entropy_normalised"):
        n1, n2 = one.texts, two.texts
        if name in ("first_token", "entropy_normalised"):  # row-pooled (an encoder: every row sees every key)
            n1, n2 = one.tokens, two.tokens
        elif name == "previous_token":
            n1, n2 = one.tokens - one.texts, two.tokens - two.texts
        want = (n1 * one.metrics[name] + n2 * two.metrics[name]) / (n1 + n2)
        np.testing.assert_allclose(local.metrics[name], want, rtol=1e-9, err_msg=name)
    assert local.texts == 70 and local.tokens == one.tokens + two.tokens


def test_worker_processes_give_the_same_numbers(small, local):
    metrics_equal(corpus_statistics(TINY, str(small), workers=2), local, rtol=1e-5)  # BLAS threads differ: float32 last bits


def test_ray_engine_on_a_local_cluster_gives_the_same_numbers(small, local):
    ray = need_ray()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, object_store_memory=80 * 1024 * 1024, logging_level="ERROR")
    try:
        result = corpus_statistics(TINY, str(small), engine="ray", workers=2)
        assert ray.is_initialized()  # a cluster it joined is not its to stop
        cli = runner.invoke(app, ["stats", "--file", str(small), "--model", TINY, "--engine", "ray", "--workers", "2", "--json"])
        assert cli.exit_code == 0, cli.output
    finally:
        ray.shutdown()
    metrics_equal(result, local, rtol=1e-5)
    assert result.to_json().keys() == local.to_json().keys()
    np.testing.assert_allclose(_first_token(json.loads(cli.stdout)), local.metrics["first_token"], rtol=1e-5)


def _first_token(doc: dict) -> list[list[float]]:
    return [[h["first_token"] for h in layer["heads"]] for layer in doc["layers"]]


def _stats_json(small: Path, *options: str) -> dict:
    out = runner.invoke(app, ["stats", "--file", str(small), "--model", TINY, "--json", *options])
    assert out.exit_code == 0, out.output
    return json.loads(out.stdout)


@covers("stats --workers")
def test_workers_through_the_cli_give_the_numbers_of_one_process(small, local):
    np.testing.assert_allclose(_first_token(_stats_json(small, "--workers", "2")), local.metrics["first_token"], rtol=1e-5)


@covers("stats --ray-address", "stats --engine")
def test_the_ray_address_reaches_the_cluster_connection(small, monkeypatch):
    need_ray()
    from attn_cli.compute import stats_ray
    from attn_cli.errors import InputError

    seen = []

    def connect(ray, address, workers):
        seen.append((address, workers))
        raise InputError(f"cannot join the Ray cluster at {address}: refused", "check --ray-address")

    monkeypatch.setattr(stats_ray, "connect", connect)
    out = runner.invoke(app, ["stats", "--file", str(small), "--model", TINY, "--engine", "ray", "--ray-address", "10.1.2.3:6379", "--workers", "3"])
    assert seen == [("10.1.2.3:6379", 3)] and out.exit_code == 2 and "10.1.2.3:6379" in out.output


@covers("stats --exclude-bos", "stats --exclude-current-token")
def test_detector_exclusions_through_the_cli(small):
    from attn_cli.maths.headsums import DetectorOptions

    def scores(doc: dict, name: str) -> np.ndarray:
        return np.array([[h[name] for h in layer["heads"]] for layer in doc["layers"]], dtype=float)

    plain = _stats_json(small)
    for flags, options in ((["--exclude-bos"], DetectorOptions(True, False)), (["--exclude-current-token"], DetectorOptions(False, True))):
        doc = _stats_json(small, *flags)
        want = corpus_statistics(TINY, str(small), options=options)
        assert np.allclose(scores(doc, "previous_token_mul"), want.metrics["previous_token_mul"], rtol=1e-6)
        assert not np.allclose(scores(doc, "previous_token_mul"), scores(plain, "previous_token_mul"))  # the flag changed the scores
        assert scores(doc, "first_token").tolist() == scores(plain, "first_token").tolist()  # and only the detectors


@covers("stats --seed")
def test_the_induction_seed_through_the_cli(small):
    a, b, c = _stats_json(small, "--seed", "3"), _stats_json(small, "--seed", "3"), _stats_json(small, "--seed", "4")
    assert a["detectors"]["induction"]["seed"] == 3 and c["detectors"]["induction"]["seed"] == 4
    ind = [[[h["induction_mul"] for h in layer["heads"]] for layer in d["layers"]] for d in (a, b, c)]
    assert ind[0] == ind[1] and ind[0] != ind[2]


def test_a_million_line_file_streams_in_bounded_memory(tmp_path):
    # 1,000,000 lines (61 MB) of which 40 are texts: reading the file whole would trace > 60 MB.
    path = tmp_path / "million.txt"
    with path.open("w") as f:
        f.write((" " * 60 + "\n") * 999_960)
        f.write("".join(" ".join(WORDS[i % 5 : i % 5 + 6]) + "\n" for i in range(40)))
    assert path.stat().st_size > 60e6
    tracemalloc.start()
    try:
        result = corpus_statistics(TINY, str(path))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result.texts == 40
    assert peak < 8e6, peak


def test_memory_does_not_grow_with_the_number_of_texts(tmp_path):
    peaks = []
    for lines in (50, 400):
        path = corpus(tmp_path / f"{lines}.txt", lines)
        tracemalloc.start()
        try:
            assert corpus_statistics(TINY, str(path)).texts == lines
            peaks.append(tracemalloc.get_traced_memory()[1])
        finally:
            tracemalloc.stop()
    assert peaks[1] < peaks[0] + 500_000, peaks  # eight times the texts, not eight times the memory


# --- Workers die with the run ----------------------------------------------------------------


def children(pid: int) -> set[int]:
    found = set()
    for task in Path(f"/proc/{pid}/task").glob("*"):
        found |= {int(c) for c in (task / "children").read_text().split()}
    return found


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    except FileNotFoundError:
        return False


def start_run(path: Path) -> tuple[subprocess.Popen, set[int]]:
    proc = subprocess.Popen(
        [sys.executable, "-c", "from attn_cli.cli import main; main()", "stats", "--file", str(path), "--model", TINY, "--workers", "2", "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        workers = children(proc.pid)
        if len(workers) >= 2 and all(alive(w) for w in workers):
            time.sleep(1.5)  # let them load the model and start on shards
            return proc, children(proc.pid)
        time.sleep(0.1)
    proc.kill()
    pytest.fail("the workers did not start")


def wait_gone(pids: set[int], seconds: float = 15) -> set[int]:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and any(alive(p) for p in pids):
        time.sleep(0.1)
    return {p for p in pids if alive(p)}


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_ctrl_c_stops_the_workers_and_leaves_no_process(tmp_path):
    proc, workers = start_run(corpus(tmp_path / "c.txt", 20_000))
    os.killpg(proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C does: the whole group
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130 and "Traceback" not in err, err
    assert not wait_gone(workers)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_workers_die_with_a_killed_parent(tmp_path):
    proc, workers = start_run(corpus(tmp_path / "k.txt", 20_000))
    os.kill(proc.pid, signal.SIGKILL)  # no clean-up code runs in the parent
    proc.communicate(timeout=30)
    assert not wait_gone(workers), "workers outlived their parent"


# --- Output ----------------------------------------------------------------------------------


@covers("stats --format")
def test_csv_has_one_row_per_layer_head_statistic_and_matches_json(small, schema):
    doc = json.loads(runner.invoke(app, ["stats", "--file", str(small), "--model", TINY, "--format", "json"]).stdout)
    validate(doc, schema, "stats")
    out = runner.invoke(app, ["stats", "--file", str(small), "--model", TINY, "--format", "csv"])
    assert out.exit_code == 0, out.output
    rows = list(csv.DictReader(io.StringIO(out.stdout)))
    assert len(rows) == 2 * 4 * len(METRICS) and list(rows[0]) == ["layer", "head", "statistic", "value"]
    for row in rows:
        want = doc["layers"][int(row["layer"])]["heads"][int(row["head"])][row["statistic"]]
        assert (row["value"] == "" and want is None) or float(row["value"]) == want


@covers("stats --metric")
def test_metric_grid_shows_the_statistic(small, local):
    out = runner.invoke(app, ["stats", "--file", str(small), "--model", TINY, "--metric", "first_token"], env={"COLUMNS": "80"})
    assert out.exit_code == 0, out.output
    row = next(line for line in out.stdout.splitlines() if line.startswith("L1 "))
    assert row.split()[1:5] == [f"{v:.2f}"[1:] if v < 0.995 else "1.0" for v in local.metrics["first_token"][1]]


def test_bad_options_are_usage_errors(small):
    for args, message in (
        (["--metric", "nope"], "--metric 'nope' is not a statistic"),
        (["--format", "xml"], "'xml' is not one of 'table', 'json', 'csv'"),
        (["--engine", "spark"], "--engine 'spark' is not valid"),
        (["--workers", "0"], "--workers 0 is not valid"),
    ):
        out = runner.invoke(app, ["stats", "--file", str(small), "--model", TINY, *args], env={"COLUMNS": "300"})
        assert out.exit_code == 2 and message in out.output, out.output
    out = runner.invoke(app, ["stats", "The cat sat.", "--workers", "2"])
    assert out.exit_code == 2 and "--workers is read only with --file (a corpus)" in out.output


def test_induction_prompts_follow_the_seed():
    from attn_cli.compute.stats import head_statistics
    from attn_cli.loading.model import load_model

    m = load_model(TINY)
    a, b, c = (head_statistics(m, [(None, "the cat sat")], seed=s) for s in (0, 0, 1))
    assert (a.metrics["induction_mul"] == b.metrics["induction_mul"]).all()
    assert not (a.metrics["induction_mul"] == c.metrics["induction_mul"]).all()
    assert a.to_json()["detectors"]["induction"] == {"seed": 0, "sequences": 10, "length": 25}


@covers("plot --stats")
def test_plot_stats_draws_the_saved_grid(small, local, tmp_path):
    saved = tmp_path / "stats.json"
    saved.write_text(json.dumps(local.to_json()))
    out = runner.invoke(app, ["plot", "--stats", str(saved), "--metric", "previous_token", "-o", str(tmp_path / "grid.html")])
    assert out.exit_code == 0, out.output
    page = (tmp_path / "grid.html").read_text()
    assert "previous_token per layer and head, over 70 texts" in page
    for value in local.metrics["previous_token"][1]:
        assert f"{value:.2f}"[1:] in page or value >= 0.995
    # From stdin, to PNG: a real image of a 2 × 4 grid.
    out = runner.invoke(app, ["plot", "--stats", "-", "-o", str(tmp_path / "grid.png")], input=saved.read_text())
    assert out.exit_code == 0 and (tmp_path / "grid.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for args, message in (
        (["--stats", str(tmp_path / "grid.html")], "is not JSON"),
        (["--stats", str(saved), "--metric", "top"], "--metric 'top' is not a statistic"),
        (["The cat sat.", "--stats", str(saved)], "give TEXT or --stats, not both"),
    ):
        out = runner.invoke(app, ["plot", *args, "-o", str(tmp_path / "x.png")])
        assert out.exit_code == 2 and message in out.output, out.output
    assert not (tmp_path / "x.png").exists()


def test_engine_ray_without_ray_names_the_extra(small, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now raises ImportError
    out = runner.invoke(app, ["stats", "--file", str(small), "--model", TINY, "--engine", "ray", "--json"])
    assert out.exit_code == 5, out.output
    error = json.loads(out.stderr)["error"]
    assert error["code"] == "missing_extra" and "attn-cli[ray]" in error["fix"] and out.stdout == ""
