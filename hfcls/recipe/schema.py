"""The recipe's schema: every section and key as a dataclass field, with its type and default.

`hfcls.recipe.validate` builds these from a merged mapping; a key that is not a field here is
unknown. Some mappings hold their own keys: train.ema (EMA_DEFAULTS), train.loss (LOSS_TYPES),
model.lora (LORA_DEFAULTS) and train.distill (DISTILL_DEFAULTS).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Literal

from hfcls.labels import MULTI_LABEL, SINGLE_LABEL

IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]


MAX_IMAGE_PIXELS = 89_478_485  # data.max_image_pixels' default: Pillow's own MAX_IMAGE_PIXELS


@dataclass
class DataSection:
    # Each source is a mapping with a `type` (imagefolder, hub, ...) and that
    # source's own keys; hfcls.data.sources checks them.
    train: dict | None = None
    val: dict | None = None
    test: dict | None = None
    # Fraction of `train` held out (stratified, seeded) when there is no `val` source.
    train_val_split: float | None = None
    batch_size: int = 32  # per process; the total is batch_size x processes
    eval_batch_size: int | None = None  # defaults to batch_size
    num_workers: int | None = None  # None: one per CPU core of this process, at most 8
    persistent_workers: bool = True
    prefetch_factor: int = 2
    pin_memory: bool = True  # used only on CUDA
    skip_bad_images: bool = False
    # Images with more pixels are refused before they are decoded (as undecodable ones are,
    # so skip_bad_images skips them); the default is Pillow's own MAX_IMAGE_PIXELS.
    max_image_pixels: int = MAX_IMAGE_PIXELS
    # Decode each split once into one uint8 tensor on the training device and
    # augment whole batches there (hfcls.data.in_memory): small data sets only.
    in_memory: bool = False
    # Where images are decoded and augmented: in the DataLoader workers (workers), or in the
    # training process, a whole batch at a time on the GPU (cuda: nvJPEG) or on the CPU (cpu:
    # the same code); then the workers only read the files (hfcls.data.on_device).
    decode: Literal["workers", "cuda", "cpu"] = "workers"
    to_rgb: bool = True  # grayscale and RGBA images become 3-channel RGB
    # Normalisation on the 0-1 scale (torchvision's), applied on the training device.
    mean: list = field(default_factory=lambda: list(IMAGENET_MEAN))
    std: list = field(default_factory=lambda: list(IMAGENET_STD))
    # torchvision.transforms.v2 classes by name, applied to uint8 images.
    train_pipeline: list = field(default_factory=list)
    eval_pipeline: list = field(default_factory=list)
    # A streaming train source (streaming: true) has no length: steps per epoch,
    # and how many rows its shuffle buffer holds.
    steps_per_epoch: int | None = None
    shuffle_buffer: int = 1000
    # class_balanced: each epoch draws its images with replacement, rare classes more often
    # (hfcls.data.balance): in inverse proportion to their frequency, or with oversample_thr: t
    # by MMClassification's ClassBalancedDataset rule r(c) = max(1, sqrt(t / f(c))).
    sampler: Literal["class_balanced"] | None = None
    oversample_thr: float | None = None
    # JPEGs decoded at 1/2, 1/4 or 1/8 of their size where the crop drawn first (a leading
    # RandomResizedCrop or Resize) still covers the output (hfcls.data.decode): for training (train),
    # for evaluation too (all), or never (off). Evaluation then differs from transformers.pipeline's
    # full decode by resampling only, so train leaves it out.
    scaled_decode: Literal["off", "train", "all"] = "train"
    # Progressive resizing: [[first epoch, side], ...] from epoch 0, the training RandomResizedCrop's
    # side from that epoch on, e.g. [[0, 160], [6, 192], [12, 224]] (FFCV's ResNet recipes).
    progressive_resizing: list | None = None
    # Evaluate (and export) at this side, the eval pipeline's CenterCrop, its Resize scaled alike:
    # above the training side for the FixRes effect (Touvron et al., 2019).
    eval_size: int | None = None


@dataclass
class ModelSection:
    pretrained: str | None = None  # a Hub id or a local Hugging Face folder
    config: dict | None = None  # {model_type: ..., **config kwargs}, random init
    ignore_mismatched_sizes: bool = True  # a new head for another class count
    # true: let transformers import and run the Python files of a model folder or Hub repo whose
    # config.json has an auto_map (custom code). Off, such a model is refused with one line;
    # turn it on only for a model whose author you trust, as it runs their code on this machine.
    trust_remote_code: bool = False
    # Unset: multi_label_classification when the labels are lists of classes, else single-label.
    problem_type: Literal["single_label_classification", "multi_label_classification"] | None = None
    # {r: 8, alpha: 16, dropout: 0.0, target_modules: [query, value]}: train LoRA adapters (peft) and the
    # head, the rest frozen; exports hold the merged plain model (hfcls.modeling.lora, LORA_DEFAULTS).
    lora: dict | None = None
    # Settings of model.pretrained's config to change, e.g. {drop_path_rate: 0.1}; for a timm model,
    # keywords of its constructor (its config's model_args). Only settings that keep every pretrained
    # tensor's shape: one that would re-initialise a weight is an error.
    config_overrides: dict = field(default_factory=dict)


@dataclass
class OptimSection:
    # sgd, adam, adamw: torch's fused kernels. Any other name of OPTIMIZERS (lamb, lars, lion, adan, ...)
    # is timm's (timm.optim.create_optimizer_v2, the timm extra), given hfcls's parameter groups.
    type: str = "sgd"
    lr: float = 0.1
    momentum: float = 0.9  # for the optimizers that take one (sgd, lars, rmsprop, ...)
    nesterov: bool = False
    weight_decay: float = 1e-4
    betas: list = field(default_factory=lambda: [0.9, 0.999])  # for those with two betas (Adan's three: below)
    eps: float = 1e-8
    # More keywords of a timm optimizer, e.g. {betas: [0.98, 0.92, 0.99]} for adan, {trust_coeff: 0.001} for lars.
    optimizer_kwargs: dict = field(default_factory=dict)
    # Weight decay on normalisation and bias parameters. Unset: on for SGD (as
    # MMClassification's ResNet recipes do), off for Adam/AdamW.
    decay_norm_and_bias: bool | None = None
    # Parameter-name prefixes left out of training (MMClassification's frozen_stages),
    # e.g. [resnet.embedder., resnet.encoder.stages.0.].
    frozen: list = field(default_factory=list)
    # LR multipliers by parameter-name prefix (paramwise_cfg's lr_mult), e.g. {resnet.: 0.1}
    # for a backbone at a tenth of the head's LR; the longest matching prefix wins.
    lr_mult: dict = field(default_factory=dict)
    # Layer-wise LR decay (BEiT, MMPretrain's LearningRateDecayOptimWrapperConstructor, timm's
    # --layer-decay): a parameter of layer i trains at lr x layer_decay^(L - i), the embeddings at
    # i = 0 and the head at L (hfcls.engine.layer_decay). Multiplies with lr_mult.
    layer_decay: float | None = None
    # Frozen modules (every parameter under an optim.frozen prefix) stay in eval mode, so their
    # BatchNorm statistics and dropout do not move (MMPretrain's norm_eval); false: they follow the model.
    frozen_eval: bool = True


@dataclass
class ScheduleSection:
    # Any name transformers.get_scheduler knows (cosine, linear, constant, ...)
    # or "step": multiply the LR by `gamma` at each epoch listed in `steps`.
    type: str = "cosine"
    steps: list = field(default_factory=list)
    gamma: float = 0.1
    warmup_steps: int = 0
    warmup_epochs: float = 0.0
    scheduler_kwargs: dict = field(default_factory=dict)  # e.g. {min_lr: 1e-5}


@dataclass
class TrainSection:
    epochs: int = 10
    mixed_precision: Literal["no", "fp16", "bf16"] = "no"
    gradient_accumulation_steps: int = 1
    clip_grad_norm: float | None = None
    label_smoothing: float = 0.0  # also on multi-hot targets: each class's 0/1 target moves eps/2 inward
    # {type: cross_entropy | bce | asl | focal, ...its options} (hfcls.engine.losses); unset:
    # cross-entropy for single-label data, BCE-with-logits for multi-label data.
    loss: dict | None = None
    # Per-class loss weights: balanced (n / (classes x images of the class), as scikit-learn's
    # compute_class_weight) or a list of one number per class.
    class_weights: str | list | None = None
    log_interval: int = 20  # steps between loss readings (each one syncs the device)
    channels_last: bool = False
    mixup_alpha: float = 0.0  # > 0: torchvision v2 MixUp on each training batch
    cutmix_alpha: float = 0.0  # > 0: CutMix (with both set, one of the two per batch)
    ema: dict | None = None  # {decay: 0.9998, every_n_steps: 1}: evaluate and export the average (EMA_DEFAULTS)
    # {teacher: ARTIFACT, alpha: 0.5, temperature: 4.0, hard: false}: knowledge distillation from a
    # teacher model (hfcls.engine.distillation, DISTILL_DEFAULTS).
    distill: dict | None = None
    # Recompute each block's activations in the backward pass instead of keeping them: less memory,
    # about a third more compute (transformers' gradient_checkpointing_enable; timm's set_grad_checkpointing).
    gradient_checkpointing: bool = False
    compile: bool = False  # torch.compile the model
    compile_backend: str = "inductor"  # torch.compile's backend (eager: graph capture only, no code generation)
    auto_scale_lr: dict | None = None  # {base_batch_size: 256}: lr x real total batch / base
    sync_bn: bool = False  # BatchNorm -> SyncBatchNorm with several processes
    deterministic: bool = False  # deterministic algorithms (slower on GPU)
    # Non-finite losses tolerated (step skipped) before stopping. 0 checks the losses at log
    # intervals, without a sync per step; > 0 reads every loss back to decide on its step.
    max_bad_steps: int = 0
    # Accelerate trackers ([tensorboard], [wandb], ...); unset: tensorboard when installed, []: none.
    log_with: list | None = None
    # At the end of a run: <work_dir>/publish/<name>-<sha256[:8]>.safetensors and a
    # Hugging Face folder beside it (hfcls.artifacts.publish), then optionally a push to this Hub repo id.
    publish: bool = True
    push_to_hub: str | None = None
    license: str | None = None  # the model card's license, a Hub license id (apache-2.0, mit, ...)


@dataclass
class EvaluationSection:
    interval: int = 1  # epochs
    topk: list = field(default_factory=lambda: [1, 5])
    # The metric that decides best/; auto: mAP for a multi-label model, else accuracy_top1.
    save_best: str | None = "auto"
    rule: Literal["greater", "less"] = "greater"


@dataclass
class CheckpointSection:
    interval: int = 1  # epochs
    interval_steps: int | None = None  # also every N optimizer steps, resumable mid-epoch
    max_keep: int | None = None  # newest N kept (and the best epoch's)
    save_optimizer: bool = True  # false: smaller checkpoints; a resume restarts the optimizer


@dataclass
class DistSection:
    port: int | None = None
    timeout_minutes: float = 30.0


@dataclass
class Recipe:
    data: DataSection = field(default_factory=DataSection)
    model: ModelSection = field(default_factory=ModelSection)
    optim: OptimSection = field(default_factory=OptimSection)
    schedule: ScheduleSection = field(default_factory=ScheduleSection)
    train: TrainSection = field(default_factory=TrainSection)
    evaluation: EvaluationSection = field(default_factory=EvaluationSection)
    checkpoint: CheckpointSection = field(default_factory=CheckpointSection)
    dist: DistSection = field(default_factory=DistSection)
    work_dir: str | None = None
    # Python modules imported when the recipe loads, e.g. one that registers your own
    # architecture with the transformers Auto classes (docs/tutorials/new_modules.md).
    custom_imports: list = field(default_factory=list)
    seed: int = 0
    # Where the recipe came from, for messages; not a recipe key.
    source: str | None = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict:
        raw = dataclasses.asdict(self)
        raw.pop("source")
        return raw


# optim.type: torch's own (fused kernels), then timm.optim.create_optimizer_v2's names (the timm extra),
# less adahessian, whose second-order step needs a backward pass hfcls does not take.
# tests/recipe/test_schema.py compares them with the installed timm's list_optimizers().
TORCH_OPTIMIZERS = ("sgd", "adam", "adamw")
TIMM_OPTIMIZERS = (
    "adabelief", "adadelta", "adafactor", "adafactorbv", "adafactorbvc", "adagrad", "adamax", "adamc",
    "adamp", "adamuon", "adamwlegacy", "adan", "adanw", "adopt", "adoptc", "adoptw", "bnbadam", "bnbadam8bit",
    "bnbadamw", "bnbadamw8bit", "bnbademamix", "bnbademamix8bit", "bnblion", "bnblion8bit", "bnbsgd",
    "bnbsgd8bit", "cadafactor", "cadafactorbv", "cadafactorbvc", "cadamc", "cadamp", "cadamw", "cadan",
    "cadanw", "cadopt", "cadoptc", "cadoptw", "clamb", "clambw", "claprop", "clion", "clionc", "cmars",
    "cnadamc", "cnadamw", "crmsproptf", "csgdc", "csgdp", "csgdw", "fusedadam", "fusedadamw", "fusedlamb",
    "fusednovograd", "fusedsgd", "kron", "kronc", "kronw", "lamb", "lambc", "lambcd", "lambcw", "lambw",
    "laprop", "lapropc", "larc", "lars", "lion", "lionc", "madgrad", "madgradw", "mars", "momentum", "muon",
    "nadam", "nadamc", "nadamlegacy", "nadamuon", "nadamw", "nesterov", "nesterovw", "nlarc", "nlars",
    "nmuon", "novograd", "novogradc", "novogradw", "radabelief", "radam", "radamlegacy", "radamw", "rmsprop",
    "rmsproptf", "rmsproptfc", "rmsproptfw", "sgdc", "sgdp", "sgdw",
)  # fmt: skip
OPTIMIZERS = TORCH_OPTIMIZERS + TIMM_OPTIMIZERS

# train.ema's keys (hfcls.engine.ema): warm-up as timm's ModelEmaV3 does it.
EMA_DEFAULTS = {"decay": 0.9998, "every_n_steps": 1, "warmup": True, "warmup_power": 2 / 3}

# model.lora's keys (hfcls.modeling.lora): LoRA's rank r, its scale alpha (the update is scaled by
# alpha / r), dropout on the adapter's input, and the modules adapted (peft's target_modules: a
# name matches a module whose dotted name is it or ends in .name); unset, the model family's default.
LORA_DEFAULTS = {"r": 8, "alpha": 16, "dropout": 0.0, "target_modules": None}

# train.distill's keys (hfcls.engine.distillation): the teacher (any artifact hfcls reads, or a Hub
# id), the weight of its term (the data's loss weighs 1 - alpha), the softmax temperature of the soft
# targets (Hinton et al.: KL x T^2), or hard: true for DeiT's hard-label distillation.
DISTILL_DEFAULTS = {"teacher": None, "alpha": 0.5, "temperature": 4.0, "hard": False}

# train.loss's types: for each problem type a type trains, the options its loss takes there
# (hfcls.engine.losses computes them, with their defaults).
LOSS_TYPES = {
    "cross_entropy": {SINGLE_LABEL: ()},
    "focal": {SINGLE_LABEL: ("gamma",), MULTI_LABEL: ("gamma", "alpha")},
    "bce": {MULTI_LABEL: ()},
    "asl": {MULTI_LABEL: ("gamma_pos", "gamma_neg", "clip")},
}
