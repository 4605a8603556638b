"""One training step: the work on a batch that training repeats and hfcls-bench times.

Batches arrive as uint8 images; the run's input adapter (hfcls.predict.inputs) turns them into
float on the device.
"""

from __future__ import annotations

import torch


def train_step(run, batch: dict, admits=lambda loss: True) -> torch.Tensor | None:
    """Forward, loss (with a teacher's term when distilling), backward and the optimizer and LR steps
    (when accumulation is complete).

    `admits(loss)` is the NaN guard's verdict; a step it refuses is skipped (the
    schedule still advances, so it stays on time). Returns the loss, or None if skipped.
    """
    accelerator, model, optimizer, train = run.accelerator, run.model, run.optimizer, run.recipe.train
    with accelerator.accumulate(model):
        logits = model(pixel_values=run.inputs(batch["pixel_values"])).logits
        loss = run.loss(logits, batch["labels"], batch["valid"])
        if run.teacher is not None:  # train.distill: the teacher's term, on the same augmented batch
            loss = run.teacher.loss(loss, logits, batch["pixel_values"], batch["valid"])
        admitted = admits(loss)
        if admitted:
            accelerator.backward(loss)
            if accelerator.sync_gradients and train.clip_grad_norm:
                accelerator.clip_grad_norm_(model.parameters(), train.clip_grad_norm)
            optimizer.step()
        if accelerator.sync_gradients and not accelerator.optimizer_step_was_skipped:
            run.scheduler.step()
        optimizer.zero_grad(set_to_none=True)
    return loss.detach() if admitted else None
