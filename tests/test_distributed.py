"""Prediction across processes under torchrun (2 CPU processes, gloo), and its helpers."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import face_like

import deepfake_detect as dd
from deepfake_detect import load_detector
from deepfake_detect.distributed import DistContext, local_device, threads_per_process
from deepfake_detect.submission import image_names, write_submission

TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
#: A hang would show as a timeout; a run takes about 10 s on a loaded 2-core machine.
TIMEOUT_S = 120


def torchrun(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    return subprocess.run([*TORCHRUN, *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=TIMEOUT_S)


@pytest.fixture(scope="module")
def small_model(tmp_path_factory) -> Path:
    """A randomly initialised timm test net (373k parameters) at 32x32, saved with
    save_pretrained; its head is scaled so that the images' scores are far apart."""
    torch.manual_seed(0)
    det = load_detector("timm:test_resnet")
    det.config = det.config.replace(input_size=(32, 32))
    with torch.no_grad():
        det.model.get_classifier().weight.mul_(200)
    return det.save_pretrained(tmp_path_factory.mktemp("model") / "small")


@pytest.fixture
def seven_images(tmp_path) -> Path:
    """7 images (an odd count: one rank gets one more), one of them in a subfolder."""
    folder = tmp_path / "imgs"
    (folder / "sub").mkdir(parents=True)
    for i in range(6):
        face_like(i, 48, fake=i % 2 == 1).save(folder / f"img_{i}.jpg")
    face_like(9, 48).save(folder / "sub" / "z.png")
    return folder


def reference_csv(model: Path, folder: Path, out: Path) -> list[list[str]]:
    """The single-process submission, written as ``deepfake-detect predict`` writes it."""
    inputs, names = image_names([folder])
    write_submission(names, load_detector(model).predict(inputs), out)
    return list(csv.reader(out.read_text().splitlines()))


