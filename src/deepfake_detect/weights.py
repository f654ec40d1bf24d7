"""Reading and writing weights: safetensors first, pickled state dicts only through
``torch.load(weights_only=True)``, strict key and shape checks, atomic writes."""

from __future__ import annotations

import os
import pickle
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import torch
from torch import nn

from .errors import WeightsError
from .formats import PICKLE_SUFFIXES, SAFETENSORS_SUFFIXES

__all__ = ["read_state_dict", "load_weights", "load_matching_weights", "save_weights", "atomic_path"]

_WRAPPER_KEYS = ("state_dict", "model_state_dict", "model", "module")


def read_state_dict(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """Read a state dict from a ``.safetensors`` file or a pickled ``.pt``/``.pth`` file.

    Pickles are read with ``torch.load(weights_only=True)``, which refuses anything but
    tensors and plain containers, so a malicious pickle cannot run code. A state dict
    nested under ``"state_dict"``/``"model"`` and a ``"module."`` prefix (DataParallel)
    are unwrapped.

    Raises:
        WeightsError: the file is missing, truncated, corrupt, or not a state dict.
    """
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"weights file {path} does not exist")
    suffix = path.suffix.lower()
    if suffix in SAFETENSORS_SUFFIXES:
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            state = load_file(str(path), device="cpu")
        except (SafetensorError, OSError, ValueError, RuntimeError) as e:
            raise WeightsError(
                f"weights file {path} is not a readable safetensors file ({e}); "
                "it may be truncated or corrupt: download or save it again"
            ) from None
    elif suffix in PICKLE_SUFFIXES:
        try:
            state = torch.load(str(path), map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as e:
            raise WeightsError(
                f"weights file {path} holds more than tensors and was refused "
                f"(only torch.load(weights_only=True) is used): {refusal_reason(e)}. "
                "Save a plain state dict (torch.save(model.state_dict(), path)) or convert "
                "it to safetensors"
            ) from None
        except Exception as e:  # torch raises many types for a corrupt zip/pickle
            raise WeightsError(f"weights file {path} is not a readable state dict ({e})") from None
    else:
        raise WeightsError(
            f"weights file {path}: unknown suffix {suffix!r}; use .safetensors, or a state dict "
            f"saved as one of {PICKLE_SUFFIXES}"
        )
    return _unwrap(state, path)


def refusal_reason(e: BaseException) -> str:
    """What a ``torch.load(weights_only=True)`` error says was refused, without torch's advice
    to load the file unsafely (``weights_only=False``)."""
    text = str(e)
    at = text.find("WeightsUnpickler error:")
    if at >= 0:
        text = text[at:].split("Check the documentation")[0].split(" Please use")[0]
        return " ".join(text.split()).rstrip(".")
    first = next((ln.strip() for ln in text.splitlines() if ln.strip()), type(e).__name__)
    return "weights-only load failed" if first.startswith("Weights only load failed") else first.rstrip(".")


def _unwrap(state: object, path: Path) -> dict[str, torch.Tensor]:
    for _ in range(3):
        if isinstance(state, Mapping) and not _is_tensor_dict(state):
            inner = next((state[k] for k in _WRAPPER_KEYS if k in state), None)
            if inner is None:
                break
            state = inner
    if not isinstance(state, Mapping) or not _is_tensor_dict(state):
        raise WeightsError(f"weights file {path} does not hold a state dict of tensors")
    keys = list(state)
    if keys and all(k.startswith("module.") for k in keys):
        state = {k[len("module.") :]: v for k, v in state.items()}
    return dict(state)


def _is_tensor_dict(state: Mapping) -> bool:
    return bool(state) and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items())


