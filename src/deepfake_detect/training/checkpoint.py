"""``CheckpointDir``: the one owner of a fine-tuning run's folder layout and its crash recovery.

Layout::

    output_dir/
        last/                 save_pretrained folder of the latest epoch + training_state.pt
        best/                 save_pretrained folder of the epoch with the best validation score
        history.jsonl         one JSON line per completed epoch

Every folder is replaced by writing ``.<name>.tmp`` and two renames (``<name>`` ->
``.<name>.old``, ``.<name>.tmp`` -> ``<name>``), so a crash at any point leaves either the
old or the new folder readable; :meth:`CheckpointDir.recover` (and loading) finds the
``.old`` copy a crash between the two renames leaves.
"""

from __future__ import annotations

import io
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from ..errors import DeepfakeDetectError, TrainingError
from ..formats import CONFIG_NAME
from ..weights import atomic_path, refusal_reason

__all__ = ["CheckpointDir", "CHECKPOINT_LAST", "CHECKPOINT_BEST", "STATE_NAME", "HISTORY_NAME"]

CHECKPOINT_LAST = "last"
CHECKPOINT_BEST = "best"
STATE_NAME = "training_state.pt"
HISTORY_NAME = "history.jsonl"
_STATE_KEYS = ("epoch", "optimizer", "scheduler", "rng", "history")


class CheckpointDir:
    """A fine-tuning ``output_dir``: where ``last/``, ``best/`` and ``history.jsonl`` live."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    @property
    def last(self) -> Path:
        return self.root / CHECKPOINT_LAST

    @property
    def best(self) -> Path:
        return self.root / CHECKPOINT_BEST

    @property
    def state_file(self) -> Path:
        return self.last / STATE_NAME

    @property
    def history_file(self) -> Path:
        return self.root / HISTORY_NAME

    # -- reading -------------------------------------------------------------------------
    @staticmethod
    def moved_aside(folder: Path) -> Path:
        """Where the atomic swap keeps the previous copy of ``folder`` between its two renames."""
        return folder.with_name(f".{folder.name}.old")

    @classmethod
    def loadable(cls, folder: Path) -> Path | None:
        """``folder`` or its moved-aside copy, whichever holds a ``config.json`` (None if neither)."""
        for candidate in (folder, cls.moved_aside(folder)):
            if (candidate / CONFIG_NAME).is_file():
                return candidate
        return None

    def model_folder(self) -> Path | None:
        """The checkpoint that ``load_detector(output_dir)`` loads: ``best/``, or ``last/`` for a
        run without validation data (or their moved-aside copies); None when there is none."""
        for folder in (self.best, self.last):
            found = self.loadable(folder)
            if found is not None:
                return found
        return None

    def recover(self) -> None:
        """Put back a folder that a crash between the two renames left as ``.<name>.old``."""
        for dest in (self.last, self.best):
            old = self.moved_aside(dest)
            if not dest.exists() and old.exists():
                os.replace(old, dest)

    def has_state(self) -> bool:
        return self.state_file.exists()

    def read_state(self) -> dict[str, Any]:
        """``training_state.pt`` via ``torch.load(weights_only=True)``: tensors and plain
        containers, never code.

        Raises:
            TrainingError: a corrupt, foreign or malicious file.
        """
        path = self.state_file
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:
            raise TrainingError(
                f"cannot resume: {path} is not a readable training state ({refusal_reason(e)}). "
                "Start a new run in another output_dir"
            ) from None
        if not isinstance(state, dict) or any(k not in state for k in _STATE_KEYS):
            raise TrainingError(
                f"cannot resume: {path} is not a training state written by finetune "
                f"(expected the keys {list(_STATE_KEYS)}); start a new run in another output_dir"
            )
        return state

    # -- writing -------------------------------------------------------------------------
    def write(
        self,
        epoch: int,
        *,
        last: Callable[[Path], object],
        state: dict[str, Any],
        history: list[dict[str, Any]],
        best: Callable[[Path], object] | None = None,
    ) -> None:
        """Write one epoch: ``best/`` (when ``best`` is given), then ``last/`` (``last(folder)``
        writes the model, then the training ``state`` is added), then ``history.jsonl``.

        Raises:
            TrainingError: a full disk or other write error; the previous checkpoint is kept.
        """

        def write_last(folder: Path) -> None:
            last(folder)
            buffer = io.BytesIO()  # torch.save to a file reports a full disk as RuntimeError; write() gives OSError
            torch.save(state, buffer)
            with atomic_path(folder / STATE_NAME) as tmp:  # flushed to disk like the weights
                tmp.write_bytes(buffer.getbuffer())

        try:
            if best is not None:
                _write_dir_atomically(self.best, best)
            _write_dir_atomically(self.last, write_last)
            with atomic_path(self.history_file) as tmp:  # a crash or full disk never leaves half a file
                tmp.write_text("".join(json.dumps(rec) + "\n" for rec in history), encoding="utf-8")
        except (OSError, DeepfakeDetectError) as e:
            raise TrainingError(
                f"could not write the checkpoint of epoch {epoch} to {self.root}: {e}. "
                "The previous checkpoint is kept; free space and resume with resume=True"
            ) from e


def _write_dir_atomically(dest: Path, write: Callable[[Path], object]) -> None:
    """Write a folder via a temporary sibling and two renames."""
    tmp, old = dest.with_name(f".{dest.name}.tmp"), CheckpointDir.moved_aside(dest)
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        write(tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if dest.exists():
        shutil.rmtree(old, ignore_errors=True)
        os.replace(dest, old)
    os.replace(tmp, dest)
    shutil.rmtree(old, ignore_errors=True)