@pytest.mark.slow
def test_cli_predict_under_torchrun_writes_the_single_process_csv(tmp_path, small_model, seven_images, one_thread):
    expected = reference_csv(small_model, seven_images, tmp_path / "single.csv")
    proc = torchrun(
        "-m",
        "deepfake_detect",
        "predict",
        str(seven_images),
        "--model",
        str(small_model),
        "--out",
        str(tmp_path / "multi.csv"),
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = list(csv.reader((tmp_path / "multi.csv").read_text().splitlines()))
    assert rows[0] == ["img_name", "y_pred", "verdict"] and len(rows) == 8  # the padding of sharding adds no row
    assert [r[0] for r in rows] == [r[0] for r in expected]  # file order, no duplicates
    assert len({r[0] for r in rows[1:]}) == 7
    np.testing.assert_allclose([float(r[1]) for r in rows[1:]], [float(r[1]) for r in expected[1:]], atol=1e-5)
    assert len({r[1] for r in rows[1:]}) > 3  # the scores differ, so an order mix-up would show
    assert proc.stderr.count("wrote 7 rows") == 1  # rank 0 alone reports
    assert list(tmp_path.glob(".multi.csv.*")) == []  # no temporary file left behind


PREDICT_SCRIPT = textwrap.dedent("""
    import json, os, sys, warnings
    import numpy as np
    from deepfake_detect import ImageLoadError, SkippedImagesWarning, load_detector

    model, folder, bad, results = sys.argv[1:5]
    det = load_detector(model)
    out = {{"threads": __import__("torch").get_num_threads()}}
    out["folder"] = det.predict(folder, distributed=True).tolist()
    # each call makes and destroys a process group: again and again, in one run
    out["again"] = [det.predict(folder, distributed=True).tolist() == out["folder"] for _ in range(4)]
    files = sorted(os.path.join(d, f) for d, _, fs in os.walk(folder) for f in fs)
    items = files[:3] + [bad] + files[3:]  # the bad file is input 3, on rank 1
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        skip = det.predict(items, errors="skip", distributed=True)
    out["skip"] = [None if np.isnan(s) else float(s) for s in skip]
    out["skip_warnings"] = [[str(e) for e in w.message.errors] for w in caught
                            if isinstance(w.message, SkippedImagesWarning)]
    try:
        det.predict(items, distributed=True)
        out["raised"] = None
    except ImageLoadError as e:
        out["raised"] = str(e)
    try:
        import onnxruntime  # noqa: F401
        graph = load_detector(model)
        many = sorted(os.path.join(d, f) for d, _, fs in os.walk(folder) for f in fs) * 6  # 42: past the fast-path size
        out["graph"] = graph.predict(many, backend="onnxruntime", distributed=True).tolist()
        out["graph_ran"] = graph.last_backend.backend
        out["graph_built_torch"] = graph.engine._fast is not None  # the optimised torch copy: not needed
    except ImportError:
        pass
    with open(os.path.join(results, "rank" + os.environ["RANK"] + ".json"), "w") as f:
        json.dump(out, f)
""")


@pytest.mark.slow
def test_predict_distributed_returns_every_score_on_every_rank(tmp_path, small_model, seven_images, one_thread):
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"not an image")
    script = tmp_path / "predict.py"
    script.write_text(PREDICT_SCRIPT.format())
    results = tmp_path / "results"
    results.mkdir()
    proc = torchrun(str(script), str(small_model), str(seven_images), str(bad), str(results), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ranks = [json.loads((results / f"rank{r}.json").read_text()) for r in (0, 1)]
    expected = load_detector(small_model).predict(seven_images)
    for out in ranks:
        np.testing.assert_allclose(out["folder"], expected, atol=1e-5)  # all 7, in input order
        assert out["again"] == [True] * 4
        assert out["skip"][3] is None and None not in out["skip"][:3] + out["skip"][4:]
        np.testing.assert_allclose(out["skip"][:3] + out["skip"][4:], expected, atol=1e-5)
        assert len(out["skip_warnings"]) == 1 and len(out["skip_warnings"][0]) == 1  # one warning, no duplicate
        assert "broken.jpg" in out["skip_warnings"][0][0]
        assert out["raised"] is not None and "broken.jpg" in out["raised"]  # raised on rank 0 too
        assert out["threads"] == 1  # OMP_NUM_THREADS is respected
        if "graph" in out:  # a graph runtime scores every step; the torch fast path is never built
            files = sorted(str(p) for p in seven_images.rglob("*") if p.is_file())
            np.testing.assert_allclose(out["graph"], load_detector(small_model).predict(files * 6), atol=1e-4)
            assert out["graph_ran"] == "onnxruntime" and out["graph_built_torch"] is False


@pytest.mark.slow
def test_a_bad_file_on_one_rank_fails_every_rank_with_its_name(tmp_path, small_model, seven_images):
    (seven_images / "img_3.jpg").write_bytes(b"")  # the 4th file in order: rank 1's
    out = tmp_path / "submit.csv"
    # --tee 3: each line of a worker's output starts with [default<local rank>]:
    proc = torchrun(
        "--tee",
        "3",
        "-m",
        "deepfake_detect",
        "predict",
        str(seven_images),
        "--model",
        str(small_model),
        "--out",
        str(out),
        cwd=tmp_path,
    )  # a hang is a TimeoutExpired
    assert proc.returncode != 0
    output = proc.stdout + proc.stderr
    lines = [line for line in output.splitlines() if "deepfake-detect predict: error:" in line]
    assert lines and all("img_3.jpg: file is empty" in line for line in lines), output[-3000:]
    assert any(line.startswith("[default0]:") for line in lines)  # rank 0 names rank 1's file
    assert not out.exists()
    proc = torchrun(
        "--tee",
        "3",
        "-m",
        "deepfake_detect",
        "predict",
        str(seven_images),
        "--model",
        str(small_model),
        "--out",
        str(out),
        "--errors",
        "skip",
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    output = proc.stdout + proc.stderr
    skipped = [line for line in output.splitlines() if "skipped: cannot load image" in line]
    assert len(skipped) == 1 and skipped[0].startswith("[default0]:") and "img_3.jpg" in skipped[0]
    names = [r[0] for r in csv.reader(out.read_text().splitlines())]
    assert names == ["img_name", "img_0.jpg", "img_1.jpg", "img_2.jpg", "img_4.jpg", "img_5.jpg", "sub/z.png"]


# -- in one process ----------------------------------------------------------------------
def test_distributed_without_torchrun_is_an_ordinary_call(monkeypatch, jpeg_files, one_thread):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    det = load_detector("test-tiny")
    np.testing.assert_array_equal(det.predict(jpeg_files, distributed=True), det.predict(jpeg_files))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        scores = det.predict([jpeg_files[0], b""], errors="skip", distributed=True)
    assert np.isnan(scores[1]) and len(caught) == 1 and isinstance(caught[0].message, dd.SkippedImagesWarning)
    with pytest.raises(dd.ImageLoadError, match="empty"):
        det.predict([jpeg_files[0], b""], distributed=True)


def test_shards_cover_every_index_once_without_padding():
    items = list(range(7))
    parts = [DistContext(rank=r, world_size=3).shard(items, pad=False) for r in range(3)]
    assert sorted(i for p in parts for i in p) == items
    padded = [DistContext(rank=r, world_size=3).shard(items) for r in range(3)]
    assert [len(p) for p in padded] == [3, 3, 3]
    # padding wraps around even when there are fewer items than ranks
    assert [DistContext(rank=r, world_size=4).shard([5]) for r in range(4)] == [[5]] * 4
    assert DistContext(rank=1, world_size=2).shard([]) == []


def test_device_and_threads_per_process(monkeypatch):
    monkeypatch.setenv("LOCAL_RANK", "3")
    assert local_device("cuda") == torch.device("cuda", 3)
    assert local_device("cuda:1") == torch.device("cuda", 1) and local_device("cpu") == torch.device("cpu")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(16)), raising=False)
    assert threads_per_process() == 8
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert threads_per_process() is None  # the user's (or torchrun's) setting stands
    monkeypatch.delenv("OMP_NUM_THREADS")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "1")
    assert threads_per_process() is None


