"""The ``deepfake-detect`` command line. Results go to stdout, progress and messages to stderr.

Exit codes: 0 success, 1 failure (a one-line error; ``--debug`` shows the traceback),
2 bad usage, 130 interrupted, 141 (quietly) the reader of stdout closed it early (``| head``),
the status a shell reports for a Unix tool stopped by SIGPIPE.
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import json
import os
import select
import sys
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from .version import __version__

if TYPE_CHECKING:
    from .data import LabelFile
    from .detector import Detector

EPILOG = "Docs: https://github.com/deepfake-detect/deepfake-detect/tree/main/docs"
#: Exit code when the reader of stdout has gone (``deepfake-detect predict DIR | head``): 128 + SIGPIPE (13),
#: what a shell reports for a Unix tool that SIGPIPE stopped, so ``set -o pipefail`` scripts see the same.
EXIT_STDOUT_CLOSED = 141


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, exit 2
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _default(owner: Any, name: str) -> Any:
    """The library's default of ``name``: the field's of a dataclass, else the keyword
    argument's of a function. The CLI's defaults and choices are read from the library
    (its functions and constants), never typed again here."""
    if dataclasses.is_dataclass(owner):
        return next(f.default for f in dataclasses.fields(owner) if f.name == name)
    return inspect.signature(owner).parameters[name].default


def _add_model(p: argparse.ArgumentParser, required: bool = False, default_help: str = "the built-in default") -> None:
    p.add_argument(
        "--model",
        "-m",
        required=required,
        metavar="NAME|FOLDER|REPO",
        help=f"registry name, timm:<arch>, save_pretrained folder, or Hub repo id (default: {default_help})",
    )
    p.add_argument("--weights", metavar="FILE", help=".safetensors or state-dict .pt/.pth to load into the model")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1, ... (default: cpu)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="deepfake-detect",
        description="Deepfake face-image detectors: predict, fine-tune, evaluate, and write challenge submissions.",
        epilog=EPILOG,
    )
    parser.add_argument("--version", action="version", version=f"deepfake-detect {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    _add_scoring_commands(sub)
    _add_training_commands(sub)
    _add_analysis_commands(sub)
    _add_export_command(sub)
    _add_serve_command(sub)
    return parser


def _add_scoring_commands(sub: Any) -> None:
    """models, predict"""
    from .backends import PRECISIONS
    from .config import VERDICTS
    from .data.images import ERROR_MODES
    from .detector import Detector
    from .guard import DEFAULT_MAX_PARAMS

    p = sub.add_parser(
        "models",
        help="list registry entries (and timm architectures) under the parameter limit",
        description="List registered detectors with parameter counts and input sizes; with --timm, "
        "timm architectures under the limit, largest first.",
    )
    p.add_argument("--timm", metavar="PATTERN", help="list timm architectures matching PATTERN (e.g. 'convnext*')")
    p.add_argument("--max-params", type=int, default=DEFAULT_MAX_PARAMS, help="the limit (default: %(default)s)")
    p.set_defaults(func=cmd_models)

    p = sub.add_parser(
        "predict",
        help="P(fake) for images or folders; a table, or a submission CSV with --out",
        description="Score images. Prints a table (img_name, y_pred, verdict) or, with --out, "
        "writes a CSV 'img_name,y_pred,verdict' (the challenge's two columns and the verdict; "
        "--scores-only: just the two). Folders are scanned recursively. Under "
        "torchrun the processes share the images and rank 0 writes the output.",
    )
    p.add_argument("paths", nargs="+", help="image files and/or folders")
    _add_model(p)
    p.add_argument(
        "--out",
        "-o",
        metavar="CSV",
        help=f"write img_name,y_pred,verdict ({', '.join(VERDICTS)}) here instead of a table",
    )
    p.add_argument(
        "--scores-only", action="store_true", help="with --out: only img_name,y_pred (the challenge's two columns)"
    )
    p.add_argument("--batch-size", type=int, default=_default(Detector.predict, "batch_size"))
    p.add_argument(
        "--errors",
        choices=ERROR_MODES,
        default=_default(Detector.predict, "errors"),
        help="skip: list unreadable images on stderr and leave them out of the output",
    )
    p.add_argument("--crop-faces", action="store_true", help="crop the largest face first (extra 'face')")
    _add_max_pixels(p)
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    _add_backend(p)
    p.add_argument(
        "--precision",
        choices=PRECISIONS,
        default=_default(Detector.predict, "precision"),
        help="fp32 (default); int8: a quantised ONNX Runtime graph calibrated on --calibration images "
        "(scores move); fp16/bf16: CUDA only",
    )
    p.add_argument(
        "--calibration",
        nargs="+",
        metavar="PATH",
        help="images and/or folders that calibrate --precision int8 (a few dozen of your images)",
    )
    p.set_defaults(func=cmd_predict, usage_error=p.error)

    from .video import AGGREGATES

    p = sub.add_parser(
        "predict-video",
        help="P(fake) of whole videos (extra 'video'); a table, or a CSV with --out",
        description="Score videos: each video's P(fake) is the mean (or median, max) of its evenly spaced "
        "frames' scores, each frame's largest face cropped first (extras 'video' and 'face'). Prints a "
        "table (video, y_pred, verdict) or writes it as a CSV with --out; one video at a time, so the table "
        "grows as they are scored.",
    )
    p.add_argument("paths", nargs="+", metavar="VIDEO", help="video files (mp4, mov, avi, webm, ...)")
    _add_model(p)
    p.add_argument("--frames", type=int, default=16, help="frames sampled per video (default: 16)")
    p.add_argument("--aggregate", choices=AGGREGATES, default="mean", help="how frame scores combine (default: mean)")
    p.add_argument("--no-crop-faces", action="store_true", help="score whole frames, not their largest face")
    p.add_argument("--out", "-o", metavar="CSV", help="write video,y_pred,verdict here instead of a table")
    p.set_defaults(func=cmd_predict_video)


def _add_max_pixels(p: argparse.ArgumentParser) -> None:
    """``--max-pixels N`` (predict, serve): the decompression-bomb guard of the library's image reader."""
    from .data.images import MAX_IMAGE_PIXELS

    p.add_argument(
        "--max-pixels",
        type=int,
        default=None,
        metavar="N",
        help="largest image in pixels (width x height) accepted; larger ones are refused before decoding "
        f"(default: the library's limit, {MAX_IMAGE_PIXELS:,})",
    )


