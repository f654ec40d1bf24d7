"""Crop scale and H.264: AUC and false alarms of detectors side by side on the shared val splits.

    python benchmarks/crops_video.py --dfdc ../shared/data/dfdc-faces --ffhq ../shared/data/ffhq-stylegan \
        --celebdf ../shared/data/celebdf-faces [--detector LABEL=SOURCE ...] [--keep LABEL ...] [--dfdc-limit 600]

For each detector (``--detector LABEL=SOURCE``, repeated, for anything ``load_detector``
reads; default: the built-in default alone) and each of dfdc-faces val (a stratified ``--dfdc-limit``
images, seed 0) and ffhq-stylegan val, :func:`deepfake_detect.robustness.sweep` with the
``crop`` (side kept 0.85, 0.7, 0.6, 0.5, vertical centre at 55 %) and ``video`` (H.264 CRF 23,
30, 37) perturbations: ROC AUC, and the share of real images at or above each detector's own
threshold (false alarms). celebdf-faces val (real only) gives false alarms alone. ``--keep
LABEL`` reuses that detector's rows from the docs/crops.json already there (measured by an
earlier run with the same sets; the page says which) and puts them first. The
perturbations act on the image at the model's input size (docs/explain.md). Writes
docs/crops.md, docs/crops.json and two plots in docs/images/.
"""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path

import numpy as np
from _common import (  # run as a script: its folder is on sys.path
    DOCS,
    git_rev,
    machine,
    source_parser,
    table,
    write_doc,
)

from deepfake_detect import load_detector
from deepfake_detect.crossdata import load_split
from deepfake_detect.data.datasets import stratified_split
from deepfake_detect.plotting import plot_curves
from deepfake_detect.robustness import PERTURBATIONS, sweep

LEVELS = {"crop": PERTURBATIONS["crop"], "video": PERTURBATIONS["video"]}


def celebdf_alarms(detector, reals: list, seed: int) -> dict[str, float]:
    """False alarms on real-only images: pair each with itself as a fake so the sweep runs, then
    count the reals above the threshold (the AUC of that pairing is meaningless and dropped)."""
    rows = sweep(detector, [(im, 0) for im in reals] + [(reals[0], 1)], LEVELS, seed=seed)
    return {f"{r['perturbation']}:{r['level']:g}": r["false_alarms"] for r in rows}


def main() -> None:
    ap = source_parser(__doc__)
    ap.add_argument("--detector", action="append", default=[], metavar="LABEL=SOURCE")
    ap.add_argument("--keep", action="append", default=[], metavar="LABEL", help="rows read from the old crops.json")
    ap.add_argument("--dfdc-limit", type=int, default=600)
    ap.add_argument("--limit", type=int, help="smoke test: at most this many images per set")
    ap.add_argument("--out", type=Path, default=DOCS / "crops.md")
    args = ap.parse_args()

    detectors = [tuple(d.split("=", 1)) for d in args.detector] or [("default", None)]
    dfdc = load_split(args.dfdc, "val")
    dfdc = stratified_split(dfdc, args.dfdc_limit / len(dfdc), seed=0)[1] if args.dfdc_limit < len(dfdc) else dfdc
    sets = {"dfdc": dfdc, "ffhq": load_split(args.ffhq, "val")}
    celeb = load_split(args.celebdf, "val")
    celeb_reals = [celeb.image(i) for i in range(len(celeb)) if celeb.labels[i] == 0]
    if args.limit:
        sets = {k: stratified_split(v, min(0.99, args.limit / len(v)), seed=0)[1] for k, v in sets.items()}
        celeb_reals = celeb_reals[: args.limit]

    json_path = args.out.with_suffix(".json")
    earlier = json.loads(json_path.read_text()) if args.keep else {}
    missing = [label for label in args.keep if label not in earlier]
    if missing:
        ap.error(f"--keep {missing}: not in {json_path} (it holds {sorted(earlier)})")
    results: dict[str, dict] = {label: earlier[label] for label in args.keep}
    for label, source in detectors:
        det = load_detector(source)
        entry = {"threshold": det.config.threshold, "sets": {}}
        for name, data in sets.items():
            entry["sets"][name] = sweep(det, data, LEVELS, seed=0)
            print(label, name, [(r["perturbation"], r["level"], round(r["auc"], 4)) for r in entry["sets"][name]])
        entry["celebdf_false_alarms"] = celebdf_alarms(det, celeb_reals, seed=0)
        results[label] = entry

    json_path.write_text(json.dumps(results, indent=1) + "\n")
    steps = [("clean", 0)] + [(p, lv) for p, levels in LEVELS.items() for lv in levels]
    headers = ["detector", "set"] + [("as given" if p == "clean" else f"{p} {lv:g}") for p, lv in steps]

    def row(label: str, name: str, key: str) -> list[object]:
        by = {(r["perturbation"], r["level"]): r[key] for r in results[label]["sets"][name]}
        return [label, name] + [by[s] for s in steps]

    auc_rows = [row(lab, n, "auc") for lab in results for n in sets]
    fa_rows = [row(lab, n, "false_alarms") for lab in results for n in sets]
    fa_rows += [
        [lab, "celebdf"] + [results[lab]["celebdf_false_alarms"][f"{p}:{lv:g}"] for p, lv in steps] for lab in results
    ]
    images = args.out.parent / "images"  # beside the page: a smoke run with --out elsewhere leaves docs/ alone
    for p, xlabel in (("crop", "side of the image kept"), ("video", "H.264 CRF (0 = as given)")):
        series = {}
        for lab in results:
            for n in sets:
                rows = [r for r in results[lab]["sets"][n] if r["perturbation"] in ("clean", p)]
                xs = [1.0 if r["perturbation"] == "clean" else float(r["level"]) for r in rows]
                if p == "video":
                    xs = [0.0 if r["perturbation"] == "clean" else float(r["level"]) for r in rows]
                series[f"{lab} · {n}"] = (np.array(xs), np.array([r["auc"] for r in rows]))
        plot_curves(
            series,
            images / f"crops_{p}.png",
            xlabel=xlabel,
            ylabel="ROC AUC",
            ylim=(0.5, 1.0),
            size=(560, 440),
            title=f"AUC under {'tighter crops' if p == 'crop' else 'H.264 re-encoding'}",
        )
    thresholds = ", ".join(f"{lab} {results[lab]['threshold']}" for lab in results)
    page = "\n\n".join(
        [
            "# Crop scale and video compression",
            f"Generated by `python benchmarks/crops_video.py {shlex.join(sys.argv[1:])}` (commit {git_rev()}; {machine()}"
            + (f"; the rows of {', '.join(args.keep)} were read from crops.json, measured earlier" if args.keep else "")
            + "). "
            f"dfdc-faces val: {len(sets['dfdc'])} images (stratified, seed 0); ffhq-stylegan val: "
            f"{len(sets['ffhq'])}; celebdf-faces val: {len(celeb_reals)} real images. Crop: the central box of "
            "that side (vertical centre 55 %) resized back to the input size; video: the face as a one-frame "
            "H.264 video (libx264, yuv420p) at that CRF. Both act on the image at the model's input size.",
            "## ROC AUC",
            table(headers, auc_rows),
            "![AUC against crop side](images/crops_crop.png) ![AUC against H.264 CRF](images/crops_video.png)",
            f"## False alarms (share of real images at or above each detector's threshold: {thresholds})",
            table(headers, fa_rows),
        ]
    )
    write_doc(args.out, page)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
