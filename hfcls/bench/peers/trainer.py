"""The Hugging Face Trainer as a user would run it on an image folder: hfcls-bench's `trainer` peer.

    python -m hfcls.bench.peers.trainer --train-dir D --val-dir D --model-config JSON --output-dir D
        [--epochs N --batch-size B --optim adamw|sgd --lr LR --momentum M --weight-decay WD
         --warmup-epochs E --workers W --size S (--pad P | --random-resized-crop) --eval-resize R
         --mean M M M --std S S S --seed S --bf16]

It follows transformers' examples/pytorch/image-classification/run_image_classification.py:
`load_dataset("imagefolder")`, torchvision transforms on PIL images in `set_transform`, a
collate that stacks tensors, `Trainer` with AdamW (or SGD with momentum), a cosine schedule with
warm-up, evaluation and a checkpoint every epoch; `--bf16` is the Trainer's own `bf16=True`
(autocast). It imports nothing of hfcls, so what it costs is the Trainer's.
Events go to stdout as JSON lines stamped with time.time(): `first_step`, then one `epoch`
line per evaluation (train time and images of the epoch, evaluation time, top-1 in %).
"""

import argparse
import json
import sys
import time

import numpy as np
import torch
from datasets import load_dataset
from torchvision.transforms import (
    CenterCrop,
    Compose,
    Normalize,
    RandomCrop,
    RandomHorizontalFlip,
    RandomResizedCrop,
    Resize,
    ToTensor,
)
from transformers import AutoConfig, AutoModelForImageClassification, Trainer, TrainerCallback, TrainingArguments


def emit(event: str, **values) -> None:
    print(json.dumps({"event": event, "time": time.time(), **values}), flush=True)


class Timings(TrainerCallback):
    """first_step, and per epoch: train time, images, evaluation time, top-1."""

    def __init__(self, batch_size: int):
        self.batch_size, self.steps = batch_size, 0
        self.epoch_start = self.epoch_end = 0.0

    def on_epoch_begin(self, args, state, control, **kwargs):
        self.epoch_start, self.steps = time.perf_counter(), 0

    def on_step_end(self, args, state, control, **kwargs):
        self.steps += 1
        if state.global_step == 1:
            emit("first_step")

    def on_epoch_end(self, args, state, control, **kwargs):
        self.epoch_end = time.perf_counter()

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        if "eval_accuracy" not in (metrics or {}):  # every batch dropped: fewer images than one batch
            sys.exit("error: the Trainer evaluated no image: --val-dir holds fewer images than one --batch-size")
        emit(
            "epoch",
            epoch=round(state.epoch),
            train_time=self.epoch_end - self.epoch_start,
            images=self.steps * self.batch_size,
            eval_time=time.perf_counter() - self.epoch_end,
            top1=100 * metrics["eval_accuracy"],
        )


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train-dir", required=True)
    parser.add_argument("--val-dir", required=True)
    parser.add_argument("--model-config", required=True, help="JSON: {model_type: ..., **config}")
    parser.add_argument("--output-dir", required=True)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--optim", choices=["adamw", "sgd"], default="adamw")
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--momentum", type=float, default=0.9, help="--optim sgd")
    parser.add_argument("--weight-decay", type=float, default=0.05)
    parser.add_argument("--warmup-epochs", type=float, default=1.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--pad", type=int, default=4, help="train: Resize(size + pad) then RandomCrop(size)")
    parser.add_argument(
        "--random-resized-crop",
        action="store_true",
        help="train: RandomResizedCrop(size) and a horizontal flip instead (ImageNet's)",
    )
    parser.add_argument("--eval-resize", type=int, help="eval: Resize(this) then CenterCrop(size); default size")
    parser.add_argument("--bf16", action="store_true", help="TrainingArguments(bf16=True)")
    parser.add_argument("--mean", type=float, nargs=3, default=[0.5, 0.5, 0.5])
    parser.add_argument("--std", type=float, nargs=3, default=[0.5, 0.5, 0.5])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-steps", type=int, default=-1, help="stop after this many steps (a quick test)")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    dataset = load_dataset(
        "imagefolder", data_files={"train": f"{args.train_dir}/**", "validation": f"{args.val_dir}/**"}
    )
    labels = dataset["train"].features["label"].names
    normalize = Normalize(mean=args.mean, std=args.std)
    if args.random_resized_crop:
        train_tf = Compose([RandomResizedCrop(args.size), RandomHorizontalFlip(), ToTensor(), normalize])
    else:
        train_tf = Compose([Resize(args.size + args.pad), RandomCrop(args.size), ToTensor(), normalize])
    val_tf = Compose([Resize(args.eval_resize or args.size), CenterCrop(args.size), ToTensor(), normalize])

    def transform(pipeline):
        def apply(batch):
            batch["pixel_values"] = [pipeline(image.convert("RGB")) for image in batch["image"]]
            return batch

        return apply

    dataset["train"].set_transform(transform(train_tf))
    dataset["validation"].set_transform(transform(val_tf))
    spec = json.loads(args.model_config)
    config = AutoConfig.for_model(
        spec.pop("model_type"),
        **spec,
        num_labels=len(labels),
        id2label=dict(enumerate(labels)),
        label2id={n: i for i, n in enumerate(labels)},
    )
    torch.manual_seed(args.seed)
    model = AutoModelForImageClassification.from_config(config)
    steps_per_epoch = len(dataset["train"]) // args.batch_size
    training = TrainingArguments(
        output_dir=args.output_dir,
        per_device_train_batch_size=args.batch_size,
        per_device_eval_batch_size=args.batch_size,
        learning_rate=args.lr,
        weight_decay=args.weight_decay,
        bf16=args.bf16,
        # AdamW: the Trainer's default (fused on torch >= 2.8); SGD takes its momentum as a string
        **({"optim": "sgd", "optim_args": f"momentum={args.momentum}"} if args.optim == "sgd" else {}),
        lr_scheduler_type="cosine",
        warmup_steps=round(args.warmup_epochs * steps_per_epoch),
        num_train_epochs=args.epochs,
        max_steps=args.max_steps,
        eval_strategy="epoch",
        save_strategy="epoch",
        logging_strategy="epoch",
        dataloader_num_workers=args.workers,
        dataloader_drop_last=True,
        remove_unused_columns=False,
        report_to="none",
        seed=args.seed,
        disable_tqdm=True,
        use_cpu=not torch.cuda.is_available(),
    )

    def collate(examples):
        return {
            "pixel_values": torch.stack([e["pixel_values"] for e in examples]),
            "labels": torch.tensor([e["label"] for e in examples]),
        }

    def accuracy(prediction):
        return {"accuracy": float(np.mean(np.argmax(prediction.predictions, axis=1) == prediction.label_ids))}

    trainer = Trainer(
        model=model,
        args=training,
        train_dataset=dataset["train"],
        eval_dataset=dataset["validation"],
        data_collator=collate,
        compute_metrics=accuracy,
        callbacks=[Timings(args.batch_size)],
    )
    trainer.train()


if __name__ == "__main__":
    sys.exit(main())
