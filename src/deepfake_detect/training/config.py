"""``TrainConfig``: every argument of a fine-tuning run, recorded as its recipe."""

from __future__ import annotations

import dataclasses
import math
import numbers
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from ..errors import TrainingError

__all__ = ["TrainConfig"]

#: Fields that say where and how a run is executed, not what it computes; left out of the recipe.
_RUNTIME_FIELDS = ("output_dir", "resume", "num_workers", "device", "progress", "callbacks", "compile")


@dataclass
class TrainConfig:
    """The arguments of :meth:`Detector.finetune <deepfake_detect.Detector.finetune>`.

    Attributes:
        epochs: passes over the training data.
        batch_size: images per step (per process under torchrun).
        lr: peak learning rate; default 1e-3 with a frozen backbone, 3e-4 otherwise.
        weight_decay: decoupled weight decay (not applied to biases and norms).
        optimizer: ``"adamw"``, ``"adam"``, ``"sgd"`` or ``callable(params) -> Optimizer``.
        scheduler: ``"cosine"`` (per step, linear warm-up over the first 10 % of steps, at
            most one epoch), ``"step"`` (x0.85 every 4 epochs), ``"constant"``, or
            ``callable(optimizer, steps_per_epoch, epochs)`` giving a per-step scheduler.
        freeze_backbone: train only the entry's head; default per entry (True for
            ``resnet18-finetune``). Frozen BatchNorm layers keep their statistics.
        freeze: partial fine-tuning: module names (``model.named_modules()``, each with
            everything under it) whose parameters are not trained and whose BatchNorm
            layers keep their running statistics, e.g. the early blocks of an
            EfficientNet: ``("conv_stem", "bn1", "blocks.0", "blocks.1", "blocks.2")``.
            Nothing is computed backwards through a frozen prefix of the network, so a
            step costs less. Not with ``freeze_backbone=True``.
        augment: ``"default"``, ``"camp"``, ``"crossdomain"``, ``"none"``, a callable
            ``f(PIL image, numpy Generator) -> PIL image``, or ``"auto"``: ``"none"`` with a
            frozen backbone (its features are then computed once and cached), else
            ``"default"``.
        loss: ``"cross_entropy"``, ``"bce"``, ``"ae"`` or ``callable(output, labels, inputs)``;
            default from the registry entry.
        ema: keep an exponential moving average of the weights (``True`` = decay 0.999, or
            the decay) and validate and keep that.
        amp: mixed precision (``True``, ``"bf16"``, ``"fp16"``); default bf16 autocast on
            CUDA, off on CPU.
        seed: seeds shuffling, augmentation and synthetic fakes (per epoch and image, so a
            resumed run sees the same data as an uninterrupted one).
        output_dir: write ``last/`` and ``best/`` checkpoints and ``history.jsonl`` after
            every epoch (see :class:`~deepfake_detect.training.CheckpointDir`).
        resume: continue from ``output_dir/last`` up to ``epochs``.
        num_workers: threads decoding and augmenting ahead of the model (default: CPU
            cores, at most 4; 0 = in the training thread).
        device: default: CUDA if the detector is there or under torchrun with GPUs, else CPU.
        progress: a progress bar per epoch and one summary line per epoch (stderr).
        callbacks: called after each epoch with that epoch's history dict.
        synth_fakes: self-blended fakes per real training image each epoch (0.5: half as
            many fakes as real images), labelled fake; between 0 and 10.
        swap_fakes: face swaps per real training image each epoch, labelled fake
            (:func:`deepfake_detect.synth.face_swap` with a random blend): a real image with
            the face of another real image of the same source pasted on, the one of 8 drawn
            at random whose landmarks lie closest (as Face X-ray's blended images); between 0
            and 10. Needs the ``face`` extra; images without landmarks fall back to a self-blend.
        label_smoothing: smooth the 0/1 targets by this amount.
        cache_images: keep decoded, resized training images in memory (uint8) across
            epochs when they fit in 4 GiB.
        source_weights: with several training sources, the share of each epoch drawn from
            each (relative weights by name). Default: every image once per epoch.
        epoch_size: images drawn per epoch (without replacement within an epoch where the
            data allow; self-blended fakes come on top); default: the whole training set.
            Smaller epochs validate and checkpoint more often on large data.
        crop_faces: cut the largest face out of each training and validation image first,
            with the detector's crop policy (``config.face_crop``): the same crop
            ``predict(..., crop_faces=True)`` makes (needs the ``face`` extra).
        compile: run the training forward and backward through ``torch.compile``
            (``True``: the ``"inductor"`` backend; or a backend name). It costs a compile
            of about half a minute to a minute at the first step (and one more at the
            first batch of another size) and repays on long runs only; see
            ``docs/training.md``. Predictions agree with eager training to float rounding.
            Not used while the frozen-backbone feature cache is.
    """

    epochs: int = 5
    batch_size: int = 32
    lr: float | None = None
    weight_decay: float = 0.05
    optimizer: Any = "adamw"
    scheduler: Any = "cosine"
    freeze_backbone: bool | None = None
    freeze: Sequence[str] = ()
    augment: Any = "auto"
    loss: Any = None
    ema: bool | float = False
    amp: bool | str | None = None
    seed: int = 0
    output_dir: str | os.PathLike[str] | None = None
    resume: bool = False
    num_workers: int | None = None
    device: str | torch.device | None = None
    progress: bool = True
    callbacks: Sequence[Callable[[dict[str, Any]], Any]] = ()
    synth_fakes: float = 0.0
    swap_fakes: float = 0.0
    label_smoothing: float = 0.0
    cache_images: bool = True
    source_weights: Mapping[str, float] | None = None
    epoch_size: int | None = None
    crop_faces: bool = False
    compile: bool | str = False

    def __post_init__(self) -> None:
        for name, kind, optional in (
            ("epochs", numbers.Integral, False),
            ("batch_size", numbers.Integral, False),
            ("epoch_size", numbers.Integral, True),
            ("synth_fakes", numbers.Real, False),
            ("swap_fakes", numbers.Real, False),
            ("label_smoothing", numbers.Real, False),
            ("lr", numbers.Real, True),
            ("weight_decay", numbers.Real, False),
        ):
            value = getattr(self, name)
            if not (value is None and optional) and (isinstance(value, bool) or not isinstance(value, kind)):
                raise TrainingError(
                    f"{name}={value!r}: expected {'an int' if kind is numbers.Integral else 'a number'}"
                    + (" or None" if optional else "")
                )
        if self.epochs < 1 or self.batch_size < 1:
            raise TrainingError(f"epochs={self.epochs}, batch_size={self.batch_size}: both must be at least 1")
        for name in ("synth_fakes", "swap_fakes"):
            if not 0.0 <= getattr(self, name) <= 10.0:
                raise TrainingError(f"{name}={getattr(self, name)}: expected a ratio between 0 and 10")
        if self.epoch_size is not None and self.epoch_size < 1:
            raise TrainingError(f"epoch_size={self.epoch_size}: must be at least 1")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise TrainingError(f"label_smoothing={self.label_smoothing}: expected a value in [0, 1)")
        if self.ema and self.ema is not True and not 0.0 < float(self.ema) < 1.0:
            raise TrainingError(f"ema={self.ema}: expected True, False or a decay in (0, 1)")
        if not isinstance(self.compile, (bool, str)) or self.compile == "":
            raise TrainingError(f"compile={self.compile!r}: expected True, False or a torch.compile backend name")
        if isinstance(self.freeze, str) or not all(isinstance(n, str) and n for n in self.freeze):
            raise TrainingError(f"freeze={self.freeze!r}: expected a sequence of module names, e.g. ('blocks.0',)")
        if self.lr is not None and not (math.isfinite(self.lr) and self.lr > 0):
            raise TrainingError(f"lr={self.lr}: expected a positive number")

    @classmethod
    def from_kwargs(cls, config: TrainConfig | None = None, **overrides: Any) -> TrainConfig:
        """``config`` (default: the defaults) with ``overrides`` applied.

        Raises:
            TrainingError: an override that is not a field, naming the fields.
        """
        names = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(overrides) - set(names))
        if unknown:
            raise TrainingError(f"unknown finetune argument(s) {unknown}; TrainConfig has {names}")
        base = config if config is not None else cls()
        return dataclasses.replace(base, **overrides) if overrides else base

    def replace(self, **changes: Any) -> TrainConfig:
        return dataclasses.replace(self, **changes)

    def recipe(self) -> dict[str, Any]:
        """What the run computes, as JSON-able values (callables by their qualified name);
        stored in the checkpoint and the model card."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            if f.name in _RUNTIME_FIELDS:
                continue
            out[f.name] = _plain(getattr(self, f.name))
        return out


def _plain(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if callable(value):
        return f"{getattr(value, '__module__', '?')}.{getattr(value, '__qualname__', type(value).__name__)}"
    return repr(value)
