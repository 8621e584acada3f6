"""`attn stats --engine ray`: the same per-shard function (`stats_shard.shard_sums`) on Ray actors.

Each actor loads the model once and sums shards; the driver sends shards round-robin, keeps
at most actors·AHEAD in flight and merges results in shard order (the same order as every
other engine, so the same numbers). Ray is an optional extra (attn-cli[ray]) imported here only.

Cluster: `address` (--ray-address), else RAY_ADDRESS, else a local Ray started for the run with
`workers` CPUs and stopped at its end. On a cluster every node needs attn-cli installed and the
model at the same path (the bundled model is inside the package, so it always is).
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

from ..errors import AttnError, InputError, MissingExtra
from .stats_shard import AHEAD, CorpusOptions, Shard

if TYPE_CHECKING:
    from ..maths.headsums import HeadSums


def import_ray():
    try:
        import ray
    except ImportError:
        raise MissingExtra("--engine ray needs Ray, which is not installed", "install the extra: pip install 'attn-cli[ray]' (or use --workers N)") from None
    return ray


class _ShardActor:
    """One Ray worker: the model loaded once (a GGUF model's float32 weights kept up to
    `budget` bytes), then shard after shard."""

    def __init__(self, model_path: str | None, options: CorpusOptions, budget: int | None = None) -> None:
        from .workers import BLAS_THREADS

        for name in BLAS_THREADS:  # the workers are the parallelism (see compute/workers.py)
            os.environ.setdefault(name, "1")
        from ..loading.model import load_for_passes

        self.model = load_for_passes(model_path, budget)
        self.options = options

    def run(self, shard: Shard) -> HeadSums | AttnError:
        """The shard's sums, or its error returned whole (raised, Ray would wrap it in its own)."""
        from .stats_shard import shard_sums

        try:
            return shard_sums(self.model, shard, self.options)
        except AttnError as exc:
            return exc


def connect(ray, address: str | None, workers: int) -> bool:
    """Join the cluster at `address` / RAY_ADDRESS, or start a local one with `workers` CPUs.
    True when this run started Ray (and must stop it)."""
    if ray.is_initialized():
        return False
    address = address or os.environ.get("RAY_ADDRESS") or None
    kwargs = {"include_dashboard": False, "log_to_driver": False, "logging_level": "ERROR"}
    if address:
        try:
            ray.init(address=address, **kwargs)
        except (ConnectionError, ValueError, RuntimeError) as exc:
            raise InputError(f"cannot join the Ray cluster at {address}: {exc}", "check --ray-address / RAY_ADDRESS (e.g. ray://head:10001 or auto)") from None
        return True
    # Driver-only environment: the actors import attn from the same interpreter and site-packages.
    ray.init(num_cpus=workers, object_store_memory=80 * 1024 * 1024, **kwargs)
    return True


def run_ray(
    model_path: str | None, parts: Iterable[Shard], options: CorpusOptions, workers: int, address: str | None = None, budget: int | None = None
) -> Iterator[HeadSums]:
    """Shard results in shard order, from `workers` Ray actors. Ray started here is shut down
    on any exit (end, error, Ctrl-C), which ends its processes."""
    ray = import_ray()
    started = connect(ray, address, workers)
    actors = []
    try:
        actor_class = ray.remote(num_cpus=1)(_ShardActor)
        actors = [actor_class.remote(model_path, options, budget) for _ in range(workers)]
        pending: deque = deque()
        for n, shard in enumerate(parts):
            pending.append(actors[n % workers].run.remote(shard))
            if len(pending) >= workers * AHEAD:
                yield _raised(ray.get(pending.popleft()))
        while pending:
            yield _raised(ray.get(pending.popleft()))
    finally:
        for actor in actors:
            ray.kill(actor)
        if started:
            ray.shutdown()


def _raised(result: HeadSums | AttnError) -> HeadSums:
    if isinstance(result, AttnError):
        raise result
    return result
