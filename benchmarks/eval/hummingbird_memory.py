"""Hummingbird memory-bank retrieval: faiss flat index vs plain torch matmul + top-k, time and peak memory.

The step timed is ``MemoryBank.predict`` (open-hummingbird-eval's retrieval: exact top-30 inner products,
softmax(cos / 0.02) over the neighbours, soft-label mixing) for a batch of query patches against a memory
of M random unit-norm keys with 21-class soft labels. Each (M, method) runs in a fresh subprocess, so
the peak resident memory (``ru_maxrss``) belongs to that run alone; "extra peak" is the peak minus the
resident size after the memory was built. On CUDA the peak is ``torch.cuda.max_memory_allocated`` for
the torch path (faiss-GPU allocations are not visible to torch).

Run (CPU, about a minute for 1e5 + 1e6 at the defaults)::

    python benchmarks/eval/hummingbird_memory.py --sizes 100000 1000000
    python benchmarks/eval/hummingbird_memory.py --sizes 1000000 --dim 768 --queries 20000 --device cuda
    python benchmarks/eval/hummingbird_memory.py --sizes 10000000 --dim 768 --queries 20000 --device cuda \\
        --methods torch --torch-dtype bfloat16 --chunk-mb 4096

The protocol's goal is a 10M-patch VOC memory in <= 10 min on one H100: VOC val is 1,449 images x 1,296
patches (504 px) = 1.88 M queries, so the script also prints the extrapolated time for that query count.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from typing import Any

import torch

VOC_VAL_QUERIES = 1449 * 36 * 36  # 504 px, patch 14


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


def _random_keys(size: int, dim: int, device: str, dtype: torch.dtype) -> torch.Tensor:
    """Unit-norm random keys made on ``device`` in 1M-row chunks (10M x 768 never exists in float32)."""
    gen = torch.Generator(device=device).manual_seed(0)
    chunks = []
    for start in range(0, size, 1_000_000):
        block = torch.randn(min(1_000_000, size - start), dim, generator=gen, device=device)
        chunks.append((block / block.norm(dim=1, keepdim=True)).to(dtype))
    return torch.cat(chunks)


def _worker(size: int, args: argparse.Namespace, method: str) -> dict[str, Any]:
    from franca_core.evaluation.memory_bank import MemoryBank
    from franca_core.evaluation.neighbours import FaissIndex, TorchIndex

    dtype = getattr(torch, args.torch_dtype) if method == "torch" else torch.float32
    # Compared methods must search the same keys: made on the CPU then; a torch-only run makes them on
    # its device (a 10M x 768 memory is quicker to draw on the GPU).
    key_device = args.device if args.methods == ["torch"] else "cpu"
    keys = _random_keys(size, args.dim, key_device, dtype)
    gen = torch.Generator().manual_seed(1)
    labels = torch.rand(size, 21, generator=gen)
    bank = MemoryBank(keys, labels / labels.sum(1, keepdim=True))
    q = torch.randn(args.queries, args.dim, generator=gen)
    base = _rss_mb()
    if args.device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    if method == "faiss":
        index: FaissIndex | TorchIndex = FaissIndex(keys)
    else:
        index = TorchIndex(keys, device=args.device, dtype=dtype, max_bytes=args.chunk_mb << 20)
    bank._indexes[method] = index
    built = time.perf_counter()
    pred = bank.predict(q, k=args.k, temperature=0.02, method=method)  # type: ignore[arg-type]
    if args.device == "cuda":
        torch.cuda.synchronize()
    done = time.perf_counter()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    _, idx = index.search(q[:256], args.k)
    return {
        "build_s": built - start,
        "query_s": done - built,
        "extra_peak_mb": peak - base,
        "cuda_peak_mb": torch.cuda.max_memory_allocated() / 2**20 if args.device == "cuda" else 0.0,
        "pred_head": pred[:64].tolist(),
        "idx_head": idx[:, :5].tolist(),
    }


def _run(size: int, args: argparse.Namespace, method: str) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--worker", method, "--sizes", str(size), "--dim", str(args.dim)]
    cmd += ["--queries", str(args.queries), "--device", args.device, "--k", str(args.k)]
    cmd += ["--torch-dtype", args.torch_dtype, "--chunk-mb", str(args.chunk_mb), "--methods", *args.methods]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def _agreement(a: dict[str, Any], b: dict[str, Any]) -> float:
    ia, ib = a["idx_head"], b["idx_head"]
    same = sum(x == y for ra, rb in zip(ia, ib) for x, y in zip(ra, rb))
    return same / sum(len(r) for r in ia)


def _max_diff(a: dict[str, Any], b: dict[str, Any]) -> float:
    pa, pb = torch.tensor(a["pred_head"]), torch.tensor(b["pred_head"])
    return float((pa - pb).abs().max())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--dim", type=int, default=384, help="feature width (ViT-S 384, ViT-B 768)")
    parser.add_argument("--queries", type=int, default=2048, help="query patches (8 images at 224 px = 2048)")
    parser.add_argument("--k", type=int, default=30)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--methods", nargs="+", choices=["faiss", "torch"], default=["faiss", "torch"])
    parser.add_argument("--torch-dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    parser.add_argument("--chunk-mb", type=int, default=256, help="torch: similarity block per query chunk")
    parser.add_argument("--worker", choices=["faiss", "torch"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(_worker(args.sizes[0], args, args.worker)))
        return
    threads = torch.get_num_threads()
    print(f"dim {args.dim}, {args.queries} queries, k {args.k}, device {args.device}, threads {threads}")
    cols = ("memory", "method", "build s", "query s", "peak+ MB", "VOC val (min)")
    print(" ".join(f"{c:>{w}}" for c, w in zip(cols, (10, 6, 8, 8, 9, 14))))
    for size in args.sizes:
        res = {m: _run(size, args, m) for m in args.methods}
        for m, r in res.items():
            voc_min = r["query_s"] * VOC_VAL_QUERIES / args.queries / 60
            mem = r["cuda_peak_mb"] if args.device == "cuda" and m == "torch" else r["extra_peak_mb"]
            print(f"{size:>10} {m:>6} {r['build_s']:>8.2f} {r['query_s']:>8.2f} {mem:>9.0f} {voc_min:>14.1f}")
        if len(res) < 2:
            continue
        f, t = res["faiss"], res["torch"]
        print(
            f"{size:>10} ratio torch/faiss: query time {t['query_s'] / f['query_s']:.2f}x, "
            f"extra peak {t['extra_peak_mb'] / max(f['extra_peak_mb'], 1):.2f}x, "
            f"same top-5 neighbours {100 * _agreement(f, t):.1f}%, "
            f"max |prediction difference| {_max_diff(f, t):.2e}"
        )


if __name__ == "__main__":
    main()
