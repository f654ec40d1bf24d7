"""Fine-tuning and evaluation: ``Detector.finetune`` and ``Detector.evaluate``.

One loop serves every registry entry: the entry says which loss fits its output and which
submodules form the head (trained when the backbone is frozen). Images are decoded and
resized once and kept as uint8 in memory across epochs; with a frozen backbone and no
augmentation the backbone's features are computed once and only the head is trained after
that. Checkpoints are written atomically after every epoch, so an interrupted run resumes
with the same schedule and ends with the same weights as an uninterrupted one.
"""

from __future__ import annotations

import copy
import io
import json
import logging
import math
import os
import shutil
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Union

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from .augment import apply_augment, get_augment
from .data.datasets import LabeledData, as_labeled_data, as_sources, concat_sources
from .distributed import DistContext
from .errors import DataError, DeepfakeDetectError, ImageLoadError, TrainingError
from .weights import atomic_path, load_weights, read_state_dict, refusal_reason

if TYPE_CHECKING:
    from .detector import Detector

__all__ = ["finetune", "evaluate", "per_source_metrics", "TrainResult", "CHECKPOINT_LAST", "CHECKPOINT_BEST"]

log = logging.getLogger(__name__)

CHECKPOINT_LAST = "last"
CHECKPOINT_BEST = "best"
STATE_NAME = "training_state.pt"
HISTORY_NAME = "history.jsonl"
#: Decoded training images are cached in memory when they need at most this many bytes.
IMAGE_CACHE_BYTES = 4 * 1024**3


@dataclass
class TrainResult:
    """What :func:`finetune` returns.

    Attributes:
        history: one dict per completed epoch: ``epoch`` (1-based), ``train_loss``, ``lr``,
            ``seconds``, ``img_per_s`` and, with validation data, ``val`` (the metrics of
            :func:`evaluate`).
        best: ``{"epoch": ..., **val metrics}`` of the epoch with the best validation AUC
            (``None`` without validation data).
        output_dir: where checkpoints were written, if anywhere.
        interrupted: training stopped early on Ctrl-C; resume with ``resume=True``.
    """

    history: list[dict[str, Any]] = field(default_factory=list)
    best: dict[str, Any] | None = None
    output_dir: Path | None = None
    interrupted: bool = False


# -- losses -------------------------------------------------------------------------------
def _make_loss(kind: Union[str, Callable[..., torch.Tensor]], label_smoothing: float) -> Callable[..., torch.Tensor]:
    """``loss(output, labels, inputs) -> scalar``; ``labels`` is a float tensor of 0/1."""
    if callable(kind):
        return kind
    if kind == "cross_entropy":
        ce = nn.CrossEntropyLoss(label_smoothing=label_smoothing)
        return lambda out, y, x: ce(_logits(out).float(), y.long())
    if kind == "bce":
        def bce(out: Any, y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
            target = y * (1 - label_smoothing) + 0.5 * label_smoothing
            return F.binary_cross_entropy_with_logits(_logits(out).float().reshape(len(y), -1)[:, 0], target)
        return bce
    if kind == "ae":
        from .models.recce import AELoss

        ae = AELoss()
        return lambda out, y, x: ae(out[0].float(), out[1].float(), y, x)
    raise DeepfakeDetectError(f"loss={kind!r}: expected 'cross_entropy', 'bce', 'ae' or a callable "
                              "loss(output, labels, inputs)")


def _logits(out: Any) -> torch.Tensor:
    return out[0] if isinstance(out, (tuple, list)) else out


# -- optimisation -------------------------------------------------------------------------
def _make_optimizer(optimizer: Any, params: list[nn.Parameter], lr: float, weight_decay: float) -> torch.optim.Optimizer:
    if callable(optimizer) and not isinstance(optimizer, str):
        return optimizer(params)
    decay = [p for p in params if p.ndim > 1]
    no_decay = [p for p in params if p.ndim <= 1]  # biases and norm weights are not decayed
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    groups = [g for g in groups if g["params"]]
    if optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=lr)
    if optimizer == "adam":
        return torch.optim.Adam(groups, lr=lr)
    if optimizer == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=0.9, nesterov=True)
    raise DeepfakeDetectError(f"optimizer={optimizer!r}: expected 'adamw', 'adam', 'sgd' or a callable(params)")


