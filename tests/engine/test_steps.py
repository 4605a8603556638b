"""One step's work on batches: the classification loss, the validation metrics training logs."""

import numpy as np
import pytest
import torch

from hfcls.engine.steps import classification_loss, validation_metrics
from hfcls.metrics import evaluate_metrics


def test_label_smoothing_changes_the_loss():
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.5, 1.5, 0.0]])
    labels = torch.tensor([0, 1])
    valid = torch.tensor([True, True])
    log_p = logits.log_softmax(dim=1)
    eps = 0.3
    # (1 - eps) * NLL + eps * mean over classes of -log p
    expected = ((1 - eps) * -log_p[[0, 1], labels] + eps * -log_p.mean(dim=1)).mean()
    assert classification_loss(logits, labels, valid, eps).item() == pytest.approx(expected.item(), rel=1e-6)
    assert classification_loss(logits, labels, valid, 0.0).item() == pytest.approx(-log_p[[0, 1], labels].mean().item())


def test_validation_metrics_count_only_valid_images():
    logits = torch.tensor([[2.0, 0.0], [0.0, 2.0], [5.0, 0.0]])
    labels = torch.tensor([0, 0, 1])
    metrics = validation_metrics(logits, labels, torch.tensor([True, True, False]), topk=(1,))
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
    got = validation_metrics(logits, torch.from_numpy(labels), valid, topk=[1, 2])
    expected = evaluate_metrics(["accuracy"], scores[10:], labels[10:], topk=[1, 2])
    assert got["accuracy_top1"] == pytest.approx(expected["accuracy_top1"])
    assert got["accuracy_top2"] == pytest.approx(expected["accuracy_top2"])
    assert got["loss"] == pytest.approx(float(-np.log(scores[np.arange(10, 301), labels[10:]]).mean()), rel=1e-5)
