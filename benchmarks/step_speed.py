"""Images/s of one bare training step (forward, loss, backward, SGD step) on random batches, per model
implementation, precision, memory format and torch.compile, in interleaved rounds.

    python benchmarks/step_speed.py [--models resnet18,resnet50] [--impls transformers,timm]
        [--modes fp32,bf16] [--compile] [--size 224] [--batch 32] [--steps 6] [--warmup 2] [--rounds 2]

transformers' ResNet is the zoo's (`recipes/_base_/models/resnet*.yaml`, built from its config;
`transformers-inplace`: the same with its ReLUs in place, `hfcls.engine.adapt.relu_in_place`;
`transformers-hfcls`: also with its one-pixel convolutions as matrix products,
`hfcls.engine.adapt.one_pixel_convs`, as hfcls trains it on CPU); timm's comes from `timm.create_model`
(the same torchvision layout, the same parameter count).
fp32 runs NCHW, as the tools come; bf16 runs under CPU/GPU autocast with `channels_last`, each tool's
best switches. With --compile every variant is also run through `torch.compile` (inductor), and
the seconds its first step took (the compilation) are reported beside its steady images/s.
Every variant gets the same batches, optimizer and loss, so only the model's own code differs.
On a shared machine, `--threads 1 --cpu-time` counts this process's CPU seconds instead of wall
seconds: what a step costs, whatever else runs beside it.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import time

import torch

HF_RESNETS = {
    "resnet18": {"layer_type": "basic", "depths": [2, 2, 2, 2], "hidden_sizes": [64, 128, 256, 512]},
    "resnet50": {"layer_type": "bottleneck", "depths": [3, 4, 6, 3], "hidden_sizes": [256, 512, 1024, 2048]},
}


def build(impl: str, name: str, classes: int) -> torch.nn.Module:
    if impl == "timm":
        import timm

        return timm.create_model(name, num_classes=classes)
    from transformers import AutoConfig, AutoModelForImageClassification

    config = AutoConfig.for_model("resnet", num_labels=classes, **HF_RESNETS[name])
    hf = AutoModelForImageClassification.from_config(config)
    if impl in ("transformers-inplace", "transformers-hfcls"):  # its ReLUs in place, as timm's are
        from hfcls.engine.adapt import relu_in_place

        relu_in_place(hf)
    if impl == "transformers-hfcls":  # and its one-pixel convolutions as products: as hfcls trains it on CPU
        from hfcls.engine.adapt import one_pixel_convs

        one_pixel_convs(hf)
    return LogitsOf(hf)


class LogitsOf(torch.nn.Module):
    """A transformers classifier called as timm's is: pixels -> logits."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, pixels):
        return self.model(pixel_values=pixels).logits


class Variant:
    def __init__(self, impl, name, mode, compiled, size, batch, classes=1000):
        self.label = f"{name:<9} {impl:<20} {mode:<5} {'compiled' if compiled else 'eager':<8}"
        torch.manual_seed(0)
        model = build(impl, name, classes)
        self.bf16 = mode == "bf16"
        if self.bf16:
            model = model.to(memory_format=torch.channels_last)
        self.model = model.train()
        self.optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
        self.step_fn = torch.compile(self._step) if compiled else self._step
        generator = torch.Generator().manual_seed(0)
        self.pixels = torch.randn(batch, 3, size, size, generator=generator)
        if self.bf16:
            self.pixels = self.pixels.contiguous(memory_format=torch.channels_last)
        self.labels = torch.randint(0, classes, (batch,), generator=generator)
        self.first_step, self.rates = None, []

    def _step(self, pixels, labels):
        autocast = torch.autocast("cpu", dtype=torch.bfloat16) if self.bf16 else contextlib.nullcontext()
        with autocast:
            loss = torch.nn.functional.cross_entropy(self.model(pixels), labels)
        loss.backward()
        return loss

    def step(self):
        loss = self.step_fn(self.pixels, self.labels)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return loss.item()

    def turn(self, warmup: int, steps: int, clock=time.perf_counter) -> None:
        for _ in range(warmup):
            start = time.perf_counter()  # the compilation, in wall seconds (its workers are other processes)
            self.step()
            if self.first_step is None:
                self.first_step = time.perf_counter() - start
        start = clock()
        for _ in range(steps):
            self.step()
        self.rates.append(steps * len(self.labels) / (clock() - start))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="resnet18,resnet50")
    parser.add_argument("--impls", default="transformers,timm")
    parser.add_argument("--modes", default="fp32,bf16")
    parser.add_argument("--compile", action="store_true", help="also run each variant through torch.compile")
    parser.add_argument("--only-compiled", action="store_true", help="with --compile: the compiled variants only")
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's, one per core)")
    parser.add_argument(
        "--cpu-time",
        action="store_true",
        help="images per CPU second of this process instead of per wall second: on a shared machine, with "
        "--threads 1, what a step costs whatever else runs",
    )
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    clock = time.process_time if args.cpu_time else time.perf_counter
    compiled = [True] if args.only_compiled else [False, True] if args.compile else [False]
    variants = [
        Variant(impl, name, mode, c, args.size, args.batch)
        for name in args.models.split(",")
        for mode in args.modes.split(",")
        for impl in args.impls.split(",")
        for c in compiled
    ]
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {args.batch} at {args.size} px, "
        f"{args.steps} measured steps x {args.rounds} rounds, images per {'CPU' if args.cpu_time else 'wall'} second"
    )
    for _ in range(args.rounds):
        for variant in variants:
            variant.turn(args.warmup, args.steps, clock)
    print(f"{'variant':<46} {'images/s':>9} {'first step, wall s':>18}")
    for variant in variants:
        print(
            f"{variant.label:<46} {max(variant.rates):>9.1f} {variant.first_step:>18.1f}"
            f"   (rounds: {', '.join(f'{r:.1f}' for r in variant.rates)}; median {statistics.median(variant.rates):.1f})"
        )


if __name__ == "__main__":
    main()