def _make_scheduler(scheduler: Any, opt: torch.optim.Optimizer, steps_per_epoch: int, epochs: int):
    """A scheduler stepped once per optimisation step."""
    total = max(1, steps_per_epoch * epochs)
    if callable(scheduler) and not isinstance(scheduler, str):
        return scheduler(opt, steps_per_epoch, epochs)
    if scheduler in (None, "constant"):
        return torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
    if scheduler == "cosine":
        warmup = min(steps_per_epoch, max(1, total // 10))

        def cosine(step: int) -> float:
            if step < warmup:
                return (step + 1) / warmup
            return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warmup) / max(1, total - warmup))))
        return torch.optim.lr_scheduler.LambdaLR(opt, cosine)
    if scheduler == "step":  # the camp's StepLR(step_size=4 epochs, gamma=0.85)
        return torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.85 ** (s // (4 * steps_per_epoch)))
    raise DeepfakeDetectError(f"scheduler={scheduler!r}: expected 'cosine', 'step', 'constant' or a "
                              "callable(optimizer, steps_per_epoch, epochs)")


class _EMA:
    """Exponential moving average of the weights (and a copy of the buffers)."""

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.decay = decay
        self.model = copy.deepcopy(model).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        for e, p in zip(self.model.parameters(), model.parameters()):
            e.lerp_(p.detach(), 1 - self.decay)
        for e, b in zip(self.model.buffers(), model.buffers()):
            e.copy_(b)


# -- data ---------------------------------------------------------------------------------
class _Samples:
    """Decoded, resized uint8 training images (cached), self-blended fakes and augmentation."""

    def __init__(self, data: LabeledData, detector: "Detector", augment: Any, synth: float, seed: int,
                 cache: bool, source_ids: np.ndarray | None = None,
                 source_weights: list[float] | None = None, epoch_size: int | None = None,
                 crop_faces: bool = False) -> None:
        self.data, self.seed = data, seed
        self.source_ids, self.source_weights, self.epoch_size = source_ids, source_weights, epoch_size
        self.crop_faces = crop_faces
        self.faces: dict[int, tuple[Any, Any]] = {}
        self.prep = detector.face_crop_preprocessor() if crop_faces else detector.preprocessor()
        self.augment = get_augment(augment)
        self.synth = synth
        self.real_indices = np.flatnonzero(data.labels == 0)
        h, w = detector.config.input_size
        self.cache: dict[int, np.ndarray] | None = (
            {} if cache and len(data) * h * w * 3 <= IMAGE_CACHE_BYTES else None
        )

    def epoch_plan(self, epoch: int) -> list[tuple[int, int]]:
        """``(index, synthetic)`` pairs for one epoch in shuffled order, the same for every
        run with the same seed. ``synthetic=1`` is a self-blended fake of real image ``index``."""
        rng = np.random.default_rng([self.seed, epoch, 0])
        drawn = self._drawn(rng)
        plan = [(int(i), 0) for i in drawn]
        n_synth = int(round(self.synth * int((self.data.labels[drawn] == 0).sum())))
        if n_synth:
            chosen = rng.choice(self.real_indices, size=n_synth, replace=n_synth > len(self.real_indices))
            plan += [(int(i), 1) for i in chosen]
        order = rng.permutation(len(plan))
        return [plan[i] for i in order]

    def _drawn(self, rng: np.random.Generator) -> np.ndarray:
        """The images of one epoch: all of them, or ``epoch_size`` of them, drawn from the
        sources in proportion to their weights (default: to their sizes)."""
        if self.epoch_size is None and self.source_weights is None:
            return np.arange(len(self.data))
        ids = self.source_ids if self.source_ids is not None else np.zeros(len(self.data), dtype=np.int64)
        sizes = np.bincount(ids)
        total = self.epoch_size or len(self.data)
        weights = np.asarray(self.source_weights if self.source_weights is not None else sizes, dtype=np.float64)
        counts = np.floor(total * weights / weights.sum()).astype(int)
        counts[int(np.argmax(weights))] += total - counts.sum()
        drawn = []
        for k, n in enumerate(counts):
            pool = np.flatnonzero(ids == k)
            if n <= 0 or len(pool) == 0:
                continue
            whole, rest = divmod(int(n), len(pool))
            drawn += [pool] * whole + [rng.choice(pool, size=rest, replace=False)]
        return np.sort(np.concatenate(drawn))

    def base(self, index: int) -> np.ndarray:
        if self.cache is not None and index in self.cache:
            return self.cache[index]
        item = self.data.image(index)
        if isinstance(item, torch.Tensor):  # float tensors in [0, 1] become uint8 for augmentation
            t = self.prep.prepare(item)
            arr = (t.permute(1, 2, 0).clamp(0, 1) * 255).round().to(torch.uint8).numpy()
        else:
            arr = self.prep.prepare(item)
        if self.cache is not None:
            self.cache[index] = arr
        return arr

    def get(self, index: int, synthetic: int, epoch: int) -> tuple[np.ndarray, int]:
        rng = np.random.default_rng([self.seed, epoch, index, synthetic, 1])
        image = self.base(index)
        label = int(self.data.labels[index])
        if synthetic:
            from .synth import locate_face, self_blend

            pil = Image.fromarray(image)
            if index not in self.faces:  # found once per image, on its resized copy
                self.faces[index] = locate_face(pil)
            fake, _ = self_blend(pil, rng=rng, face=self.faces[index])
            image, label = np.array(fake, dtype=np.uint8), 1
        if self.augment is not None:
            image = apply_augment(self.augment, image, rng)
        return image, label


def _check_source_weights(weights: Mapping[str, float] | None, names: list[str]) -> list[float] | None:
    if weights is None:
        return None
    if not names:
        raise TrainingError("source_weights needs several training sources: pass train as {name: data, ...}")
    unknown = sorted(set(weights) - set(names))
    if unknown:
        raise TrainingError(f"source_weights names unknown sources {unknown}; the training sources are {names}")
    out = [float(weights.get(n, 0.0)) for n in names]
    if any(not math.isfinite(w) or w < 0 for w in out) or sum(out) <= 0:
        raise TrainingError(f"source_weights={dict(weights)}: expected non-negative numbers, at least one positive")
    return out


def _selection_score(val: dict[str, Any]) -> float:
    """What picks the best epoch: the mean of per-source AUCs when there are sources, else AUC."""
    return float(val.get("auc_mean", val["auc"]))


def _batches(plan: Sequence[tuple[int, int]], batch_size: int) -> list[list[tuple[int, int]]]:
    """Consecutive batches; a last batch of one image joins the one before it (BatchNorm
    cannot train on a single image)."""
    out = [list(plan[i:i + batch_size]) for i in range(0, len(plan), batch_size)]
    if len(out) > 1 and len(out[-1]) == 1:
        last = out.pop()  # pop first: `out[-2] += out.pop()` would write into the wrong batch
        out[-1] += last
    return out


def _load_batches(samples: _Samples, batches: list[list[tuple[int, int]]], epoch: int, pool: ThreadPoolExecutor | None):
    """Yield ``(uint8 images (N, H, W, 3), labels (N,))``, preparing the next batch in the pool."""
    def load(batch: list[tuple[int, int]]) -> tuple[np.ndarray, np.ndarray]:
        got = [samples.get(i, s, epoch) for i, s in batch] if pool is None else \
            list(pool.map(lambda b: samples.get(b[0], b[1], epoch), batch))
        return np.stack([g[0] for g in got]), np.array([g[1] for g in got], dtype=np.float32)

    if pool is None:
        for b in batches:
            yield load(b)
        return
    with ThreadPoolExecutor(max_workers=1) as ahead:
        future = ahead.submit(load, batches[0]) if batches else None
        for k in range(len(batches)):
            current = future.result()
            future = ahead.submit(load, batches[k + 1]) if k + 1 < len(batches) else None
            yield current


# -- checkpoints --------------------------------------------------------------------------
def _write_dir_atomically(dest: Path, write: Callable[[Path], None]) -> None:
    """Write a folder via a temporary sibling and two renames; a crash at any point leaves
    either the old or the new folder readable (see :func:`_recover_dir`)."""
    tmp, old = dest.with_name(f".{dest.name}.tmp"), dest.with_name(f".{dest.name}.old")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        write(tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if dest.exists():
        shutil.rmtree(old, ignore_errors=True)
        os.replace(dest, old)
    os.replace(tmp, dest)
    shutil.rmtree(old, ignore_errors=True)


def _recover_dir(dest: Path) -> None:
    old = dest.with_name(f".{dest.name}.old")
    if not dest.exists() and old.exists():
        os.replace(old, dest)


def _read_training_state(path: Path) -> dict[str, Any]:
    """``training_state.pt`` via ``torch.load(weights_only=True)``: tensors and plain containers,
    never code. Raises TrainingError for a corrupt, foreign or malicious file."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise TrainingError(f"cannot resume: {path} is not a readable training state ({refusal_reason(e)}). "
                            "Start a new run in another output_dir") from None
    keys = ("epoch", "optimizer", "scheduler", "rng", "history")
    if not isinstance(state, dict) or any(k not in state for k in keys):
        raise TrainingError(f"cannot resume: {path} is not a training state written by finetune "
                            f"(expected the keys {list(keys)}); start a new run in another output_dir")
    return state


def _rng_state() -> dict[str, Any]:
    state = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# -- evaluation ---------------------------------------------------------------------------
def evaluate(detector: "Detector", data: Any, *, batch_size: int = 32, device: Any = None,
             progress: bool | None = None, num_workers: int | None = None, errors: str = "raise",
             threshold: float | None = None, plot: str | os.PathLike[str] | None = None) -> dict[str, float]:
    """The challenge's metrics on labelled data, with the detector's own preprocessing.

    Args:
        data: a :class:`~deepfake_detect.data.LabelFile`, a real/fake folder, a list of
            ``(image, label)`` pairs, or a torch Dataset of ``(image, label)``; or several
            of them as a mapping ``{name: data}`` (or a list of datasets), scored per
            source and pooled.
        errors: ``"skip"`` leaves unreadable images out of the metrics (``n`` counts
            the scored ones).
        threshold: for ``acc``; default the detector's ``config.threshold``.
        plot: write the ROC curve to this PNG file.

    Returns:
        ``{"auc", "tpr_at_fpr_1e-3", "acc", "ap", "eer", "logloss", "n"}``; for several
        sources ``{name: metrics, ..., "pooled": metrics}`` (``pooled`` also has
        ``auc_mean``, the mean of the sources' AUCs). They are also recorded in
        ``detector.config.metadata`` (``metrics``, and ``metrics_data`` naming the data),
        so the model card of a later ``save_pretrained``/``push_to_hub`` shows the last
        evaluation.
    """
    from .metrics import compute_metrics, plot_roc

    sources = as_sources(data)
    if sources is not None:
        data, source_ids = concat_sources(sources)
    else:
        data, source_ids = as_labeled_data(data), None
    images = [data.image(i) for i in range(len(data))]
    with warnings.catch_warnings():
        if errors == "skip":
            warnings.simplefilter("default")
        scores = detector.predict(images, batch_size=batch_size, device=device, progress=progress,
                                  num_workers=num_workers, errors=errors)
    keep = ~np.isnan(scores)
    threshold = detector.config.threshold if threshold is None else threshold
    if sources is not None:
        metrics: dict[str, Any] = per_source_metrics(data.labels, scores, source_ids, list(sources), threshold)
    else:
        metrics = compute_metrics(data.labels[keep], scores[keep], threshold=threshold)
    if plot is not None:
        plot_roc(data.labels[keep], scores[keep], plot, title=f"{detector.config.architecture}")
    detector.config = detector.config.replace(metadata={
        **detector.config.metadata, "metrics": dict(metrics),
        "metrics_data": data.description or f"{len(data)} labelled images"})
    return metrics


def per_source_metrics(labels: np.ndarray, scores: np.ndarray, source_ids: np.ndarray, names: Sequence[str],
                       threshold: float) -> dict[str, Any]:
    """``{name: metrics, ..., "pooled": metrics + auc_mean}`` over the scored (non-NaN)
    images; ``source_ids[i]`` indexes ``names``."""
    from .metrics import compute_metrics

    keep = ~np.isnan(scores)
    out: dict[str, Any] = {}
    for k, name in enumerate(names):
        sel = keep & (source_ids == k)
        out[name] = compute_metrics(labels[sel], scores[sel], threshold=threshold)
    pooled = dict(compute_metrics(labels[keep], scores[keep], threshold=threshold))
    pooled["auc_mean"] = float(np.mean([out[n]["auc"] for n in names]))
    out["pooled"] = pooled
    return out


def _scores_for(detector: "Detector", model: nn.Module, data: LabeledData, dist_ctx: DistContext,
                batch_size: int, crop_faces: bool = False) -> np.ndarray:
    """Validation scores of ``model`` (gathered across ranks), via the detector's predict."""
    from .detector import Detector

    view = Detector(model, detector.config, source=detector.source)
    idx = dist_ctx.shard(list(range(len(data))))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # images without a face are scored whole, as in predict
        scores = view.predict([data.image(i) for i in idx], batch_size=batch_size, progress=False,
                              crop_faces=crop_faces)
    out = np.full(len(data), np.nan, dtype=np.float32)
    for part_idx, part_scores in dist_ctx.gather((idx, scores)):
        out[part_idx] = part_scores
    return out


# -- the loop -----------------------------------------------------------------------------
def finetune(
    detector: "Detector",
    train: Any,
    val: Any = None,
    *,
    epochs: int = 5,
    batch_size: int = 32,
    lr: float | None = None,
    weight_decay: float = 0.05,
    optimizer: Any = "adamw",
    scheduler: Any = "cosine",
    freeze_backbone: bool | None = None,
    augment: Any = "auto",
    loss: Any = None,
    ema: bool | float = False,
    amp: bool | str | None = None,
    seed: int = 0,
    output_dir: str | os.PathLike[str] | None = None,
    resume: bool = False,
    num_workers: int | None = None,
    device: str | torch.device | None = None,
    progress: bool = True,
    callbacks: Sequence[Callable[[dict[str, Any]], Any]] = (),
    synth_fakes: float = 0.0,
    label_smoothing: float = 0.0,
    cache_images: bool = True,
    source_weights: Mapping[str, float] | None = None,
    epoch_size: int | None = None,
    crop_faces: bool = False,
) -> TrainResult:
    """Fine-tune ``detector`` in place on labelled images; afterwards it holds the best weights.

    Args:
        train, val: a :class:`~deepfake_detect.data.LabelFile`, a folder with ``real/`` and
            ``fake/`` (or ``0/`` and ``1/``) subfolders, a list of ``(image, label)`` pairs
            (1 = fake), or a torch Dataset yielding ``(image, label)``; or several sources
            at once as a mapping ``{name: data}`` (or a list of datasets). Checked fully
            before the first step. With several validation sources each epoch's history
            has ``val_sources`` (metrics per source) beside the pooled ``val``, and the
            best epoch is the one with the highest mean of the sources' AUCs
            (``val["auc_mean"]``), so a large source does not outvote a small one.
        epochs: passes over ``train``.
        batch_size: images per step (per process under torchrun).
        lr: peak learning rate; default 1e-3 with a frozen backbone, 3e-4 otherwise.
        weight_decay: decoupled weight decay (not applied to biases and norms).
        optimizer: ``"adamw"``, ``"adam"``, ``"sgd"`` or ``callable(params) -> Optimizer``.
        scheduler: ``"cosine"`` (per step, linear warm-up over the first 10 % of steps, at
            most one epoch), ``"step"`` (the camp's x0.85 every 4 epochs), ``"constant"``, or
            ``callable(optimizer, steps_per_epoch, epochs)`` giving a per-step scheduler.
        freeze_backbone: train only the entry's head; default per entry (True for
            ``resnet18-finetune``). Frozen BatchNorm layers keep their statistics.
        augment: ``"default"``, ``"camp"``, ``"none"``, a callable
            ``f(PIL image, numpy Generator) -> PIL image``, or ``"auto"``: ``"none"`` with a
            frozen backbone (its features are then computed once and cached), else
            ``"default"``.
        loss: ``"cross_entropy"``, ``"bce"``, ``"ae"`` or ``callable(output, labels, inputs)``;
            default from the entry (cross-entropy for 2-class heads, BCE-with-logits for
            one logit, ``AELoss`` for ``ae-classifier``).
        ema: keep an exponential moving average of the weights (``True`` = decay 0.999, or
            the decay) and validate and keep that.
        amp: mixed precision; default bf16 autocast on CUDA, off on CPU.
        seed: seeds shuffling, augmentation and synthetic fakes (per epoch and image, so a
            resumed run sees the same data as an uninterrupted one).
        output_dir: write ``last/`` and ``best/`` checkpoints (``save_pretrained`` folders;
            ``last/`` also holds ``training_state.pt`` for resuming) and ``history.jsonl``
            after every epoch. ``load_detector(output_dir)`` loads ``best/``.
        resume: continue from ``output_dir/last`` up to ``epochs``.
        num_workers: threads decoding and augmenting ahead of the model (default: CPU
            cores, at most 4; 0 = in the training thread).
        device: default: CUDA if the detector is there or under torchrun with GPUs, else CPU.
        progress: a progress bar per epoch and one summary line per epoch (stderr).
        callbacks: called after each epoch with that epoch's history dict.
        synth_fakes: add this many self-blended fakes per real training image each epoch
            (0.5: half as many fakes as real images), labelled fake.
        label_smoothing: smooth the 0/1 targets by this amount.
        cache_images: keep decoded, resized training images in memory (uint8) across
            epochs when they fit in 4 GiB.
        source_weights: with several training sources, the share of each epoch drawn
            from each (relative weights by name; an epoch has as many images as all
            sources together, drawn without replacement where a source is large enough).
            Default: every image once per epoch.
        epoch_size: images drawn per epoch (without replacement within an epoch where the
            data allow; self-blended fakes come on top); default: the whole training set.
            Smaller epochs validate and checkpoint more often on large data.
        crop_faces: cut the largest face out of each training image first, with the
            detector's crop policy (``config.face_crop``): the same crop
            ``predict(..., crop_faces=True)`` makes (needs the ``face`` extra).

    Returns:
        :class:`TrainResult`.

    Raises:
        DataError: unusable data (checked before training starts).
        TrainingError: non-finite loss (the last good weights are restored and kept on
            disk), a checkpoint folder that would be overwritten, or bad arguments.
    """
    from . import __version__

    if epochs < 1 or batch_size < 1:
        raise TrainingError(f"epochs={epochs}, batch_size={batch_size}: both must be at least 1")
    if not 0.0 <= synth_fakes <= 10.0:
        raise TrainingError(f"synth_fakes={synth_fakes}: expected a ratio between 0 and 10")
    train_sources = as_sources(train)
    if train_sources is not None:
        train_data, train_ids = concat_sources(train_sources)
    else:
        train_data, train_ids = as_labeled_data(train), None
    weights = _check_source_weights(source_weights, list(train_sources or {}))
    val_sources = as_sources(val) if val is not None else None
    if val_sources is not None:
        val_data, val_ids = concat_sources(val_sources)
    else:
        val_data, val_ids = (as_labeled_data(val) if val is not None else None), None
    classes = set(np.unique(train_data.labels).tolist())
    if classes != {0, 1} and not (classes == {0} and synth_fakes > 0):
        raise DataError(f"training data {train_data.description} has only label(s) {sorted(classes)}; "
                        "it needs real (0) and fake (1) images, or real images with synth_fakes > 0")
    for name, part in (val_sources or {"": val_data} if val_data is not None else {}).items():
        if set(np.unique(part.labels).tolist()) != {0, 1}:
            where = f"validation source {name!r} ({part.description})" if name else f"validation data {part.description}"
            raise DataError(f"{where} needs both real (0) and fake (1) images for AUC")

    dev = torch.device(device) if device is not None else None
    if dev is None:
        if os.environ.get("WORLD_SIZE", "1") != "1" and torch.cuda.is_available():
            dev = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        else:
            dev = detector.device
    if dev.type == "cuda" and dev.index is None and os.environ.get("LOCAL_RANK"):
        dev = torch.device("cuda", int(os.environ["LOCAL_RANK"]))
    dist_ctx = DistContext.from_env(dev)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
        torch.backends.cudnn.benchmark = True
    model = detector.model.to(dev)
    entry = detector.entry
    frozen = entry.freeze_backbone if freeze_backbone is None else bool(freeze_backbone)
    if frozen and not entry.head:
        raise TrainingError(f"{entry.name!r} names no head modules, so its backbone cannot be frozen")
    if augment == "auto":
        augment = "none" if frozen else "default"
    loss_fn = _make_loss(loss if loss is not None else entry.loss, label_smoothing)
    is_head = lambda name: any(name == h or name.startswith(h + ".") for h in entry.head)  # noqa: E731
    for name, p in model.named_parameters():
        p.requires_grad_(is_head(name) if frozen else True)
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise TrainingError("no trainable parameters")
    lr = lr if lr is not None else (1e-3 if frozen else 3e-4)
    if amp is None:
        amp = dev.type == "cuda"
    amp_dtype = torch.float16 if amp == "fp16" else torch.bfloat16
    if amp and dev.type == "cuda" and amp_dtype == torch.bfloat16 and not torch.cuda.is_bf16_supported():
        amp_dtype = torch.float16
    scaler = torch.amp.GradScaler("cuda") if amp and amp_dtype == torch.float16 and dev.type == "cuda" else None
    channels_last = any(isinstance(m, nn.Conv2d) for m in model.modules())
    if channels_last:
        from .fast import to_channels_last

        to_channels_last(model)

    if epoch_size is not None and epoch_size < 1:
        raise TrainingError(f"epoch_size={epoch_size}: must be at least 1")
    samples = _Samples(train_data, detector, augment, synth_fakes, seed, cache_images, train_ids, weights, epoch_size,
                       crop_faces)
    steps_per_epoch = len(_batches(dist_ctx.shard(samples.epoch_plan(1)), batch_size))
    opt = _make_optimizer(optimizer, params, lr, weight_decay)
    sched = _make_scheduler(scheduler, opt, steps_per_epoch, epochs)
    ema_model = _EMA(model, 0.999 if ema is True else float(ema)) if ema else None
    train_model: nn.Module = model
    if dist_ctx.enabled:
        train_model = nn.parallel.DistributedDataParallel(
            model, device_ids=[dev.index] if dev.type == "cuda" else None)

    out_dir = Path(output_dir) if output_dir is not None else None
    result = TrainResult(output_dir=out_dir)
    start_epoch = 1
    best_state: dict[str, torch.Tensor] | None = None
    if out_dir is not None:
        _recover_dir(out_dir / CHECKPOINT_LAST)
        _recover_dir(out_dir / CHECKPOINT_BEST)
        state_file = out_dir / CHECKPOINT_LAST / STATE_NAME
        if state_file.exists() and not resume:
            raise TrainingError(f"{out_dir} already holds a checkpoint ({state_file}); pass resume=True "
                                "to continue it, or choose another output_dir")
        if resume and state_file.exists():
            state = _read_training_state(state_file)
            load_weights(model, read_state_dict(out_dir / CHECKPOINT_LAST / "model.safetensors"),
                         source=str(out_dir / CHECKPOINT_LAST))
            opt.load_state_dict(state["optimizer"])
            sched.load_state_dict(state["scheduler"])
            if ema_model is not None and "ema" in state:
                ema_model.model.load_state_dict(state["ema"])
            _set_rng_state(state["rng"])
            start_epoch = int(state["epoch"]) + 1
            result.history = json.loads(state["history"])
            result.best = json.loads(state["best"]) if state.get("best") else None
            if dist_ctx.is_main:
                log.info("resuming from %s at epoch %d", state_file, start_epoch)
        elif resume:
            log.info("resume=True but %s holds no checkpoint: starting from epoch 1", out_dir)
    if dist_ctx.is_main and out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)

    feature_cache = _FeatureCache.try_create(model, entry.head, frozen, samples, dist_ctx, loss if loss is not None else entry.loss)
    pool = ThreadPoolExecutor(max_workers=num_workers or min(4, os.cpu_count() or 1)) if (num_workers is None or num_workers > 0) else None
    show = progress and dist_ctx.is_main
    last_good = {k: v.detach().clone() for k, v in model.state_dict().items()}
    try:
        for epoch in range(start_epoch, epochs + 1):
            plan = dist_ctx.shard(samples.epoch_plan(epoch))
            batches = _batches(plan, batch_size)
            model.train()
            if frozen:
                _freeze_norms(model, entry.head)
            t0, seen, loss_sum = time.perf_counter(), 0, 0.0
            bar = _bar(len(plan), epoch, epochs, show)
            if feature_cache is not None and feature_cache.ready:
                iterator = feature_cache.batches(batches)
            else:
                iterator = _load_batches(samples, batches, epoch, pool)
            for step, (images, labels) in enumerate(iterator):
                y = torch.from_numpy(labels).to(dev)
                with torch.autocast(dev.type, dtype=amp_dtype, enabled=bool(amp)):
                    if feature_cache is not None and feature_cache.ready:
                        x = images.to(dev)
                        out = feature_cache.head(x)
                    else:
                        x = detector.preprocessor().to_tensor(list(images)).to(dev, non_blocking=True)
                        if feature_cache is not None:
                            out = feature_cache.forward_and_store(train_model, x, batches[step])
                        else:
                            out = train_model(x)
                    loss_value = loss_fn(out, y, x)
                if not torch.isfinite(loss_value):
                    model.load_state_dict(last_good)
                    where = f"; the last good checkpoint is in {out_dir / CHECKPOINT_LAST}" if out_dir else ""
                    raise TrainingError(f"loss became {loss_value.item()} at epoch {epoch}, step {step + 1}; "
                                        f"weights were restored to the end of epoch {epoch - 1}{where}. "
                                        "Lower lr or check the data")
                opt.zero_grad(set_to_none=True)
                if scaler is not None:
                    scaler.scale(loss_value).backward()
                    scaler.step(opt)
                    scaler.update()
                else:
                    loss_value.backward()
                    opt.step()
                sched.step()
                if ema_model is not None:
                    ema_model.update(model)
                seen += len(labels)
                loss_sum += float(loss_value.detach()) * len(labels)
                bar.update(len(labels))
                bar.set_postfix(loss=f"{loss_sum / seen:.4f}", img_s=f"{seen / (time.perf_counter() - t0):.1f}")
            bar.close()
            if feature_cache is not None:
                feature_cache.finish_epoch()
            seconds = time.perf_counter() - t0
            record: dict[str, Any] = {
                "epoch": epoch,
                "train_loss": dist_ctx.all_reduce_mean(loss_sum / max(seen, 1)),
                "lr": opt.param_groups[0]["lr"],
                "seconds": round(seconds, 3),
                "img_per_s": round(seen * dist_ctx.world_size / seconds, 2),
            }
            eval_model = ema_model.model if ema_model is not None else model
            if val_data is not None:
                from .metrics import compute_metrics

                scores = (feature_cache.val_scores(detector, eval_model, val_data) if feature_cache is not None
                          else _scores_for(detector, eval_model, val_data, dist_ctx, batch_size, crop_faces))
                if val_sources is not None:
                    per_source = per_source_metrics(val_data.labels, scores, val_ids, list(val_sources),
                                                    detector.config.threshold)
                    record["val"] = per_source.pop("pooled")
                    record["val_sources"] = per_source
                else:
                    record["val"] = compute_metrics(val_data.labels, scores, threshold=detector.config.threshold)
            result.history.append(record)
            improved = val_data is not None and (result.best is None or
                                                 _selection_score(record["val"]) > _selection_score(result.best))
            if improved:
                result.best = {"epoch": epoch, **record["val"]}
                best_state = {k: v.detach().clone() for k, v in eval_model.state_dict().items()}
            last_good = {k: v.detach().clone() for k, v in model.state_dict().items()}
            if out_dir is not None and dist_ctx.is_main:
                _save_checkpoints(detector, eval_model, out_dir, record, result, improved, opt, sched, ema_model,
                                  epoch, __version__, train_data, model)
            dist_ctx.barrier()
            if show:
                _summary(record, epochs)
            for cb in callbacks:
                cb(record)
    except KeyboardInterrupt:
        result.interrupted = True
        if show:
            from tqdm.auto import tqdm

            done = result.history[-1]["epoch"] if result.history else start_epoch - 1
            where = f" in {out_dir}; continue with resume=True" if out_dir else ""
            tqdm.write(f"interrupted: epochs up to {done} are complete{where}")
        model.load_state_dict(last_good)
    finally:
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)
        dist_ctx.close()
    final = ema_model.model if ema_model is not None else model
    if best_state is None and result.best is not None and out_dir is not None:
        best_state = read_state_dict(out_dir / CHECKPOINT_BEST / "model.safetensors")  # best epoch was before a resume
    model.load_state_dict(best_state if best_state is not None else final.state_dict())
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            m.weight.data = m.weight.data.contiguous()
    for p in model.parameters():
        p.requires_grad_(True)
    model.eval()
    detector.config = _with_training_metadata(detector, result, train_data, __version__)
    return result


def _freeze_norms(model: nn.Module, head: tuple[str, ...]) -> None:
    """Frozen BatchNorm layers use and keep their running statistics (eval mode)."""
    for name, m in model.named_modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and not any(
                name == h or name.startswith(h + ".") for h in head):
            m.eval()


def _with_training_metadata(detector: "Detector", result: TrainResult, train_data: LabeledData, version: str):
    meta = dict(detector.config.metadata)
    meta["training_data"] = train_data.description
    if result.best is not None:
        meta["metrics"] = {k: v for k, v in result.best.items() if k != "epoch"}
        meta["metrics_data"] = f"validation data at epoch {result.best['epoch']}"
    return detector.config.replace(metadata=meta, library_version=version)


def _save_checkpoints(detector, eval_model, out_dir, record, result, improved, opt, sched, ema_model, epoch,
                      version, train_data, model) -> None:
    from .detector import Detector

    view = Detector(eval_model, _with_training_metadata(detector, result, train_data, version), source=detector.source)
    state = {
        "epoch": epoch,
        "optimizer": opt.state_dict(),
        "scheduler": sched.state_dict(),
        "rng": _rng_state(),
        "history": json.dumps(result.history),
        "best": json.dumps(result.best) if result.best else "",
    }
    if ema_model is not None:
        state["ema"] = ema_model.model.state_dict()

    def write_last(folder: Path) -> None:
        Detector(model, view.config, source=detector.source).save_pretrained(folder)
        buffer = io.BytesIO()  # torch.save to a file reports a full disk as RuntimeError; write() gives OSError
        torch.save(state, buffer)
        with atomic_path(folder / STATE_NAME) as tmp:  # flushed to disk like the weights
            tmp.write_bytes(buffer.getbuffer())

    try:
        if improved:
            _write_dir_atomically(out_dir / CHECKPOINT_BEST, view.save_pretrained)
        _write_dir_atomically(out_dir / CHECKPOINT_LAST, write_last)
        with atomic_path(out_dir / HISTORY_NAME) as tmp:  # a crash or full disk never leaves half a file
            tmp.write_text("".join(json.dumps(rec) + "\n" for rec in result.history), encoding="utf-8")
    except OSError as e:
        raise TrainingError(f"could not write the checkpoint of epoch {epoch} to {out_dir}: {e}. "
                            "The previous checkpoint is kept; free space and resume with resume=True") from e
    except DeepfakeDetectError as e:
        raise TrainingError(f"could not write the checkpoint of epoch {epoch} to {out_dir}: {e}. "
                            "The previous checkpoint is kept; free space and resume with resume=True") from e


def _bar(total: int, epoch: int, epochs: int, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=f"epoch {epoch}/{epochs}", unit="img", disable=not enabled, leave=False,
                dynamic_ncols=True)


def _summary(record: dict[str, Any], epochs: int) -> None:
    from tqdm.auto import tqdm

    line = (f"epoch {record['epoch']}/{epochs}: train_loss {record['train_loss']:.4f}, "
            f"{record['img_per_s']:.1f} img/s, {record['seconds']:.1f} s")
    if "val" in record:
        v = record["val"]
        line += f", val auc {v['auc']:.4f} acc {v['acc']:.4f}"
    tqdm.write(line)


class _FeatureCache:
    """Head inputs of a frozen backbone, computed in the first epoch and reused after it.

    Used only when that is exact: one head module whose output is the model's output, no
    augmentation or synthetic fakes (the images are the same every epoch), one process.
    """

    def __init__(self, model: nn.Module, head: nn.Module, labels: np.ndarray) -> None:
        self.model, self.head, self._labels = model, head, labels
        self.train_feats: dict[int, torch.Tensor] = {}
        self.val_feats: torch.Tensor | None = None
        self.ready = False
        self._captured: list[torch.Tensor] = []
        self._checked = False
        self._disabled = False

    @classmethod
    def try_create(cls, model: nn.Module, head: tuple[str, ...], frozen: bool, samples: _Samples,
                   dist_ctx: DistContext, loss: Any) -> "_FeatureCache | None":
        if (not frozen or len(head) != 1 or samples.augment is not None or samples.synth or dist_ctx.enabled
                or samples.crop_faces):
            return None
        if callable(loss) or loss == "ae":
            return None
        try:
            module = model.get_submodule(head[0])
        except AttributeError:
            return None
        return cls(model, module, samples.data.labels)

    def _capture(self, model: nn.Module, x: torch.Tensor) -> tuple[Any, torch.Tensor]:
        captured: list[torch.Tensor] = []
        handle = self.head.register_forward_hook(lambda m, inp, out: captured.append(inp[0].detach()))
        try:
            out = model(x)
        finally:
            handle.remove()
        return out, captured[-1]

    def forward_and_store(self, model: nn.Module, x: torch.Tensor, batch: list[tuple[int, int]]) -> Any:
        out, feats = self._capture(model, x)
        if not self._checked:  # the cache is exact only if the head's output is the model's output
            self._checked = True
            with torch.no_grad():
                self._disabled = not torch.allclose(_logits(out).detach(), self.head(feats), atol=1e-5)
        if not self._disabled:
            for (i, _), f in zip(batch, feats):
                self.train_feats[i] = f.clone()
        return out

    def finish_epoch(self) -> None:
        self.ready = not self._disabled and bool(self.train_feats)

    def batches(self, batches: list[list[tuple[int, int]]]):
        for b in batches:
            feats = torch.stack([self.train_feats[i] for i, _ in b])
            labels = np.array([self._labels[i] for i, _ in b], dtype=np.float32)
            yield feats, labels

    def val_scores(self, detector: "Detector", model: nn.Module, data: LabeledData) -> np.ndarray:
        from .detector import Detector

        view = Detector(model, detector.config)
        if self.val_feats is None or self._disabled:
            prep = detector.preprocessor()
            feats = []
            model.eval()
            with torch.inference_mode():
                for s in range(0, len(data), 64):
                    x = prep.to_tensor([prep.prepare(data.image(i)) for i in range(s, min(len(data), s + 64))])
                    feats.append(self._capture(model, x.to(detector.device))[1])
            self.val_feats = torch.cat(feats)
        with torch.inference_mode():
            return view.scores_from_output(self.head(self.val_feats)).cpu().numpy()