def _max_pixels(args: argparse.Namespace) -> int:
    """``--max-pixels``, else the library's limit (``MAX_IMAGE_PIXELS``)."""
    from .data.images import MAX_IMAGE_PIXELS
    from .errors import DeepfakeDetectError

    if args.max_pixels is None:
        return MAX_IMAGE_PIXELS
    if args.max_pixels < 1:
        raise DeepfakeDetectError(f"--max-pixels {args.max_pixels}: expected a number of pixels of at least 1")
    return int(args.max_pixels)


def _add_backend(p: argparse.ArgumentParser) -> None:
    from . import load_detector
    from .backends import BACKENDS

    p.add_argument(
        "--backend",
        choices=BACKENDS,
        default=_default(load_detector, "backend"),
        help="what runs the model: auto (default: on CPU OpenVINO or ONNX Runtime when installed and the "
        "job is large enough or its graph is cached, else torch), torch, onnxruntime (extra 'onnx') or "
        "openvino (extra 'openvino')",
    )


def _add_training_commands(sub: Any) -> None:
    """finetune, evaluate"""
    from .augment import PRESETS
    from .data.images import ERROR_MODES
    from .evaluate import evaluate
    from .training import TrainConfig

    p = sub.add_parser(
        "finetune",
        help="fine-tune a detector on labelled images",
        description="Fine-tune on a challenge label file + image folder, or a folder with "
        "real/ and fake/ subfolders. Writes last/ and best/ checkpoints to --out after every epoch.",
    )
    p.add_argument(
        "--train", required=True, metavar="LABELS|FOLDER", help="label file (with --train-dir) or real/fake folder"
    )
    p.add_argument("--train-dir", metavar="DIR", help="image folder of the --train label file")
    p.add_argument("--val", metavar="LABELS|FOLDER", help="validation label file (with --val-dir) or real/fake folder")
    p.add_argument("--val-dir", metavar="DIR")
    _add_model(p)  # without --model: fine-tune the built-in default
    p.add_argument("--epochs", type=int, required=True)
    p.add_argument("--out", required=True, metavar="FOLDER", help="checkpoint folder (load it with --model FOLDER)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
    p.add_argument("--batch-size", type=int, default=_default(TrainConfig, "batch_size"))
    p.add_argument(
        "--lr", type=float, default=_default(TrainConfig, "lr"), help="peak learning rate (default: per recipe)"
    )
    augment = _default(TrainConfig, "augment")  # "auto"
    p.add_argument(
        "--augment",
        choices=(augment, *PRESETS),
        default=augment,
        help=f"an augmentation preset, or {augment} (default): none with a frozen backbone, else default",
    )
    p.add_argument(
        "--synth-fakes",
        type=float,
        default=_default(TrainConfig, "synth_fakes"),
        help="self-blended fakes per real image per epoch",
    )
    p.add_argument(
        "--swap-fakes",
        type=float,
        default=_default(TrainConfig, "swap_fakes"),
        help="face swaps (another real face pasted on) per real image per epoch",
    )
    p.add_argument("--freeze-backbone", action=argparse.BooleanOptionalAction, default=None)
    p.add_argument(
        "--freeze",
        metavar="MODULES",
        type=lambda text: tuple(n.strip() for n in text.split(",") if n.strip()),
        default=(),
        help="partial fine-tuning: comma-separated module names to keep frozen, BatchNorm statistics "
        "included (e.g. conv_stem,bn1,blocks.0,blocks.1,blocks.2 for an EfficientNet)",
    )
    p.add_argument("--backbone-weights", metavar="FILE", help="local ImageNet weights for the backbone")
    p.add_argument("--seed", type=int, default=_default(TrainConfig, "seed"))
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_finetune)

    p = sub.add_parser(
        "evaluate",
        help="AUC, TPR@FPR=1e-3, ACC, AP, EER on labelled images",
        description="Score labelled images and print the challenge's metrics (JSON with --json).",
    )
    _add_model(p)
    p.add_argument(
        "--labels", metavar="LABELS|FOLDER", required=True, help="label file (with --images) or real/fake folder"
    )
    p.add_argument("--images", metavar="DIR", help="image folder of the label file")
    p.add_argument("--plot", metavar="PNG", help="write the ROC curve here")
    p.add_argument("--batch-size", type=int, default=_default(evaluate, "batch_size"))
    p.add_argument("--errors", choices=ERROR_MODES, default=_default(evaluate, "errors"))
    p.add_argument("--json", action="store_true", help="print the metrics as JSON")
    p.add_argument("--no-progress", action="store_true")
    _add_backend(p)
    p.set_defaults(func=cmd_evaluate)


