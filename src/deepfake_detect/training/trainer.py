"""``Trainer``: one fine-tuning run in small steps (setup, train_epoch, validate, fit).

One loop serves every registry entry: the entry says which loss fits its output and which
submodules form the head (trained when the backbone is frozen). Images are decoded and
resized once and kept as uint8 in memory across epochs; with a frozen backbone and no
augmentation the backbone's features are computed once and only the head is trained after
that. Checkpoints are written atomically after every epoch (:class:`CheckpointDir`), so an
interrupted run resumes with the same schedule and ends with the same weights as an
uninterrupted one.

On the CPU the step runs in channels_last with a fused optimiser, and glibc keeps freed
memory between steps (:mod:`.allocator`); ``compile=True`` adds ``torch.compile``.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from torch import nn

from ..config import DetectorConfig
from ..data.datasets import LabeledData, as_labeled_data, as_sources, concat_sources
from ..data.preprocess import Preprocessor
from ..distributed import DistContext, check_device, local_device
from ..errors import DataError, TrainingError
from ..evaluate import check_both_classes, per_source_metrics, validation_scores
from ..formats import WEIGHTS_NAME
from ..loading import save_folder
from ..losses import make_loss
from ..modules import freeze_norms, freeze_norms_under, in_head
from ..protocols import FineTunable
from ..registry import get_entry
from ..version import __version__
from ..weights import load_weights, read_state_dict
from .allocator import reuse_freed_memory
from .checkpoint import CheckpointDir
from .config import TrainConfig
from .feature_cache import FeatureCache
from .optim import implementation_flags, make_ema, make_optimizer, make_scheduler, restore_implementation
from .samples import Samples, check_source_weights, load_batches, make_batches

__all__ = ["Trainer", "TrainResult", "finetune"]

log = logging.getLogger(__name__)


@dataclass
class TrainResult:
    """What :meth:`Trainer.fit` (and :func:`finetune`) returns.

    Attributes:
        history: one dict per completed epoch: ``epoch`` (1-based), ``train_loss``, ``lr``,
            ``seconds``, ``img_per_s`` and, with validation data, ``val`` (the metrics of
            :func:`~deepfake_detect.evaluate.evaluate`; pooled over sources, with
            ``val_sources`` per source beside it).
        best: ``{"epoch": ..., **val metrics}`` of the best validation epoch (``None``
            without validation data).
        output_dir: where checkpoints were written, if anywhere.
        interrupted: training stopped early on Ctrl-C; resume with ``resume=True``.
    """

    history: list[dict[str, Any]] = field(default_factory=list)
    best: dict[str, Any] | None = None
    output_dir: Path | None = None
    interrupted: bool = False


def selection_score(val: dict[str, Any]) -> float:
    """What picks the best epoch: the mean of per-source AUCs when there are sources, else AUC."""
    return float(val.get("auc_mean", val["auc"]))


def _split(data: Any) -> tuple[LabeledData, np.ndarray | None, dict[str, LabeledData] | None]:
    """``(all images, source index per image or None, sources or None)``."""
    sources = as_sources(data)
    if sources is None:
        return as_labeled_data(data), None, None
    merged, ids = concat_sources(sources)
    return merged, ids, sources


#: ``config.metadata`` keys that describe the weights a fine-tune starts from (their name,
#: data, recipe, measurements, threshold rule and card sections): none of them holds for the
#: fine-tuned weights, so :func:`fine_tuned_metadata` does not carry them over.
BASE_IDENTITY_KEYS = (
    "name",
    "weights_tag",
    "weights_source",
    "training_data",
    "datasets",
    "recipe",
    "metrics",
    "metrics_data",
    "false_alarm_rate",
    "threshold_rule",
    "card_sections",
    "base_model",
)


def fine_tuned_metadata(
    meta: dict[str, Any],
    *,
    architecture: str,
    source: str,
    threshold: float,
    training_data: str,
    recipe: dict[str, Any],
    metrics: dict[str, Any] | None,
    metrics_data: str | None,
) -> dict[str, Any]:
    """The ``config.metadata`` of weights fine-tuned from a detector whose metadata is ``meta``.

    The base's identity and measurements (:data:`BASE_IDENTITY_KEYS`) are not carried over.
    When the base had any (or was loaded from somewhere other than its bare architecture),
    ``base_model`` records ``name``, ``source`` (its weights tag or where it was loaded from),
    ``license`` (the derived weights stay under it), ``threshold`` (kept in the config but not
    re-calibrated; the card says so) and the base's own ``base_model``, if any. ``license``,
    ``weights_license``, ``intended_use``, ``limitations`` and keys this library does not
    know are kept; ``name`` becomes ``"fine-tuned <architecture>"``.

    Args:
        meta: the base detector's ``config.metadata``.
        architecture: its registry architecture.
        source: :attr:`Detector.source` of the base detector.
        threshold: the base's decision threshold.
        training_data: what the fine-tune trained on.
        recipe: :meth:`TrainConfig.recipe` of the run.
        metrics: the fine-tune's best validation metrics (``None`` without validation data).
        metrics_data: what ``metrics`` were measured on.
    """
    out = {k: v for k, v in meta.items() if k not in BASE_IDENTITY_KEYS}
    if any(k in meta for k in BASE_IDENTITY_KEYS) or source != architecture:
        base: dict[str, Any] = {
            "name": str(meta.get("name") or meta.get("weights_tag") or source),
            "source": str(meta.get("weights_tag") or source),
            "threshold": threshold,
        }
        licence = meta.get("weights_license") or meta.get("license")
        if licence:
            base["license"] = str(licence)
        if meta.get("base_model"):
            base["base_model"] = meta["base_model"]
        out["base_model"] = base
    out["name"] = f"fine-tuned {architecture}"
    out["training_data"] = training_data
    out["recipe"] = recipe
    if metrics is not None:
        out["metrics"] = metrics
        out["metrics_data"] = metrics_data or "validation data"
    return out


class Trainer:
    """Fine-tunes ``detector`` in place on ``train`` (validating on ``val``) with ``config``.

    ``fit()`` runs :meth:`setup` and then, per epoch, :meth:`train_epoch`, :meth:`validate`
    and a checkpoint; afterwards the detector holds the best (or last) weights and its
    ``config.metadata`` records the training data, best metrics and the recipe.
    """

    def __init__(self, detector: FineTunable, train: Any, val: Any = None, config: TrainConfig | None = None) -> None:
        self.detector = detector
        self.config = config if config is not None else TrainConfig()
        self._train_arg, self._val_arg = train, val
        self.result = TrainResult()
        self._ready = False

    # -- setup -------------------------------------------------------------------------
    def setup(self) -> None:
        """Check the data, place the model, build optimiser, scheduler, EMA and feature
        cache, and resume from the checkpoint when asked. Raises before any step on bad input,
        leaving the model's ``requires_grad`` flags and train/eval mode as they were."""
        model = self.detector.model
        self._entry_state = ([p.requires_grad for p in model.parameters()], model.training)
        try:
            self._setup_data()
            self._setup_device()
            self._setup_model()
            self._setup_optimisation()
            self._setup_checkpoints()
        except BaseException:
            self._hand_back()
            raise
        self._ready = True

    def _hand_back(self) -> None:
        """Give the model back as :meth:`setup` found it: trainable flags and train/eval mode."""
        flags, training = self._entry_state
        model = self.detector.model
        for p, flag in zip(model.parameters(), flags, strict=True):
            p.requires_grad_(flag)
        model.train(training)

    def _setup_data(self) -> None:
        cfg = self.config
        self.train_data, self.train_ids, train_sources = _split(self._train_arg)
        self.source_weights = check_source_weights(cfg.source_weights, list(train_sources or {}))
        self.val_data: LabeledData | None = None
        self.val_ids, self.val_sources = None, None
        if self._val_arg is not None:
            self.val_data, self.val_ids, self.val_sources = _split(self._val_arg)
        classes = set(np.unique(self.train_data.labels).tolist())
        if classes != {0, 1} and not (classes == {0} and cfg.synth_fakes + cfg.swap_fakes > 0):
            raise DataError(
                f"training data {self.train_data.description} has only label(s) {sorted(classes)}; "
                "it needs real (0) and fake (1) images, or real images with synth_fakes or swap_fakes > 0"
            )
        parts = self.val_sources or ({"": self.val_data} if self.val_data is not None else {})
        for name, part in parts.items():
            where = (
                f"validation source {name!r} ({part.description})" if name else f"validation data {part.description}"
            )
            check_both_classes(part.labels, where)

    def _setup_device(self) -> None:
        dev = check_device(self.config.device) if self.config.device is not None else None
        if dev is None:
            if os.environ.get("WORLD_SIZE", "1") != "1" and torch.cuda.is_available():
                dev = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
            else:
                p = next(self.detector.model.parameters(), None)
                dev = p.device if p is not None else torch.device("cpu")
        dev = local_device(dev)  # "cuda" is cuda:LOCAL_RANK under torchrun
        self.dist = DistContext.from_env(dev)
        if dev.type == "cuda":
            torch.cuda.set_device(dev)
            torch.backends.cudnn.benchmark = True
        self.device = dev
        amp = self.config.amp if self.config.amp is not None else dev.type == "cuda"
        dtype = torch.float16 if amp == "fp16" else torch.bfloat16
        if amp and dev.type == "cuda" and dtype == torch.bfloat16 and not torch.cuda.is_bf16_supported():
            dtype = torch.float16
        self.amp, self.amp_dtype = bool(amp), dtype
        self.scaler = torch.amp.GradScaler("cuda") if amp and dtype == torch.float16 and dev.type == "cuda" else None

    def _setup_model(self) -> None:
        cfg, entry = self.config, get_entry(self.detector.config.architecture)
        self.model = self.detector.model.to(self.device)
        self.head = entry.head
        self.partial = tuple(cfg.freeze)
        if self.partial and cfg.freeze_backbone:
            raise TrainingError(
                f"freeze={list(self.partial)} and freeze_backbone=True: the backbone is already frozen; pass one"
            )
        default_frozen = entry.freeze_backbone and not self.partial  # naming modules to freeze overrides the entry
        self.frozen = default_frozen if cfg.freeze_backbone is None else bool(cfg.freeze_backbone)
        if self.frozen and not entry.head:
            raise TrainingError(f"{entry.name!r} names no head modules, so its backbone cannot be frozen")
        if self.partial:
            modules = dict(self.model.named_modules())
            missing = [f for f in self.partial if f not in modules]
            if missing:
                top = [n for n, _ in self.model.named_children()]
                raise TrainingError(f"freeze={missing}: no such module in the model; its top-level modules are {top}")
        self.loss_spec = cfg.loss if cfg.loss is not None else entry.loss
        self.loss_fn = make_loss(self.loss_spec, cfg.label_smoothing)
        for name, p in self.model.named_parameters():
            p.requires_grad_(in_head(name, entry.head) if self.frozen else not in_head(name, self.partial))
        if not any(p.requires_grad for p in self.model.parameters()):
            raise TrainingError("no trainable parameters")
        if any(isinstance(m, nn.Conv2d) for m in self.model.modules()):
            from ..fast import to_channels_last

            to_channels_last(self.model)

    def _setup_optimisation(self) -> None:
        cfg = self.config
        augment = cfg.augment if cfg.augment != "auto" else ("none" if self.frozen else "default")
        prep: Any = Preprocessor(self.detector.config)
        if cfg.crop_faces:
            from ..face import FaceCropPreprocessor

            prep = FaceCropPreprocessor.from_config(self.detector.config, prep)
        self.samples = Samples(
            self.train_data,
            prep,
            augment,
            cfg.synth_fakes,
            cfg.seed,
            cfg.cache_images,
            self.train_ids,
            self.source_weights,
            cfg.epoch_size,
            swap=cfg.swap_fakes,
        )
        steps_per_epoch = len(make_batches(self.dist.shard(self.samples.epoch_plan(1)), cfg.batch_size))
        lr = cfg.lr if cfg.lr is not None else (1e-3 if self.frozen else 3e-4)
        self.optimizer = make_optimizer(cfg.optimizer, self.model, lr, cfg.weight_decay)
        self.scheduler = make_scheduler(cfg.scheduler, self.optimizer, steps_per_epoch, cfg.epochs)
        self.ema = make_ema(self.model, cfg.ema)
        self.forward_model: nn.Module = self.model
        if self.dist.enabled:
            self.forward_model = nn.parallel.DistributedDataParallel(
                self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None
            )
        self.feature_cache = (
            None
            if cfg.crop_faces
            else FeatureCache.try_create(
                self.model, self.head, self.frozen, self.samples, self.dist.enabled, self.loss_spec
            )
        )
        self.compiled = False
        if cfg.compile and self.feature_cache is not None:
            log.info(
                "compile=%r is not used: with the frozen backbone's features cached, only the first epoch "
                "runs the whole model",
                cfg.compile,
            )
        elif cfg.compile:
            self.forward_model = _compile(self.forward_model, cfg.compile)
            self.compiled = True

    def _setup_checkpoints(self) -> None:
        cfg = self.config
        self.checkpoints = CheckpointDir(cfg.output_dir) if cfg.output_dir is not None else None
        self.result = TrainResult(output_dir=self.checkpoints.root if self.checkpoints else None)
        self.start_epoch = 1
        self.best_state: dict[str, torch.Tensor] | None = None
        if self.checkpoints is None:
            return
        ckpt = self.checkpoints
        ckpt.recover()
        if ckpt.has_state() and not cfg.resume:
            raise TrainingError(
                f"{ckpt.root} already holds a checkpoint ({ckpt.state_file}); pass resume=True "
                "to continue it, or choose another output_dir"
            )
        if cfg.resume and ckpt.has_state():
            self._restore(ckpt)
        elif cfg.resume:
            log.info("resume=True but %s holds no checkpoint: starting from epoch 1", ckpt.root)
        if self.dist.is_main:
            ckpt.root.mkdir(parents=True, exist_ok=True)

    def _restore(self, ckpt: CheckpointDir) -> None:
        state = ckpt.read_state()
        self._check_recipe(ckpt, json.loads(state["recipe"]) if state.get("recipe") else None)
        load_weights(self.model, read_state_dict(ckpt.last / WEIGHTS_NAME), source=str(ckpt.last))
        flags = implementation_flags(self.optimizer)  # fused or not is where we run now, not where it was saved
        self.optimizer.load_state_dict(state["optimizer"])
        restore_implementation(self.optimizer, flags)
        self.scheduler.load_state_dict(state["scheduler"])
        if isinstance(self.scheduler, torch.optim.lr_scheduler.LambdaLR):
            # the saved lr is the old schedule's; with more epochs the schedule is a new one
            for group, base, factor in zip(
                self.optimizer.param_groups, self.scheduler.base_lrs, self.scheduler.lr_lambdas, strict=True
            ):
                group["lr"] = base * factor(self.scheduler.last_epoch)
        if self.ema is not None and "ema" in state:
            self.ema.module.load_state_dict(state["ema"])
        _set_rng_state(state["rng"])
        self.start_epoch = int(state["epoch"]) + 1
        self.result.history = json.loads(state["history"])
        self.result.best = json.loads(state["best"]) if state.get("best") else None
        if self.dist.is_main:
            log.info("resuming from %s at epoch %d", ckpt.state_file, self.start_epoch)

    def _check_recipe(self, ckpt: CheckpointDir, saved: dict[str, Any] | None) -> None:
        """Refuse to resume a run with other settings than it was saved with (only ``epochs``
        may change: the schedule is then recomputed for the new total)."""
        if saved is None:
            return
        now = json.loads(json.dumps(self.config.recipe()))  # as the checkpoint stores it

        def comparable(v: Any) -> bool:  # a repr with an address differs from run to run
            return not (isinstance(v, str) and " at 0x" in v)

        changed = [
            k
            for k in sorted(set(saved) | set(now))
            if k != "epochs" and saved.get(k) != now.get(k) and comparable(saved.get(k)) and comparable(now.get(k))
        ]
        if changed:
            was = ", ".join(f"{k}={saved.get(k)!r}" for k in changed)
            asked = ", ".join(f"{k}={now.get(k)!r}" for k in changed)
            raise TrainingError(
                f"{ckpt.root} was trained with {was}; this call asks {asked}. Resume with the same settings "
                "(only epochs may change), or choose another output_dir"
            )
        if saved.get("epochs") != now.get("epochs") and self.dist.is_main:
            log.warning(
                "resuming %s with epochs=%s (saved with %s): the learning-rate schedule is recomputed for the new total",
                ckpt.root,
                now.get("epochs"),
                saved.get("epochs"),
            )

    # -- one epoch ---------------------------------------------------------------------
    @property
    def eval_model(self) -> nn.Module:
        """The model that is validated and kept: the EMA copy when ``ema`` is on."""
        return self.ema.module if self.ema is not None else self.model

    def train_epoch(self, epoch: int, pool: ThreadPoolExecutor | None = None) -> dict[str, Any]:
        """One pass over the epoch's plan; returns its history record without validation."""
        cfg = self.config
        batches = make_batches(self.dist.shard(self.samples.epoch_plan(epoch)), cfg.batch_size)
        self.model.train()
        if self.frozen:
            freeze_norms(self.model, self.head)
        if self.partial:
            freeze_norms_under(self.model, self.partial)
        t0, seen, loss_sum = time.perf_counter(), 0, 0.0
        bar = _bar(sum(len(b) for b in batches), epoch, cfg.epochs, self._show)
        cached = self.feature_cache is not None and self.feature_cache.ready
        iterator = (
            self.feature_cache.batches(batches)
            if cached and self.feature_cache is not None
            else load_batches(self.samples, batches, epoch, pool)
        )
        batch_iter = iter(iterator)
        for step in range(len(batches)):
            # under torchrun a rank that fails alone would leave the others waiting in the next
            # collective: every rank learns of it before the forward (an unreadable image) and
            # before the backward (a non-finite loss), and all raise the same error
            error: BaseException | None = None
            try:
                images, labels = next(batch_iter)
            except Exception as e:
                error = e
            self.dist.raise_if_any_failed(error)
            loss_value = self._step(images, labels, batches[step], cached)
            if not torch.isfinite(loss_value):
                where = f"; the last good checkpoint is in {self.checkpoints.last}" if self.checkpoints else ""
                error = TrainingError(
                    f"loss became {loss_value.item()} at epoch {epoch}, step {step + 1}; "
                    f"weights were restored to the end of epoch {epoch - 1}{where}. "
                    "Lower lr or check the data"
                )
            try:
                self.dist.raise_if_any_failed(error)
            except BaseException:
                self.model.load_state_dict(self._last_good)
                raise
            self._backward(loss_value)
            seen += len(labels)
            loss_sum += float(loss_value.detach()) * len(labels)
            bar.update(len(labels))
            bar.set_postfix(loss=f"{loss_sum / seen:.4f}", img_s=f"{seen / (time.perf_counter() - t0):.1f}")
        bar.close()
        if self.feature_cache is not None:
            self.feature_cache.finish_epoch()
        seconds = time.perf_counter() - t0
        return {
            "epoch": epoch,
            "train_loss": self.dist.all_reduce_mean(loss_sum / max(seen, 1)),
            "lr": self.optimizer.param_groups[0]["lr"],
            "seconds": round(seconds, 3),
            "img_per_s": round(seen * self.dist.world_size / seconds, 2),
        }

    def _step(self, images: Any, labels: np.ndarray, batch: list[tuple[int, int]], cached: bool) -> torch.Tensor:
        """The forward pass and loss of one batch (images: uint8 (N, H, W, 3), or cached head inputs)."""
        y = torch.from_numpy(labels).to(self.device)
        with torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.amp):
            if cached:
                assert self.feature_cache is not None
                x = images.to(self.device)
                out = self.feature_cache.head(self.model)(x)
            else:
                x = self.samples.prep.to_tensor(list(images)).to(self.device, non_blocking=True)
                if self.feature_cache is not None:
                    out = self.feature_cache.forward_and_store(self.model, self.forward_model, x, batch)
                elif self.compiled:
                    out = _compiled_forward(self.forward_model, x, self.config.compile)
                else:
                    out = self.forward_model(x)
            return self.loss_fn(out, y, x)

    def _backward(self, loss_value: torch.Tensor) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        if self.scaler is not None:
            self.scaler.scale(loss_value).backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            loss_value.backward()
            self.optimizer.step()
        self.scheduler.step()
        if self.ema is not None:
            self.ema.update(self.model)

    def validate(self) -> dict[str, Any]:
        """Metrics of :attr:`eval_model` on the validation data: ``{"val": pooled metrics}``
        plus ``"val_sources"`` (per source) with several sources; ``{}`` without validation data."""
        if self.val_data is None:
            return {}
        from ..metrics import compute_metrics

        det, data, model = self.detector, self.val_data, self.eval_model
        self.dist.broadcast_buffers(model)  # the model rank 0 saves, on every rank
        if self.feature_cache is not None:
            prep = Preprocessor(det.config)
            scores = self.feature_cache.val_scores(model, prep, det.config.output, data, self.device)
        else:
            scores = validation_scores(
                model, det.config, data, self.dist, self.config.batch_size, crop_faces=self.config.crop_faces
            )
        threshold = det.config.threshold
        if self.val_sources is None:
            return {"val": compute_metrics(data.labels, scores, threshold=threshold)}
        assert self.val_ids is not None
        per_source = per_source_metrics(data.labels, scores, self.val_ids, list(self.val_sources), threshold)
        pooled = per_source.pop("pooled")
        return {"val": pooled, "val_sources": per_source}

    # -- the run -------------------------------------------------------------------------
    @property
    def _show(self) -> bool:
        return self.config.progress and self.dist.is_main

    def fit(self) -> TrainResult:
        """Run the epochs (from ``start_epoch`` after a resume); Ctrl-C stops after restoring
        the last complete epoch's weights (``result.interrupted``)."""
        if not self._ready:
            self.setup()
        cfg = self.config
        workers = cfg.num_workers
        pool = (
            ThreadPoolExecutor(max_workers=workers or min(4, os.cpu_count() or 1))
            if (workers is None or workers > 0)
            else None
        )
        self._last_good = _snapshot(self.model)
        try:
            with reuse_freed_memory(self.device.type == "cpu"):
                for epoch in range(self.start_epoch, cfg.epochs + 1):
                    self._run_epoch(epoch, pool)
        except KeyboardInterrupt:
            self.result.interrupted = True
            if self._show:
                from tqdm.auto import tqdm

                done = self.result.history[-1]["epoch"] if self.result.history else self.start_epoch - 1
                where = f" in {self.checkpoints.root}; continue with resume=True" if self.checkpoints else ""
                tqdm.write(f"interrupted: epochs up to {done} are complete{where}")
            self.model.load_state_dict(self._last_good)
        except BaseException:  # e.g. a non-finite loss: give back the last complete epoch's weights
            self.model.load_state_dict(self._last_good)
            self._hand_back()
            raise
        finally:
            if pool is not None:
                pool.shutdown(wait=False, cancel_futures=True)
            self.dist.close()
        self._finish()
        return self.result

    def _run_epoch(self, epoch: int, pool: ThreadPoolExecutor | None) -> None:
        record = self.train_epoch(epoch, pool)
        record.update(self.validate())
        result = self.result
        result.history.append(record)
        improved = "val" in record and (
            result.best is None or selection_score(record["val"]) > selection_score(result.best)
        )
        if improved:
            result.best = {"epoch": epoch, **record["val"]}
            self.best_state = _snapshot(self.eval_model)
        self._last_good = _snapshot(self.model)
        if self.checkpoints is not None and self.dist.is_main:
            self._save(epoch, improved)
        self.dist.barrier()
        if self._show:
            _summary(record, self.config.epochs)
        for cb in self.config.callbacks:
            cb(record)

    def _save(self, epoch: int, improved: bool) -> None:
        config = self._trained_config()
        state = {
            "epoch": epoch,
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "rng": _rng_state(),
            "history": json.dumps(self.result.history),
            "best": json.dumps(self.result.best) if self.result.best else "",
            "recipe": json.dumps(self.config.recipe()),
        }
        if self.ema is not None:
            state["ema"] = self.ema.module.state_dict()
        best = functools.partial(save_folder, self.eval_model, config) if improved else None
        last = functools.partial(save_folder, self.model, config)
        assert self.checkpoints is not None
        self.checkpoints.write(epoch, last=last, best=best, state=state, history=self.result.history)

    def _trained_config(self) -> DetectorConfig:
        """The detector's config with the fine-tuned model's own metadata
        (:func:`fine_tuned_metadata`): training data, best metrics, recipe and base model."""
        det, best = self.detector, self.result.best
        metrics, metrics_data = None, None
        if best is not None:
            metrics = {k: v for k, v in best.items() if k != "epoch"}
            val = self.val_data.description if self.val_data is not None else ""
            metrics_data = f"validation data{f' ({val})' if val else ''} at epoch {best['epoch']}"
        meta = fine_tuned_metadata(
            det.config.metadata,
            architecture=det.config.architecture,
            source=det.source,
            threshold=det.config.threshold,
            training_data=self.train_data.description,
            recipe=self.config.recipe(),
            metrics=metrics,
            metrics_data=metrics_data,
        )
        return det.config.replace(metadata=meta, library_version=__version__)

    def _finish(self) -> None:
        model, best_state = self.model, self.best_state
        if best_state is None and self.result.best is not None and self.checkpoints is not None:
            best_state = read_state_dict(self.checkpoints.best / WEIGHTS_NAME)  # best epoch was before a resume
        model.load_state_dict(best_state if best_state is not None else self.eval_model.state_dict())
        for m in model.modules():
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
                m.weight.data = m.weight.data.contiguous()
        self._hand_back()
        model.eval()
        self.detector.config = self._trained_config()


