"""ONNX export: the detector's model with its output turned into P(fake), and its
preprocessing written into the file's metadata so it can run without PyTorch.

    >>> detector.export_onnx("detector.onnx")

The graph takes the *normalised* image batch and returns P(fake):

* input ``"input"``: float32 (N, 3, H, W), RGB, ``H, W = input_size``; each value is
  ``(pixel / 255 - mean[c]) / std[c]`` after the image was resized by the ``resize`` policy
  with the ``interpolation`` filter (see the metadata);
* output ``"p_fake"``: float32 (N,), P(fake) in [0, 1] (``softmax(logits)[:, 1]`` or
  ``sigmoid(logit)``); label "fake" when ``p_fake >= threshold``.

``N`` is dynamic unless ``dynamic_batch=False`` (then it is 1). The metadata
(``onnx.ModelProto.metadata_props``, all values strings, lists and numbers as JSON) holds:
``architecture, input_size, resize, crop_pct, interpolation, mean, std, pixel_scale,
channel_order, layout, output, output_kind, threshold, library_version``.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .errors import DeepfakeDetectError, MissingDependencyError
from .heads import PFakeModel
from .protocols import ModelWithConfig
from .version import __version__

__all__ = ["export_onnx", "onnx_metadata", "supported_opsets", "PFakeModel"]

INPUT_NAME = "input"
OUTPUT_NAME = "p_fake"


def onnx_metadata(detector: ModelWithConfig) -> dict[str, str]:
    """The preprocessing and output contract of ``detector`` as ONNX metadata key/values."""
    cfg = detector.config
    return {
        "architecture": cfg.architecture,
        # DetectorConfig.preprocessing: input_size [height, width]; resize "squash" (whole image to
        # input_size) or "crop" (shorter side to size / crop_pct, centre crop); crop_pct;
        # interpolation (PIL filter name); mean, std
        **{name: _metadata_value(value) for name, value in cfg.preprocessing.items()},
        "pixel_scale": json.dumps(1 / 255),  # x = (pixel * pixel_scale - mean) / std
        "channel_order": "RGB",
        "layout": "NCHW",
        "output": f"{OUTPUT_NAME}: P(fake) in [0, 1], shape (N,)",
        "output_kind": cfg.output,  # the head the probability was computed from
        "threshold": json.dumps(float(cfg.threshold)),  # verdict "fake" from here
        # verdict "suspicious" from here (null: no such band); the crop policy for faces cut
        # from larger images (null: the library's default)
        "suspicious_threshold": json.dumps(cfg.suspicious_threshold),
        "face_crop": json.dumps(cfg.face_crop),
        "library_version": cfg.library_version or __version__,
        "exported_by": f"deepfake-detect {__version__}",
    }


def _metadata_value(value: Any) -> str:
    """A config value as an ONNX metadata string: names as they are, numbers and lists as JSON."""
    if isinstance(value, str):
        return value
    return json.dumps(list(value) if isinstance(value, (tuple, list)) else float(value))


def export_onnx(
    detector: ModelWithConfig, path: str | os.PathLike[str], *, dynamic_batch: bool = True, opset: int = 17
) -> Path:
    """Write ``detector`` as an ONNX model that outputs P(fake).

    Args:
        detector: the detector to export (anything with ``model`` and ``config``: a
            :class:`~deepfake_detect.Detector` or its engine; the model is not modified: it is
            run in eval mode on its current device, and its train/eval mode is restored
            afterwards).
        path: the ``.onnx`` file to write (parent folders are created).
        dynamic_batch: a variable batch dimension; ``False`` fixes it to 1.
        opset: the ONNX opset version, one of those torch's exporter writes
            (:func:`supported_opsets`).

    Returns:
        ``Path(path)``.

    Raises:
        MissingDependencyError: the ``onnx`` package is not installed
            (``pip install 'deepfake-detect[onnx]'``).
        DeepfakeDetectError: an opset the exporter does not write; the exporter failed on
            this architecture.
    """
    try:
        import onnx
    except ImportError:
        raise MissingDependencyError("onnx", "onnx", "ONNX export") from None
    low, high = supported_opsets()
    if isinstance(opset, bool) or not isinstance(opset, int) or not low <= opset <= high:
        raise DeepfakeDetectError(
            f"opset={opset!r}: expected an ONNX opset version from {low} to {high} (what torch "
            f"{torch.__version__} exports; default 17)"
        )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    model = detector.model
    h, w = detector.config.input_size
    p = next(model.parameters(), None)
    dtype = p.dtype if p is not None and p.is_floating_point() else torch.float32
    dummy = torch.zeros(2 if dynamic_batch else 1, 3, h, w, dtype=dtype, device=p.device if p is not None else "cpu")
    was_training = model.training
    wrapper = PFakeModel(model, detector.config.output).eval()
    try:
        _run_exporter(wrapper, dummy, path, dynamic_batch=dynamic_batch, opset=opset)
    finally:
        model.train(was_training)
    proto = onnx.load(str(path))
    del proto.metadata_props[:]
    for key, value in onnx_metadata(detector).items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    proto.doc_string = (
        f"deepfake-detect {detector.config.architecture}: input (N, 3, {h}, {w}) normalised RGB, "
        f"output {OUTPUT_NAME} (N,) = P(fake); preprocessing in metadata_props"
    )
    onnx.save(proto, str(path))
    return path


def supported_opsets() -> tuple[int, int]:
    """The lowest and highest ONNX opset versions the installed torch's TorchScript-based
    exporter writes, e.g. ``(7, 20)``."""
    try:
        from torch.onnx import _constants
    except ImportError:  # not in this torch: the range of torch 2.x
        return 7, 20
    low = getattr(_constants, "ONNX_MIN_OPSET", 7)
    high = getattr(_constants, "ONNX_TORCHSCRIPT_EXPORTER_MAX_OPSET", getattr(_constants, "ONNX_MAX_OPSET", 20))
    return int(low), int(high)


def _run_exporter(wrapper: nn.Module, dummy: torch.Tensor, path: Path, *, dynamic_batch: bool, opset: int) -> None:
    """The TorchScript-based exporter (``dynamo=False``): no onnxscript needed and stable
    output names; torch's deprecation notice for it is silenced."""
    kwargs: dict[str, Any] = dict(
        input_names=[INPUT_NAME],
        output_names=[OUTPUT_NAME],
        opset_version=opset,
        do_constant_folding=True,
        dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}} if dynamic_batch else None,
    )
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.simplefilter("ignore", FutureWarning)
            warnings.filterwarnings("ignore", category=UserWarning, module=r"torch\.onnx.*")
            warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
            torch.onnx.export(wrapper, (dummy,), str(path), dynamo=False, **kwargs)
    except MissingDependencyError:
        raise
    except Exception as e:
        raise DeepfakeDetectError(
            f"ONNX export of {type(wrapper.model).__name__} to {path} failed: {type(e).__name__}: {e}"
        ) from e