def _add_analysis_commands(sub: Any) -> None:
    """info, explain, robustness"""
    from .explain import METHODS, explain
    from .robustness import PERTURBATIONS

    p = sub.add_parser(
        "info",
        help="a detector's config, parameter count, preprocessing and weight source",
        description="Show what a detector is: config, parameters, preprocessing, weights.",
    )
    p.add_argument("model", nargs="?", default=None, help="NAME|FOLDER|REPO (default: the built-in default)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser(
        "explain",
        help="a heatmap of what made the detector say fake",
        description="Write a heatmap (Grad-CAM, input-gradient saliency, or the reconstruction "
        "residual for ae-classifier) blended over the image.",
    )
    p.add_argument("image")
    _add_model(p)
    p.add_argument("--out", "-o", required=True, metavar="PNG")
    p.add_argument("--method", choices=METHODS, default=_default(explain, "method"))
    p.set_defaults(func=cmd_explain)

    p = sub.add_parser(
        "robustness",
        help="AUC and false alarms under JPEG, blur, resize, noise, tighter crops, H.264, FGSM and PGD",
        description="Sweep perturbations over labelled images; prints a table, writes a plot.",
    )
    _add_model(p)
    p.add_argument("--labels", required=True, metavar="LABELS|FOLDER")
    p.add_argument("--images", metavar="DIR")
    p.add_argument(
        "--perturbations",
        nargs="*",
        choices=tuple(PERTURBATIONS),
        metavar="NAME",
        help=f"subset of {', '.join(PERTURBATIONS)} (default: all)",
    )
    p.add_argument("--limit", type=int, default=None, help="use at most N images (stratified)")
    p.add_argument("--plot", metavar="PNG")
    p.add_argument("--json", metavar="FILE", help="write the rows as JSON")
    p.set_defaults(func=cmd_robustness)


