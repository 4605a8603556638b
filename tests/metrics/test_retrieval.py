"""hfcls.metrics.retrieval: recall@k and mAP@k from the neighbours the search keeps, equal to a brute-force
reference that ranks the whole gallery for every query."""

import numpy as np
import pytest
import torch

from hfcls.errors import HfclsError
from hfcls.metrics.retrieval import retrieval_metrics
from hfcls.predict.neighbors import nearest, normalized


def brute_force(queries, query_labels, gallery, gallery_labels, k):
    """recall@k and mAP@k by their definitions, one query at a time, over the whole ranked gallery."""
    recalls, precisions = [], []
    for q, label in zip(queries, query_labels):
        ranked = gallery_labels[np.argsort(-(gallery @ q), kind="stable")]
        relevant = int((gallery_labels == label).sum())
        hits = [int(ranked[i] == label) for i in range(k)]
        recalls.append(any(hits))
        if relevant:
            precision_at = [sum(hits[: i + 1]) / (i + 1) for i in range(k)]
            precisions.append(sum(p * h for p, h in zip(precision_at, hits)) / min(relevant, k))
    return {f"recall@{k}": 100 * np.mean(recalls), f"mAP@{k}": 100 * np.mean(precisions)}


def test_recall_and_map_equal_the_brute_force_reference():
    rng = np.random.default_rng(1)
    centres = rng.normal(size=(4, 6))
    gallery_labels = rng.integers(0, 3, size=80)  # class 3 is in no gallery image: its queries count only in recall
    query_labels = rng.integers(0, 4, size=30)
    gallery = normalized(torch.tensor(centres[gallery_labels] + rng.normal(size=(80, 6)), dtype=torch.float32))
    queries = normalized(torch.tensor(centres[query_labels] + rng.normal(size=(30, 6)), dtype=torch.float32))
    sims, indices = nearest(queries, gallery, 10, query_chunk=8, gallery_chunk=16)
    relevant = np.bincount(gallery_labels, minlength=4)[query_labels]
    ours = retrieval_metrics(gallery_labels[indices.numpy()], query_labels, relevant, [1, 5, 10])
    for k in (1, 5, 10):
        reference = brute_force(queries.numpy(), query_labels, gallery.numpy(), gallery_labels, k)
        assert ours[f"recall@{k}"] == pytest.approx(reference[f"recall@{k}"], abs=1e-9)
        assert ours[f"mAP@{k}"] == pytest.approx(reference[f"mAP@{k}"], abs=1e-9)
    assert 0 < ours["mAP@10"] < ours["recall@10"] < 100


def test_perfect_and_hopeless_rankings():
    labels = np.array([[0, 0, 1], [1, 1, 1]])
    assert retrieval_metrics(labels, np.array([0, 1]), np.array([2, 5]), [3]) == {"recall@3": 100.0, "mAP@3": 100.0}
    assert retrieval_metrics(labels, np.array([2, 2]), np.array([1, 1]), [3]) == {"recall@3": 0.0, "mAP@3": 0.0}
    with pytest.raises(HfclsError, match="no query's class is in the gallery"):
        retrieval_metrics(labels, np.array([2, 2]), np.array([0, 0]), [3])
