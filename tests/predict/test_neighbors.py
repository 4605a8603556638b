"""hfcls.predict.neighbors: the chunked search equals a full sort, slices searched apart merge into the same
answer, and the k-NN vote equals scikit-learn's KNeighborsClassifier (cosine) with uniform and DINO weights."""

import numpy as np
import pytest
import torch
from sklearn.neighbors import KNeighborsClassifier

from hfcls.predict.neighbors import knn_scores, merged_slices, nearest, nearest_in_slice, normalized


@pytest.fixture(scope="module")
def features():
    """(queries, gallery, gallery labels): 3 noisy clusters in 8 dimensions, normalised."""
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(3, 8))
    labels = rng.integers(0, 3, size=53)
    gallery = centres[labels] + rng.normal(scale=0.9, size=(53, 8))
    queries = centres[rng.integers(0, 3, size=19)] + rng.normal(scale=0.9, size=(19, 8))
    as_unit = lambda a: normalized(torch.tensor(a, dtype=torch.float32))  # noqa: E731
    return as_unit(queries), as_unit(gallery), torch.tensor(labels)


def test_the_chunked_search_equals_a_full_sort(features):
    queries, gallery, _ = features
    sims, indices = nearest(queries, gallery, 6, query_chunk=7, gallery_chunk=5)
    full = queries @ gallery.T
    order = full.argsort(dim=1, descending=True)[:, :6]
    assert torch.equal(indices, order)
    torch.testing.assert_close(sims, full.gather(1, order))


@pytest.mark.parametrize("count, k", [(2, 6), (3, 20), (4, 53)])  # k above a slice's 14-18 rows: padding
def test_slices_searched_apart_merge_into_the_single_answer(features, count, k):
    queries, gallery, _ = features
    parts = [
        nearest_in_slice(queries, gallery, k, rank, count, query_chunk=5, gallery_chunk=4) for rank in range(count)
    ]
    gathered = [torch.cat([part[i] for part in parts]) for i in (0, 1)]  # accelerator.gather's order: by process
    sims, indices = merged_slices(*gathered, count, k)
    alone = nearest(queries, gallery, k)
    assert torch.equal(indices, alone[1])
    torch.testing.assert_close(sims, alone[0])  # other blocks, other float sums: equal to rounding


@pytest.mark.parametrize("temperature", [None, 0.07, 0.5])
def test_the_vote_equals_scikit_learns_k_neighbours_classifier(features, temperature):
    queries, gallery, labels = features
    # scikit-learn's cosine distance is 1 - similarity; DINO's weight exp(similarity / T) is a weight function.
    weights = "uniform" if temperature is None else (lambda d: np.exp((1 - d) / temperature))
    reference = KNeighborsClassifier(n_neighbors=7, metric="cosine", algorithm="brute", weights=weights)
    expected = reference.fit(gallery.numpy(), labels.numpy()).predict_proba(queries.numpy())
    sims, indices = nearest(queries, gallery, 7)
    scores = knn_scores(sims, labels[indices], 3, temperature)
    np.testing.assert_allclose(scores.numpy(), expected, atol=1e-5)
    assert (scores.argmax(dim=1).numpy() == reference.predict(queries.numpy())).all()


def test_k_above_the_gallery_takes_all_of_it(features):
    queries, gallery, labels = features
    sims, indices = nearest(queries, gallery[:4], 20)
    assert indices.shape == (19, 4)
    scores = knn_scores(sims, labels[:4][indices], 3, None)
    np.testing.assert_allclose(scores.numpy(), np.bincount(labels[:4], minlength=3)[None].repeat(19, 0) / 4)
