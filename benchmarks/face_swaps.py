"""Classic landmark face swaps made from val reals: a manipulation with an identity change,
scored by any detectors side by side.

    python benchmarks/face_swaps.py --dfdc ../shared/data/dfdc-faces --ffhq ../shared/data/ffhq-stylegan \
        --celebdf ../shared/data/celebdf-faces [--detector LABEL=SOURCE ...]

For each source, real val images and :func:`deepfake_detect.synth.face_swapped_pairs` of them:
every real face, and another person's face (one of the three with the nearest landmark
layout, from another group) pasted onto it by :func:`~deepfake_detect.synth.face_swap` with
its fixed blend: similarity-aligned by the 468 Face Mesh landmarks, colour-matched, blended
through the target's shrunk and feathered face hull. Groups: ffhq-stylegan, every image (all
different people); celebdf-faces, the celebrity (``idNN`` in the file name, else the video); dfdc-faces, the
source clip (DFDC's actors recur across clips, so a few swaps may paste an actor's own face).
dfdc-faces uses 300 of its 884 val reals. Every detector is scored on the same images: AUC,
and the share of swaps it labels ``fake`` and ``fake`` or ``suspicious`` at its own
operating points. The example images are scored too. Needs the ``face`` extra.
"""

from __future__ import annotations

import re
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
from deepfake_detect.data import list_images
from deepfake_detect.synth import face_swapped_pairs

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "images"


def celebrity(name: str) -> str:
    """Celeb-DF's person: ``idNN`` in a Celeb-real frame's name, else the video (the name
    without its frame number)."""
    found = re.search(r"id\d+", name)
    return found.group(0) if found else name.rsplit("_", 1)[0]


def reals(root: Path, limit: int | None) -> tuple[list, list]:
    """Paths of a source's val reals and their groups (every third dfdc-faces real, capped at 300)."""
    data = load_split(root, "val")
    idx = np.flatnonzero(data.labels == 0)
    name = root.name
    if name.startswith("dfdc"):
        idx = idx[::3][:300]
    if limit:
        idx = idx[:limit]
    paths = [data.image(int(i)) for i in idx]
    if name.startswith("celebdf"):
        groups = [celebrity(Path(p).name) for p in paths]
    elif name.startswith("dfdc"):
        groups = [Path(p).stem for p in paths]  # one real image per clip
    else:
        groups = list(range(len(paths)))
    return paths, groups


def main() -> None:
    ap = source_parser(__doc__)
    ap.add_argument(
        "--detector", action="append", default=[], metavar="LABEL=SOURCE", help="a detector to score (repeatable)"
    )
    ap.add_argument("--out", type=Path, default=DOCS / "face_swaps.md")
    ap.add_argument("--limit", type=int, help="smoke test: at most this many reals per source")
    args = ap.parse_args()
    specs = args.detector or ["default=default"]

    sets = {}
    for key, root in (("ffhq", args.ffhq), ("celebdf", args.celebdf), ("dfdc", args.dfdc)):
        paths, groups = reals(root, args.limit)
        sets[key] = face_swapped_pairs(paths, groups=groups, seed=0)
        print(f"{key}: {len(sets[key]) // 2} swaps from {len(paths)} reals", file=sys.stderr, flush=True)
    examples = list_images(EXAMPLES)

    rows, example_rows = [], []
    for spec in specs:
        label, _, source = spec.partition("=")
        det = load_detector() if source == "default" else load_detector(source)
        metrics = det.evaluate(sets, progress=False)
        cells: list = [label]
        for key, pairs in sets.items():
            fakes = [im for im, y in pairs if y == 1]
            verdicts = np.array([det.config.verdict(p) for p in det.predict(fakes, progress=False)])
            flagged = np.isin(verdicts, ["fake", "suspicious"]).mean()
            cells += [metrics[key]["auc"], f"{np.mean(verdicts == 'fake'):.0%}", f"{flagged:.0%}"]
        rows.append(cells)
        scores = det.predict(examples, progress=False)
        example_rows.append([label, *(f"{s:.3f} {det.config.verdict(s)}" for s in scores)])
        print(cells, file=sys.stderr, flush=True)

    n = {k: len(v) // 2 for k, v in sets.items()}
    headers = ["detector"]
    for key in sets:
        headers += [f"{key} AUC", f"{key} fake", f"{key} fake or suspicious"]
    doc = f"""# Face swaps made from val reals

`python benchmarks/face_swaps.py {shlex.join(sys.argv[1:])}`
(commit {git_rev()}). Machine: {machine()}.

Each set is real val images and one landmark face swap onto each (`synth.face_swapped_pairs`,
seed 0): ffhq {n["ffhq"]} pairs (ffhq-stylegan val reals), celebdf {n["celebdf"]} (Celeb-DF val reals,
another celebrity's face), dfdc {n["dfdc"]} (every third dfdc-faces val real, another clip's face).
AUC is real against swapped; "fake" and "fake or suspicious" are the shares of the swaps each
detector labels so at its own operating points.

{table(headers, rows)}

The example images (`examples/images`), P(fake) and verdict:

{table(["detector", *(p.name for p in examples)], example_rows)}
"""
    print(write_doc(args.out, doc))


if __name__ == "__main__":
    main()