def finetune(
    detector: FineTunable, train: Any, val: Any = None, *, config: TrainConfig | None = None, **overrides: Any
) -> TrainResult:
    """Fine-tune ``detector`` in place on labelled images; afterwards it holds the best weights.

    Args:
        train: a :class:`~deepfake_detect.data.LabelFile`, a folder with ``real/`` and
            ``fake/`` (or ``0/`` and ``1/``) subfolders, a list of ``(image, label)`` pairs
            (1 = fake), or a torch Dataset yielding ``(image, label)``; or several sources
            at once as a mapping ``{name: data}`` (or a list of datasets). Checked fully
            before the first step. With several validation sources each epoch's history
            has ``val_sources`` (metrics per source) beside the pooled ``val``, and the
            best epoch is the one with the highest mean of the sources' AUCs
            (``val["auc_mean"]``), so a large source does not outvote a small one.
        val: validation data, in the same forms as ``train``.
        config: a :class:`TrainConfig` (default: its defaults).
        **overrides: :class:`TrainConfig` fields, applied on top of ``config``
            (``epochs=3, lr=1e-3``, ...).

    Returns:
        :class:`TrainResult`.

    Raises:
        DataError: unusable data (checked before training starts).
        TrainingError: non-finite loss (the last good weights are restored and kept on
            disk), a checkpoint folder that would be overwritten, or bad arguments.
    """
    return Trainer(detector, train, val, TrainConfig.from_kwargs(config, **overrides)).fit()


