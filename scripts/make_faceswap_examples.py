"""Make the face-swapped example images in examples/images from the two public-domain portraits.

    python scripts/make_faceswap_examples.py [--out examples/images]

Each is :func:`deepfake_detect.synth.face_swap` with its fixed blend (no random draws): one
portrait's face moved onto the other's by their Face Mesh landmarks, colour-matched and
blended through the target's feathered face hull, as landmark face-swap tools do. Writes
``<target>_swap_<source>.jpg`` (JPEG quality 95) for both directions. Needs the ``face`` extra.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from deepfake_detect.data import load_image
from deepfake_detect.synth import face_swap

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "images"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=EXAMPLES)
    args = ap.parse_args()
    names = ("astronaut", "grace_hopper")
    faces = {n: load_image(EXAMPLES / f"{n}.jpg") for n in names}
    for target, source in (names, names[::-1]):
        path = args.out / f"{target}_swap_{source}.jpg"
        face_swap(faces[target], faces[source])[0].save(path, quality=95)
        print(path)


if __name__ == "__main__":
    main()
