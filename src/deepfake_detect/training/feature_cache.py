"""Head inputs of a frozen backbone, computed in the first epoch and reused after it."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from ..data.datasets import LabeledData
from ..data.preprocess import Preprocessor
from ..heads import logits_of, p_fake
from .samples import Plan, Samples

__all__ = ["FeatureCache"]


class FeatureCache:
    """The inputs of the head module, per training image, while the backbone is frozen.

    Used only when that is exact: one head module whose output is the model's output, no
    augmentation or synthetic fakes (the images are the same every epoch), one process, a
    built-in classification loss. The head is looked up by name in whichever model runs
    (the live model or its EMA copy), so each is scored through its own head.
    """

    def __init__(self, head_name: str, labels: np.ndarray) -> None:
        self.head_name, self._labels = head_name, labels
        self.train_feats: dict[int, torch.Tensor] = {}
        self.val_feats: torch.Tensor | None = None
        self.ready = False
        self._checked = False
        self._disabled = False

    @classmethod
    def try_create(
        cls, model: nn.Module, head: Sequence[str], frozen: bool, samples: Samples, distributed: bool, loss: Any
    ) -> FeatureCache | None:
        if not frozen or len(head) != 1 or samples.augment is not None or samples.synth or samples.swap or distributed:
            return None
        if samples.epoch_size is not None or samples.source_weights is not None:
            return None  # an epoch draws a subset: the first epoch would not see every image to cache
        if callable(loss) or loss not in ("cross_entropy", "bce"):
            return None
        try:
            model.get_submodule(head[0])
        except AttributeError:
            return None
        return cls(head[0], samples.data.labels)

    def head(self, model: nn.Module) -> nn.Module:
        """The head module of ``model``."""
        return model.get_submodule(self.head_name)

    def forward_and_store(self, model: nn.Module, forward: nn.Module, x: torch.Tensor, batch: Plan) -> Any:
        """``forward(x)`` (the model, or its DDP wrapper), keeping the head inputs of ``batch``."""
        out, feats = self._capture_via(model, forward, x)
        if not self._checked:  # the cache is exact only if the head's output is the model's output
            self._checked = True
            with torch.no_grad():
                self._disabled = not torch.allclose(logits_of(out).detach(), self.head(model)(feats), atol=1e-5)
        if not self._disabled:
            for (i, _), f in zip(batch, feats, strict=True):
                self.train_feats[i] = f.clone()
        return out

    def _capture_via(self, model: nn.Module, forward: nn.Module, x: torch.Tensor) -> tuple[Any, torch.Tensor]:
        captured: list[torch.Tensor] = []
        handle = self.head(model).register_forward_hook(lambda m, inp, out: captured.append(inp[0].detach()))
        try:
            out = forward(x)
        finally:
            handle.remove()
        return out, captured[-1]

    def finish_epoch(self) -> None:
        self.ready = not self._disabled and bool(self.train_feats)

    def batches(self, batches: list[Plan]) -> Iterator[tuple[torch.Tensor, np.ndarray]]:
        for b in batches:
            feats = torch.stack([self.train_feats[i] for i, _ in b])
            labels = np.array([self._labels[i] for i, _ in b], dtype=np.float32)
            yield feats, labels

    def val_scores(
        self, model: nn.Module, prep: Preprocessor, output: str, data: LabeledData, device: torch.device
    ) -> np.ndarray:
        """P(fake) of the validation images from ``model``'s own head; the frozen backbone's
        features are computed once."""
        if self.val_feats is None or self._disabled:
            feats = []
            model.eval()
            with torch.inference_mode():
                for s in range(0, len(data), 64):
                    x = prep.to_tensor([prep.prepare(data.image(i)) for i in range(s, min(len(data), s + 64))])
                    feats.append(self._capture_via(model, model, x.to(device))[1])
            self.val_feats = torch.cat(feats)
        with torch.inference_mode():
            return p_fake(self.head(model)(self.val_feats), output).cpu().numpy()
