"""Ship runs/pair4-cal (v7 + lineage 2 stage 4, adopted by training/rules/lineage2.md) as the
built-in default v9, ``ensemble.dfdc_ffhq_sbi``, in place of v8.

Starts from v8's card (``runs/v8-shipped``: v8's package folder, e.g. ``git archive 89a76f3
src/deepfake_detect/pretrained/ensemble.dfdc_ffhq_sbi``) and changes what stage 4 changed: the
name, the second member and its recipe, val metrics (scored once, after the decision, by
``training/rules/holdout_views.py --split val runs/pair4-cal --json runs/pair4-val.json``), the
operating points (``scripts/calibrate_default.py``), and the tables that docs/crops.md,
docs/face_swaps.md, docs/leave_one_out.md and docs/lineage2.md hold with v9 in them. Run from
the repository root after those.
"""

import json
import sys
from pathlib import Path

from _cards import (  # run as a script: its folder is on sys.path
    card_metrics,
    crops_section,
    edited,
    generated_table,
    operating_points,
    ship,
)

from deepfake_detect import load_detector

if {"-h", "--help"} & set(sys.argv[1:]):  # a one-off script without options: say what it does
    sys.exit(print(__doc__))

V8 = Path("runs/v8-shipped")
STAGE4 = Path("training/checkpoints/lineage2-stage4")
PKG = Path("src/deepfake_detect/pretrained/ensemble.dfdc_ffhq_sbi")

v8 = json.loads((V8 / "config.json").read_text())["metadata"]
assert v8["name"].startswith("deepfake-detect default v8"), "runs/v8-shipped must hold v8's package folder"
stage4 = json.loads((STAGE4 / "config.json").read_text())["metadata"]
det = load_detector("runs/pair4-cal", backend="torch")
assert det.config.architecture == "ensemble" and len(det.model.members) == 2
calibrated = dict(det.config.metadata)
metrics = m = card_metrics("runs/pair4-val.json")
v8m = v8["metrics"]

meta = {
    **v8,
    "name": edited(v8["name"], ("default v8", "default v9"), ("stage 3b", "stage 4")),
    "members": [
        v8["members"][0],
        "lineage 2 stage 4 (training/checkpoints/lineage2-stage4 in the repository)",
    ],
    "training_data": edited(v8["training_data"], ("lineage 2 stage 3b trained", "lineage 2 stage 4 trained")),
    "weights_source": edited(v8["weights_source"], ("stage 3b", "stage 4"), ("three stages", "four stages")),
    "recipe": {
        "ensemble": v8["recipe"]["ensemble"],
        "members": {"default v7": v8["recipe"]["members"]["default v7"], "lineage 2 stage 4": stage4["recipe"]},
        "lineage 2 stages": v8["recipe"]["lineage 2 stages"].replace(
            "(3e-4, new draws); 29.5 + 35.9 + 39.7 minutes",
            "(3e-4, new draws), 10 x 3,000 at 256 (3e-4, new draws); 29.5 + 35.9 + 39.7 + 46.2 minutes",
        ),
    },
    "metrics": metrics,
    **operating_points(calibrated),
}
assert meta["recipe"]["lineage 2 stages"] != v8["recipe"]["lineage 2 stages"]

old = v8["card_sections"]
sections = {}
sections["Members"] = (
    "v7 and the fourth stage of a second line of training (lineage 2: EfficientNet-Lite0 from ImageNet with the early "
    "blocks frozen, self-blends and landmark face swaps from the first stage). v8 paired v7 with lineage 2's third "
    "stage; stage 4 continued it with new draws, and the pair v7 + stage 4 replaced v8 under a rule written before "
    "it was scored (training/rules/lineage2.md: the seven-view hold-out mean at least v8's + 0.010, swap at least "
    "v8's - 0.01, Celeb-DF at least v8's - 0.02; the same two graphs, so the same speed). It met the first by "
    "0.0004, within the noise of one hold-out. AUC on the hold-out views (docs/lineage2.md):\n\n"
    + generated_table("lineage2.md", "## Stage 4 (2026-12-07", "\n\n")
    + "\n\nBoth members' best epochs were chosen on these same views, so the pair's row leans optimistic; val, "
    "scored once after the decision, is in the metrics above and in the next sections.\n"
)
sections["Crop scale and video compression"] = crops_section(
    old["Crop scale and video compression"], ("v4 to v7 beside", "v4 to v8 beside")
)
sections["Cross-dataset results"] = edited(
    old["Cross-dataset results"],
    (
        "| **default v8 (these fp16 weights)** | **0.909** | **0.932** | **0.936** |",
        f"| default v8 | {v8m['dfdc_auc']:.3f} | {v8m['ffhq_auc']:.3f} | {v8m['sbi_auc']:.3f} |\n"
        f"| **default v9 (these fp16 weights)** | **{m['dfdc_auc']:.3f}** | **{m['ffhq_auc']:.3f}** "
        f"| **{m['sbi_auc']:.3f}** |",
    ),
)
loo = old["Leave one source out"]
sections["Leave one source out"] = (
    edited(loo[: loo.index("| trained on")], ("v5-v8 trained on all three", "v5-v9 trained on all three"))
    + generated_table("leave_one_out.md", "| trained on", "<!--")
    + "\n"
)
swaps = old["Face swaps"]
sections["Face swaps"] = (
    edited(
        swaps[: swaps.index("| detector")],
        ("scored 0.836 against v7's 0.817", "scored 0.853 against v8's 0.836 and v7's 0.817"),
    )
    + generated_table("face_swaps.md", "| detector | ffhq AUC", "The example images")
    + "\n"
)
sections["Speed"] = edited(
    old["Speed"],
    (
        "Two forward passes: `predict()`",
        "v8's two graphs with other weights, so v8's measurement stands: `predict()`",
    ),
)
sections["Tried and not adopted"] = (
    old["Tried and not adopted"].rstrip("\n")
    + "\n\nv8 (2026-12-07) was v7 + lineage 2 stage 3b (hold-out seven-view 0.874; val dfdc 0.909, ffhq 0.932, sbi "
    "0.936, swap 0.947). Stage 4 gained 0.022 on the hold-out over stage 3b, and the pair with it replaced v8.\n"
    "\nAfter v9 was adopted, lineage 2's stage 5 (stage 4 with new draws, rule written before it trained) scored "
    "0.863 on the seven hold-out views (stage 4 0.856), under the +0.020 its rule asked for, so lineage 2 stopped; "
    "v7 + stage 5 scored 0.8836 there, below v9's 0.8844: not adopted.\n"
)
assert list(sections) == list(old), "the card's sections changed order or name"
ship(det, meta, sections, PKG)
