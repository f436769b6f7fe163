"""Exact inner-product nearest-neighbour search, by faiss or by chunked torch matmul + top-k.

Used by k-NN classification (DINOv2 ``eval/knn.py``: one matmul and one top-k per test chunk), the
Hummingbird memory bank (open-hummingbird-eval: faiss ``IndexFlatIP``, GPU when available) and the KNN OOD
score (Sun et al. 2022, via OpenOOD). Both back-ends are exact, so they return the same neighbours up to
ties and float rounding.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
from torch import Tensor

SearchMethod = Literal["faiss", "torch"]


def l2_normalize(x: Tensor, eps: float = 1e-12) -> Tensor:
    """Rows scaled to unit L2 norm (float32 or the input's floating dtype)."""
    return x / x.norm(dim=-1, keepdim=True).clamp(min=eps)


def faiss_available() -> bool:
    try:
        import faiss  # noqa: F401
    except ImportError:
        return False
    return True


def _faiss_gpu_count() -> int:
    import faiss

    get = getattr(faiss, "get_num_gpus", None)
    return int(get()) if get is not None else 0


def search_faiss(keys: Tensor, queries: Tensor, k: int, use_gpu: bool | None = None) -> tuple[Tensor, Tensor]:
    """Top-``k`` inner products of each query against all keys with an exact faiss flat index.

    keys [M, D], queries [Q, D] -> (similarities [Q, k] float32, indices [Q, k] int64).
    ``use_gpu=None`` means: on a GPU when faiss sees one.
    """
    import faiss

    keys_np = np.ascontiguousarray(keys.detach().float().cpu().numpy())
    q_np = np.ascontiguousarray(queries.detach().float().cpu().numpy())
    index: faiss.Index = faiss.IndexFlatIP(keys_np.shape[1])
    gpu = _faiss_gpu_count() > 0 if use_gpu is None else use_gpu
    if gpu:
        res = faiss.StandardGpuResources()
        index = faiss.index_cpu_to_gpu(res, 0, index)
    index.add(keys_np)
    sims, idx = index.search(q_np, k)
    return torch.from_numpy(sims), torch.from_numpy(idx)


def search_torch(keys: Tensor, queries: Tensor, k: int, chunk: int = 1024) -> tuple[Tensor, Tensor]:
    """Same contract as :func:`search_faiss`, with a matmul and a top-k per chunk of queries.

    Runs on the device of ``keys``; the results are returned on the CPU.
    """
    sims_out, idx_out = [], []
    for start in range(0, queries.shape[0], chunk):
        q = queries[start : start + chunk].to(keys.device, keys.dtype)
        sims = q @ keys.T  # [chunk, M]
        top = sims.topk(k, dim=1)
        sims_out.append(top.values.float().cpu())
        idx_out.append(top.indices.cpu())
    if not sims_out:
        return torch.empty(0, k), torch.empty(0, k, dtype=torch.long)
    return torch.cat(sims_out), torch.cat(idx_out)


def search(
    keys: Tensor, queries: Tensor, k: int, method: SearchMethod = "torch", chunk: int = 1024
) -> tuple[Tensor, Tensor]:
    """Exact top-``k`` inner-product search with the chosen back-end; ``k`` is clipped to the key count."""
    k = min(k, keys.shape[0])
    if method == "faiss":
        return search_faiss(keys, queries, k)
    return search_torch(keys, queries, k, chunk=chunk)
