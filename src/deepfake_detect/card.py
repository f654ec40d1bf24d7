"""Model cards: the README.md written beside a detector's config and weights."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .detector import Detector

__all__ = ["model_card", "write_model_card"]


def _yaml_list(items: list[str]) -> str:
    return "".join(f"\n- {x}" for x in items)


def model_card(detector: "Detector") -> str:
    """A Hub model card (YAML metadata + Markdown) from the detector's config and metadata.

    ``config.metadata`` may hold ``license``, ``datasets`` (list), ``training_data``,
    ``metrics`` (name -> value, from the last training or evaluation), ``intended_use``,
    ``limitations`` and ``weights_source``.
    """
    from . import __version__

    cfg = detector.config
    meta = cfg.metadata or {}
    metrics = meta.get("metrics") or {}
    license_ = meta.get("license", "apache-2.0")
    tags = ["deepfake-detection", "image-classification", "deepfake-detect", "safetensors"]
    lines = [
        "---",
        "library_name: deepfake-detect",
        f"license: {license_}",
        f"tags:{_yaml_list(tags)}",
        "pipeline_tag: image-classification",
    ]
    if meta.get("datasets"):
        lines.append(f"datasets:{_yaml_list(list(meta['datasets']))}")
    lines += ["---", "", f"# {meta.get('name', cfg.architecture)}", ""]
    lines += [
        f"A deepfake face-image detector for [deepfake-detect](https://pypi.org/project/deepfake-detect/) "
        f"(written by version {__version__}): one face image in, P(fake) out.",
        "",
        "```python",
        "from deepfake_detect import load_detector",
        'detector = load_detector("<this repo id or folder>")',
        'scores = detector.predict(["face.jpg"])  # P(fake) per image',
        "```",
        "",
        "## Model",
        "",
        "| | |",
        "|---|---|",
        f"| architecture | `{cfg.architecture}` |",
        f"| parameters | {detector.num_params:,} |",
        f"| input | {cfg.input_size[0]}x{cfg.input_size[1]} RGB, resize `{cfg.resize}` ({cfg.interpolation}) |",
        f"| normalisation | mean {list(cfg.mean)}, std {list(cfg.std)} |",
        f"| output | {cfg.output} -> P(fake); decision threshold {cfg.threshold} |",
    ]
    if meta.get("weights_source"):
        lines.append(f"| weights | {meta['weights_source']} |")
    lines += ["", "## Training data", "", str(meta.get("training_data", "Not recorded.")), ""]
    lines += ["## Metrics", ""]
    if metrics:
        lines += ["| metric | value |", "|---|---|"]
        lines += [f"| {k} | {v:.4f} |" if isinstance(v, float) else f"| {k} | {v} |" for k, v in metrics.items()]
        if meta.get("metrics_data"):
            lines += ["", f"Measured on: {meta['metrics_data']}"]
    else:
        lines.append("No evaluation recorded.")
    lines += [
        "",
        "## Intended use",
        "",
        str(meta.get("intended_use", "Research on face-forgery detection and screening of face images, "
                                      "with a person reviewing the results. Not for decisions about people "
                                      "without human review.")),
        "",
        "## Limitations",
        "",
        str(meta.get("limitations", "A detector trained on one kind of fake can score near chance on "
                                      "manipulations it has not seen; scores are not calibrated across "
                                      "datasets; compression, resizing and adversarial perturbations lower "
                                      "accuracy.")),
        "",
    ]
    return "\n".join(lines)


def write_model_card(detector: "Detector", folder: str | Path) -> Path:
    from .weights import atomic_path

    path = Path(folder) / "README.md"
    with atomic_path(path) as tmp:
        tmp.write_text(model_card(detector), encoding="utf-8")
    return path
