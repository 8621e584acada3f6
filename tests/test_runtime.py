"""How the forward pass uses the machine (models/runtime.py): threads never change a number."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from attn_cli.loading.model import load_model
from attn_cli.models import runtime

TINY = Path(__file__).parent / "fixtures" / "tiny"
LONG = " ".join(["The cat sat on the mat because it was tired, and the dog watched it."] * 20)  # 300+ tokens


def traces(model, ids, threads, monkeypatch):
    monkeypatch.setattr(runtime, "_requested", lambda: threads)
    return [(t.q.copy(), t.k.copy(), t.v.copy(), t.head_output.copy(), t.hidden.copy()) for t in model.trace(ids)]


@pytest.mark.parametrize(
    "name",
    [
        "bundled", "llama", "gemma3", "gpt2", "distilbert", "mistral", "gpt_neox", "olmo2", "phi3", "mixtral", "qwen3_moe", "gemma2", "mpnet",
        "modernbert", "nomic_bert",
    ],
)
def test_two_threads_compute_exactly_what_one_does(name, monkeypatch):
    from attn_cli.loading.tokenizer import tokenize

    model = load_model(None if name == "bundled" else TINY / name, release_weights=False)
    ids = tokenize(model.tokenizer, LONG, max_tokens=model.spec.max_positions, truncate=True).ids
    if name != "bundled":  # the tiny models read 128 tokens at most: split smaller inputs, smaller chunks
        monkeypatch.setattr(runtime, "MIN_PARALLEL_ROWS", 64)
        monkeypatch.setattr(runtime, "MIN_CHUNK_ROWS", 32)
    assert len(ids) >= runtime.MIN_PARALLEL_ROWS
    monkeypatch.setattr(runtime, "_blas_threads", lambda: 1)
    calls = []
    real = runtime.split_rows
    monkeypatch.setattr(runtime, "split_rows", lambda *a: calls.append(a[2]) or real(*a))
    one = traces(model, ids, 1, monkeypatch)
    assert calls == []  # one thread: the plain path
    two = traces(model, ids, 2, monkeypatch)
    assert calls and set(calls) == {2}  # the work was split between two threads
    for a, b in zip(one, two, strict=True):
        for x, y in zip(a, b, strict=True):
            if name == "bundled":  # a real model: bit for bit
                assert np.array_equal(x, y)
            else:
                # Tiny widths (16-64) run OpenBLAS's small-matrix kernels, which sum by row count:
                # a few ulps of the array's scale (hidden states reach ~20 in the random decoders).
                assert np.abs(x - y).max() <= 1e-5 * max(1.0, float(np.abs(y).max()))


def test_short_inputs_stay_on_one_thread(monkeypatch):
    monkeypatch.setattr(runtime, "_requested", lambda: 2)
    monkeypatch.setattr(runtime, "_blas_threads", lambda: 1)
    assert runtime.rows_runner(runtime.MIN_PARALLEL_ROWS - 1) is None
    assert runtime.rows_runner(runtime.MIN_PARALLEL_ROWS) is not None


@pytest.mark.parametrize(("value", "expected"), [("1", 1), ("3", 3), (" 2 ", 2), ("0", None), ("-2", None), ("two", None), ("", None)])
def test_attn_threads_is_read_when_it_is_a_positive_integer(value, expected, monkeypatch):
    monkeypatch.setenv("ATTN_THREADS", value)
    got = runtime._requested()
    if expected is None:  # ignored: the default, at most DEFAULT_THREADS
        assert 1 <= got <= runtime.DEFAULT_THREADS
    else:
        assert got == expected


def test_no_threads_of_our_own_beside_a_multithreaded_blas(monkeypatch):
    monkeypatch.setattr(runtime, "_requested", lambda: 2)
    monkeypatch.setattr(runtime, "_blas_threads", lambda: 4)
    assert runtime.threads() == 1 and runtime.rows_runner(1000) is None
    monkeypatch.setattr(runtime, "_blas_threads", lambda: 1)
    assert runtime.threads() == 2


def test_split_rows_covers_every_row_once_and_raises_a_chunks_error():
    seen = []
    runtime.split_rows(lambda a, b: seen.extend(range(a, b)), 1001, 2, 4)
    assert sorted(seen) == list(range(1001))

    def fail(a, b):
        if a:
            raise ZeroDivisionError("chunk")

    with pytest.raises(ZeroDivisionError):
        runtime.split_rows(fail, 100, 2, 4)


def test_the_allocator_is_tuned_on_glibc():
    import platform

    if platform.libc_ver()[0] != "glibc":
        pytest.skip("mallopt is glibc's")
    assert runtime.tune_allocator() is True


def test_a_forked_child_gets_its_own_pool():
    import multiprocessing

    if "fork" not in multiprocessing.get_all_start_methods():
        pytest.skip("no fork here")
    runtime.split_rows(lambda a, b: None, 10, 2, 2)  # the parent's pool exists
    assert runtime._POOL is not None
    context = multiprocessing.get_context("fork")
    with context.Pool(1) as pool:  # a child that split work on its parent's pool would wait forever
        assert pool.apply_async(_split_in_child).get(timeout=60) == list(range(100))


def _split_in_child() -> list[int]:
    seen = []
    runtime.split_rows(lambda a, b: seen.extend(range(a, b)), 100, 2, 4)
    return sorted(seen)


def test_row_local_work_is_split_once_and_gives_what_one_call_gives(monkeypatch):
    """`row_local` runs a layer's row-local tail in one split: every row once, the same numbers."""
    monkeypatch.setattr(runtime, "_requested", lambda: 2)
    monkeypatch.setattr(runtime, "_blas_threads", lambda: 1)
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((600, 8), dtype=np.float32), rng.standard_normal((600, 8), dtype=np.float32)
    seen = []

    def fn(x, y):
        seen.append(len(x))
        return np.tanh(x[:, :3] * y[:, 5:]) + x[:, 3:6]  # row by row

    whole = runtime.row_local(None, fn, 3, a, b)
    assert seen == [600]
    seen.clear()
    split = runtime.row_local(runtime.rows_runner(600), fn, 3, a, b)
    assert seen == [200, 200, 200] and split.dtype == np.float32  # 600 rows, chunks of MIN_CHUNK_ROWS or more
    np.testing.assert_array_equal(split, whole)
