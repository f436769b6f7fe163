"""The Dask side: a client for a LocalCluster or a given scheduler, and per-shard fan-out.

Per-shard work (inspection, NSFW scoring, writing kept shards) and dedup run as Dask tasks, so
the same code uses two threads of a laptop or a cluster of machines (``DaskConfig.address``).
Workers must be able to import ``data_filters`` and read the output directory.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

from distributed import Client, LocalCluster, as_completed
from tqdm import tqdm

from data_filters.config import DaskConfig

T = TypeVar("T")
LOOPBACK = "127.0.0.1"


def local_cluster_options(config: DaskConfig) -> dict[str, Any]:
    """LocalCluster arguments under which every socket it opens listens on 127.0.0.1 only.

    The scheduler and each worker run an HTTP server even with the dashboard off (health and
    metrics routes), and Dask binds those of an in-process cluster (``processes=False``, whose
    scheduler speaks ``inproc://``) to all interfaces, the scheduler's on port 8787. So each server
    gets a loopback address with a free port. ``host="127.0.0.1"`` is not the fix: an ``inproc://``
    scheduler refuses it. The dashboard pages are served only when ``config.dashboard_port`` is
    set, on the loopback address too.
    """
    dashboard = None if config.dashboard_port is None else f"{LOOPBACK}:{config.dashboard_port}"
    threads = config.threads_per_worker or max(1, (os.cpu_count() or 1) // config.n_workers)
    return {
        "n_workers": config.n_workers,
        "threads_per_worker": threads,
        "processes": config.processes,
        "memory_limit": config.memory_limit,
        "dashboard_address": dashboard,  # None: no dashboard pages
        "scheduler_kwargs": {"dashboard_address": dashboard or f"{LOOPBACK}:0"},  # the HTTP server
        "worker_dashboard_address": f"{LOOPBACK}:0",
    }


@contextmanager
def dask_client(config: DaskConfig) -> Iterator[Client]:
    """A client on ``config.address``, or on a loopback-only LocalCluster closed on exit."""
    if config.address is not None:
        with Client(config.address) as client:
            yield client
        return
    with LocalCluster(**local_cluster_options(config)) as cluster, Client(cluster) as client:
        if config.dashboard_port is not None:
            print(f"Dask dashboard: {loopback_dashboard_url(client)}", file=sys.stderr)
        yield client


def loopback_dashboard_url(client: Client) -> str:
    """The dashboard of a LocalCluster started by ``dask_client`` (its HTTP server's port)."""
    port = client.scheduler_info()["services"]["dashboard"]
    return f"http://{LOOPBACK}:{port}/status"


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