def _mismatch_report(model: nn.Module, state: Mapping[str, torch.Tensor]) -> list[str]:
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    shapes = [
        f"{k}: file {tuple(state[k].shape)} vs model {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state and tuple(state[k].shape) != tuple(v.shape)
    ]
    lines = []
    for title, items in (("missing keys", missing), ("unexpected keys", unexpected), ("shape mismatches", shapes)):
        if items:
            shown = ", ".join(items[:8]) + (f", ... ({len(items) - 8} more)" if len(items) > 8 else "")
            lines.append(f"{len(items)} {title}: {shown}")
    return lines


def load_weights(model: nn.Module, state: Mapping[str, torch.Tensor], *, source: str) -> None:
    """Load ``state`` into ``model`` strictly: every key present, none extra, shapes equal.

    Tensors are cast to the dtype of the parameter they replace (fp16 files load into a
    float32 model).

    Raises:
        WeightsError: listing missing and unexpected keys and shape mismatches.
    """
    problems = _mismatch_report(model, state)
    if problems:
        raise WeightsError(
            f"weights from {source} do not fit the architecture: "
            + "; ".join(problems)
            + ". Check that the weights belong to this detector (config 'architecture' and model_kwargs)"
        )
    expected = model.state_dict()
    cast = {k: v.to(dtype=expected[k].dtype) for k, v in state.items()}
    model.load_state_dict(cast, strict=True)


def load_matching_weights(
    module: nn.Module, state: Mapping[str, torch.Tensor], *, source: str, head: tuple[str, ...] = ()
) -> list[str]:
    """Load backbone weights, dropping a classifier that does not fit (timm's convention).

    Keys under a ``head`` prefix (the classifier) are skipped when missing or of another
    shape; every other key of ``module`` must be present with the same shape.

    Returns:
        The names of the module's keys left at their initial values (the head).
    """
    expected = module.state_dict()
    is_head = lambda k: any(k == h or k.startswith(h + ".") for h in head)  # noqa: E731
    usable = {k: v for k, v in state.items() if k in expected and tuple(v.shape) == tuple(expected[k].shape)}
    left = [k for k in expected if k not in usable]
    not_head = [k for k in left if not is_head(k)]
    if not_head:
        report = _mismatch_report(module, {k: v for k, v in state.items() if not is_head(k)})
        raise WeightsError(
            f"backbone weights from {source} do not fit: "
            + "; ".join(report)
            + ". Pass weights of the same timm architecture (keys as in timm's state dict)"
        )
    module.load_state_dict({k: v.to(expected[k].dtype) for k, v in usable.items()}, strict=False)
    return left


@contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path`` atomically.

    A crash or error while writing leaves the previous file untouched and no partial file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    umask = os.umask(0)
    os.umask(umask)
    try:
        yield tmp_path
        with open(tmp_path, "rb") as f:
            os.fsync(f.fileno())
        # mkstemp makes 0600 files, and a writer may recreate the file (safetensors does):
        # give the usual permissions once it is written
        os.chmod(tmp_path, 0o666 & ~umask)
        os.replace(tmp_path, path)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


def save_weights(
    model_or_state: nn.Module | Mapping[str, torch.Tensor],
    path: str | os.PathLike[str],
    *,
    dtype: torch.dtype | None = None,
    metadata: dict[str, str] | None = None,
) -> None:
    """Write a safetensors file atomically. ``dtype`` (e.g. ``torch.float16``) casts
    floating-point tensors for smaller files."""
    from safetensors.torch import save_file

    state = model_or_state.state_dict() if isinstance(model_or_state, nn.Module) else model_or_state
    tensors = {}
    for k, v in state.items():
        v = v.detach().to("cpu")
        if dtype is not None and v.is_floating_point():
            v = v.to(dtype)
        tensors[k] = v.contiguous().clone()
    from safetensors import SafetensorError

    try:
        with atomic_path(path) as tmp:
            save_file(tensors, str(tmp), metadata={"format": "pt", **(metadata or {})})
    except (OSError, SafetensorError) as e:  # safetensors reports a full disk as a SafetensorError
        raise WeightsError(f"could not write weights to {path}: {e}") from e
