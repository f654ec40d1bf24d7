"""What a detector name means, and the folder format a detector is saved in.

:func:`~deepfake_detect.load_detector` calls :func:`resolve` first: it decides, before
anything is read or downloaded, which one kind of source a name is. Then it takes the one
branch for that kind. The rule, in order:

1. ``None``: the registry's default weights (``"default"``).
2. An explicit prefix: ``"local-dir:PATH"`` is a local folder (``"local"``),
   ``"hf-hub:owner/name"`` a Hub repo (``"hub"``), ``"timm:<arch>"`` a timm architecture
   (``"architecture"``).
3. A registered name: named weights ``"<architecture>.<tag>"`` (``"weights"``) or an
   architecture (``"architecture"``); see :func:`~deepfake_detect.list_detectors`. When a
   file or folder of the same name exists too, the registered name wins, with a warning
   (write ``"./NAME"`` or ``"local-dir:NAME"`` for the folder).
4. An existing file or folder (``"local"``), including a fine-tuning checkpoint that a crash
   left moved aside as ``.<name>.old``. A ``pathlib.Path`` (any ``os.PathLike``) is always
   read as a local path, never as a registered name or a Hub id.
5. A bare Hub id ``"owner/name"`` (``"hub"``), only when it cannot be a path: exactly one
   ``/``; no leading ``./``, ``../``, ``/`` or ``~``; no ``\\`` or drive letter; no trailing
   ``/``; no file suffix (``.safetensors``, ``.pt``, ``.json``, ...); a valid Hub repo id;
   and ``owner`` is not an existing local folder. So ``runs/exp1`` is a Hub id unless a
   folder ``runs`` exists here, and ``runs/exp1/best``, ``./x`` or ``model.safetensors``
   never are.
6. Anything else raises :class:`~deepfake_detect.UnknownDetectorError` naming the three
   possibilities (a registered detector, an existing file or folder, a Hub id); nothing is
   requested from the network.

The folder format (what :meth:`~deepfake_detect.Detector.save_pretrained` writes and a Hub
repo holds) is read and written here too: :func:`local_folder` and :func:`weights_file` find
what to load, :func:`save_folder` writes one. Its names, :data:`CONFIG_NAME`,
:data:`WEIGHTS_NAME` and :data:`CARD_NAME` (pickled weights, :data:`PICKLE_SUFFIXES`, are never
read from a folder), are defined in the leaf module :mod:`deepfake_detect.formats` (so that
``weights``, ``hub``, ``registry`` and the training checkpoints read them without importing this
module, which sits above the registry) and importable from here.
"""

from __future__ import annotations

import difflib
import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
from torch import nn

from .card import write_card
from .config import DetectorConfig
from .errors import ConfigError, UnknownDetectorError, WeightsError
from .formats import (
    CARD_NAME,
    CONFIG_NAME,
    DETECTOR_FILES,
    HUB_PREFIX,
    LOCAL_PREFIX,
    PICKLE_SUFFIXES,
    SAFETENSORS_SUFFIXES,
    WEIGHTS_NAME,
    strip_hub_prefix,
)
from .registry import TIMM_PREFIX, get_weights, list_detectors, list_weights
from .version import __version__
from .weights import atomic_path, save_weights

__all__ = [
    "CONFIG_NAME",
    "WEIGHTS_NAME",
    "CARD_NAME",
    "DETECTOR_FILES",
    "SAFETENSORS_SUFFIXES",
    "PICKLE_SUFFIXES",
    "HUB_PREFIX",
    "LOCAL_PREFIX",
    "Kind",
    "Resolved",
    "resolve",
    "is_hub_id",
    "looks_like_path",
    "strip_hub_prefix",
    "local_folder",
    "weights_file",
    "save_folder",
]

#: Suffixes that make a name a file path, never a Hub id.
_FILE_SUFFIXES = (*SAFETENSORS_SUFFIXES, *PICKLE_SUFFIXES, ".json", ".onnx", ".xml", ".md")
# huggingface_hub's repo id rule (validate_repo_id), with the owner required
_HUB_ID = re.compile(r"^\b[\w\-.]+\b/\b[\w\-.]+\b$")
_HUB_ID_MAX = 96

