"""Metrics against hand-computed values: confusion matrix, IoU, matching, OOD metrics."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from franca_core.evaluation.metrics import (
    balanced_accuracy,
    confusion_matrix,
    greedy_many_to_one_mapping,
    hungarian_mapping,
    iou_per_class,
    mean_iou,
    ood_metrics,
    remap_confusion,
    topk_accuracy,
)


def test_miou_hand_computed() -> None:
    # 2x4 image, classes {0, 1, 2}, ignore 255.
    target = torch.tensor([[0, 0, 1, 1], [2, 2, 255, 1]])
    pred = torch.tensor([[0, 1, 1, 1], [2, 0, 0, 2]])
    conf = confusion_matrix(pred, target, 3, 3, ignore_index=255)
    # pixels (pred, target): (0,0) (1,0) (1,1) (1,1) (2,2) (0,2) (2,1); the ignore pixel is dropped
    assert conf.sum() == 7
    # class 0: TP 1, FP 1 (pred 0 on a 2), FN 1 (a 0 predicted 1) -> 1/3
    # class 1: TP 2, FP 1 (pred 1 on a 0), FN 1 (a 1 predicted 2) -> 2/4
    # class 2: TP 1, FP 1 (pred 2 on a 1), FN 1 (a 2 predicted 0) -> 1/3
    np.testing.assert_allclose(iou_per_class(conf), [1 / 3, 2 / 4, 1 / 3])
    assert mean_iou(conf) == pytest.approx(100 * (1 / 3 + 1 / 2 + 1 / 3) / 3)


def test_absent_class_is_left_out_of_the_mean() -> None:
    target = torch.tensor([0, 0, 1, 1])
    conf = confusion_matrix(target.clone(), target, 3, 3, ignore_index=255)
    iou = iou_per_class(conf)
    assert np.isnan(iou[2]) and mean_iou(conf) == pytest.approx(100.0)


def test_confusion_rejects_unknown_ids() -> None:
    with pytest.raises(ValueError, match="target ids"):
        confusion_matrix(torch.tensor([0]), torch.tensor([5]), 3, 3, ignore_index=255)


def test_hungarian_recovers_a_permutation() -> None:
    target = torch.tensor([0, 0, 0, 1, 1, 2, 2, 2, 2])
    perm = torch.tensor([2, 0, 1])  # class c predicted as id perm[c]
    pred = perm[target]
    conf = confusion_matrix(pred, target, 3, 3, 255)
    assert mean_iou(conf) == pytest.approx(0.0)
    mapping = hungarian_mapping(conf)
    assert mapping.tolist() == [1, 2, 0]  # pred id -> class
    assert mean_iou(remap_confusion(conf, mapping)) == pytest.approx(100.0)


def test_greedy_many_to_one_merges_clusters() -> None:
    # 4 clusters over 2 classes: clusters 0, 1 are pure class 0; cluster 2 is 3/4 class 1; cluster 3 empty.
    target = torch.tensor([0, 0, 0, 0, 1, 1, 1, 0])
    pred = torch.tensor([0, 0, 1, 1, 2, 2, 2, 2])
    conf = confusion_matrix(pred, target, 4, 2, 255)
    mapping = greedy_many_to_one_mapping(conf)
    assert mapping.tolist() == [0, 0, 1, -1]
    merged = remap_confusion(conf, mapping)
    # class 0: TP 4, FN 1 (the 0 in cluster 2), FP 0 -> 4/5; class 1: TP 3, FP 1 -> 3/4
    np.testing.assert_allclose(iou_per_class(merged), [4 / 5, 3 / 4])


def test_hungarian_with_more_clusters_counts_unmatched_as_misses() -> None:
    target = torch.tensor([0, 0, 0, 0, 1, 1])
    pred = torch.tensor([0, 0, 1, 1, 2, 2])  # class 0 split over clusters 0 and 1
    conf = confusion_matrix(pred, target, 3, 2, 255)
    merged = remap_confusion(conf, hungarian_mapping(conf))
    # one of clusters 0/1 is matched to class 0 (IoU 2/4); cluster 2 to class 1 (IoU 1)
    np.testing.assert_allclose(iou_per_class(merged), [0.5, 1.0])


def test_ood_metrics_separable_and_hand_computed() -> None:
    perfect = ood_metrics(np.array([5.0, 6.0, 7.0]), np.array([1.0, 2.0]))
    assert perfect.auroc == pytest.approx(100.0) and perfect.fpr_at_95_tpr == pytest.approx(0.0)
    assert perfect.aupr_in == pytest.approx(100.0) and perfect.aupr_out == pytest.approx(100.0)
    # ID scores {1, 3}, OOD {2, 0}: of the 4 (ID, OOD) pairs, 3 rank ID higher -> AUROC 75 %.
    partial = ood_metrics(np.array([1.0, 3.0]), np.array([2.0, 0.0]))
    assert partial.auroc == pytest.approx(75.0)
    # detecting both OOD samples (TPR 100 % >= 95 %) needs threshold -score >= -2, flagging ID score 1 too.
    assert partial.fpr_at_95_tpr == pytest.approx(50.0)


def test_accuracies() -> None:
    scores = torch.tensor([[0.1, 0.9, 0.0], [0.8, 0.15, 0.05], [0.2, 0.3, 0.5]])
    labels = torch.tensor([1, 1, 0])
    assert topk_accuracy(scores, labels) == pytest.approx(100 / 3)
    assert topk_accuracy(scores, labels, 2) == pytest.approx(200 / 3)
    assert balanced_accuracy(scores.argmax(1), labels, 3) == pytest.approx(25.0)
