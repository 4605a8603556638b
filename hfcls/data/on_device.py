"""Decoding on the device (`data.decode: cuda` or `cpu`): DataLoader workers only read the files.

With `data.decode: workers` (the default) each DataLoader worker decodes and augments
its samples on the CPU, which can be what limits a GPU (an H100 trained ResNet-50 at a
quarter of its compute-only speed on real JPEGs through 14 workers: benchmarks/README.md).
Here the workers read each file's encoded bytes and draw its augmentation
(RandomResizedCrop's window, the flips) under the sample's own seed (hfcls.data.seeding),
exactly as the v2 pipeline would draw it; the training process then decodes the whole
batch in one call (`torchvision.io.decode_jpeg` on a list: nvJPEG on CUDA), crops and
resizes each image on the device with v2's own kernels, and flips and mixes the batch
there. `data.decode: cpu` runs the same code on the CPU (for tests and CPU runs; on a CPU
the workers are faster).

Supported pipelines: Resize, CenterCrop, RandomCrop and RandomResizedCrop first (one image
at a time), then RandomHorizontalFlip and RandomVerticalFlip (the whole batch at once);
anything else is an error naming the transform. JPEGs decode in one call; other formats,
and a JPEG the batched call refuses, one by one through the one decode rule
(hfcls.data.decode.decode). Everything else is the worker loader's: the same sampler,
shards, resume and `gather_for_metrics` semantics (loaders.WorkerLoader) and the same
seeds, so on the CPU the batches equal the worker loader's bit for bit. On CUDA, nvJPEG's
pixels differ a little from libjpeg-turbo's (benchmarks/run_gpu.sh measures by how much).
"""

from __future__ import annotations

import io
import logging

import datasets
import torch
from PIL import Image, UnidentifiedImageError
from torchvision import tv_tensors
from torchvision.io import ImageReadMode, decode_jpeg

from hfcls.data.columns import is_multi_label
from hfcls.data.decode import DECODE_ERRORS, MAX_IMAGE_PIXELS, ImageRefused, decode, image_bytes, too_many_pixels
from hfcls.data.in_memory import BATCHWISE, split_pipeline
from hfcls.data.loaders import WorkerLoader, data_loader
from hfcls.data.mixing import mix_batch
from hfcls.data.seeding import SeededSamples, seed_worker
from hfcls.errors import HfclsError

logger = logging.getLogger(__name__)

PER_IMAGE = ("Resize", "CenterCrop", "RandomCrop", "RandomResizedCrop")  # sizes differ until these are done
PER_BATCH = {name: BATCHWISE[name] for name in ("RandomHorizontalFlip", "RandomVerticalFlip")}
PLACEHOLDER = (256, 256)  # the size of an undecodable image's black stand-in, as in decode.SampleTransform
JPEG_START = [0xFF, 0xD8, 0xFF]


# ----------------------------------------------------------------------------- the pipeline


class DevicePipeline:
    """A recipe pipeline split for this path: drawn per sample in the workers, applied per batch on the device."""

    def __init__(self, specs: list, where: str, mode: str):
        self.where, self.mode = where, mode
        self.per_image, self.per_batch = split_pipeline(
            specs, where, head=PER_IMAGE, tail=PER_BATCH, mode=f"data.decode={mode}", off="data.decode=workers"
        )

    def draw(self, height: int, width: int) -> list:
        """Every transform's parameters for an image of this size, drawn from the CPU generator in
        the order, and by the code, that the v2 pipeline itself uses (v2's own `make_params`)."""
        # An empty box list carries the image's size through each transform, with no pixels.
        canvas = tv_tensors.BoundingBoxes(torch.zeros(0, 4), format="XYXY", canvas_size=(height, width))
        params = []
        for transform in self.per_image:
            params.append(transform.make_params([canvas]))
            canvas = transform.transform(canvas, params[-1])
        for transform in self.per_batch:
            params.append({k: v.item() for k, v in transform.draw(1, *canvas.canvas_size, None).items()})
        return params

    def __call__(self, images: list, params: list) -> torch.Tensor:
        """Decoded images (uint8 CHW, any sizes, on one device) and their drawn parameters -> one batch."""
        done = []
        for image, drawn in zip(images, params):
            for transform, values in zip(self.per_image, drawn):
                image = transform.transform(image, values)
            done.append(image)
        shapes = sorted({tuple(image.shape) for image in done})
        if len(shapes) > 1:
            raise HfclsError(
                f"{self.where}: data.decode={self.mode} stacks the images after the pipeline's "
                f"{', '.join(PER_IMAGE)} steps, and they came out {shapes[0]} and {shapes[-1]}; "
                "end those steps with a CenterCrop or RandomResizedCrop, or give Resize [height, width]"
            )
        batch = torch.stack(done)
        for j, transform in enumerate(self.per_batch, start=len(self.per_image)):
            batch = transform(
                batch,
                {key: to(torch.tensor([drawn[j][key] for drawn in params]), batch.device) for key in params[0][j]},
            )
        return batch


