"""Model cards: the README.md written beside a detector's config and weights.

The YAML metadata block is written by ``huggingface_hub``'s :class:`~huggingface_hub.ModelCardData`
(a YAML serialiser, so licences and dataset names with ``#`` or ``:`` stay plain strings), the
card itself by :class:`~huggingface_hub.ModelCard`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .config import DetectorConfig
from .formats import CARD_NAME
from .protocols import ModelWithConfig
from .version import __version__
from .weights import atomic_path

if TYPE_CHECKING:
    from huggingface_hub import ModelCardData

__all__ = ["model_card", "write_model_card", "card_data", "card_text", "write_card"]

TAGS = ["deepfake-detection", "image-classification", "deepfake-detect", "safetensors"]
INTENDED_USE = (
    "Research on face-forgery detection and screening of face images, with a person reviewing "
    "the results. Not for decisions about people without human review."
)
LIMITATIONS = (
    "A detector trained on one kind of fake can score near chance on manipulations it has not "
    "seen; scores are not calibrated across datasets; compression, resizing and adversarial "
    "perturbations lower accuracy."
)


def card_data(detector: ModelWithConfig) -> ModelCardData:
    """The card's YAML metadata: library, licence, tags, pipeline and datasets.

    ``config.metadata["license"]`` (default ``apache-2.0``) and ``["datasets"]`` (a list of
    names) are written as given, as YAML strings.
    """
    return _card_data(detector.config)


def _card_data(config: DetectorConfig) -> ModelCardData:
    from huggingface_hub import ModelCardData

    meta = config.metadata or {}
    extra: dict[str, Any] = {}
    if meta.get("weights_license"):
        extra["license_name"] = str(meta["weights_license"])
    datasets = [str(d) for d in meta.get("datasets") or []] or None
    return ModelCardData(
        library_name="deepfake-detect",
        license=str(meta.get("license", "apache-2.0")),
        tags=list(TAGS),
        pipeline_tag="image-classification",
        datasets=datasets,
        **extra,
    )


def _model_table(cfg: DetectorConfig, num_params: int) -> list[str]:
    meta = cfg.metadata or {}
    rows = [
        "| | |",
        "|---|---|",
        f"| architecture | `{cfg.architecture}` |",
        f"| parameters | {num_params:,} |",
        f"| input | {cfg.input_size[0]}x{cfg.input_size[1]} RGB, resize `{cfg.resize}` ({cfg.interpolation}) |",
        f"| normalisation | mean {list(cfg.mean)}, std {list(cfg.std)} |",
        f"| output | {cfg.output} -> P(fake); decision threshold {cfg.threshold}"
        + (f"; suspicious from {cfg.suspicious_threshold}" if cfg.suspicious_threshold is not None else "")
        + " |",
    ]
    base = _base_model(meta)
    if base:
        rows.append(f"| base model | {base.get('name', '?')} (`{base.get('source', '?')}`) |")
    for key, label in (
        ("weights_tag", "weights"),
        ("weights_source", "weights source"),
        ("weights_license", "licence"),
    ):
        if meta.get(key):
            rows.append(f"| {label} | {meta[key]} |")
    return rows


def _base_model(meta: dict[str, Any]) -> dict[str, Any]:
    """``meta["base_model"]`` (what fine-tuning started from) as a dict; ``{}`` when absent."""
    base = meta.get("base_model")
    return dict(base) if isinstance(base, dict) else {}


def _base_model_lines(meta: dict[str, Any]) -> list[str]:
    """One paragraph for a fine-tuned detector: what it was fine-tuned from, under which licence."""
    base = _base_model(meta)
    if not base:
        return []
    text = (
        f"Fine-tuned from {base.get('name', '?')} (`{base.get('source', '?')}`) on the training data below; "
        "the base model's metrics, threshold rule and other results describe the base, not these weights, "
        "and are not repeated here."
    )
    licence = str(base.get("license") or "")
    if licence:
        text += f" These weights derive from the base model's and stay under its licence: {licence}."
        if "research" in licence.lower():
            text += " Like the base model, they are for research use only."
    return [text, ""]


def _flat_metrics(metrics: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    for k, v in metrics.items():
        if isinstance(v, dict):
            out += _flat_metrics(v, f"{prefix}{k}/")
        else:
            out.append((f"{prefix}{k}", v))
    return out


def _metrics_section(meta: dict[str, Any]) -> list[str]:
    metrics = meta.get("metrics") or {}
    if not metrics:
        return ["No evaluation recorded."]
    lines = ["| metric | value |", "|---|---|"]
    lines += [f"| {k} | {v:.4f} |" if isinstance(v, float) else f"| {k} | {v} |" for k, v in _flat_metrics(metrics)]
    if meta.get("metrics_data"):
        lines += ["", f"Measured on: {meta['metrics_data']}"]
    return lines


def _threshold_section(config: DetectorConfig, meta: dict[str, Any]) -> list[str]:
    rule, alarms = meta.get("threshold_rule"), meta.get("false_alarm_rate") or {}
    suspicious, sensitive_alarms = config.suspicious_threshold, meta.get("suspicious_rate") or {}
    base = _base_model(meta)
    if not rule and base and "threshold" in base:
        if base["threshold"] == config.threshold:
            rule = (
                "inherited unchanged from the base model; not re-calibrated after fine-tuning, so the "
                "false-alarm rate of these weights at it was not measured."
            )
        else:
            rule = f"set after fine-tuning (the base model's was {base['threshold']}); how is not recorded."
    if not rule and not alarms:
        return []
    lines = ["## Decision threshold", "", f"Images scoring at least {config.threshold} are labelled fake."]
    if suspicious is not None:
        lines[-1] += f" From {suspicious} up to that, they are labelled suspicious; below {suspicious}, real."
    if rule:
        lines += ["", f"How it was set: {rule}"]
    if alarms:
        lines += ["", "Real images labelled fake at this threshold:", ""]
        if sensitive_alarms:
            lines += ["| real images | labelled fake | labelled suspicious or fake |", "|---|---|---|"]
            lines += [f"| {k} | {_rate(v)} | {_rate(sensitive_alarms.get(k, '-'))} |" for k, v in alarms.items()]
        else:
            lines += ["| real images | false-alarm rate |", "|---|---|"]
            lines += [f"| {k} | {_rate(v)} |" for k, v in alarms.items()]
    return lines + [""]


def _rate(v: Any) -> str:
    return f"{v:.1%}" if isinstance(v, float) else str(v)


def _body(cfg: DetectorConfig, num_params: int) -> str:
    meta = cfg.metadata or {}
    lines = [f"# {meta.get('name', cfg.architecture)}", ""]
    lines += [
        f"A deepfake face-image detector for [deepfake-detect](https://pypi.org/project/deepfake-detect/) "
        f"(written by version {__version__}): one face image in, P(fake) out.",
        "",
        "```python",
        "from deepfake_detect import load_detector",
        "",
        'detector = load_detector("<this repo id or folder>")',
        'scores = detector.predict(["face.jpg"])  # P(fake) per image',
        "```",
        "",
        *_base_model_lines(meta),
        "## Model",
        "",
        *_model_table(cfg, num_params),
        "",
        "## Training data",
        "",
        str(meta.get("training_data", "Not recorded.")),
        "",
    ]
    if meta.get("recipe"):
        lines += ["## Recipe", "", "```json", json.dumps(meta["recipe"], indent=2, sort_keys=True), "```", ""]
    lines += ["## Metrics", "", *_metrics_section(meta), ""]
    lines += _threshold_section(cfg, meta)
    for title, text in (meta.get("card_sections") or {}).items():
        lines += [f"## {title}", "", str(text).strip(), ""]
    lines += ["## Intended use", "", str(meta.get("intended_use", INTENDED_USE)), ""]
    lines += ["## Limitations", "", str(meta.get("limitations", LIMITATIONS)), ""]
    return "\n".join(lines)


def model_card(detector: ModelWithConfig) -> str:
    """A Hub model card (YAML metadata + Markdown) from the detector's config and metadata.

    ``config.metadata`` may hold ``license``, ``datasets`` (list), ``training_data``,
    ``metrics`` (name -> value, from training or :meth:`Detector.record_metrics`),
    ``metrics_data``, ``recipe``, ``intended_use``, ``limitations``, ``weights_source``,
    ``threshold_rule`` (how the threshold was chosen), ``false_alarm_rate`` (real set ->
    share labelled fake at the threshold), ``card_sections`` (title -> Markdown, written
    after the metrics, e.g. a cross-dataset table) and ``base_model`` (``name``, ``source``,
    ``license``, ``threshold`` of the detector fine-tuning started from: the card says what it
    was fine-tuned from, that the base's licence still applies and, without a
    ``threshold_rule``, whether the threshold was inherited without re-calibration).
    """
    return card_text(detector.config, sum(p.numel() for p in detector.model.parameters()))


def card_text(config: DetectorConfig, num_params: int) -> str:
    """:func:`model_card` of a detector with ``config`` and ``num_params`` parameters."""
    from huggingface_hub import ModelCard

    card = ModelCard(f"---\n{_card_data(config).to_yaml()}\n---\n\n{_body(config, num_params)}")
    return str(card)


def write_model_card(detector: ModelWithConfig, folder: str | Path) -> Path:
    """Write :func:`model_card` to ``folder/README.md`` atomically; returns the path."""
    return _write(model_card(detector), folder)


def write_card(config: DetectorConfig, num_params: int, folder: str | Path) -> Path:
    """Write :func:`card_text` to ``folder/README.md`` atomically; returns the path."""
    return _write(card_text(config, num_params), folder)


def _write(text: str, folder: str | Path) -> Path:
    path = Path(folder) / CARD_NAME
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return path
