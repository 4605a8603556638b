"""Retrieval metrics from each query's ranked neighbours: an image is relevant to a query when it has the
query's class.

    recall@k   the share of queries with at least one relevant image among their k nearest (the Recall@K
               of metric-learning papers, MMPretrain's RetrievalRecall), in %
    mAP@k      the mean over queries of AP@k = sum over ranks i <= k of precision@i x rel(i), divided by
               min(R, k), R the query's relevant images in the gallery: 100 when the first min(R, k)
               neighbours are all relevant; queries with no relevant image in the gallery are left out

Inputs are NumPy arrays: the gallery labels of each query's neighbours, best first (Q, K), the query labels
(Q,), and how many gallery images share each query's label (Q,).
"""

from __future__ import annotations

import numpy as np

from hfcls.errors import HfclsError


def retrieval_metrics(neighbour_labels, query_labels, relevant, topk) -> dict:
    """{recall@k, mAP@k} for each k of `topk` (at most K, the neighbours given)."""
    neighbour_labels, query_labels = np.asarray(neighbour_labels), np.asarray(query_labels)
    relevant = np.asarray(relevant)
    if (relevant == 0).all():
        raise HfclsError("retrieval: no query's class is in the gallery; nothing could be found")
    hits = neighbour_labels == query_labels[:, None]
    results = {}
    for k in topk:
        found = hits[:, :k]
        precision = np.cumsum(found, axis=1) / np.arange(1, found.shape[1] + 1)
        ap = (precision * found).sum(axis=1) / np.minimum(relevant, k).clip(min=1)
        results[f"recall@{k}"] = float(found.any(axis=1).mean() * 100)
        results[f"mAP@{k}"] = float(ap[relevant > 0].mean() * 100)
    return results
