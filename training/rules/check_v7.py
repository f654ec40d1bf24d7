"""Check a stage-5 run against training/rules/v7.md (and v7b.md, which keeps its four checks): the
best epoch of the run (by the mean of its eight hold-out views) and its celebdf hold-out AUC.
Run from the repository root: python training/rules/check_v7.py [RUNS_DIR] (default runs/default-v7)."""

import json
import sys

from deepfake_detect import load_detector
from deepfake_detect.crossdata import default_splits

if {"-h", "--help"} & set(sys.argv[1:]):  # a one-off script without options: say what it does
    sys.exit(print(__doc__))

V6 = {
    "dfdc": 0.9169,
    "ffhq": 0.9265,
    "sbi": 0.9248,
    "dfdc@crop0.5": 0.8114,
    "ffhq@crop0.5": 0.8473,
    "dfdc@crf37": 0.8088,
    "ffhq@crf37": 0.7810,
}
V6_SWAP, V6_CELEBDF = 0.8684, 0.8336
D = "../shared/data"
RUNS = sys.argv[1] if len(sys.argv) > 1 else "runs/default-v7"

rows = [json.loads(line) for line in open(f"{RUNS}/history.jsonl")]
best = max(rows, key=lambda r: r["val"]["auc_mean"])
auc = {k: v["auc"] for k, v in best["val_sources"].items()}
seven = sum(auc[k] for k in V6) / len(V6)
v6_seven = sum(V6.values()) / len(V6)
_, holdout, _ = default_splits(f"{D}/dfdc-faces", f"{D}/ffhq-stylegan", celebdf=f"{D}/celebdf-faces")
det = load_detector(f"{RUNS}/best", backend="torch")
celebdf = det.evaluate({"celebdf": holdout["celebdf"]}, progress=False)["celebdf"]["auc"]
checks = {
    "1 seven-view mean >= v6 - 0.005": seven >= v6_seven - 0.005,
    "2 dfdc, ffhq, sbi >= v6 - 0.02": all(auc[k] >= V6[k] - 0.02 for k in ("dfdc", "ffhq", "sbi")),
    "3 swap >= v6 + 0.03": auc["swap"] >= V6_SWAP + 0.03,
    "4 celebdf hold-out >= v6 - 0.02": celebdf >= V6_CELEBDF - 0.02,
}
print("per epoch (eight-view mean):", [round(r["val"]["auc_mean"], 4) for r in rows])
print("best epoch", best["epoch"], "seven-view mean", round(seven, 4), "(v6", round(v6_seven, 4), ")")
print({k: (round(auc[k], 4), round(auc[k] - V6.get(k, V6_SWAP), 4)) for k in auc})
print("celebdf hold-out", round(celebdf, 4), "(v6", V6_CELEBDF, ")")
for name, ok in checks.items():
    print(name, ok)
print("ADOPT" if all(checks.values()) else "REJECT")
