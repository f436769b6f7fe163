"""k-NN voting against a plain float64 loop, constructed features with a certain answer, the slice curve."""

from __future__ import annotations

import math

import pytest
import torch

from franca_core.evaluation import knn
from franca_core.evaluation.neighbours import l2_normalize, search


def naive_knn_scores(
    train: torch.Tensor, labels: torch.Tensor, test: torch.Tensor, k: int, max_k: int, t: float, c: int
) -> torch.Tensor:
    """DINOv2's vote written as loops in float64: softmax over the max_k best, summed over the first k."""
    train = train.double() / train.double().norm(dim=1, keepdim=True)
    test = test.double() / test.double().norm(dim=1, keepdim=True)
    out = torch.zeros(len(test), c, dtype=torch.float64)
    for i in range(len(test)):
        sims = [(float(test[i] @ train[j]), j) for j in range(len(train))]
        sims.sort(key=lambda s: -s[0])
        top = sims[:max_k]
        z = sum(math.exp(s / t) for s, _ in top)
        for s, j in top[:k]:
            out[i, labels[j]] += math.exp(s / t) / z
    return out


@pytest.mark.parametrize("ks", [(1, 3, 7), (5, 20)])
def test_votes_match_naive_loop(ks: tuple[int, ...]) -> None:
    gen = torch.Generator().manual_seed(0)
    train, test = torch.randn(40, 8, generator=gen), torch.randn(6, 8, generator=gen)
    labels = torch.randint(0, 4, (40,), generator=gen)
    max_k = max(ks)
    sims, idx = search(l2_normalize(train.double()), l2_normalize(test.double()), max_k, "torch")
    votes = knn.knn_votes(sims.double(), idx, labels, ks, 0.07, 4)
    for i, k in enumerate(ks):
        ref = naive_knn_scores(train, labels, test, k, max_k, 0.07, 4)
        torch.testing.assert_close(votes[i].double(), ref, rtol=1e-5, atol=1e-7)


def test_constructed_clusters_give_certain_answer() -> None:
    # Class c lives at +-0.05 around basis vector e_c: every neighbour of a test point is of its class.
    gen = torch.Generator().manual_seed(1)
    c, d = 5, 16
    centres = torch.eye(c, d)
    train_labels = torch.arange(c).repeat_interleave(30)
    test_labels = torch.arange(c).repeat_interleave(10)
    train = centres[train_labels] + 0.05 * torch.randn(len(train_labels), d, generator=gen)
    test = centres[test_labels] + 0.05 * torch.randn(len(test_labels), d, generator=gen)
    accs = knn.knn_accuracies(train, train_labels, test, test_labels, [10, 20])
    assert all(a.top1 == 100.0 for a in accs)
    # A test point placed exactly on the wrong centre is classified as that centre.
    wrong = knn.knn_predict_topk(train, train_labels, centres[[1]], [10])
    assert wrong[0, 0, 0].item() == 1


def test_faiss_and_torch_search_agree() -> None:
    pytest.importorskip("faiss")
    gen = torch.Generator().manual_seed(2)
    keys, queries = l2_normalize(torch.randn(500, 32, generator=gen)), torch.randn(50, 32, generator=gen)
    s1, i1 = search(keys, queries, 7, "torch")
    s2, i2 = search(keys, queries, 7, "faiss")
    torch.testing.assert_close(s1, s2, rtol=1e-5, atol=1e-5)
    assert (i1 == i2).float().mean() > 0.99


def test_matryoshka_curve_prefix_vs_pca() -> None:
    # Class information lives only in the LAST 4 of 16 dims, with more variance than the noise:
    # slicing the first dims loses it, PCA to 4 dims keeps it.
    gen = torch.Generator().manual_seed(3)
    labels = torch.arange(4).repeat_interleave(25)
    noise = 0.3 * torch.randn(100, 16, generator=gen)
    signal = torch.zeros(100, 16)
    signal[torch.arange(100), 12 + labels] = 3.0
    feats = noise + signal
    dims = knn.matryoshka_dims(16, 3)
    assert dims == [16, 8, 4]
    curve = knn.matryoshka_curve(feats[::2], labels[::2], feats[1::2], labels[1::2], dims, k=5)
    by_dim = {p.dim: p for p in curve}
    assert by_dim[16].top1_slice == 100.0
    assert by_dim[4].top1_slice < 60.0  # first 4 dims are pure noise
    assert by_dim[4].top1_pca == 100.0


def test_compute_reports_every_k_and_the_best() -> None:
    gen = torch.Generator().manual_seed(4)
    labels = torch.arange(3).repeat_interleave(20)
    feats = torch.eye(3, 8)[labels] + 0.1 * torch.randn(60, 8, generator=gen)
    cfg = knn.KnnConfig(data="x", ks=(1, 5), matryoshka_levels=2)
    result = knn.compute(cfg, feats, labels, feats, labels)
    assert [a.k for a in result.accuracies] == [1, 5] and result.best_top1 == 100.0
    assert [p.dim for p in result.matryoshka] == [8, 4]
    assert set(result.headline()) >= {"top1@k1", "top1@k5"}