def _add_export_command(sub: Any) -> None:
    """export"""
    from .backends import PARITY_ATOL
    from .export import export_onnx

    p = sub.add_parser(
        "export",
        help="write the detector as an ONNX graph that outputs P(fake) (extra 'onnx')",
        description="Export a detector to ONNX: input 'input', the normalised (N, 3, H, W) float32 batch; "
        "output 'p_fake', P(fake) (N,); the preprocessing in the file's metadata (see deepfake_detect.export). "
        "Then run the graph in ONNX Runtime on a random batch of 3 and compare it with the torch model "
        f"(max |P(fake) difference| at most {PARITY_ATOL:g}), unless --no-check.",
    )
    _add_model(p)
    p.add_argument("--out", "-o", required=True, metavar="ONNX", help="the .onnx file to write (folders are created)")
    p.add_argument(
        "--opset",
        type=int,
        default=_default(export_onnx, "opset"),
        metavar="N",
        help="the ONNX opset version (default: %(default)s)",
    )
    p.add_argument(
        "--no-check", action="store_true", help="skip the parity check against the torch model (needs onnxruntime)"
    )
    p.set_defaults(func=cmd_export)


def _add_serve_command(sub: Any) -> None:
    """serve"""
    from .backends import BACKENDS

    p = sub.add_parser(
        "serve",
        help="an HTTP detection service with request batching and a web page (extra 'serve')",
        description="Serve a detector over HTTP: POST /v1/predict, POST /v1/explain, GET /v1/models, "
        "GET /healthz, and a drag-and-drop page at /. Concurrent requests are scored together "
        "in batches. There is no authentication: see docs/serve.md before exposing it.",
    )
    p.add_argument(
        "model",
        nargs="?",
        default=None,
        metavar="DETECTOR",
        help="registry name, timm:<arch>, save_pretrained folder, or Hub repo id (default: the built-in default)",
    )
    p.add_argument("--weights", metavar="FILE", help=".safetensors or state-dict .pt/.pth to load into the model")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1, ... (default: cpu)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1, this machine only)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--max-batch", type=int, default=32, help="most images in one forward pass (default: 32)")
    p.add_argument(
        "--max-wait-ms", type=float, default=10.0, help="longest a batch waits for more images (default: 10)"
    )
    p.add_argument("--crop-faces", action="store_true", help="score the largest face of each image (extra 'face')")
    p.add_argument("--max-upload-mb", type=float, default=20.0, help="largest request body in MB (default: 20)")
    _add_max_pixels(p)
    p.add_argument(
        "--timeout", type=float, default=30.0, help="seconds before an unanswered request gets 503 (default: 30)"
    )
    p.add_argument(
        "--max-queue",
        type=int,
        default=256,
        help="most images waiting for the model before requests get 503 (default: 256)",
    )
    p.add_argument(
        "--backend",
        choices=BACKENDS,
        default="auto",
        help="what scores the batches, chosen at startup as predict chooses for a large job: auto (default: "
        "on CPU OpenVINO or ONNX Runtime when installed and the model exports, else torch), torch, "
        "onnxruntime (extra 'onnx') or openvino (extra 'openvino')",
    )
    p.add_argument("--no-access-log", action="store_true", help="do not log each request")
    p.set_defaults(func=cmd_serve)


