"""Exceptions raised by deepfake-detect.

Every error the library raises on purpose derives from :class:`DeepfakeDetectError`, so
``except DeepfakeDetectError`` catches them all. Each message names the file, key or value
at fault and says what to do about it.
"""

from __future__ import annotations

__all__ = [
    "DeepfakeDetectError",
    "ParameterLimitError",
    "UnknownDetectorError",
    "ImageLoadError",
    "WeightsError",
    "ConfigError",
    "DataError",
    "HubError",
    "TrainingError",
    "MissingDependencyError",
]


class DeepfakeDetectError(Exception):
    """Base class of every error raised by deepfake-detect."""


class ParameterLimitError(DeepfakeDetectError):
    """The architecture has more parameters than allowed (the challenge's limit is 200M)."""

    def __init__(self, name: str, num_params: int, limit: int) -> None:
        self.name, self.num_params, self.limit = name, num_params, limit
        super().__init__(
            f"{name!r} has {num_params:,} parameters, over the limit of {limit:,}. "
            "Choose a smaller architecture (see `deepfake-detect models --timm PATTERN`), "
            "or pass max_params=None to lift the limit explicitly."
        )

    def __reduce__(self) -> tuple:  # picklable (e.g. sent to the other processes under torchrun)
        return type(self), (self.name, self.num_params, self.limit)


class UnknownDetectorError(DeepfakeDetectError, KeyError):
    """A detector name that is neither registered, a local folder, nor a Hub repo id."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class ImageLoadError(DeepfakeDetectError):
    """An image file (or in-memory image) could not be read or converted."""

    def __init__(self, source: str, reason: str) -> None:
        self.source, self.reason = source, reason
        super().__init__(f"cannot load image {source}: {reason}")

    def __reduce__(self) -> tuple:  # picklable (e.g. sent to the other processes under torchrun)
        return type(self), (self.source, self.reason)


class WeightsError(DeepfakeDetectError):
    """Weights that are missing, corrupt, or do not fit the architecture."""


class ConfigError(DeepfakeDetectError):
    """A detector config that is malformed, from a newer library, or names an unknown architecture."""


class DataError(DeepfakeDetectError):
    """Bad training or evaluation data: label files, folders, labels."""


class HubError(DeepfakeDetectError):
    """A Hugging Face Hub download or upload that failed."""


class TrainingError(DeepfakeDetectError):
    """Training stopped: non-finite loss, bad arguments, interrupted checkpoint."""


class MissingDependencyError(DeepfakeDetectError, ImportError):
    """An optional dependency (an extra) is needed for this feature."""

    def __init__(self, package: str, extra: str, feature: str) -> None:
        super().__init__(f"{feature} needs the package {package!r}: pip install 'deepfake-detect[{extra}]'")
        self.package, self.extra, self.feature = package, extra, feature
        self.name = package  # ImportError's: the module that could not be imported

    def __reduce__(self) -> tuple:  # picklable (e.g. sent to the other processes under torchrun)
        return type(self), (self.package, self.extra, self.feature)
