"""The names of the detector folder format, in one leaf module (it imports nothing of the package).

What :meth:`~deepfake_detect.Detector.save_pretrained` writes and a Hub repo holds:
:data:`CONFIG_NAME`, :data:`WEIGHTS_NAME` and :data:`CARD_NAME`; pickled weights
(:data:`PICKLE_SUFFIXES`) are never read from a folder. :mod:`deepfake_detect.loading` (name
resolution, reading and writing folders), :mod:`~deepfake_detect.weights`,
:mod:`~deepfake_detect.hub`, :mod:`~deepfake_detect.registry` and the checkpoints of
:mod:`deepfake_detect.training` all read them from here, so none of them needs another to know them.
"""

from __future__ import annotations

__all__ = [
    "CONFIG_NAME",
    "WEIGHTS_NAME",
    "CARD_NAME",
    "DETECTOR_FILES",
    "SAFETENSORS_SUFFIXES",
    "PICKLE_SUFFIXES",
    "HUB_PREFIX",
    "LOCAL_PREFIX",
    "strip_hub_prefix",
]

#: The detector's config, beside its weights (:class:`~deepfake_detect.DetectorConfig`).
CONFIG_NAME = "config.json"
#: The detector's weights; the only weights file read from a folder or a Hub repo.
WEIGHTS_NAME = "model.safetensors"
#: The model card.
CARD_NAME = "README.md"
#: What a detector folder (or Hub repo) holds; a Hub load downloads nothing else.
DETECTOR_FILES = (CONFIG_NAME, WEIGHTS_NAME, CARD_NAME)
#: Suffixes of safetensors weights files.
SAFETENSORS_SUFFIXES = (".safetensors",)
#: Pickled state dicts: read only by ``weights=`` (``torch.load(weights_only=True)``), never
#: from a folder or a Hub repo.
PICKLE_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt", ".pkl")
#: The explicit prefix of a Hub repo id.
HUB_PREFIX = "hf-hub:"
#: The explicit prefix of a local folder.
LOCAL_PREFIX = "local-dir:"


def strip_hub_prefix(name: str) -> str:
    """``"hf-hub:owner/name"`` -> ``"owner/name"``; other names unchanged."""
    return name[len(HUB_PREFIX) :] if name.startswith(HUB_PREFIX) else name