def _load(args: argparse.Namespace) -> Detector:
    from . import load_detector

    return load_detector(
        args.model,
        weights=getattr(args, "weights", None),
        device=getattr(args, "device", None),
        backend=getattr(args, "backend", "auto"),
    )


def _data(labels: str, images: str | None) -> LabelFile | str:
    from .data import LabelFile
    from .errors import DataError

    if images:
        return LabelFile(labels, images)
    if Path(labels).is_file():
        raise DataError(f"{labels} is a label file: also give its image folder (--images/--train-dir/--val-dir)")
    return labels


def cmd_models(args: argparse.Namespace) -> int:
    from .guard import count_parameters, list_timm_models
    from .registry import get_entry, list_detectors

    if args.timm:
        rows = list_timm_models(args.timm, max_params=args.max_params)
        print(f"{'model':<40} {'parameters':>14}")
        for name, n in rows:
            print(f"{'timm:' + name:<40} {n:>14,}")
        print(
            f"{len(rows)} timm architecture(s) matching {args.timm!r} under {args.max_params:,} parameters",
            file=sys.stderr,
        )
        return 0
    print(f"{'name':<20} {'parameters':>12} {'input':>9} {'under limit':>12}  description")
    for name in list_detectors():
        entry = get_entry(name)
        n = count_parameters(name)
        h, w = entry.config.input_size
        print(f"{name:<20} {n:>12,} {f'{h}x{w}':>9} {'yes' if n <= args.max_params else 'NO':>12}  {entry.description}")
    from .registry import get_weights, list_weights

    names = list_weights()
    if names:
        print(f"\n{'weights':<36} {'default':>8}  licence; description")
        for wname in names:
            weights = get_weights(wname)
            assert weights is not None
            print(f"{wname:<36} {'yes' if weights.default else '':>8}  {weights.license}; {weights.description}")
    print(
        "load_detector(NAME) builds an architecture untrained, load_detector(NAME.TAG) loads named weights, "
        "load_detector() the default weights; any timm architecture as timm:<name>",
        file=sys.stderr,
    )
    return 0


def _report_skipped(caught: list[warnings.WarningMessage]) -> None:
    from .engine import SkippedImagesWarning

    for w in caught:
        if isinstance(w.message, SkippedImagesWarning):
            for err in w.message.errors:
                print(f"skipped: {err}", file=sys.stderr)
        else:
            print(f"warning: {w.message}", file=sys.stderr)


def cmd_predict(args: argparse.Namespace) -> int:
    from .distributed import is_main_process, local_device
    from .errors import DataError
    from .submission import check_output_path, check_unique_names, image_names, write_submission

    if args.scores_only and not args.out:
        args.usage_error("--scores-only shapes the --out CSV; give --out FILE too")
    if args.calibration and args.precision != "int8":
        args.usage_error("--calibration calibrates --precision int8; give --precision int8 too, or drop it")
    if args.precision == "int8" and not args.calibration:
        args.usage_error("--precision int8 needs --calibration PATHS: a few dozen of your images or a folder")
    if args.device:  # under torchrun, "cuda" is each process's own GPU
        args.device = str(local_device(args.device))
    max_pixels = _max_pixels(args)  # bad values fail before the model loads and the images are scored
    inputs, names = image_names(args.paths)
    if not inputs:
        raise DataError("no image files found in " + ", ".join(args.paths))
    if args.out:
        check_unique_names(names, inputs)
        if is_main_process():
            check_output_path(args.out)
    detector = _load(args)
    kwargs: dict[str, Any] = dict(
        batch_size=args.batch_size,
        errors=args.errors,
        progress=None if not args.no_progress else False,
        max_pixels=max_pixels,
    )
    if args.crop_faces:
        kwargs["crop_faces"] = True
    if args.device:
        kwargs["device"] = args.device
    if args.precision != "fp32" or args.calibration:
        kwargs.update(precision=args.precision, calibration=args.calibration)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        # under torchrun each process scores its share; all of them get every score back
        scores = detector.predict(inputs, distributed=True, **kwargs)
    if not is_main_process():
        return 0  # rank 0 reports and writes
    _report_skipped(caught)
    if detector.last_backend is not None and detector.last_backend.precision != "fp32":
        print(f"note: scored with {detector.last_backend}", file=sys.stderr)
    if len(scores) and all(s != s for s in scores):  # NaN: skipped
        raise DataError("every image was skipped (listed above); nothing to write")
    if args.out:
        verdicts = None if args.scores_only else [detector.config.verdict(s) for s in scores]
        rows = write_submission(names, scores, args.out, verdicts=verdicts)
        print(f"wrote {rows} rows to {args.out}", file=sys.stderr)
        return 0
    width = max([len("img_name")] + [len(n) for n in names])
    print(f"{'img_name':<{width}}  {'y_pred':>7}  verdict")
    for name, s in zip(names, scores, strict=True):
        if s != s:  # NaN: skipped
            continue
        print(f"{name:<{width}}  {s:7.4f}  {detector.config.verdict(s)}")
    return 0


