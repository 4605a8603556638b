"""Nearest neighbours among features: k-NN classification (hfcls-eval --metrics knn) and image retrieval
(hfcls-retrieve, hfcls.pipeline(...).retrieve, --metrics retrieval) both search here.

Similarity is the cosine of the L2-normalised features the model's head reads (hfcls.predict.features).
`nearest` compares a block of queries with a block of the gallery at a time and keeps the best k of each
query as it goes, so memory holds QUERY_CHUNK x GALLERY_CHUNK similarities whatever the sizes. On several
processes every one holds the whole gallery (predict gathers it once) and searches its own slice of it;
the k best of every slice are then gathered and merged, so each process does 1/N of the work.

`knn_scores` is DINO's weighted k-NN vote (Caron et al. 2021, eval_knn.py): each of the k nearest gallery
images votes for its class with weight exp(similarity / T), T = 0.07 by DINO's default; without a
temperature every neighbour votes once (a plain majority, scikit-learn's uniform weights).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

QUERY_CHUNK = 1024
GALLERY_CHUNK = 16384
DEFAULT_K = 20
DEFAULT_TEMPERATURE = 0.07


def normalized(features: torch.Tensor) -> torch.Tensor:
    return F.normalize(features.float(), dim=1)


def nearest(
    queries: torch.Tensor,
    gallery: torch.Tensor,
    k: int,
    *,
    accelerator=None,
    query_chunk: int = QUERY_CHUNK,
    gallery_chunk: int = GALLERY_CHUNK,
) -> tuple:
    """(similarities, gallery indices), both (Q, k), of each query's k most similar gallery rows, best first;
    rows L2-normalised already. With an `accelerator`, each process searches a slice of the gallery and
    every process gets the merged answer."""
    k = min(k, len(gallery))
    if accelerator is None or accelerator.num_processes == 1:
        return nearest_in(queries, gallery, k, query_chunk, gallery_chunk)
    rank, count = accelerator.process_index, accelerator.num_processes
    part = nearest_in_slice(queries, gallery, k, rank, count, query_chunk, gallery_chunk)
    sims, indices = (accelerator.gather(tensor.to(accelerator.device)).cpu() for tensor in part)
    return merged_slices(sims, indices, accelerator.num_processes, k)


def nearest_in_slice(
    queries, gallery, k: int, rank: int, count: int, query_chunk: int = QUERY_CHUNK, gallery_chunk: int = GALLERY_CHUNK
) -> tuple:
    """Process `rank` of `count`'s share of `nearest`: the k best of its slice of the gallery, for every query,
    padded to k columns where the slice holds fewer (similarity -inf: never among the best)."""
    start, stop = process_slice(len(gallery), rank, count)
    sims, indices = nearest_in(queries, gallery[start:stop], k, query_chunk, gallery_chunk, offset=start)
    missing = k - sims.shape[1]
    if missing > 0:
        sims = torch.cat([sims, torch.full((len(sims), missing), -torch.inf)], 1)
        indices = torch.cat([indices, torch.zeros(len(indices), missing, dtype=torch.long)], 1)
    return sims, indices


def merged_slices(sims: torch.Tensor, indices: torch.Tensor, count: int, k: int) -> tuple:
    """The k best of every process's k best, gathered as (count x Q, k) rows, process after process."""
    queries = len(sims) // count

    def per_query(tensor):
        return tensor.view(count, queries, k).permute(1, 0, 2).reshape(queries, count * k)

    return best_of(per_query(sims), per_query(indices), k)


def nearest_in(queries, gallery, k: int, query_chunk: int, gallery_chunk: int, offset: int = 0) -> tuple:
    """`nearest` on one process: block by block, the k best of each query kept as the blocks go by."""
    sims_out, indices_out = [], []
    for q in range(0, len(queries), query_chunk):
        block = queries[q : q + query_chunk]
        sims = torch.empty(len(block), 0)
        indices = torch.empty(len(block), 0, dtype=torch.long)
        for g in range(0, len(gallery), gallery_chunk):
            similarity = block @ gallery[g : g + gallery_chunk].T
            top = similarity.topk(min(k, similarity.shape[1]), dim=1)
            sims, indices = best_of(
                torch.cat([sims, top.values], 1), torch.cat([indices, top.indices + g + offset], 1), k
            )
        sims_out.append(sims)
        indices_out.append(indices)
    return torch.cat(sims_out), torch.cat(indices_out)


def best_of(sims: torch.Tensor, indices: torch.Tensor, k: int) -> tuple:
    """The k best columns of each row, best first (on equal similarity the lower gallery index first)."""
    order = torch.argsort(indices, dim=1, stable=True)  # ties then resolve by index, whatever the blocks were
    sims, indices = sims.gather(1, order), indices.gather(1, order)
    top = torch.argsort(sims, dim=1, descending=True, stable=True)[:, :k]
    return sims.gather(1, top), indices.gather(1, top)


def process_slice(size: int, rank: int, count: int) -> tuple:
    """The rows [start, stop) of `size` that process `rank` of `count` searches."""
    per = -(-size // count)
    return min(rank * per, size), min((rank + 1) * per, size)


def knn_scores(sims: torch.Tensor, neighbour_labels: torch.Tensor, num_classes: int, temperature=DEFAULT_TEMPERATURE):
    """(Q, C) class scores from the k nearest neighbours' labels and similarities: each neighbour's vote
    exp(similarity / T) (one vote each without a temperature), as a share of the query's votes."""
    votes = torch.ones_like(sims) if temperature is None else (sims / temperature).exp()
    votes = votes.masked_fill(sims == -torch.inf, 0)
    scores = torch.zeros(len(sims), num_classes).scatter_add_(1, neighbour_labels, votes)
    return scores / scores.sum(dim=1, keepdim=True).clamp(min=torch.finfo(scores.dtype).tiny)