def test_errors_cross_processes_intact():
    import pickle

    from deepfake_detect.distributed import _portable

    err = pickle.loads(pickle.dumps(dd.ImageLoadError("a/b.jpg", "file is empty (0 bytes)")))
    assert isinstance(err, dd.ImageLoadError) and err.source == "a/b.jpg" and "a/b.jpg" in str(err)

    class Unpicklable(Exception):
        def __init__(self, a, b):
            super().__init__(f"{a}+{b}")

    sent = _portable(Unpicklable(1, 2), rank=1)
    assert isinstance(sent, dd.DeepfakeDetectError) and "rank 1" in str(sent) and "1+2" in str(sent)
    with pytest.raises(dd.ImageLoadError):
        DistContext().raise_if_any(dd.ImageLoadError("x", "y"))
    DistContext().raise_if_any(None)


@pytest.mark.slow
def test_a_bad_training_image_on_one_rank_stops_every_rank_with_its_name(tmp_path):
    """Regression: the rank that read the file named it; the other died on "Connection closed
    by peer" (gloo) in its next collective."""
    for label in ("real", "fake"):
        (tmp_path / "train" / label).mkdir(parents=True)
        for i in range(8):
            face_like(i + (50 if label == "fake" else 0), 48, fake=label == "fake").save(
                tmp_path / "train" / label / f"{label}_{i}.png"
            )
    (tmp_path / "train" / "fake" / "fake_5.png").write_bytes(b"not a png")
    proc = torchrun(
        "--tee",
        "3",
        "-m",
        "deepfake_detect",
        "finetune",
        "--train",
        str(tmp_path / "train"),
        "--model",
        "resnet18-baseline",
        "--epochs",
        "1",
        "--batch-size",
        "4",
        "--out",
        str(tmp_path / "run"),
        "--no-progress",
        cwd=tmp_path,
    )  # a hang is a TimeoutExpired
    assert proc.returncode != 0
    output = proc.stdout + proc.stderr
    lines = [line for line in output.splitlines() if "deepfake-detect finetune: error:" in line]
    assert {line[:11] for line in lines} == {"[default0]:", "[default1]:"}, output[-3000:]
    assert all("fake_5.png" in line for line in lines), output[-3000:]
