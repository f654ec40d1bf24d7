"""Helpers the adopt_v*.py scripts share to write a default's card from the one it replaces.

The scripts run from the repository root as ``python training/adopt_vN.py``, so this folder
is on ``sys.path`` and ``from _cards import ...`` finds this module.
"""

from pathlib import Path


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
