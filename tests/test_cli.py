"""The command line, end to end in subprocesses, on small generated images."""

from __future__ import annotations

import csv
import inspect
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import face_like

import deepfake_detect as dd

ROOT = Path(__file__).resolve().parent.parent


def run(*args: str, cwd: Path | None = None, check: bool = False) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "deepfake_detect", *args],
        capture_output=True,
        text=True,
        cwd=cwd or ROOT,
        env=env,
        timeout=600,
    )
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def test_version_and_help():
    from deepfake_detect import __version__

    assert run("--version").stdout.strip() == f"deepfake-detect {__version__}"
    for sub in (
        "models",
        "predict",
        "predict-video",
        "finetune",
        "evaluate",
        "info",
        "explain",
        "robustness",
        "export",
    ):
        proc = run(sub, "--help")
        assert proc.returncode == 0 and f"usage: deepfake-detect {sub}" in proc.stdout, sub


def _actions(sub):
    from deepfake_detect.cli import build_parser

    return {a.dest: a for a in build_parser()._subparsers._group_actions[0].choices[sub]._actions}


def test_backend_and_precision_choices_are_the_librarys():
    """The CLI's choices and defaults are read from the library, never typed again."""
    from deepfake_detect.backends import BACKENDS, PRECISIONS

    for sub in ("predict", "evaluate"):
        actions = _actions(sub)
        assert tuple(actions["backend"].choices) == BACKENDS, sub
        assert actions["backend"].default == "auto" == inspect.signature(dd.load_detector).parameters["backend"].default
        if "precision" in actions:
            assert tuple(actions["precision"].choices) == PRECISIONS, sub


def test_other_choices_and_defaults_are_the_librarys():
    from deepfake_detect.augment import PRESETS
    from deepfake_detect.config import VERDICTS
    from deepfake_detect.data.images import ERROR_MODES, MAX_IMAGE_PIXELS
    from deepfake_detect.explain import METHODS
    from deepfake_detect.robustness import PERTURBATIONS

    predict = inspect.signature(dd.Detector.predict).parameters
    for sub in ("predict", "evaluate"):
        actions = _actions(sub)
        assert tuple(actions["errors"].choices) == ERROR_MODES and actions["errors"].default == "raise", sub
        assert actions["batch_size"].default == predict["batch_size"].default, sub
    assert _actions("predict")["precision"].default == predict["precision"].default
    assert all(v in _actions("predict")["out"].help for v in VERDICTS)
    assert f"{MAX_IMAGE_PIXELS:,}" in _actions("predict")["max_pixels"].help
    finetune, train = _actions("finetune"), dd.TrainConfig()
    assert tuple(finetune["augment"].choices) == ("auto", *PRESETS) and finetune["augment"].default == train.augment
    for name in ("batch_size", "lr", "synth_fakes", "swap_fakes", "seed"):
        assert finetune[name].default == getattr(train, name), name
    assert finetune["freeze"].default == train.freeze
    assert finetune["freeze"].type("conv_stem, blocks.0,") == ("conv_stem", "blocks.0")
    assert tuple(_actions("explain")["method"].choices) == METHODS and _actions("explain")["method"].default == "auto"
    assert tuple(_actions("robustness")["perturbations"].choices) == tuple(PERTURBATIONS)
    assert _actions("models")["max_params"].default == dd.DEFAULT_MAX_PARAMS
    from deepfake_detect.export import export_onnx

    assert _actions("export")["opset"].default == inspect.signature(export_onnx).parameters["opset"].default


def test_bad_arguments_give_one_line_and_exit_2():
    for args in (
        ("predict",),
        ("nonsense",),
        ("predict", "x.jpg", "--batch-size", "many"),
        ("finetune", "--epochs", "1"),
        ("predict", "x.jpg", "--scores-only"),  # an option that would do nothing
        ("predict", "x.jpg", "--calibration", "y.jpg"),
        ("predict", "x.jpg", "--precision", "int8"),
    ):
        proc = run(*args)
        assert proc.returncode == 2, args
        assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr


