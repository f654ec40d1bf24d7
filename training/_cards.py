"""Helpers the adopt_v*.py scripts share to write a default's card from the one it replaces.

The scripts run from the repository root as ``python training/adopt_vN.py``, so this folder
is on ``sys.path`` and ``from _cards import ...`` finds this module.
"""

import json
from pathlib import Path
from typing import Any

import torch


def edited(text: str, *pairs: tuple[str, str]) -> str:
    """``text`` with each ``(old, new)`` replaced; an ``old`` that is not there is an error, not a no-op."""
    for old_text, new_text in pairs:
        assert old_text in text, f"not in the earlier card: {old_text!r}"
        text = text.replace(old_text, new_text)
    return text


def generated_table(page: str, start: str, end: str) -> str:
    """The first markdown table of docs/<page> after the marker ``start``, up to the marker ``end``."""
    text = Path("docs", page).read_text()
    text = text[text.index(start) :]
    text = text[text.index("| ") :]
    return text[: text.index(end)].strip()


def crops_section(earlier: str, *pairs: tuple[str, str]) -> str:
    """The card's "Crop scale and video compression" section: the earlier card's opening
    paragraph, ``edited`` by ``pairs``, then docs/crops.md's AUC and false-alarm tables."""
    return (
        edited(earlier[: earlier.index("| detector")], *pairs)
        + generated_table("crops.md", "## ROC AUC", "![AUC")
        + "\n\nShare of real images at or above each detector's own threshold:\n\n"
        + generated_table("crops.md", "## False alarms", "<!--")
        + "\n"
    )


def card_metrics(val_json: str) -> dict[str, Any]:
    """``holdout_views.py --json``'s per-view metrics, flattened to the card's ``"<view>_<metric>"`` keys."""
    val = json.loads(Path(val_json).read_text())
    return {f"{view}_{k}": v for view, m in val.items() if isinstance(m, dict) for k, v in m.items()}


def operating_points(calibrated: dict[str, Any]) -> dict[str, Any]:
    """The operating-point entries ``scripts/calibrate_default.py`` wrote into a detector's metadata."""
    keys = ("threshold_rule", "operating_points", "false_alarm_rate", "suspicious_rate")
    return {k: calibrated[k] for k in keys if k in calibrated}


def ship(detector: Any, meta: dict[str, Any], sections: dict[str, str], package: Path) -> None:
    """Save ``detector`` into the package folder ``package`` (float16) with ``meta`` and the card's
    ``sections`` as its metadata, and print its name and operating points."""
    detector.config = detector.config.replace(metadata={**meta, "card_sections": sections})
    detector.save_pretrained(package, dtype=torch.float16)
    print(meta["name"], detector.config.threshold, detector.config.suspicious_threshold)
