"""The validation metrics training logs, from one prediction pass."""

import numpy as np
import pytest
import torch

from hfcls.engine.validation import validation_metrics
from hfcls.labels import MULTI_LABEL, SINGLE_LABEL
from hfcls.metrics import evaluate_metrics
from hfcls.predict.forward import Predictions
from hfcls.predict.scores import class_scores


def predictions(logits, labels, valid, problem_type=SINGLE_LABEL) -> Predictions:
    """What `predict` returns for these logits."""
    return Predictions(class_scores(logits, problem_type), logits, labels=labels, valid=valid)


def test_validation_metrics_count_only_valid_images():
    logits = torch.tensor([[2.0, 0.0], [0.0, 2.0], [5.0, 0.0]])
    labels = torch.tensor([0, 0, 1])
    metrics = validation_metrics(predictions(logits, labels, torch.tensor([True, True, False])), topk=(1,))
    assert metrics["accuracy_top1"] == 50.0


def test_training_loop_metrics_use_the_same_accuracy():
    """Softmax scores and labels of 7 classes, as tests/metrics/test_metrics.py draws them."""
    rng = np.random.default_rng(0)
    raw = rng.normal(size=(301, 7)) * 2
    scores = (np.exp(raw) / np.exp(raw).sum(axis=1, keepdims=True)).astype(np.float32)
    labels = rng.integers(0, 6, size=301)
    logits = torch.from_numpy(np.log(scores))
    valid = torch.ones(len(labels), dtype=torch.bool)
    valid[:10] = False  # undecodable images count nowhere
    got = validation_metrics(predictions(logits, torch.from_numpy(labels), valid), topk=[1, 2])
    expected = evaluate_metrics(["accuracy"], scores[10:], labels[10:], topk=[1, 2])
    assert got["accuracy_top1"] == pytest.approx(expected["accuracy_top1"])
    assert got["accuracy_top2"] == pytest.approx(expected["accuracy_top2"])
    assert got["loss"] == pytest.approx(float(-np.log(scores[np.arange(10, 301), labels[10:]]).mean()), rel=1e-5)


def test_multi_hot_labels_are_validated_with_multi_label_metrics():
    """Multi-hot labels: BCE over the known classes, mAP and CP..OF1, numbers only (no per-class lists)."""
    rng = np.random.default_rng(2)
    logits = torch.from_numpy(rng.normal(size=(40, 4)).astype(np.float32))
    labels = torch.from_numpy((rng.random((40, 4)) < 0.4).astype(np.float32))
    labels[0, 1] = -1  # a difficult-only class: out of the loss and the metrics
    valid = torch.ones(40, dtype=torch.bool)
    valid[-5:] = False
    got = validation_metrics(predictions(logits, labels, valid, MULTI_LABEL), topk=[1, 5])
    expected = evaluate_metrics(["mAP", "CP", "CR", "CF1", "OP", "OR", "OF1"], logits[:35].sigmoid(), labels[:35])
    assert got == pytest.approx({"loss": got["loss"], **{k: v for k, v in expected.items() if not isinstance(v, list)}})
    known = labels[:35] >= 0
    bce = torch.nn.functional.binary_cross_entropy_with_logits(logits[:35], labels[:35].clamp(min=0), reduction="none")
    assert got["loss"] == pytest.approx(((bce * known).sum(1) / known.sum(1)).mean().item(), rel=1e-6)
