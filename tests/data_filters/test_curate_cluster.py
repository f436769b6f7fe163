"""The curation stage's own LocalCluster listens on the loopback interface only, dashboard or not."""

from __future__ import annotations

import operator
import os
import urllib.error
import urllib.request

import psutil
import pytest

from data_filters.cluster import LOOPBACK, dask_client, loopback_dashboard_url
from data_filters.config import DaskConfig

pytestmark = pytest.mark.integration


def listening() -> set[tuple[str, int]]:
    """(address, port) of every listening TCP socket of this process and its children."""
    me = psutil.Process(os.getpid())
    found = set()
    for process in [me, *me.children(recursive=True)]:
        try:
            connections = process.net_connections(kind="inet")
        except psutil.NoSuchProcess:
            continue
        found |= {(c.laddr.ip, c.laddr.port) for c in connections if c.status == psutil.CONN_LISTEN}
    return found


def fetch(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read().decode(errors="replace")
    except urllib.error.HTTPError as err:
        return err.code, ""


@pytest.mark.parametrize("processes", [False, True], ids=["threads", "processes"])
@pytest.mark.parametrize("dashboard_port", [None, 0], ids=["no-dashboard", "dashboard"])
def test_local_cluster_listens_on_loopback_only(processes: bool, dashboard_port: int | None) -> None:
    config = DaskConfig(
        n_workers=2 if processes else 1,
        threads_per_worker=1,
        processes=processes,
        memory_limit="1GiB",
        dashboard_port=dashboard_port,
    )
    before = listening()
    with dask_client(config) as client:
        assert client.submit(operator.add, 1, 2, pure=False).result() == 3
        opened = listening() - before
        http_port = client.scheduler_info()["services"]["dashboard"]  # the scheduler's HTTP server
        status, body = fetch(f"http://{LOOPBACK}:{http_port}/health")
        pages, _ = fetch(loopback_dashboard_url(client))
    assert opened, "the cluster opened no socket at all?"
    assert {address for address, _ in opened} == {LOOPBACK}, f"not loopback only: {sorted(opened)}"
    assert (LOOPBACK, http_port) in opened and (status, body) == (200, "ok")
    if dashboard_port is None:
        assert pages == 404  # health and metrics only, no dashboard pages
    else:
        assert pages == 200


def test_dashboard_port_is_a_cli_option() -> None:
    from curate_support import config_for

    config = config_for(["--urls", "u.csv", "--out", "o", "--dashboard-port", "8790"])
    assert config.dask.dashboard_port == 8790
    assert config_for(["--urls", "u.csv", "--out", "o"]).dask.dashboard_port is None
