"""Exact inner-product nearest-neighbour search, by faiss or by chunked torch matmul + top-k.

Used by k-NN classification (DINOv2 ``eval/knn.py``: one matmul and one top-k per test chunk), the
Hummingbird memory bank (open-hummingbird-eval: faiss ``IndexFlatIP``, GPU when available) and the KNN OOD
score (Sun et al. 2022, via OpenOOD). Both back-ends are exact, so they return the same neighbours up to
ties and float rounding.
"""

from __future__ import annotations

import warnings
from typing import Literal, Protocol

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


class ExactIndex(Protocol):
    """A built key set answering exact top-k inner-product queries (results on the CPU)."""

    def search(self, queries: Tensor, k: int) -> tuple[Tensor, Tensor]: ...


class FaissIndex:
    """faiss ``IndexFlatIP`` (``GpuIndexFlatIP`` when faiss sees a GPU, unless ``use_gpu=False``)."""

    def __init__(self, keys: Tensor, use_gpu: bool | None = None):
        import faiss

        keys_np = np.ascontiguousarray(keys.detach().float().cpu().numpy())
        d = keys_np.shape[1]
        gpu = _faiss_gpu_count() > 0 if use_gpu is None else use_gpu
        self.index: faiss.Index
        if gpu:
            self._res = faiss.StandardGpuResources()
            self.index = faiss.GpuIndexFlatIP(self._res, d)
        else:
            self.index = faiss.IndexFlatIP(d)
        self.index.add(keys_np)

    def search(self, queries: Tensor, k: int) -> tuple[Tensor, Tensor]:
        q_np = np.ascontiguousarray(queries.detach().float().cpu().numpy())
        sims, idx = self.index.search(q_np, k)
        return torch.from_numpy(sims), torch.from_numpy(idx)


class TorchIndex:
    """Keys on ``device`` in ``dtype``; a matmul + top-k per chunk of queries.

    Chunks are sized so that one [chunk, M] similarity block stays under ``max_bytes`` (default 256 MiB
    on the CPU, 2 GiB on a GPU, where small chunks of a 10M-key memory would be launch-bound).
    """

    def __init__(
        self,
        keys: Tensor,
        device: torch.device | str | None = None,
        dtype: torch.dtype = torch.float32,
        max_bytes: int | None = None,
    ):
        self.keys = keys.to(device or keys.device, dtype)
        self.max_bytes = max_bytes or ((2 << 30) if self.keys.is_cuda else (256 << 20))

    def search(self, queries: Tensor, k: int) -> tuple[Tensor, Tensor]:
        m = self.keys.shape[0]
        chunk = max(1, self.max_bytes // (m * self.keys.element_size()))
        sims_out, idx_out = [], []
        for start in range(0, queries.shape[0], chunk):
            q = queries[start : start + chunk].to(self.keys.device, self.keys.dtype)
            top = (q @ self.keys.T).topk(k, dim=1)  # [chunk, M] -> [chunk, k]
            sims_out.append(top.values.float().cpu())
            idx_out.append(top.indices.cpu())
        if not sims_out:
            return torch.empty(0, k), torch.empty(0, k, dtype=torch.long)
        return torch.cat(sims_out), torch.cat(idx_out)


def build_index(keys: Tensor, method: SearchMethod = "torch") -> ExactIndex:
    """An exact index over ``keys`` [M, D] with the chosen back-end (torch when faiss is not installed).

    ``faiss`` with a CPU-only faiss on a CUDA machine searches with torch on the GPU instead: both are
    exact, and on an H100 the GPU matmul was 70x faster than 16-thread faiss-cpu on a 1M-key memory
    (``benchmarks/eval/hummingbird_memory.py``).
    """
    if method == "faiss" and faiss_available():
        if _faiss_gpu_count() == 0 and torch.cuda.is_available():
            return TorchIndex(keys, device="cuda")
        return FaissIndex(keys)
    if method == "faiss":
        warnings.warn("faiss is not installed: exact search falls back to torch", stacklevel=2)
    return TorchIndex(keys)


def search(keys: Tensor, queries: Tensor, k: int, method: SearchMethod = "torch") -> tuple[Tensor, Tensor]:
    """One-shot exact top-``k`` search: (similarities [Q, k] float32, indices [Q, k] int64) on the CPU.

    ``k`` is clipped to the number of keys.
    """
    return build_index(keys, method).search(queries, min(k, keys.shape[0]))
