"""The learning rate at every optimizer step of a recipe, without training (the library side of
hfcls-lr, as MMClassification's vis_lr.py): the run's own scheduler (hfcls.engine.optim) stepped on
a stand-in parameter, with the steps per epoch the recipe's data, batch and processes give."""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace

import torch

from hfcls.analysis.figures import pyplot, save_figure
from hfcls.data.build import build_datasets
from hfcls.engine.optim import build_scheduler
from hfcls.engine.setup import scaled_optim
from hfcls.errors import HfclsError


def steps_per_epoch(recipe, num_processes: int = 1) -> int:
    """Optimizer steps in one epoch: the training loader drops its last partial batch."""
    check_processes(num_processes)
    data, train = recipe.data, recipe.train
    if data.steps_per_epoch is not None:
        batches = data.steps_per_epoch
    else:
        splits = ("train", "val") if data.train_val_split else ("train",)
        images = len(build_datasets(data, recipe.seed, splits)["train"])
        batches = images // (data.batch_size * num_processes)
        if batches == 0:
            raise HfclsError(
                f"data.train has {images} images, fewer than one batch of {data.batch_size} x "
                f"{num_processes} processes; lower data.batch_size"
            )
    return math.ceil(batches / train.gradient_accumulation_steps)


def check_processes(num_processes: int) -> None:
    if num_processes < 1:
        raise HfclsError(f"num_processes must be at least 1, got {num_processes}", param="num_processes")


def lr_schedule(recipe, num_processes: int = 1, per_epoch: int | None = None) -> list:
    """The base learning rate (after train.auto_scale_lr) before each optimizer step."""
    check_processes(num_processes)
    per_epoch = per_epoch or steps_per_epoch(recipe, num_processes)
    lr = scaled_optim(recipe, SimpleNamespace(num_processes=num_processes)).lr
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=lr)
    scheduler = build_scheduler(optimizer, recipe.schedule, recipe.train.epochs, per_epoch)
    rates = []
    for _ in range(recipe.train.epochs * per_epoch):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return rates


def plot_lr(rates: list, per_epoch: int, out, title: str = "") -> Path:
    fig, ax = pyplot().subplots(figsize=(7, 3.5))
    ax.plot(range(1, len(rates) + 1), rates)
    ax.set(xlabel=f"optimizer step ({per_epoch} per epoch)", ylabel="learning rate", title=title or "LR schedule")
    epochs = ax.secondary_xaxis("top", functions=(lambda s: s / per_epoch, lambda e: e * per_epoch))
    epochs.set_xlabel("epoch")
    return save_figure(fig, out)