def test_failures_give_one_line_and_exit_1(tmp_path):
    proc = run("predict", str(tmp_path / "missing.jpg"))
    assert proc.returncode == 1 and "missing.jpg" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr
    face_like(1, 64).save(tmp_path / "face.jpg")
    proc = run("predict", str(tmp_path), "--model", "resnet18-finetun")
    assert proc.returncode == 1 and "resnet18-finetune" in proc.stderr
    proc = run("--debug", "predict", str(tmp_path / "missing.jpg"))
    assert "Traceback" in proc.stderr
    (tmp_path / "empty").mkdir()
    proc = run("predict", str(tmp_path / "empty"))
    assert proc.returncode == 1
    assert proc.stderr.startswith("deepfake-detect predict: error: no image files found in ") and "empty" in proc.stderr


def test_predict_folder_writes_one_row_per_image(tmp_path):
    folder = tmp_path / "imgs"
    (folder / "nested").mkdir(parents=True)
    for i in range(3):
        face_like(i, 80).save(folder / f"face_{i}.jpg")
    face_like(9, 80).save(folder / "nested" / "deep.png")
    out = tmp_path / "submit.csv"
    proc = run("predict", str(folder), "--out", str(out), check=True)
    rows = list(csv.reader(out.read_text().splitlines()))
    assert rows[0] == ["img_name", "y_pred", "verdict"]
    assert [r[0] for r in rows[1:]] == ["face_0.jpg", "face_1.jpg", "face_2.jpg", "nested/deep.png"]
    assert all(0.0 <= float(r[1]) <= 1.0 for r in rows[1:])
    assert proc.stdout == ""  # results went to the file, messages to stderr
    table = run("predict", str(folder), check=True).stdout.splitlines()
    assert table[0].split() == ["img_name", "y_pred", "verdict"] and len(table) == 5
    assert [line.split()[2] for line in table[1:]] == [r[2] for r in rows[1:]]  # one verdict rule for both
    assert {r[2] for r in rows[1:]} <= {"real", "suspicious", "fake"}
    run("predict", str(folder), "--out", str(out), "--scores-only", check=True)
    assert out.read_text().splitlines()[0] == "img_name,y_pred"  # the challenge's two columns


def test_predict_errors_skip_lists_bad_files(tmp_path):
    face_like(1, 64).save(tmp_path / "good.jpg")
    (tmp_path / "bad.jpg").write_bytes(b"")
    proc = run("predict", str(tmp_path), "--errors", "skip", "--out", str(tmp_path / "s.csv"), check=True)
    assert "bad.jpg" in proc.stderr and "empty" in proc.stderr
    assert (tmp_path / "s.csv").read_text().splitlines()[1].startswith("good.jpg,")
    assert len((tmp_path / "s.csv").read_text().splitlines()) == 2
    assert run("predict", str(tmp_path)).returncode == 1


def test_predict_checks_the_submission_before_scoring(tmp_path):
    for d, seed in (("a", 1), ("b", 2)):
        (tmp_path / d).mkdir()
        face_like(seed, 64).save(tmp_path / d / "x.jpg")
    proc = run("predict", str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(tmp_path / "s.csv"))
    assert proc.returncode == 1 and "'x.jpg' would appear twice" in proc.stderr
    assert str(tmp_path / "a" / "x.jpg") in proc.stderr and not (tmp_path / "s.csv").exists()
    (tmp_path / "afile").write_text("")
    for out, says in ((tmp_path / "a", "it is a folder"), (tmp_path / "afile" / "s.csv", "afile is a file")):
        proc = run("predict", str(tmp_path / "a"), "--model", "no-such-model", "--out", str(out))
        assert proc.returncode == 1 and says in proc.stderr, proc.stderr  # refused before the model is looked up
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "empty.jpg").write_bytes(b"")
    proc = run("predict", str(tmp_path / "bad"), "--errors", "skip", "--out", str(tmp_path / "s.csv"))
    assert proc.returncode == 1 and "every image was skipped" in proc.stderr and not (tmp_path / "s.csv").exists()


def test_evaluate_lists_skipped_images_when_it_then_fails(tmp_path):
    face_like(1, 64).save(tmp_path / "real.jpg")
    (tmp_path / "fake.jpg").write_bytes(b"")
    (tmp_path / "labels.txt").write_text("img_name,target\nreal.jpg,0\nfake.jpg,1\n")
    proc = run("evaluate", "--labels", str(tmp_path / "labels.txt"), "--images", str(tmp_path), "--errors", "skip")
    assert proc.returncode == 1 and "only one class" in proc.stderr
    assert "skipped:" in proc.stderr and "fake.jpg" in proc.stderr  # why the fake class is empty