def to(tensor: torch.Tensor, device) -> torch.Tensor:
    # Never a blocking copy to the GPU: it would wait for the queued training step and stop
    # this process from preparing the next batch while the GPU computes.
    return tensor.to(device, non_blocking=True)


# ----------------------------------------------------------------------------- in the workers


class ReadEncoded:
    """A datasets transform for DataLoader workers: each row's encoded file and its drawn
    augmentation, nothing decoded. Under SeededSamples each sample draws under its own seed."""

    def __init__(self, pipeline: DevicePipeline, to_rgb: bool, max_pixels: int = MAX_IMAGE_PIXELS):
        self.pipeline, self.to_rgb, self.max_pixels = pipeline, to_rgb, max_pixels

    def __call__(self, batch: dict) -> dict:
        out = {"encoded": [], "size": [], "params": [], "valid": [], "file": []}
        for image in batch["image"]:
            name = image.get("path") or "<in-memory image>"
            try:
                data = image_bytes(image)
                size, valid = image_size(data, self.to_rgb, self.max_pixels), True
            except DECODE_ERRORS as error:
                logger.warning("cannot decode image %s: %s", name, error)
                data, size, valid = b"", PLACEHOLDER, False
                name = f"{name} ({error})"  # the main process's message says why, as the workers' says
            for key, value in (
                ("encoded", data),
                ("size", size),
                ("params", self.pipeline.draw(*size)),
                ("valid", valid),
                ("file", name),
            ):
                out[key].append(value)
        return {**out, "labels": batch["label"]}


def image_size(data: bytes, to_rgb: bool, max_pixels: int = MAX_IMAGE_PIXELS) -> tuple:
    """(height, width) from the file's header, refused above `max_pixels` as the decode rule refuses
    it; a format only torchvision reads is decoded to learn it."""
    try:
        with Image.open(io.BytesIO(data)) as pil:
            size = pil.height, pil.width
    except UnidentifiedImageError:
        return tuple(decode({"bytes": data}, to_rgb, max_pixels).shape[-2:])
    except Image.DecompressionBombError:  # more pixels than even Pillow opens
        raise ImageRefused(too_many_pixels(f"more than {2 * Image.MAX_IMAGE_PIXELS:,} pixels", max_pixels)) from None
    if size[0] * size[1] > max_pixels:
        raise ImageRefused(too_many_pixels(f"{size[1]} x {size[0]} pixels", max_pixels))
    return size


def collate_encoded(samples: list) -> dict:
    """A batch of encoded files as one flat uint8 tensor (one shared-memory block to pass to the
    training process, not one per file), with each file's length and drawn parameters."""
    joined = bytearray(b"".join(sample["encoded"] for sample in samples))
    return {
        "encoded": torch.frombuffer(joined, dtype=torch.uint8) if joined else torch.empty(0, dtype=torch.uint8),
        "lengths": [len(sample["encoded"]) for sample in samples],
        "sizes": [sample["size"] for sample in samples],
        "params": [sample["params"] for sample in samples],
        "labels": torch.tensor([sample["labels"] for sample in samples], dtype=torch.long),  # as decode.collate
        "valid": [sample["valid"] for sample in samples],
        "files": [sample["file"] for sample in samples],
        "seed": samples[0].get("seed"),  # a training batch's MixUp/CutMix seed, as in mixing.MixingCollate
    }


# ----------------------------------------------------------------------------- in the training process