def _compile(module: nn.Module, spec: bool | str) -> nn.Module:
    """``torch.compile(module)`` with the backend ``spec`` names (``True``: inductor).

    Raises:
        TrainingError: a backend torch does not know.
    """
    import torch._dynamo

    backend = "inductor" if spec is True else str(spec)
    if backend not in torch._dynamo.list_backends(exclude_tags=()):
        raise TrainingError(
            f"compile={spec!r}: torch.compile has no backend {backend!r}; it has "
            f"{sorted(torch._dynamo.list_backends())} (and debugging ones such as 'aot_eager')"
        )
    return cast(nn.Module, torch.compile(module, backend=backend))


def _compiled_forward(module: nn.Module, x: torch.Tensor, spec: bool | str) -> Any:
    """``module(x)``; a failure of torch.compile itself (no C++ compiler, an unsupported
    operation) becomes a :class:`TrainingError` that says how to train without it."""
    try:
        return module(x)
    except Exception as e:
        if not type(e).__module__.startswith(("torch._dynamo", "torch._inductor")):
            raise
        raise TrainingError(
            f"torch.compile (compile={spec!r}) failed: {type(e).__name__}: {str(e)[:500]}; "
            "train without compile, or see docs/training.md"
        ) from e


def _snapshot(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _bar(total: int, epoch: int, epochs: int, enabled: bool) -> Any:
    from tqdm.auto import tqdm

    return tqdm(
        total=total, desc=f"epoch {epoch}/{epochs}", unit="img", disable=not enabled, leave=False, dynamic_ncols=True
    )


def _summary(record: dict[str, Any], epochs: int) -> None:
    from tqdm.auto import tqdm

    line = (
        f"epoch {record['epoch']}/{epochs}: train_loss {record['train_loss']:.4f}, "
        f"{record['img_per_s']:.1f} img/s, {record['seconds']:.1f} s"
    )
    if "val" in record:
        v = record["val"]
        line += f", val auc {v['auc']:.4f} acc {v['acc']:.4f}"
    tqdm.write(line)
