"""Fixtures for the engine tests: real images and the CLI launcher (tiny config: ``tests/conftest.py``).

The images are the scikit-image photographs (``sample_images``), written as a folder or as webdataset
shards plus a curation-style manifest, so every data path is tested on real decodable files.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest
import torch

from franca_core.data.shards import write_tar_shard
from franca_core.data.sources import sample_images

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True, scope="session")
def one_thread() -> Iterator[None]:
    """Run the engine tests with one intra-op thread (subprocesses get ``OMP_NUM_THREADS=1``).

    On a busy 2-core machine, two OpenMP threads per process spend most of their time spin-waiting:
    the engine tests ran about 10x slower with them. Results are deterministic either way.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _small_jpegs(n: int) -> list[tuple[str, bytes]]:
    out = []
    for i, img in enumerate(sample_images().images[:n]):
        small = img.copy()
        small.thumbnail((96, 96))
        buffer = io.BytesIO()
        small.save(buffer, format="JPEG", quality=90)
        out.append((f"{i:06d}", buffer.getvalue()))
    return out


@pytest.fixture(scope="session")
def image_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """12 real photographs (thumbnails) as JPEG files in nested folders."""
    root = tmp_path_factory.mktemp("images")
    for i, (key, payload) in enumerate(_small_jpegs(12)):
        sub = root / f"part{i % 2}"
        sub.mkdir(exist_ok=True)
        (sub / f"{key}.jpg").write_bytes(payload)
    return root


@pytest.fixture(scope="session")
def shard_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A curation-like output: shards/0000{0,1,2}.tar (jpg + json members) and manifest.parquet.

    The manifest marks two keys as dropped (they are still in the tars) and one payload is corrupt.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    root = tmp_path_factory.mktemp("curated")
    images = _small_jpegs(15)
    images[7] = (images[7][0], b"not an image")
    rows = []
    for shard in range(3):
        members = []
        for key, payload in images[shard * 5 : shard * 5 + 5]:
            members += [(key, payload, "jpg"), (key, b'{"caption": "x"}', "json")]
            dropped = key in ("000003", "000011")
            rows.append({"key": key, "shard": f"{shard:05d}", "status": "dropped" if dropped else "kept"})
        write_tar_shard(root / "shards" / f"{shard:05d}.tar", members)
    pq.write_table(pa.Table.from_pylist(rows), root / "manifest.parquet")
    return root


def franca_cli(args: Sequence[str], env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    """Start ``python -m franca_core.cli ARGS`` from the repository root (one thread, no progress bar)."""
    full_env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONHASHSEED": "0", **(env or {})}
    command = [sys.executable, "-m", "franca_core.cli", *args]
    return subprocess.Popen(
        command, cwd=REPO, env=full_env, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )


@pytest.fixture(scope="session")
def cli() -> Callable[..., subprocess.Popen[str]]:
    """:func:`franca_cli`: start the ``franca`` command in a subprocess."""
    return franca_cli
