"""The Dask side: a client for a LocalCluster or a given scheduler, and per-shard fan-out.

Per-shard work (inspection, NSFW scoring, writing kept shards) and dedup run as Dask tasks, so
the same code uses two threads of a laptop or a cluster of machines (``DaskConfig.address``).
Workers must be able to import ``data_filters`` and read the output directory.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

from distributed import Client, LocalCluster, as_completed
from tqdm import tqdm

from data_filters.config import DaskConfig

T = TypeVar("T")


@contextmanager
def dask_client(config: DaskConfig) -> Iterator[Client]:
    """A client on ``config.address``, or on a LocalCluster closed on exit."""
    if config.address is not None:
        with Client(config.address) as client:
            yield client
        return
    threads = config.threads_per_worker or max(1, (os.cpu_count() or 1) // config.n_workers)
    with (
        LocalCluster(
            n_workers=config.n_workers,
            threads_per_worker=threads,
            processes=config.processes,
            memory_limit=config.memory_limit,
            dashboard_address=None,
        ) as cluster,
        Client(cluster) as client,
    ):
        yield client


def map_with_progress(
    client: Client,
    function: Callable[..., T],
    items: Sequence[object],
    desc: str,
    progress: bool,
    **kwargs: Any,
) -> list[T]:
    """``function(item, **kwargs)`` for every item on the cluster; results in item order.

    The first failure is re-raised as is (after the other tasks are cancelled), so a stage error
    reaches the caller with its own message.
    """
    if not items:
        return []
    futures = client.map(function, list(items), pure=False, **kwargs)
    try:
        with tqdm(total=len(futures), desc=desc, unit="shard", disable=not progress) as bar:
            for future in as_completed(futures):
                if future.status == "error":
                    future.result()  # re-raises the task's exception
                bar.update(1)
        results: list[T] = client.gather(futures)
    except BaseException:
        client.cancel(futures)
        raise
    return results