def cmd_predict_video(args: argparse.Namespace) -> int:
    from .submission import check_output_path, check_unique_names, write_submission

    names = [Path(v).name for v in args.paths]
    if args.out:  # before the model loads and the videos are decoded
        check_unique_names(names, args.paths)
        check_output_path(args.out)
    import numpy as np

    detector = _load(args)
    scores = np.zeros(len(names))
    for i, (path, name) in enumerate(zip(args.paths, names, strict=True)):
        scores[i] = detector.predict_video(
            path, num_frames=args.frames, aggregate=args.aggregate, crop_faces=not args.no_crop_faces
        )
        if not args.out:
            if i == 0:  # the header once the first video has scored (not before an error)
                print("video  y_pred  verdict")
            print(f"{name}  {scores[i]:.4f}  {detector.config.verdict(scores[i])}", flush=True)
    if args.out:
        verdicts = [detector.config.verdict(s) for s in scores]
        rows = write_submission(names, scores, args.out, verdicts=verdicts, name_column="video")
        print(f"wrote {rows} rows to {args.out}", file=sys.stderr)
    return 0


def cmd_finetune(args: argparse.Namespace) -> int:
    from . import load_detector

    kwargs = {"backbone_weights": args.backbone_weights} if args.backbone_weights else {}
    out = Path(args.out)
    from .training import CheckpointDir

    last = CheckpointDir.loadable(CheckpointDir(out).last)
    if args.resume and last is not None:
        detector = load_detector(last, device=args.device)
    else:
        detector = load_detector(args.model, weights=args.weights, device=args.device, **kwargs)
    train = _data(args.train, args.train_dir)
    val = _data(args.val, args.val_dir) if args.val else None
    result = detector.finetune(
        train,
        val,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        augment=args.augment,
        synth_fakes=args.synth_fakes,
        swap_fakes=args.swap_fakes,
        freeze_backbone=args.freeze_backbone,
        freeze=args.freeze,
        seed=args.seed,
        output_dir=out,
        resume=args.resume,
        device=args.device,
        progress=not args.no_progress,
    )
    from .distributed import is_main_process

    if not is_main_process():
        return 130 if result.interrupted else 0  # rank 0 reports
    if result.interrupted:
        import shlex

        given = list(args.argv)
        again = given + ([] if "--resume" in given else ["--resume"])  # the same settings, or it is refused
        print(f"interrupted; continue with: {shlex.join(['deepfake-detect', *again])}", file=sys.stderr)
        return 130
    summary = {"epochs": len(result.history), "best": result.best, "output_dir": str(out)}
    print(json.dumps(summary, indent=2))
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    detector = _load(args)
    data = _data(args.labels, args.images)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            metrics = detector.evaluate(
                data,
                batch_size=args.batch_size,
                errors=args.errors,
                plot=args.plot,
                progress=None if not args.no_progress else False,
            )
        finally:  # the skipped images explain a failure too (e.g. a class left empty)
            _report_skipped(caught)
    if args.json:
        print(json.dumps(metrics, indent=2))
    else:
        for k, v in metrics.items():
            print(f"{k:<18} {v:.6f}" if isinstance(v, float) else f"{k:<18} {v}")
    if args.plot:
        print(f"wrote ROC curve to {args.plot}", file=sys.stderr)
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    from . import load_detector

    detector = load_detector(args.model)
    cfg = detector.config
    info: dict[str, Any] = {
        "source": detector.source,
        "architecture": cfg.architecture,
        "parameters": detector.num_params,
        "input_size": list(cfg.input_size),
        "preprocessing": {  # the rest of DetectorConfig.preprocessing (the input size is the line above)
            k: list(v) if isinstance(v, tuple) else v for k, v in cfg.preprocessing.items() if k != "input_size"
        },
        "output": cfg.output,
        "threshold": cfg.threshold,
        "suspicious_threshold": cfg.suspicious_threshold,
        "face_crop": cfg.face_crop,
        "model_kwargs": cfg.model_kwargs,
        "library_version": cfg.library_version,
        "metadata": cfg.metadata,
    }
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        meta = info.pop("metadata")
        for k, v in info.items():
            print(f"{k:<20} {json.dumps(v) if isinstance(v, (dict, list)) else v}")
        for k, v in meta.items():  # the card's long sections and tables are for --json and the README
            text = json.dumps(v) if isinstance(v, (dict, list)) else str(v)
            print(f"{'metadata.' + k:<20} {text if len(text) <= 200 else text[:197] + '...'}")
    return 0


