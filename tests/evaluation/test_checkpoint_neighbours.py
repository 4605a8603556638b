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


def evaluated(trained_digits, metrics, **options):
    recipe, work = trained_digits
    request = EvalRequest(load_recipe(recipe), work / "best", metrics=metrics, metric_options=options)
    return evaluate_checkpoint(request).metrics


@pytest.mark.parametrize("temperature", [None, 0.07])
def test_knn_equals_scikit_learn_on_the_same_features(trained_digits, features, temperature):
    train, train_labels, val, val_labels = features
    metrics = evaluated(trained_digits, ["accuracy", "knn"], k=10, temperature=temperature, topk=[1, 3])
    weights = "uniform" if temperature is None else (lambda d: np.exp((1 - d) / temperature))
    reference = KNeighborsClassifier(n_neighbors=10, metric="cosine", algorithm="brute", weights=weights)
    proba = reference.fit(train, train_labels).predict_proba(val)
    top3 = np.argsort(-proba, axis=1, kind="stable")[:, :3]
    assert metrics["knn_top1"] == pytest.approx(100 * (proba.argmax(axis=1) == val_labels).mean(), abs=1e-9)
    assert metrics["knn_top3"] == pytest.approx(100 * (top3 == val_labels[:, None]).any(axis=1).mean(), abs=1e-9)
    assert 60 < metrics["knn_top1"] <= metrics["knn_top3"] and metrics["accuracy_top1"] > 60


def test_retrieval_equals_scikit_learns_ranking(trained_digits, features):
    train, train_labels, val, val_labels = features
    metrics = evaluated(trained_digits, ["retrieval"], topk=[1, 5, 20])
    ranked = NearestNeighbors(n_neighbors=20, metric="cosine", algorithm="brute").fit(train).kneighbors(val)[1]
    relevant = np.bincount(train_labels, minlength=10)[val_labels]
    reference = retrieval_metrics(train_labels[ranked], val_labels, relevant, [1, 5, 20])
    assert metrics.keys() == reference.keys()
    for key, value in reference.items():
        assert metrics[key] == pytest.approx(value, abs=1e-9), key
    assert metrics["recall@1"] == pytest.approx(evaluated(trained_digits, ["knn"], k=1, topk=[1])["knn_top1"])


def test_the_command_prints_the_knn_and_retrieval_rows(command, trained_digits):
    recipe, work = trained_digits
    out = ok(
        command(
            "hfcls-eval",
            recipe,
            work / "best",
            "--metrics",
            "knn",
            "retrieval",
            "--metric-options",
            "k=5",
            "temperature=none",
            "topk=1",
        )
    )
    assert all(f"| {name} " in out for name in ("knn_top1", "recall@1", "mAP@1"))


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
