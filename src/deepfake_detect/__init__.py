"""deepfake-detect: deepfake face-image detectors for PyTorch.

>>> from deepfake_detect import load_detector
>>> detector = load_detector()                 # the built-in default, offline
>>> detector.predict(["face.jpg"])             # P(fake) per image
"""

from . import models  # noqa: F401  (the built-in architectures register themselves in the registry)
from .config import DetectorConfig
from .detector import Detector, build_detector, load_detector
from .engine import SkippedImagesWarning
from .errors import (
    ConfigError,
    DataError,
    DeepfakeDetectError,
    HubError,
    ImageLoadError,
    MissingDependencyError,
    ParameterLimitError,
    TrainingError,
    UnknownDetectorError,
    WeightsError,
)
from .guard import DEFAULT_MAX_PARAMS, count_parameters, list_timm_models
from .registry import get_entry, list_detectors, list_weights, register_detector, register_weights
from .training import TrainConfig
from .version import __version__

__all__ = [
    "__version__",
    "Detector",
    "DetectorConfig",
    "load_detector",
    "build_detector",
    "list_detectors",
    "register_detector",
    "register_weights",
    "list_weights",
    "TrainConfig",
    "get_entry",
    "count_parameters",
    "list_timm_models",
    "DEFAULT_MAX_PARAMS",
    "SkippedImagesWarning",
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