def test_models_info_and_evaluate(tmp_path, image_folder):
    proc = run("models", check=True)
    assert "resnet18-baseline" in proc.stdout and "11,177,538" in proc.stdout and "62,565,630" in proc.stdout
    proc = run("models", "--timm", "resnet1*", check=True)
    assert "timm:resnet18 " in proc.stdout
    info = json.loads(run("info", "resnet18-finetune", "--json", check=True).stdout)
    assert info["parameters"] == 11_177_025 and info["input_size"] == [224, 224]
    proc = run(
        "evaluate",
        "--model",
        "resnet18-finetune",
        "--labels",
        str(image_folder),
        "--json",
        "--plot",
        str(tmp_path / "roc.png"),
        check=True,
    )
    metrics = json.loads(proc.stdout)
    assert metrics["n"] == 16 and 0 <= metrics["auc"] <= 1
    assert (tmp_path / "roc.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_finetune_then_predict_with_the_checkpoint(tmp_path, image_folder):
    out = tmp_path / "run"
    proc = run(
        "finetune",
        "--train",
        str(image_folder),
        "--val",
        str(image_folder),
        "--model",
        "resnet18-finetune",
        "--epochs",
        "1",
        "--batch-size",
        "8",
        "--out",
        str(out),
        "--no-progress",
        check=True,
    )
    summary = json.loads(proc.stdout)
    assert summary["epochs"] == 1 and summary["best"]["epoch"] == 1
    proc = run("predict", str(image_folder / "real"), "--model", str(out), check=True)
    assert len(proc.stdout.splitlines()) == 9
    proc = run(
        "finetune",
        "--train",
        str(image_folder),
        "--model",
        "resnet18-finetune",
        "--epochs",
        "2",
        "--batch-size",
        "8",  # the saved run's: a resume with other settings is refused
        "--out",
        str(out),
        "--resume",
        "--no-progress",
        check=True,
    )
    assert json.loads(proc.stdout)["epochs"] == 2


def _run_into_closed_pipe(*args: str, buffered: bool) -> tuple[int, str]:
    """Run the CLI with stdout a pipe whose reader has gone before it writes (`... | head`,
    deterministically); its exit code and stderr. ``buffered``: Python's default for a pipe
    (output written when flushed), else ``PYTHONUNBUFFERED=1`` (each print written at once)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    if not buffered:
        env["PYTHONUNBUFFERED"] = "1"
    proc = subprocess.Popen(
        [sys.executable, "-m", "deepfake_detect", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env={**env, "HF_HUB_OFFLINE": "1"},
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # the reader closes early
    err = proc.stderr.read()
    return proc.wait(timeout=600), err


def test_a_reader_that_closes_stdout_early_stops_the_cli_quietly_with_141(tmp_path):
    """`deepfake-detect predict DIR | head -2` used to end with "error: [Errno 32] Broken pipe"
    (exit 1) unbuffered, and with Python's "Exception ignored ... BrokenPipeError" (exit 120) buffered."""
    for i in range(3):
        face_like(i, 64).save(tmp_path / f"face_{i}.png")
    cases = [("predict", str(tmp_path), "--no-progress"), ("predict", "--help")]
    for buffered, args in [(True, ("models",))] + [(b, a) for b in (True, False) for a in cases]:
        code, err = _run_into_closed_pipe(*args, buffered=buffered)
        assert "Broken pipe" not in err and "BrokenPipeError" not in err and "error" not in err, (args, err)
        # --help unbuffered: argparse itself ignores the failed write and exits 0
        assert code == 141 or (code == 0 and "--help" in args and not buffered), (args, buffered, code, err)
    # the same through a shell pipeline, as a user types it
    cmd = f"{sys.executable} -m deepfake_detect predict {tmp_path} --no-progress | head -1"
    proc = subprocess.run(["bash", "-c", cmd], capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert proc.stdout.split() == ["img_name", "y_pred", "verdict"] and "Broken pipe" not in proc.stderr, proc.stderr


def test_finetune_without_model_uses_the_built_in_default_as_its_help_says():
    from deepfake_detect.cli import build_parser

    parser = build_parser()
    args = parser.parse_args(["finetune", "--train", "data/", "--epochs", "1", "--out", "run/"])
    assert args.model is None  # load_detector(None): the built-in default
    finetune = parser._subparsers._group_actions[0].choices["finetune"]
    model = next(a for a in finetune._actions if a.dest == "model")
    assert not model.required and "default: the built-in default" in model.help
    assert "--model" in finetune.format_usage() and "[--model" in finetune.format_usage()


def test_export_writes_an_onnx_graph_and_reports_its_opset_and_parity(tmp_path, capsys, one_thread):
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    import inspect

    from conftest import TINY

    from deepfake_detect.backends import PARITY_ATOL
    from deepfake_detect.cli import build_parser, main
    from deepfake_detect.export import export_onnx

    export = build_parser()._subparsers._group_actions[0].choices["export"]
    opset = next(a for a in export._actions if a.dest == "opset")
    assert opset.default == inspect.signature(export_onnx).parameters["opset"].default  # one default

    out = tmp_path / "deep" / "tiny.onnx"
    assert main(["export", "--model", TINY, "--out", str(out)]) == 0
    lines = dict(line.split(None, 1) for line in capsys.readouterr().out.splitlines())
    assert lines["path"] == str(out) and lines["opset"] == str(opset.default)
    assert lines["parity"].startswith("max |P(fake) difference| vs torch ") and "ok" in lines["parity"]
    assert float(lines["parity"].split()[5]) <= PARITY_ATOL
    model = onnx.load(str(out))
    onnx.checker.check_model(model)
    assert {o.version for o in model.opset_import if o.domain in ("", "ai.onnx")} == {opset.default}

    assert main(["export", "-m", TINY, "-o", str(tmp_path / "o13.onnx"), "--opset", "13", "--no-check"]) == 0
    lines = dict(line.split(None, 1) for line in capsys.readouterr().out.splitlines())
    assert lines["opset"] == "13" and lines["parity"] == "not checked (--no-check)"
    model = onnx.load(str(tmp_path / "o13.onnx"))
    assert {o.version for o in model.opset_import if o.domain in ("", "ai.onnx")} == {13}

    assert main(["export", "-m", TINY, "-o", str(tmp_path / "o99.onnx"), "--opset", "99"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("deepfake-detect export: error: opset=99: expected an ONNX opset version from 7 to ")
    assert len(err.splitlines()) == 1 and not (tmp_path / "o99.onnx").exists()


def test_predict_max_pixels_refuses_a_larger_image_with_the_librarys_message(tmp_path):
    face_like(0, 80).save(tmp_path / "big.png")  # 6,400 pixels
    proc = run("predict", str(tmp_path / "big.png"), "--max-pixels", "1000", "--no-progress")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "big.png" in proc.stderr and "80x80 = 6,400 pixels is over the limit of 1,000" in proc.stderr
    proc = run("predict", str(tmp_path / "big.png"), "--max-pixels", "6400", "--no-progress", check=True)
    assert proc.stdout.splitlines()[1].startswith("big.png")
    proc = run("predict", str(tmp_path / "big.png"), "--max-pixels", "0")
    assert proc.returncode == 1 and "--max-pixels 0: expected" in proc.stderr


def test_an_interrupted_finetune_prints_the_command_that_resumes_it(tmp_path, image_folder, monkeypatch, capsys):
    from conftest import TINY

    from deepfake_detect.cli import main
    from deepfake_detect.detector import Detector
    from deepfake_detect.training import TrainResult

    monkeypatch.setattr(Detector, "finetune", lambda self, *a, **kw: TrainResult(interrupted=True))
    argv = ["finetune", "--train", str(image_folder), "--model", TINY, "--epochs", "3", "--batch-size", "4"]
    assert main([*argv, "--out", str(tmp_path / "my run")]) == 130
    err = capsys.readouterr().err
    assert f"--batch-size 4 --out '{tmp_path / 'my run'}' --resume" in err  # quoted, settings kept
