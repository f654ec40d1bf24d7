"""Share a detector through the Hugging Face Hub, or a folder when offline.

python examples/hub.py                         # save and reload locally; prints how to push
python examples/hub.py --push me/my-detector   # needs network and a token (HF_TOKEN or --token)
python examples/hub.py --pull org/name [--revision SHA]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

from deepfake_detect import load_detector

IMAGES = Path(__file__).parent / "images"  # wherever the script is run from


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--push", metavar="REPO_ID", help="upload the built-in default detector to this repo")
    ap.add_argument("--pull", metavar="REPO_ID", help="load a detector from the Hub and score the examples")
    ap.add_argument("--revision", default=None)
    ap.add_argument("--token", default=None)
    args = ap.parse_args()

    if args.pull:
        detector = load_detector(args.pull, revision=args.revision, token=args.token)
        print(detector, detector.predict(IMAGES))
        return
    detector = load_detector()
    if args.push:
        sha = detector.push_to_hub(args.push, token=args.token, private=True)
        print(f"pushed; load exactly this upload with load_detector({args.push!r}, revision={sha!r})")
        return
    with tempfile.TemporaryDirectory() as folder:
        detector.save_pretrained(folder)
        again = load_detector(folder)
        same = np.array_equal(again.predict(IMAGES), detector.predict(IMAGES))
        print(f"saved to and reloaded from a folder: identical scores = {same}")
    print("to share: python examples/hub.py --push YOUR_NAME/REPO (needs network and a token)")


if __name__ == "__main__":
    main()