class OnDevice:
    """A batch the workers read -> the batch of the loader protocol: decoded and augmented on
    `device`, mixed by `mix` (from build_mixer) if given, handed over on `target` (the training device)."""

    def __init__(self, pipeline: DevicePipeline, device, target, to_rgb: bool, mix=None):
        self.pipeline, self.device, self.target, self.to_rgb, self.mix = pipeline, device, target, to_rgb, mix

    def __call__(self, batch: dict) -> dict:
        files, valid = list(batch["files"]), list(batch["valid"])
        images = decode_batch(
            torch.split(batch["encoded"], batch["lengths"]), batch["sizes"], valid, files, self.device, self.to_rgb
        )
        pixels, labels = self.pipeline(images, batch["params"]), to(batch["labels"], self.device)
        if self.mix is not None:
            pixels, labels = mix_batch(self.mix, batch["seed"], pixels, labels)
        return {
            "pixel_values": to(pixels, self.target),
            "labels": to(labels, self.target),
            "valid": to(torch.tensor(valid), self.target),
            "bad_files": [name for name, ok in zip(files, valid) if not ok],
        }


def decode_batch(encoded, sizes, valid: list, files, device, to_rgb: bool) -> list:
    """Every file of a batch as a uint8 CHW tensor on `device`: the JPEGs in one decode_jpeg call
    (nvJPEG on CUDA), the others one by one through the one decode rule. A file that decodes
    neither way becomes a black image of the size its parameters were drawn for, `valid` False."""
    mode = ImageReadMode.RGB if to_rgb else ImageReadMode.UNCHANGED
    images = [None] * len(encoded)
    jpegs = [i for i, data in enumerate(encoded) if valid[i] and data[:3].tolist() == JPEG_START]
    if jpegs:
        try:
            for i, image in zip(jpegs, decode_jpeg([encoded[i] for i in jpegs], mode=mode, device=device)):
                images[i] = image
        except RuntimeError:  # one file the batched call refuses fails it all: they go one by one below
            pass
    for i, image in enumerate(images):
        if image is None and valid[i]:
            try:
                images[i] = to(decode({"bytes": encoded[i].numpy().tobytes()}, to_rgb), device)
            except DECODE_ERRORS as error:
                logger.warning("cannot decode image %s: %s", files[i], error)
                valid[i], files[i] = False, f"{files[i]} ({error})"
        if not valid[i]:
            images[i] = torch.zeros((3, *sizes[i]), dtype=torch.uint8, device=device)
    return images


# ----------------------------------------------------------------------------- the loader


def decode_device(mode: str, device: torch.device) -> torch.device:
    """Where `data.decode: mode` decodes, for a process training on `device`."""
    if mode == "cpu":
        return torch.device("cpu")
    if device.type != "cuda":
        raise HfclsError(
            f"data.decode=cuda decodes on the GPU, and this process has none (it runs on "
            f"{device.type}); set data.decode=cpu (the same path on the CPU) or data.decode=workers"
        )
    return device


def on_device_loader(
    dataset, data, seed: int, accelerator, *, train: bool, workers: int, batch_size: int, mix=None
) -> WorkerLoader:
    """The worker loader of `dataset` with its decoding and augmentation moved onto data.decode's device."""
    device = decode_device(data.decode, accelerator.device)
    if isinstance(dataset, datasets.IterableDataset):
        raise HfclsError(
            f"data.decode={data.decode} reads sources of known length; a stream (streaming: true) "
            "decodes in its workers: set data.decode=workers"
        )
    if is_multi_label(dataset.features):
        raise HfclsError(
            f"data.decode={data.decode} carries one class id per image; multi-label data decodes in "
            "its workers: set data.decode=workers"
        )
    specs, where = (data.train_pipeline, "data.train_pipeline") if train else (data.eval_pipeline, "data.eval_pipeline")
    pipeline = DevicePipeline(specs, where, data.decode)
    rows = dataset.cast_column("image", datasets.Image(decode=False))
    rows.set_transform(ReadEncoded(pipeline, data.to_rgb, data.max_image_pixels))
    samples = SeededSamples(rows, seed) if train else rows
    # Nothing pinned: the batches hold encoded files, which decode_jpeg reads from ordinary memory.
    loader = data_loader(samples, data, batch_size, train, seed, False, collate_encoded, seed_worker, workers)
    # Batches stay on the CPU (device_placement=False): the decoder takes its input from there.
    prepared = accelerator.prepare_data_loader(loader, device_placement=False)
    finish = OnDevice(pipeline, device, accelerator.device, data.to_rgb, mix)
    return WorkerLoader(prepared, samples if train else None, finish=finish)
