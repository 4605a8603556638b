"""Prediction: THE way out of a model, for validation, hfcls-eval, hfcls.pipeline, hfcls-demo and hfcls-bench.

inputs.py    uint8 batches -> what the model takes: normalised, in its memory format, its autocast
forward.py   one pass: class scores (+ logits, + the head's input as features); `predict` over a loader
tta.py       the views test-time augmentation averages the class scores over
features.py  the head's input, read by a hook during the pass that scores
scores.py    logits -> class scores, and a multi-label model's predicted classes
"""
