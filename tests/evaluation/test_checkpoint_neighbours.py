"""hfcls-eval's metrics on features, on the digits model: knn (the training split as gallery, the val split as
queries) equal to scikit-learn's KNeighborsClassifier on the same features, retrieval's recall@k and mAP@k
equal to scikit-learn's NearestNeighbors ranking; a split without labels, or an option out of range, is one line."""

import numpy as np
import pytest
from sklearn.neighbors import KNeighborsClassifier, NearestNeighbors

import hfcls
from hfcls.evaluation.checkpoint import evaluate_checkpoint
from hfcls.evaluation.request import EvalRequest
from hfcls.metrics.retrieval import retrieval_metrics
from hfcls.recipe import load_recipe

from commands import ok, user_error

pytestmark = pytest.mark.xdist_group("neighbours")  # one worker extracts the module's features, once


@pytest.fixture(scope="module")
def features(trained_digits, digits_dir, val_files):
    """(train features, train labels, val features, val labels) of the digits model, through hfcls.pipeline."""
    _, work = trained_digits
    train_files = sorted(str(p) for p in (digits_dir / "train").rglob("*.png"))
    classifier = hfcls.pipeline(work / "best", device="cpu", batch_size=256)
    label = lambda files: np.array([int(f.split("/")[-2]) for f in files])  # noqa: E731
    return (
        classifier.features(train_files).numpy(),
        label(train_files),
        classifier.features(val_files).numpy(),
        label(val_files),
    )


def knn_reference(train, train_labels, val, k: int, temperature) -> np.ndarray:
    """scikit-learn's class probabilities: cosine distance is 1 - similarity, DINO's weight a weight function."""
    weights = "uniform" if temperature is None else (lambda d: np.exp((1 - d) / temperature))
    reference = KNeighborsClassifier(n_neighbors=k, metric="cosine", algorithm="brute", weights=weights)
    return reference.fit(train, train_labels).predict_proba(val)


def top(proba, labels, k: int) -> float:
    return 100 * (np.argsort(-proba, axis=1, kind="stable")[:, :k] == labels[:, None]).any(axis=1).mean()


def test_knn_with_one_vote_each_and_retrieval_equal_scikit_learn(trained_digits, features):
    recipe, work = trained_digits
    train, train_labels, val, val_labels = features
    options = {"k": 10, "temperature": None, "topk": [1, 3, 20]}
    request = EvalRequest(load_recipe(recipe), work / "best", metrics=["knn", "retrieval"], metric_options=options)
    metrics = evaluate_checkpoint(request).metrics
    proba = knn_reference(train, train_labels, val, 10, None)
    for k in (1, 3):
        assert metrics[f"knn_top{k}"] == pytest.approx(top(proba, val_labels, k), abs=1e-9)
    ranked = NearestNeighbors(n_neighbors=20, metric="cosine", algorithm="brute").fit(train).kneighbors(val)[1]
    relevant = np.bincount(train_labels, minlength=10)[val_labels]
    reference = retrieval_metrics(train_labels[ranked], val_labels, relevant, [1, 3, 20])
    assert {key: metrics[key] for key in reference} == pytest.approx(reference, abs=1e-9)
    assert 60 < metrics["knn_top1"] < metrics["knn_top3"] and 0 < metrics["mAP@20"] < metrics["recall@20"]


def test_the_command_prints_dinos_weighted_knn_as_scikit_learn_computes_it(command, trained_digits, features):
    recipe, work = trained_digits
    train, train_labels, val, val_labels = features
    out = ok(
        command(
            "hfcls-eval",
            recipe,
            work / "best",
            "--metrics",
            "accuracy",
            "knn",
            "--metric-options",
            "k=20",
            "temperature=0.07",
            "topk=1,5",
        )
    )
    printed = dict(
        line.strip("| ").split(" | ") for line in out.splitlines() if line.startswith("| ") and "metric" not in line
    )
    proba = knn_reference(train, train_labels, val, 20, 0.07)
    assert {key.strip(): value.strip() for key, value in printed.items() if key.startswith("knn")} == {
        "knn_top1": f"{top(proba, val_labels, 1):.2f}",
        "knn_top5": f"{top(proba, val_labels, 5):.2f}",
    }


def test_knn_on_a_split_without_labels_is_one_line(command, trained_digits, digits_dir, tmp_path):
    recipe, work = trained_digits
    (tmp_path / "test.txt").write_text(
        "".join(f"{p.parent.name}/{p.name}\n" for p in sorted((digits_dir / "val" / "3").iterdir()))
    )
    unlabelled = f"data.test={{type: annotation_list, ann_file: {tmp_path / 'test.txt'}, data_prefix: {digits_dir / 'val'}, classes: [{', '.join(map(str, range(10)))}]}}"
    line = user_error(
        command(
            "hfcls-eval", recipe, work / "best", "--split", "test", "--metrics", "knn", "--cfg-options", unlabelled
        ),
        "data.test",
        "have no label",
    )
    assert "metrics need labels" in line
    unlabelled_train = unlabelled.replace("data.test", "data.train")
    line = user_error(
        command("hfcls-eval", recipe, work / "best", "--metrics", "knn", "--cfg-options", unlabelled_train),
        "data.train",
        "knn and retrieval take the labels of the gallery's images from it",
    )


@pytest.mark.parametrize(
    "option, words",
    [
        ("k=0", "metric option k (the neighbours that vote in knn) must be a whole number of 1 or more, got 0"),
        ("temperature=-1", "metric option temperature (of the knn votes) must be a number above 0, or none"),
    ],
)
def test_knn_options_out_of_range_are_one_line(command, trained_digits, option, words):
    recipe, work = trained_digits
    user_error(command("hfcls-eval", recipe, work / "best", "--metrics", "knn", "--metric-options", option), words)
