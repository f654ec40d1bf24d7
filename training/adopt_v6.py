"""Ship runs/v6-cal as the built-in default: its card text, then save fp16 into the package."""

import json
import sys
from pathlib import Path

from _cards import ship  # run as a script: its folder is on sys.path

from deepfake_detect import load_detector

if {"-h", "--help"} & set(sys.argv[1:]):  # a one-off script without options: say what it does
    sys.exit(print(__doc__))

PKG = Path("src/deepfake_detect/pretrained/efficientnet-lite0.dfdc_ffhq_sbi")
old = json.loads((PKG / "config.json").read_text())["metadata"]
det = load_detector("runs/v6-cal", backend="torch")
meta = dict(det.config.metadata)
meta.pop("base_model", None)
meta["name"] = (
    "deepfake-detect default v6 (EfficientNet-Lite0; DFDC face swaps, StyleGAN, self-blended fakes; "
    "crops down to 0.4 of the side, H.264 video frames)"
)
meta["training_data"] = (
    "dfdc-faces train (DFDC real and face-swapped video frames, research use only; 5 % of source clips held out), "
    "ffhq-stylegan train (FFHQ photos, CC BY-NC-SA 4.0 collection, and StyleGAN faces; 10 % held out) and "
    "celebdf-faces train reals (Celeb-DF v2 interview frames, research use only; 15 % of source videos held out), "
    "sampled 0.60/0.25/0.15 per epoch, plus 0.5 landmark-hull self-blended fakes per real image per epoch "
    "('crossvideo' augmentation: crops down to 0.4 of the side, and for 30 % of images an H.264 round trip at "
    "CRF 18-42). Research-only data: the weights inherit that restriction."
)
meta["weights_source"] = (
    "default v5 (EfficientNet-Lite0 from ImageNet, three earlier stages) fine-tuned for a fourth "
    "stage at 256x256 by scripts/train_default.py --init"
)
r = dict(meta["recipe"])
r.update({"init": "default v5"})
meta["recipe"] = r
meta["metrics_data"] = (
    "val splits of dfdc-faces (884 real, 884 fake) and ffhq-stylegan (150 + 150), as given, cropped to the central "
    "half of the side (@crop0.5) and re-encoded as H.264 at CRF 37 (@crf37); sbi: up to 300 real images of each val "
    "split and one self-blended fake of each (seed 12345)"
)
crops = Path("docs/crops.md").read_text()
auc_table = crops[crops.index("| detector | set | as given") : crops.index("![AUC")].strip()
fa = crops[crops.index("## False alarms") :]
fa_table = fa[fa.index("| detector") : fa.index("<!--")].strip()
xd = old["card_sections"]["Cross-dataset results"]
xd = xd.replace(
    "| **default v5 (these fp16 weights)** | **0.911** | **0.912** | **0.916** |",
    "| default v5 | 0.911 | 0.912 | 0.916 |\n| **default v6 (these fp16 weights)** | **{dfdc:.3f}** | **{ffhq:.3f}** | **{sbi:.3f}** |".format(
        **{k: meta["metrics"][f"{k}_auc"] for k in ("dfdc", "ffhq", "sbi")}
    ),
)
loo = Path("docs/leave_one_out.md").read_text() if Path("docs/leave_one_out.md").is_file() else ""
sections = {
    "Crop scale and video compression": (
        "The same val faces cropped tighter (the central box of that side, resized back) and re-encoded as H.264, "
        "v4 and v5 beside these weights (`benchmarks/crops_video.py`; dfdc-faces val: 600 images, ffhq-stylegan val: "
        "300, celebdf-faces val: 174 reals). ROC AUC:\n\n"
        + auc_table
        + "\n\nShare of real images at or above each detector's own threshold:\n\n"
        + fa_table
        + "\n"
    ),
    "Cross-dataset results": xd,
}
if loo:
    t = loo[loo.index("| trained on") : loo.index("<!--")].strip()
    sections["Leave one source out"] = (
        "EfficientNet-Lite0 from ImageNet trained on two of the three sources on one image budget and scored on the "
        "third (`benchmarks/leave_one_out.py`; docs/leave_one_out.md), beside the defaults (v5 and v6 trained on all three, v4 on dfdc-faces and ffhq-stylegan):\n\n"
        + t
        + "\n"
    )
sections["Tried and not adopted"] = (
    "From v5, under a rule fixed before training (v5's hold-out mean + 0.010, no whole-crop or half-side view 0.02 "
    "lower; the rule's written threshold had an addition error, corrected before val was scored, see "
    "docs/detectors.md): this stage (H.264 round trips at CRF 18-42 for 30 % of images, crops to 0.4 of the side, "
    f"selection on H.264 CRF 37 views too) passed with hold-out mean {0.8593:.4f} against v5's 0.8379. Earlier, from v4: "
    "more StyleGAN per epoch (+0.006), 288x288 input (+0.004), ensembles and weight averages of checkpoints "
    "(+0.005), EMA weights with twice the self-blends (+0.008), NPR residual inputs, Lite1/Lite2 backbones for a "
    "short budget.\n"
)
ship(det, meta, sections, PKG)