Kind = Literal["default", "weights", "architecture", "local", "hub"]


@dataclass(frozen=True)
class Resolved:
    """What a name passed to ``load_detector`` is.

    Attributes:
        kind: ``"default"`` (the registry's default weights), ``"weights"`` (named weights),
            ``"architecture"`` (a registered or ``timm:`` architecture, fresh weights),
            ``"local"`` (a file or folder) or ``"hub"`` (a Hub repo).
        name: the name as given (``""`` for ``None``).
        target: the registry name; the local path (``~`` expanded, prefix removed); or the
            Hub repo id (prefix removed).
    """

    kind: Kind
    name: str
    target: str

    @property
    def path(self) -> Path:
        """``target`` as a path (for ``kind == "local"``)."""
        return Path(self.target)


def is_hub_id(name: str) -> bool:
    """Whether ``name`` is a valid Hub repo id ``"owner/name"`` (huggingface_hub's rule)."""
    return (
        len(name) <= _HUB_ID_MAX
        and _HUB_ID.match(name) is not None
        and "--" not in name
        and ".." not in name
        and not name.endswith(".git")
    )


def looks_like_path(name: str) -> bool:
    """Whether ``name`` has a form only a file path has: a leading ``.``, ``/`` or ``~``, a
    ``\\``, a drive letter, more than one ``/`` (or ``//``, or a trailing ``/``), or a file
    suffix such as ``.safetensors``, ``.pt`` or ``.json``."""
    return (
        name.startswith((".", "/", "~"))
        or "\\" in name
        or re.match(r"^[A-Za-z]:", name) is not None
        or name.count("/") > 1
        or name.endswith("/")
        or name.lower().endswith(_FILE_SUFFIXES)
    )


def _exists(path: Path) -> bool:
    """A file or folder at ``path``, or the moved-aside copy of a checkpoint folder."""
    from .training.checkpoint import CheckpointDir

    return path.exists() or CheckpointDir.moved_aside(path).is_dir()


def _registry_kind(name: str) -> Kind | None:
    if get_weights(name) is not None:
        return "weights"
    if name.startswith(TIMM_PREFIX) or name in list_detectors():
        return "architecture"
    return None


def resolve(name_or_path: str | os.PathLike[str] | None) -> Resolved:
    """The one kind of source a name is, by the rule in this module's docstring; reads
    nothing but the registry and whether paths exist, and never uses the network.

    Raises:
        UnknownDetectorError: a name that is neither registered, an existing file or folder,
            nor a Hub id; the message names all three (with close registered names).
    """
    if name_or_path is None:
        return Resolved("default", "", "")
    if not isinstance(name_or_path, str):  # a Path: always local
        given = Path(os.fspath(name_or_path)).expanduser()
        if _exists(given):
            return Resolved("local", str(name_or_path), str(given))
        raise UnknownDetectorError(
            f"no file or folder {given.absolute()} (a path object is always read as a local path; "
            "pass a str for a registered detector or a Hub id)"
        )
    name = name_or_path
    if name.startswith(LOCAL_PREFIX):
        return Resolved("local", name, str(Path(name[len(LOCAL_PREFIX) :]).expanduser()))
    if name.startswith(HUB_PREFIX):
        return Resolved("hub", name, strip_hub_prefix(name))
    path = Path(name).expanduser() if name else None
    kind = _registry_kind(name)
    if kind is not None:
        if path is not None and not name.startswith(TIMM_PREFIX) and path.exists():
            warnings.warn(
                f"{name!r} is a registered detector and also a file or folder here; the registered "
                f"detector is loaded (write './{name}' or '{LOCAL_PREFIX}{name}' for the folder)",
                UserWarning,
                stacklevel=3,
            )
        return Resolved(kind, name, name)
    if path is not None and _exists(path):
        return Resolved("local", name, str(path))
    why_not_hub = _why_not_hub(name)
    if why_not_hub is None:
        return Resolved("hub", name, name)
    raise UnknownDetectorError(_unknown_message(name, path, why_not_hub))


