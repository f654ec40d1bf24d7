"""The detector config: everything besides the weights that a detector needs to run.

A config travels with its weights (``config.json`` beside ``model.safetensors``), so the
preprocessing used at prediction time is always the one the weights were trained with.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .errors import ConfigError, DeepfakeDetectError

__all__ = [
    "DetectorConfig",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "CONFIG_FORMAT_VERSION",
    "PREPROCESSING_FIELDS",
    "OUTPUT_KINDS",
    "VERDICTS",
    "CropPolicy",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

#: Bumped when config.json changes in a way older releases cannot read.
CONFIG_FORMAT_VERSION = 1

RESIZE_MODES = ("squash", "crop")
#: ``DetectorConfig.output`` values.
OUTPUT_KINDS = ("softmax", "sigmoid")
INTERPOLATIONS = ("nearest", "bilinear", "bicubic", "lanczos")
#: What :meth:`DetectorConfig.verdict` says, from least to most alarming.
VERDICTS = ("real", "suspicious", "fake")
#: The :class:`DetectorConfig` fields that decide the pixels the model sees (the tensor
#: :class:`~deepfake_detect.data.Preprocessor` makes of an image): :attr:`DetectorConfig.preprocessing`.
#: ``face_crop`` is not among them: it applies only to ``crop_faces=True`` calls.
PREPROCESSING_FIELDS = ("input_size", "resize", "crop_pct", "interpolation", "mean", "std")


@dataclass(frozen=True)
class CropPolicy:
    """How a face is cut out of a larger image (:func:`deepfake_detect.face.cut_face` makes every
    crop with one); a detector's travels in its config as ``DetectorConfig.face_crop``.

    Attributes:
        margin: added on each side, as a fraction of the face box's size (the detector's box
            runs from the brows to the chin; 0.2 keeps the forehead and jaw).
        square: grow the shorter side of the box to the longer one before the margin, so
            the crop keeps the face's proportions through a square resize.
    """

    margin: float = 0.2
    square: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.margin, (int, float)) or not 0 <= self.margin <= 5:
            raise DeepfakeDetectError(f"face crop margin={self.margin!r}: expected a number between 0 and 5")
        if not isinstance(self.square, bool):
            raise DeepfakeDetectError(f"face crop square={self.square!r}: expected true or false")

    @classmethod
    def from_config(cls, face_crop: dict[str, Any] | None) -> CropPolicy:
        """The policy a ``DetectorConfig.face_crop`` dict describes (``None``: the default)."""
        if face_crop is None:
            return cls()
        unknown = sorted(set(face_crop) - {"margin", "square"})
        if unknown:
            raise DeepfakeDetectError(f"face_crop has unknown keys {unknown}; expected 'margin' and 'square'")
        return cls(**face_crop)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def crop_box(self, box: tuple[float, float, float, float], size: tuple[int, int]) -> tuple[int, int, int, int]:
        """The crop ``(x0, y0, x1, y1)`` for a face ``box`` in an image of ``size = (W, H)``,
        clipped to the image."""
        x0, y0, x1, y1 = box
        w, h = x1 - x0, y1 - y0
        if self.square:
            cx, cy, side = (x0 + x1) / 2, (y0 + y1) / 2, max(w, h)
            x0, x1, y0, y1 = cx - side / 2, cx + side / 2, cy - side / 2, cy + side / 2
            w = h = side
        W, H = size
        return (
            max(0, int(round(x0 - w * self.margin))),
            max(0, int(round(y0 - h * self.margin))),
            min(W, int(round(x1 + w * self.margin))),
            min(H, int(round(y1 + h * self.margin))),
        )


@dataclass
class DetectorConfig:
    """What a detector is, apart from its weights.

    Attributes:
        architecture: registry name of the architecture (``"resnet18-baseline"``,
            ``"timm:efficientnet_b4"``, ...).
        model_kwargs: keyword arguments passed to the architecture's factory.
        input_size: ``(height, width)`` in pixels of the tensor the model sees.
        resize: ``"squash"`` resizes the whole image to ``input_size`` (aspect ratio not
            kept, as the camp baseline does); ``"crop"`` resizes the shorter side to
            ``input_size / crop_pct`` and takes the centre crop (timm's eval transform).
        crop_pct: fraction of the resized image kept by ``"crop"``.
        interpolation: PIL resampling filter name.
        mean, std: per-channel normalisation applied to RGB values scaled to [0, 1].
        output: ``"softmax"`` (class 1 of a multi-logit head is "fake") or ``"sigmoid"``
            (a single logit).
        threshold: decision threshold on P(fake) used for labels and accuracy: the strict
            operating point (verdict ``"fake"``).
        suspicious_threshold: the sensitive operating point, at most ``threshold``: scores
            from it up to ``threshold`` get the verdict ``"suspicious"``; ``None``: no such
            band (verdicts are ``"real"`` or ``"fake"``).
        face_crop: how faces are cut out of larger images when predicting or training with
            ``crop_faces=True`` (``{"margin": float, "square": bool}``, see
            :class:`CropPolicy`); ``None``: that class's default.
        library_version: the deepfake-detect version that wrote the config.
        metadata: free-form provenance (training data, metrics, weight source) used for
            the model card; never needed to run the model.
    """

    architecture: str
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    input_size: tuple[int, int] = (224, 224)
    resize: str = "squash"
    crop_pct: float = 1.0
    interpolation: str = "bilinear"
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    output: str = "sigmoid"
    threshold: float = 0.5
    suspicious_threshold: float | None = None
    face_crop: dict[str, Any] | None = None
    library_version: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.input_size = _pair(self.input_size, "input_size")
        self.mean = _triple(self.mean, "mean")
        self.std = _triple(self.std, "std")
        if self.resize not in RESIZE_MODES:
            raise ConfigError(f"config resize={self.resize!r}: expected one of {RESIZE_MODES}")
        if self.output not in OUTPUT_KINDS:
            raise ConfigError(f"config output={self.output!r}: expected one of {OUTPUT_KINDS}")
        if self.interpolation not in INTERPOLATIONS:
            raise ConfigError(f"config interpolation={self.interpolation!r}: expected one of {INTERPOLATIONS}")
        if not 0.0 < float(self.crop_pct) <= 1.0:
            raise ConfigError(f"config crop_pct={self.crop_pct!r}: expected a value in (0, 1]")
        if not 0.0 <= float(self.threshold) <= 1.0:
            raise ConfigError(f"config threshold={self.threshold!r}: expected a value in [0, 1]")
        if self.suspicious_threshold is not None and not (
            0.0 <= float(self.suspicious_threshold) <= float(self.threshold)
        ):
            raise ConfigError(
                f"config suspicious_threshold={self.suspicious_threshold!r}: expected a value in [0, threshold] "
                f"(threshold={self.threshold!r}), or None"
            )
        if any(s <= 0 for s in self.std):
            raise ConfigError(f"config std={self.std!r}: every value must be positive")
        if self.face_crop is not None:
            try:
                CropPolicy.from_config(self.face_crop)
            except (DeepfakeDetectError, TypeError, AttributeError) as e:
                raise ConfigError(f"config face_crop={self.face_crop!r}: {e}") from None

    def replace(self, **changes: Any) -> DetectorConfig:
        return dataclasses.replace(self, **changes)

    @property
    def preprocessing(self) -> dict[str, Any]:
        """The fields that decide the pixels the model sees, ``{name: value}`` in the order of
        :data:`PREPROCESSING_FIELDS` (input size, resize policy, crop fraction, interpolation,
        mean, std). Two configs with equal ``preprocessing`` turn an image into the same
        tensor; ``config.replace(**other.preprocessing)`` gives a config ``other``'s
        preprocessing."""
        return {name: getattr(self, name) for name in PREPROCESSING_FIELDS}

    def verdict(self, p_fake: float) -> str:
        """What to tell a user about one score: ``"fake"`` at or above ``threshold``,
        ``"suspicious"`` at or above ``suspicious_threshold``, else ``"real"``; ``"error"``
        for NaN (an image that could not be scored). The CLI, the service and its page all
        use this."""
        p = float(p_fake)
        if p != p:
            return "error"
        if p >= self.threshold:
            return "fake"
        if self.suspicious_threshold is not None and p >= self.suspicious_threshold:
            return "suspicious"
        return "real"

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        if d["suspicious_threshold"] is None:
            del d["suspicious_threshold"]  # configs without the band stay readable by 0.1 readers
        d["input_size"] = list(self.input_size)
        d["mean"], d["std"] = list(self.mean), list(self.std)
        return {"format_version": CONFIG_FORMAT_VERSION, **d}

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, source: str = "config") -> DetectorConfig:
        if not isinstance(data, dict):
            raise ConfigError(f"{source}: expected a JSON object, got {type(data).__name__}")
        data = dict(data)
        version = data.pop("format_version", 1)
        if not isinstance(version, int) or version > CONFIG_FORMAT_VERSION:
            raise ConfigError(
                f"{source}: format_version {version!r} is newer than this library understands "
                f"({CONFIG_FORMAT_VERSION}); upgrade with `pip install -U deepfake-detect`"
            )
        if "architecture" not in data:
            raise ConfigError(f"{source}: the key 'architecture' is missing")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"{source}: unknown keys {unknown}; known keys are {sorted(known)}")
        try:
            return cls(**data)
        except ConfigError as e:
            raise ConfigError(f"{source}: {e}") from None
        except (TypeError, ValueError) as e:
            raise ConfigError(f"{source}: {e}") from None

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> DetectorConfig:
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"{path}: no such config file") from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise ConfigError(f"{path}: not a readable JSON config ({e})") from None
        return cls.from_dict(data, source=str(path))


def _pair(value: Any, name: str) -> tuple[int, int]:
    if isinstance(value, int):
        value = (value, value)
    try:
        h, w = (int(v) for v in value)
    except (TypeError, ValueError):
        raise ConfigError(f"config {name}={value!r}: expected (height, width)") from None
    if h <= 0 or w <= 0:
        raise ConfigError(f"config {name}={value!r}: sizes must be positive")
    return (h, w)


def _triple(value: Any, name: str) -> tuple[float, float, float]:
    try:
        out = tuple(float(v) for v in value)
    except (TypeError, ValueError):
        raise ConfigError(f"config {name}={value!r}: expected three numbers") from None
    if len(out) != 3:
        raise ConfigError(f"config {name}={value!r}: expected three numbers (R, G, B)")
    return (out[0], out[1], out[2])