def cmd_explain(args: argparse.Namespace) -> int:
    from .explain import save_overlay

    detector = _load(args)
    heat = detector.explain(args.image, method=args.method)
    save_overlay(args.image, heat, args.out)
    score = float(detector.predict(args.image)[0])
    print(f"{args.image}: P(fake) = {score:.4f}; heatmap written to {args.out}")
    return 0


def cmd_robustness(args: argparse.Namespace) -> int:
    from .robustness import plot_sweep, sweep
    from .submission import check_output_path

    for out in (args.plot, args.json):  # before the sweep, which can take hours
        if out:
            check_output_path(out)
    detector = _load(args)
    data = _data(args.labels, args.images)
    rows = sweep(detector, data, perturbations=args.perturbations or None, limit=args.limit)
    print(f"{'perturbation':<14} {'level':>8} {'auc':>8} {'acc':>8} {'false alarms':>13}")
    for r in rows:
        print(f"{r['perturbation']:<14} {r['level']!s:>8} {r['auc']:8.4f} {r['acc']:8.4f} {r['false_alarms']:13.4f}")
    if args.plot:
        plot_sweep(rows, args.plot)
        print(f"wrote {args.plot}", file=sys.stderr)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from .backends import PARITY_ATOL, graph_parity
    from .errors import DeepfakeDetectError
    from .export import export_onnx

    detector = _load(args)
    path = export_onnx(detector, args.out, opset=args.opset)
    print(f"{'path':<8} {path}")
    print(f"{'opset':<8} {args.opset}")
    if args.no_check:
        print(f"{'parity':<8} not checked (--no-check)")
        return 0
    diff = graph_parity(detector, path)
    ok = diff <= PARITY_ATOL
    print(
        f"{'parity':<8} max |P(fake) difference| vs torch {diff:.3g} on a random batch of 3 "
        f"({'ok' if ok else 'FAILED'}, limit {PARITY_ATOL:g})"
    )
    if not ok:
        raise DeepfakeDetectError(
            f"{path}: the exported graph disagrees with the torch model (max |P(fake) difference| {diff:.3g} > "
            f"{PARITY_ATOL:g}); the model probably has data-dependent control flow that the exporter fixed "
            "to one branch: do not use this file"
        )
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from .errors import DeepfakeDetectError
    from .serve import ServeConfig, is_loopback, return_freed_memory, serve  # first: a missing extra fails early

    if not (0 < args.max_upload_mb < 1024 * 1024):  # NaN fails both
        raise DeepfakeDetectError(f"--max-upload-mb {args.max_upload_mb}: expected a number of MB above 0")
    config = ServeConfig(
        max_batch=args.max_batch,
        max_wait_ms=args.max_wait_ms,
        crop_faces=args.crop_faces,
        max_upload_bytes=int(args.max_upload_mb * 1024 * 1024),
        max_pixels=_max_pixels(args),
        timeout_s=args.timeout,
        max_queue=args.max_queue,
        backend=args.backend,
    )
    if not 0 <= args.port <= 65535:
        raise DeepfakeDetectError(f"--port {args.port}: expected 0 to 65535")
    return_freed_memory()  # flat resident memory in a long-running process
    detector = _load(args)
    if not is_loopback(args.host):
        print(
            f"warning: listening on {args.host}: the service has no authentication and anyone who can reach "
            "this port can use it; put it behind a reverse proxy with authentication (docs/serve.md, "
            "'Behind a reverse proxy')",
            file=sys.stderr,
        )
    print(
        f"serving {detector.source} on http://{args.host}:{args.port}/ (page at /, API at /v1/predict)", file=sys.stderr
    )
    serve(detector, host=args.host, port=args.port, config=config, access_log=not args.no_access_log)
    return 0


