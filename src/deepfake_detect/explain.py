"""Heatmaps of what made a detector say "fake": Grad-CAM, input-gradient saliency, and the
reconstruction residual of ``ae-classifier``.

    >>> from deepfake_detect import load_detector
    >>> from deepfake_detect.explain import explain, save_overlay
    >>> detector = load_detector("resnet18-finetune")
    >>> heat = explain(detector, "face.jpg")           # (H, W) float32 in [0, 1]
    >>> save_overlay("face.jpg", heat, "face_heat.png")

Every method runs the detector's own preprocessing (resize policy, interpolation, mean/std)
and explains the *fake logit*: the single logit of a sigmoid head, or ``logit[1] - logit[0]``
of a 2-class softmax head (both are log-odds of P(fake)). The heatmap is brought back to the
input image's original size; with the ``"crop"`` resize policy, the border the model never
sees is 0. Heatmaps are scaled so that their maximum at the model's input resolution is 1 (0
everywhere if the signal is 0; resizing to the original size may lower the peak a little):
they show *where*, relative to the rest of the same image, not *how much*, and are not
comparable across images.

The model is left as it was: weights untouched, the same train/eval mode, no hooks left
registered, ``requires_grad`` flags restored, no ``.grad`` on parameters.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from .data.images import load_image
from .data.preprocess import Preprocessor, crop_box, gaussian_blur, normalize, tensor_to_pil, to_unit_tensor
from .errors import DeepfakeDetectError
from .heads import fake_log_odds, output_part
from .models.ensemble import Ensemble
from .modules import frozen, param_dtype
from .protocols import ModelWithConfig
from .registry import get_entry

__all__ = ["METHODS", "explain", "save_overlay", "overlay", "colorize", "fake_logit"]

#: Accepted values of ``method``.
METHODS = ("auto", "gradcam", "saliency", "residual")


def explain(detector: ModelWithConfig, image: Any, *, method: str = "auto", layer: str | None = None) -> np.ndarray:
    """A heatmap of the evidence for "fake" in ``image``.

    Args:
        detector: the :class:`~deepfake_detect.Detector` to explain (anything with ``model``
            and ``config``).
        image: a file path, PIL image, HWC uint8 numpy array, or (3, H, W) float tensor in
            [0, 1] (as :meth:`Detector.predict` accepts; one image).
        method: ``"gradcam"`` (Grad-CAM on the last convolutional feature map; CNNs),
            ``"saliency"`` (|d fake-logit / d pixel|, max over the RGB channels, lightly
            Gaussian-smoothed; any differentiable detector), ``"residual"`` (mean over RGB
            of |x - x_hat| in [0, 1] pixel units, from the model's own reconstruction;
            ``ae-classifier`` and any entry registered with
            ``outputs=("logits", "reconstruction")``), or
            ``"auto"``: residual for reconstruction models, Grad-CAM for CNNs (a model with
            a ``Conv2d`` and no attention module), saliency otherwise.
        layer: for Grad-CAM, the name (as in ``model.named_modules()``) of the module whose
            (N, C, h, w) output to use; default: the last module whose output is a 4-D map
            larger than 1x1 with as many channels as a convolution that ran before it
            (e.g. ``layer4`` of a ResNet, ``bn2`` of an EfficientNet); for an ensemble, that
            module of every member (``members.<i>.``), their maps summed.

    Returns:
        ``numpy.ndarray`` of float32, shape (H, W) = the input image's original size, values
        in [0, 1] (scaled to a maximum of 1 at the model's input size, unless all 0).

    Raises:
        ImageLoadError: an unreadable image.
        DeepfakeDetectError: an unknown ``method``; ``"residual"`` for a model without a
            reconstruction; ``"gradcam"`` for a model without a convolutional feature map.
    """
    if method not in METHODS:
        raise DeepfakeDetectError(f"method={method!r}: expected one of {METHODS}")
    img = _as_pil(image)
    prep = Preprocessor(detector.config, max_pixels=None)
    x01 = to_unit_tensor(prep.prepare(img))[None]  # (1, 3, h, w) RGB in [0, 1]
    model = detector.model
    if method == "auto":
        method = "residual" if is_reconstruction_model(detector) else "gradcam" if is_cnn(model) else "saliency"
    p = next(model.parameters(), None)
    with frozen(model):
        x01 = x01.to(p.device if p is not None else torch.device("cpu"), param_dtype(model))
        if method == "residual":
            heat = _residual(detector, x01)
        elif method == "gradcam":
            heat = _gradcam(detector, x01, layer)
        else:
            heat = _saliency(detector, x01)
    heat = heat.detach().float().cpu()
    peak = float(heat.max()) if heat.numel() else 0.0
    heat = heat / peak if peak > 0 and math.isfinite(peak) else torch.zeros_like(heat)
    return _to_original(heat.numpy(), img.size, detector)


# -- what kind of model ----------------------------------------------------------------------
def is_reconstruction_model(detector: ModelWithConfig) -> bool:
    """Whether the detector's registry entry declares a ``"reconstruction"`` output
    (``ae-classifier``, or any architecture registered with ``outputs=("logits", "reconstruction")``)."""
    try:
        return "reconstruction" in get_entry(detector.config.architecture).outputs
    except DeepfakeDetectError:
        return False


def is_cnn(model: nn.Module) -> bool:
    """A model with at least one ``Conv2d`` and no attention module (by class: ``nn.MultiheadAttention``
    or a class name containing "Attention", as timm's ViT/Swin blocks have)."""
    has_conv = False
    for m in model.modules():
        if isinstance(m, nn.MultiheadAttention) or "Attention" in type(m).__name__:
            return False
        has_conv = has_conv or isinstance(m, nn.Conv2d)
    return has_conv


# -- the score explained ---------------------------------------------------------------------
def fake_logit(detector: ModelWithConfig, output: Any) -> torch.Tensor:
    """The log-odds of "fake" from a model output, shape (N,); see
    :func:`deepfake_detect.heads.fake_log_odds`."""
    return fake_log_odds(output, detector.config.output)


# -- the three methods (each returns an (h, w) map at the model's input size) -----------------
def _saliency(detector: ModelWithConfig, x01: torch.Tensor) -> torch.Tensor:
    x01 = x01.clone().requires_grad_(True)
    with torch.enable_grad():
        score = fake_logit(detector, detector.model(normalize(x01, detector.config))).sum()
        (grad,) = torch.autograd.grad(score, x01)
    sal = grad.abs().amax(dim=1, keepdim=True)  # (1, 1, h, w)
    sigma = max(1.0, min(sal.shape[-2:]) / 112.0)  # 2 px at 224
    return gaussian_blur(sal, sigma)[0, 0]


def _gradcam(detector: ModelWithConfig, x01: torch.Tensor, layer: str | None) -> torch.Tensor:
    model = detector.model
    names = {m: n for n, m in model.named_modules()}
    if layer is not None and layer not in dict(model.named_modules()):
        raise DeepfakeDetectError(
            f"layer={layer!r} is not a module of {type(model).__name__}; see model.named_modules() for the names"
        )
    conv_channels: set[int] = set()
    found: dict[str, tuple[str, torch.Tensor]] = {}  # {member prefix ("" unless an ensemble): (name, map)}
    by_member = layer is None and isinstance(model, Ensemble)

    def hook(module: nn.Module, _inputs: Any, output: Any) -> None:
        if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
            conv_channels.add(module.out_channels)
        if not (isinstance(output, torch.Tensor) and output.ndim == 4 and output.requires_grad):
            return
        name = names.get(module, "")
        if layer is not None:
            if name == layer:
                found[""] = name, output
        elif output.shape[1] in conv_channels and output.shape[2] * output.shape[3] > 1:
            found[".".join(name.split(".")[:2]) if by_member else ""] = name, output

    x01 = x01.clone().requires_grad_(True)  # so every activation is in the graph, even with frozen weights
    with _hooks(model, hook), torch.enable_grad():
        score = fake_logit(detector, model(normalize(x01, detector.config))).sum()
    if not found:
        what = f"module {layer!r} gave no 4-D output" if layer else "no convolutional feature map was found"
        raise DeepfakeDetectError(f"Grad-CAM on {type(model).__name__}: {what}; use method='saliency'")
    grads = torch.autograd.grad(score, [act for _, act in found.values()], allow_unused=True)
    cam = torch.zeros(x01.shape[-2:], device=x01.device)
    for (name, act), grad in zip(found.values(), grads, strict=True):
        if grad is None:
            raise DeepfakeDetectError(
                f"Grad-CAM on {type(model).__name__}: the score does not depend on module "
                f"{name!r}; pass another layer= or use method='saliency'"
            )
        weights = grad.float().mean(dim=(2, 3), keepdim=True)  # (1, C, 1, 1)
        part = F.relu((weights * act.float()).sum(dim=1, keepdim=True))  # (1, 1, h', w')
        cam = cam + F.interpolate(part, size=x01.shape[-2:], mode="bilinear", align_corners=False)[0, 0]
    return cam


def _residual(detector: ModelWithConfig, x01: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        x = normalize(x01, detector.config)
        out = detector.model(x)
    outputs = get_entry(detector.config.architecture).outputs if is_reconstruction_model(detector) else ("logits",)
    x_hat = output_part(out, outputs, "reconstruction")
    if not isinstance(x_hat, torch.Tensor) or x_hat.shape != x.shape:
        raise DeepfakeDetectError(
            f"method='residual' needs a model that returns (logits, x_hat) with x_hat shaped like its input, "
            f"declared by its registry entry (outputs=('logits', 'reconstruction'), as ae-classifier); "
            f"{detector.config.architecture!r} does not. Use method='gradcam' or 'saliency'"
        )
    std = torch.tensor(detector.config.std, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return ((x - x_hat.to(x.dtype)).abs() * std).mean(dim=1)[0]  # [0, 1] pixel units


# -- helpers ---------------------------------------------------------------------------------
@contextlib.contextmanager
def _hooks(model: nn.Module, hook: Any) -> Iterator[None]:
    handles = [m.register_forward_hook(hook) for m in model.modules()]
    try:
        yield
    finally:
        for h in handles:
            h.remove()


def _as_pil(image: Any) -> Image.Image:
    return tensor_to_pil(image) if isinstance(image, torch.Tensor) else load_image(image)


def _to_original(heat: np.ndarray, size: tuple[int, int], detector: ModelWithConfig) -> np.ndarray:
    """An (h, w) map at the model's input size -> (H, W) at the original ``size = (W, H)``.

    Undoes the resize policy: ``"squash"`` stretches the map over the whole image; ``"crop"``
    puts it on the centre crop the model saw and leaves 0 outside.
    """
    W, H = size
    out = np.zeros((H, W), dtype=np.float32)
    box = crop_box(size, detector.config)  # as Preprocessor.resize: the region the model saw
    x0, y0 = int(math.floor(box[0])), int(math.floor(box[1]))
    x1, y1 = min(W, int(math.ceil(box[2]))), min(H, int(math.ceil(box[3])))
    tw, th = max(1, x1 - x0), max(1, y1 - y0)
    resized = np.asarray(Image.fromarray(heat.astype(np.float32), "F").resize((tw, th), Image.Resampling.BILINEAR))
    out[y0 : y0 + th, x0 : x0 + tw] = resized[: H - y0, : W - x0]
    return np.clip(out, 0.0, 1.0).astype(np.float32)


# -- drawing ---------------------------------------------------------------------------------
def colorize(heat: np.ndarray) -> np.ndarray:
    """A jet-like colour map: (H, W) values in [0, 1] -> (H, W, 3) uint8 RGB
    (0 dark blue, 0.5 green-yellow, 1 dark red). NaN is drawn as 0."""
    v = np.clip(np.nan_to_num(np.asarray(heat, dtype=np.float32), nan=0.0), 0.0, 1.0)
    r = np.clip(1.5 - np.abs(4.0 * v - 3.0), 0.0, 1.0)
    g = np.clip(1.5 - np.abs(4.0 * v - 2.0), 0.0, 1.0)
    b = np.clip(1.5 - np.abs(4.0 * v - 1.0), 0.0, 1.0)
    return (np.stack([r, g, b], axis=-1) * 255.0 + 0.5).astype(np.uint8)


def save_overlay(image: Any, heat: np.ndarray, path: str | os.PathLike[str], *, alpha: float = 0.5) -> Path:
    """Write ``heat`` as a colour map blended over ``image`` to a PNG file.

    Args:
        image: what :func:`explain` was given (path, PIL image, HWC uint8 array, CHW tensor).
        heat: (H, W) map in [0, 1]; resized (bilinear) if it is not the image's size.
        path: the PNG to write (parent folders are created).
        alpha: weight of the colour map, in [0, 1] (0: the image only, 1: the map only).

    Returns:
        ``Path(path)``.
    """
    blended = overlay(image, heat, alpha=alpha)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    blended.save(path, format="PNG")
    return path


def overlay(image: Any, heat: np.ndarray, *, alpha: float = 0.5) -> Image.Image:
    """``heat`` as a colour map blended over ``image``: an RGB PIL image of the image's size
    (what :func:`save_overlay` writes; the arguments are the same)."""
    if not 0.0 <= alpha <= 1.0:
        raise DeepfakeDetectError(f"alpha={alpha}: expected a value in [0, 1]")
    heat = np.asarray(heat, dtype=np.float32)
    if heat.ndim != 2 or heat.size == 0:
        raise DeepfakeDetectError(f"heat must be a non-empty (H, W) array, got shape {heat.shape}")
    img = _as_pil(image)
    W, H = img.size
    if heat.shape != (H, W):
        heat = np.asarray(Image.fromarray(heat, "F").resize((W, H), Image.Resampling.BILINEAR))
    base = np.asarray(img, dtype=np.float32)
    blend = (1.0 - alpha) * base + alpha * colorize(heat).astype(np.float32)
    return Image.fromarray(np.clip(blend + 0.5, 0, 255).astype(np.uint8), "RGB")
