"""Score images with a detector and print P(fake) per file.

python examples/predict.py examples/images                 # the built-in default detector
python examples/predict.py FOLDER --model resnet18-baseline --weights camp.pth
"""

from __future__ import annotations

import argparse

from deepfake_detect import load_detector
from deepfake_detect.submission import image_names


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("paths", nargs="+", help="image files or folders")
    ap.add_argument("--model", default=None, help="registry name, folder or Hub repo id (default: built-in)")
    ap.add_argument("--weights", default=None, help=".safetensors or state-dict .pth for the model")
    args = ap.parse_args()

    detector = load_detector(args.model, weights=args.weights)
    inputs, names = image_names(args.paths)  # folders are scanned recursively, sorted
    scores = detector.predict(inputs)
    for name, score in zip(names, scores, strict=True):
        verdict = detector.config.verdict(score)  # real / suspicious / fake, as the CLI prints
        print(f"{name}\t{score:.4f}\t{verdict}")


if __name__ == "__main__":
    main()