def _stdout_reader_gone() -> bool:
    """Whether stdout is a pipe whose reader has closed it (its write end polls as an error), so
    a ``BrokenPipeError`` came from our own output and not from another pipe or socket."""
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):  # not a file (output captured in-process)
        return False
    if not hasattr(select, "poll"):  # Windows: no poll; a broken pipe in the CLI is most likely stdout
        return True
    poller = select.poll()
    poller.register(fd, select.POLLOUT)
    return any(events & (select.POLLERR | select.POLLHUP) for _, events in poller.poll(0))


def _quit_on_closed_stdout() -> int:
    """Python's recipe (``signal`` docs, "Note on SIGPIPE"): point stdout at ``os.devnull`` so the
    flush at exit cannot fail again, and stop without a message; the exit code is
    :data:`EXIT_STDOUT_CLOSED` (the recipe's own ``sys.exit(1)`` would read as this CLI's "failure")."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return EXIT_STDOUT_CLOSED


def _flush_stdout() -> int | None:
    """Flush stdout inside the caller's control: :data:`EXIT_STDOUT_CLOSED` when its reader has
    gone (quietly, see :func:`_quit_on_closed_stdout`), else ``None``."""
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        return _quit_on_closed_stdout()
    return None


def main(argv: list[str] | None = None) -> int:
    from .errors import DeepfakeDetectError

    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit:  # --help, --version (stdout, maybe into a closed pipe) or bad usage
        closed = _flush_stdout()
        if closed is not None:
            return closed
        raise
    except BrokenPipeError:  # help text longer than the buffer, into a closed pipe
        return _quit_on_closed_stdout()
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    args.argv = list(argv) if argv is not None else sys.argv[1:]  # as given, e.g. to repeat with --resume
    start = time.perf_counter()
    try:
        code = int(args.func(args) or 0)
        # output still buffered: a reader that has gone (`| head`) shows here, inside the try
        sys.stdout.flush()
        return code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (DeepfakeDetectError, OSError) as e:
        if isinstance(e, BrokenPipeError) and _stdout_reader_gone():
            return _quit_on_closed_stdout()  # `deepfake-detect predict DIR | head`: stop quietly
        if args.debug:
            raise
        print(f"deepfake-detect {args.command}: error: {e}", file=sys.stderr)
        return 1
    except Exception as e:  # an unexpected failure still gets one line; --debug shows where
        if args.debug:
            raise
        print(
            f"deepfake-detect {args.command}: error: {type(e).__name__}: {e} (rerun with --debug for the traceback)",
            file=sys.stderr,
        )
        return 1
    finally:
        if args.debug:
            print(f"[{time.perf_counter() - start:.2f} s]", file=sys.stderr)
