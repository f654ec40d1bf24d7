"""Face finding for self-blending: how often the Haar cascade and Face Mesh find the face, and
what it costs per image.

    python benchmarks/landmarks.py --dfdc ../shared/data/dfdc-faces --ffhq ../shared/data/ffhq-stylegan [--n 500]

For the first ``--n`` real training images of each source, resized to 224x224 as training
does: the share where OpenCV's Haar cascade finds a face (``synth.locate_face``'s first
step), the share where MediaPipe Face Mesh returns landmarks (in the Haar box, or in the
whole crop when there is none), and the milliseconds per image of each step on one thread.
Writes docs/landmarks.md.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch
from _common import (  # run as a script: its folder is on sys.path
    DOCS,
    git_rev,
    machine,
    source_parser,
    table,
    write_doc,
)
from PIL import Image

from deepfake_detect.crossdata import load_split
from deepfake_detect.face import detect_largest_face, load_cascade
from deepfake_detect.landmarks import face_landmarks


def measure(paths: list, size: int) -> list[float]:
    images = [Image.open(p).convert("RGB").resize((size, size), Image.Resampling.BILINEAR) for p in paths]
    face_landmarks(images[0])  # load the interpreter outside the timing
    cascade = load_cascade()
    t0 = time.perf_counter()
    boxes = [detect_largest_face(img, cascade=cascade, min_size_fraction=0.3) for img in images]  # as synth does
    t1 = time.perf_counter()
    points = [face_landmarks(img, box) for img, box in zip(images, boxes, strict=True)]
    t2 = time.perf_counter()
    n = len(images)
    return [
        n,
        float(np.mean([b is not None for b in boxes])),
        float(np.mean([p is not None for p in points])),
        (t1 - t0) / n * 1000,
        (t2 - t1) / n * 1000,
    ]


def main() -> None:
    ap = source_parser(__doc__, celebdf=False)
    ap.add_argument("--n", type=int, default=500)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--out", type=Path, default=DOCS / "landmarks.md")
    args = ap.parse_args()
    torch.set_num_threads(1)
    rows = []
    for name, root in (("dfdc-faces", args.dfdc), ("ffhq-stylegan", args.ffhq)):
        data = load_split(root, "train")
        reals = [data.items[i] for i in np.flatnonzero(data.labels == 0)[: args.n]]
        rows.append([name] + measure(reals, args.size))
    doc = f"""# Face finding for self-blending

`python benchmarks/landmarks.py --dfdc ../shared/data/dfdc-faces --ffhq ../shared/data/ffhq-stylegan --n {args.n}`
(commit {git_rev()}). Machine: {machine()}.

Real training images resized to {args.size}x{args.size}, one thread. "Haar face" is OpenCV's
frontal-face cascade (faces of at least 30 % of the side); "landmarks" is MediaPipe Face
Mesh (468 points, shipped in the package, run by LiteRT) in that box, or in the whole
image when the cascade finds none. Without landmarks, self-blending falls back to an
ellipse.

{table(["source", "images", "Haar face found", "landmarks found", "Haar ms/image", "Face Mesh ms/image"], rows)}
"""
    print(write_doc(args.out, doc))


if __name__ == "__main__":
    main()