def _why_not_hub(name: str) -> str | None:
    """None for a name read as a Hub id; else why it is not one."""
    if looks_like_path(name):
        return "it has the form of a file path"
    if "/" not in name:
        return "it has no '/'"
    if not is_hub_id(name):
        return "it is not a valid repo id"
    owner = name.split("/", 1)[0]
    if Path(owner).expanduser().is_dir():
        return (
            f"{owner!r} is a folder here, so {name!r} is read as a path (write '{HUB_PREFIX}{name}' for the Hub repo)"
        )
    return None


def _unknown_message(name: str, path: Path | None, why_not_hub: str) -> str:
    detectors, weights = list_detectors(), list_weights()
    close = difflib.get_close_matches(name, detectors + weights, n=3, cutoff=0.5)
    hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    where = f" ({path.absolute()})" if path is not None else ""
    return (
        f"unknown detector {name!r}: not a registered detector (list_detectors(): {', '.join(detectors)}; "
        f"named weights, list_detectors(pretrained=True): {', '.join(weights) or 'none'}; any timm "
        f"architecture as 'timm:<name>'), not an existing file or folder{where}, and not a Hub id "
        f"(owner/name or {HUB_PREFIX}owner/name; {why_not_hub}).{hint}"
    )


def local_folder(resolved: Resolved) -> Path:
    """The folder to load for a ``"local"`` name: a ``save_pretrained`` folder, or the
    checkpoint of a finetune ``output_dir`` (``best/``, else ``last/``, or their moved-aside
    copies; see :class:`~deepfake_detect.training.CheckpointDir`).

    Raises:
        ConfigError: the path is a file, or a folder that neither ``save_pretrained`` nor
            ``finetune`` wrote, or (for ``"local-dir:PATH"``) does not exist.
    """
    from .training.checkpoint import CheckpointDir

    path = resolved.path
    if path.is_dir():
        if (path / CONFIG_NAME).is_file():
            return path
        found = CheckpointDir(path).model_folder()
        if found is not None:
            return found
        raise ConfigError(f"folder {path} has no {CONFIG_NAME}; it was not written by save_pretrained or finetune")
    if path.is_file():
        weights = path.suffix.lower() in (*SAFETENSORS_SUFFIXES, *PICKLE_SUFFIXES)
        hint = (
            f"; load a weights file into an architecture with load_detector(ARCHITECTURE, weights={str(path)!r})"
            if weights
            else ""
        )
        raise ConfigError(f"{path} is a file, not a folder written by save_pretrained or finetune{hint}")
    found = CheckpointDir.loadable(path)
    if found is None:
        raise ConfigError(f"{resolved.name}: {path} is not a folder written by save_pretrained or finetune")
    return found


def weights_file(folder: Path) -> Path:
    """``folder``'s :data:`WEIGHTS_NAME`.

    Raises:
        WeightsError: there is none (naming any pickled weights found instead, which are
            not read from folders).
    """
    path = folder / WEIGHTS_NAME
    if not path.is_file():
        pickles = sorted(p.name for p in folder.iterdir() if p.suffix.lower() in PICKLE_SUFFIXES)
        extra = f" (found {pickles}; only safetensors weights are read from folders)" if pickles else ""
        raise WeightsError(f"folder {folder} has no {WEIGHTS_NAME}{extra}")
    return path


def save_folder(
    model: nn.Module, config: DetectorConfig, folder: str | os.PathLike[str], *, dtype: torch.dtype | None = None
) -> Path:
    """Write a detector folder: :data:`CONFIG_NAME` (``config`` with this library's version),
    :data:`WEIGHTS_NAME` (``model``'s weights, floating-point ones in ``dtype`` if given) and a
    model card, :data:`CARD_NAME`. What :meth:`Detector.save_pretrained
    <deepfake_detect.Detector.save_pretrained>` and fine-tuning checkpoints write; each file is
    replaced atomically.

    Returns:
        ``Path(folder)``.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    save_weights(model, folder / WEIGHTS_NAME, dtype=dtype)
    with atomic_path(folder / CONFIG_NAME) as tmp:
        config.replace(library_version=__version__).save(tmp)
    write_card(config, sum(p.numel() for p in model.parameters()), folder)
    return folder
