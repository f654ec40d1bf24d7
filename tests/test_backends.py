"""Inference backends: ONNX Runtime (and OpenVINO, where installed) parity with torch for
every built-in entry, the graph cache (hits, invalidation, atomic writes), auto's choices,
int8, and their errors."""

from __future__ import annotations

import copy
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import TINY, TinyNet, face_like
from PIL import Image
from torch import nn

import deepfake_detect as dd
from deepfake_detect import backends
from deepfake_detect.errors import DeepfakeDetectError, MissingDependencyError

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

#: The built-in registry entries (test modules register their own "test-*" entries).
BUILTIN = [n for n in dd.list_detectors() if not n.startswith("test-")]
#: Small inputs keep the exports fast; ae-classifier's Swin encoders need 224x224.
SMALL_INPUT = {"ae-classifier": (224, 224)}

#: The graph runtimes installed here (ONNX Runtime always: the module is skipped without it).
RUNTIMES = [b for b in backends.GRAPH_BACKENDS if backends.runtime_available(b)]
#: What backend="auto" runs on the CPU here.
AUTO = RUNTIMES[0]

BRANCHY = "test-backends-branchy"


class BranchyNet(TinyNet):
    """Scores a batch of 2 differently from any other batch size: the tracer (which runs a
    batch of 2) bakes in one branch, so the exported graph is wrong for other sizes."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = super().forward(x)
        return out + 3.0 if x.shape[0] == 2 else out


if BRANCHY not in dd.list_detectors():
    dd.register_detector(BRANCHY, lambda **kw: BranchyNet(**kw), config=dd.DetectorConfig(BRANCHY, input_size=32))


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch) -> Path:
    """Each test gets its own empty graph cache (never the user's)."""
    root = tmp_path / "cache"
    monkeypatch.setenv(backends.CACHE_ENV, str(root))
    return root / "onnx"


def graphs(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.onnx")) if folder.is_dir() else []


def randomize(model: nn.Module, seed: int = 0) -> nn.Module:
    """Random BatchNorm statistics too, so folding them is actually tested."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.num_features, generator=gen) * 0.1)
                m.running_var.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
                m.weight.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
    return model.eval()


def small(name: str) -> dd.Detector:
    torch.manual_seed(1)  # random init: outputs spread away from 0 and 1 for every entry
    d = dd.load_detector(name)
    d.config = d.config.replace(input_size=SMALL_INPUT.get(name, (64, 64)))
    randomize(d.model)
    return d


def tiny(seed: int = 0) -> dd.Detector:
    torch.manual_seed(seed)
    d = dd.load_detector(TINY)
    randomize(d.model, seed)
    return d


def images(n: int, size: int = 48) -> list:
    return [face_like(300 + i, size=size, fake=bool(i % 2)) for i in range(n)]


# -- parity -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "name", [pytest.param(n, marks=pytest.mark.slow) if n == "ae-classifier" else n for n in BUILTIN]
)
def test_graph_runtimes_match_torch_for_every_builtin_entry(name: str, cache: Path) -> None:
    d = small(name)
    h, w = d.config.input_size
    x = torch.randn(5, 3, h, w, generator=torch.Generator().manual_seed(1))
    want = d.predict_tensor(x).numpy()
    assert 0.001 < float(np.std(want)) or name == "ae-classifier"  # not a constant output: the check means something
    for backend in RUNTIMES:  # the first exports; the others read the cached graph
        got = d.predict_tensor(x, backend=backend).numpy()
        assert got.shape == want.shape == (5,)
        np.testing.assert_allclose(got, want, atol=1e-4, rtol=0, err_msg=backend)
    assert len(graphs(cache)) == 1


def test_predict_onnxruntime_equals_torch_and_says_so(cache: Path) -> None:
    d = tiny()
    imgs = images(7)
    want = d.predict(imgs, backend="torch")
    assert d.last_backend.backend == "torch"
    got = d.predict(imgs, backend="onnxruntime", batch_size=3)
    np.testing.assert_allclose(got, want, atol=1e-4, rtol=0)
    assert d.last_backend.backend == "onnxruntime" and d.last_backend.precision == "fp32"
    session = d.engine.runtime.session(d.model, d.config, "onnxruntime")
    assert session is not None and session.threads == backends.available_cores()


# -- the cache ----------------------------------------------------------------------------
def test_disk_cache_hit_in_a_new_detector_skips_the_export(cache: Path, monkeypatch) -> None:
    imgs = images(4)
    first = tiny().predict(imgs, backend="onnxruntime")
    (path,) = graphs(cache)
    monkeypatch.setattr("deepfake_detect.export.export_onnx", _no_export)
    again = tiny()  # the same weights, built again: another object, the same content
    np.testing.assert_array_equal(again.predict(imgs, backend="onnxruntime"), first)
    assert graphs(cache) == [path]


def _no_export(*args, **kwargs):
    raise AssertionError("exported although the graph was cached")


def test_changed_weights_never_use_a_stale_graph(cache: Path) -> None:
    d = tiny()
    imgs = images(4)
    before = d.predict(imgs, backend="onnxruntime")
    with torch.no_grad():  # fine-tuning in place: the same tensors, a new version
        d.model.head.bias.add_(2.0)
    after = d.predict(imgs, backend="onnxruntime")
    np.testing.assert_allclose(after, d.predict(imgs, backend="torch"), atol=1e-4, rtol=0)
    assert np.abs(after - before).max() > 0.05
    assert len(graphs(cache)) == 2
    # new tensor objects (load_state_dict with assign=True), the old weights back
    state = tiny().model.state_dict()
    d.model.load_state_dict(state, assign=True)
    np.testing.assert_allclose(d.predict(imgs, backend="onnxruntime"), before, atol=1e-6, rtol=0)
    assert len(graphs(cache)) == 2  # the first graph again, from disk


def test_weights_replaced_through_data_never_use_a_stale_session(cache: Path) -> None:
    # vector_to_parameters (and model.half()/.float()) assign param.data: the same tensor
    # objects and version counters, new values
    from torch.nn.utils import parameters_to_vector, vector_to_parameters

    d = tiny()
    imgs = images(4)
    before = d.predict(imgs, backend="onnxruntime")
    vector_to_parameters(parameters_to_vector(d.model.parameters()) * 3, d.model.parameters())
    after = d.predict(imgs, backend="onnxruntime")
    np.testing.assert_allclose(after, d.predict(imgs, backend="torch"), atol=1e-4, rtol=0)
    assert np.abs(after - before).max() > 0.05


def test_a_changed_config_never_uses_a_stale_session(cache: Path) -> None:
    d = tiny()
    imgs = images(4)
    d.predict(imgs, backend="onnxruntime")  # a session for 32x32 inputs and a sigmoid output
    d.config = d.config.replace(input_size=(40, 40))
    np.testing.assert_allclose(
        d.predict(imgs, backend="onnxruntime"), d.predict(imgs, backend="torch"), atol=1e-4, rtol=0
    )
    assert len(graphs(cache)) == 2


def test_weights_digest_depends_on_content_config_and_extra() -> None:
    a, b, c = tiny(0), tiny(0), tiny(1)
    digest = backends.weights_digest
    assert digest(a.model, a.config) == digest(b.model, b.config)  # content, not identity
    assert digest(a.model, a.config) != digest(c.model, c.config)
    assert digest(a.model, a.config) != digest(a.model, a.config.replace(input_size=(40, 40)))
    assert digest(a.model, a.config, "int8") != digest(a.model, a.config, "fp32")


def test_cache_write_is_atomic_and_a_failed_export_leaves_nothing(cache: Path, monkeypatch, caplog) -> None:
    def half_written(detector, path, **kwargs):
        Path(path).write_bytes(b"\x08\x01partial graph")
        raise DeepfakeDetectError("simulated exporter failure")

    monkeypatch.setattr("deepfake_detect.export.export_onnx", half_written)
    d = tiny()
    with pytest.raises(DeepfakeDetectError, match="simulated"):
        d.predict(images(2), backend="onnxruntime")
    assert cache.is_dir() and list(cache.iterdir()) == []  # neither a graph nor a temporary file
    # auto: the failure is logged, torch scores, and it is not retried for these weights
    monkeypatch.setattr(backends, "AUTO_EXPORT_MIN_IMAGES", 2)
    monkeypatch.setattr(backends, "AUTO_CACHED_MIN_IMAGES", 2)
    d = tiny()
    with caplog.at_level(logging.WARNING, logger="deepfake_detect.backends"):
        scores = d.predict(images(3))
    assert d.last_backend.backend == "torch" and "simulated" in d.last_backend.reason
    assert "simulated exporter failure" in caplog.text
    np.testing.assert_allclose(scores, d.predict(images(3), backend="torch"), atol=1e-6)
    monkeypatch.setattr("deepfake_detect.export.export_onnx", _no_export)
    d.predict(images(3))
    assert d.last_backend.backend == "torch"


def test_unreadable_cached_graph_is_rebuilt(cache: Path) -> None:
    d = tiny()
    want = d.predict(images(3), backend="onnxruntime")
    (path,) = graphs(cache)
    path.write_bytes(b"not a graph")
    np.testing.assert_allclose(tiny().predict(images(3), backend="onnxruntime"), want, atol=1e-6)
    assert path.stat().st_size > 100


def test_clear_cache(cache: Path) -> None:
    tiny().predict(images(2), backend="onnxruntime")
    assert backends.clear_cache() == 1 and graphs(cache) == []


def test_cache_location_follows_the_environment(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv(backends.CACHE_ENV, str(tmp_path / "mine"))
    assert backends.graph_dir() == tmp_path / "mine" / "onnx"
    monkeypatch.delenv(backends.CACHE_ENV)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert backends.graph_dir() == tmp_path / "xdg" / "deepfake-detect" / "onnx"


def test_deepcopy_gives_a_detector_without_the_session() -> None:
    d = tiny()
    d.predict(images(2), backend="onnxruntime")
    twin = copy.deepcopy(d)
    assert twin.engine.runtime.session(twin.model, twin.config, "onnxruntime") is None
    np.testing.assert_allclose(twin.predict(images(2), backend="onnxruntime"), d.predict(images(2)), atol=1e-6)


# -- auto ---------------------------------------------------------------------------------
def test_auto_uses_torch_for_a_few_images_without_exporting(cache: Path, monkeypatch) -> None:
    monkeypatch.setattr("deepfake_detect.export.export_onnx", _no_export)
    d = tiny()
    assert d.backend == "auto"
    d.predict(images(3))
    assert d.last_backend.backend == "torch" and "fewer than" in d.last_backend.reason
    d.predict(images(backends.AUTO_CACHED_MIN_IMAGES))  # no graph on disk: still torch
    assert d.last_backend.backend == "torch" and not cache.exists()


def test_a_few_images_import_no_graph_runtime(tmp_path: Path) -> None:
    """The CLI's first call stays as fast as before: no runtime is imported, no weights hashed."""
    face_like(1, 64).save(tmp_path / "face.png")
    code = (
        "import sys, deepfake_detect as dd; from deepfake_detect import backends; "
        "backends.weights_digest = None; d = dd.load_detector(); d.predict(sys.argv[1]); "
        "assert d.last_backend.backend == 'torch', d.last_backend; "
        "print(sorted(m for m in ('onnx', 'onnxruntime', 'openvino') if m in sys.modules))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "face.png")], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_auto_uses_a_cached_graph_or_a_large_job(cache: Path, monkeypatch) -> None:
    n = backends.AUTO_CACHED_MIN_IMAGES
    monkeypatch.setattr(backends, "AUTO_EXPORT_MIN_IMAGES", n + 4)
    tiny().predict(images(2), backend="onnxruntime")  # another process exported these weights
    d = tiny()
    want = d.predict(images(n), backend="torch")
    np.testing.assert_allclose(d.predict(images(n)), want, atol=1e-4)
    assert d.last_backend.backend == AUTO and "cached" in d.last_backend.reason
    d.predict(images(1))  # the session is in memory now: even one image uses it
    assert d.last_backend.backend == AUTO
    other = tiny(seed=5)  # no graph for these weights: exported once the job is large enough
    other.predict(images(n))
    assert other.last_backend.backend == "torch"
    other.predict(images(n + 4))
    assert other.last_backend.backend == AUTO and "exported" in other.last_backend.reason


def test_auto_falls_back_to_torch_when_the_cache_cannot_be_written(cache: Path, monkeypatch, caplog) -> None:
    import errno

    def disk_full(detector, path, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr("deepfake_detect.export.export_onnx", disk_full)
    monkeypatch.setattr(backends, "AUTO_EXPORT_MIN_IMAGES", 2)
    monkeypatch.setattr(backends, "AUTO_CACHED_MIN_IMAGES", 2)
    d = tiny()
    with caplog.at_level(logging.WARNING, logger="deepfake_detect.backends"):
        scores = d.predict(images(3))  # the default backend never writes its way into a failure
    assert d.last_backend.backend == "torch" and "No space left" in d.last_backend.reason
    assert "No space left" in caplog.text
    np.testing.assert_allclose(scores, d.predict(images(3), backend="torch"), atol=1e-6)


def test_auto_falls_back_when_the_graph_disagrees_with_torch(cache: Path, monkeypatch, caplog) -> None:
    d = dd.load_detector(BRANCHY)
    with pytest.raises(DeepfakeDetectError, match="disagrees with the torch model"):
        d.predict(images(3), backend="onnxruntime")
    assert graphs(cache) == []  # a wrong graph is never cached
    d.predict(images(3))
    assert d.last_backend.backend == "torch" and "could not be exported" in d.last_backend.reason
    monkeypatch.setattr(backends, "AUTO_EXPORT_MIN_IMAGES", 2)
    monkeypatch.setattr(backends, "AUTO_CACHED_MIN_IMAGES", 2)
    d = dd.load_detector(BRANCHY)
    with caplog.at_level(logging.WARNING, logger="deepfake_detect.backends"):
        scores = d.predict(images(3))
    assert d.last_backend.backend == "torch" and "disagrees" in caplog.text
    np.testing.assert_allclose(scores, d.predict(images(3), backend="torch"), atol=1e-6)


def test_backend_argument_checks_and_load_detector_default() -> None:
    d = dd.load_detector(TINY, backend="torch")
    assert d.backend == "torch"
    d.predict(images(2))
    assert d.last_backend.backend == "torch"
    with pytest.raises(DeepfakeDetectError, match="backend='onnx'"):
        dd.load_detector(TINY, backend="onnx")
    with pytest.raises(DeepfakeDetectError, match="precision='int4'"):
        d.predict(images(1), precision="int4")
    # one check for every backend argument: graph_parity takes the graph runtimes only
    assert backends.check_backend("openvino", backends.GRAPH_BACKENDS) == "openvino"
    with pytest.raises(DeepfakeDetectError, match="backend='torch': expected one of 'openvino', 'onnxruntime'"):
        backends.graph_parity(d, "unused.onnx", backend="torch")


# -- missing extra ------------------------------------------------------------------------
def test_without_the_extras(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import onnxruntime -> ImportError
    monkeypatch.setitem(sys.modules, "openvino", None)
    assert not backends.onnxruntime_available() and not backends.runtime_available("openvino")
    d = tiny()
    with pytest.raises(MissingDependencyError, match=r"pip install 'deepfake-detect\[onnx\]'"):
        d.predict(images(2), backend="onnxruntime")
    with pytest.raises(MissingDependencyError, match=r"pip install 'deepfake-detect\[openvino\]'"):
        d.predict(images(2), backend="openvino")
    with pytest.raises(MissingDependencyError, match=r"deepfake-detect\[onnx\]"):
        d.predict(images(2), precision="int8", calibration=images(2))
    monkeypatch.setattr(backends, "AUTO_EXPORT_MIN_IMAGES", 1)
    monkeypatch.setattr(backends, "AUTO_CACHED_MIN_IMAGES", 1)
    d.predict(images(2))
    assert d.last_backend.backend == "torch" and "no graph runtime is installed" in d.last_backend.reason


def test_auto_prefers_openvino_then_onnxruntime(monkeypatch) -> None:
    monkeypatch.setattr(backends, "AUTO_EXPORT_MIN_IMAGES", 1)
    monkeypatch.setattr(backends, "AUTO_CACHED_MIN_IMAGES", 1)
    d = tiny()
    d.predict(images(2))
    assert d.last_backend.backend == AUTO
    monkeypatch.setitem(sys.modules, "openvino", None)
    d = tiny()
    d.predict(images(2))
    assert d.last_backend.backend == "onnxruntime"


# -- precisions ---------------------------------------------------------------------------
def test_int8_is_close_to_fp32_reported_and_cached_per_calibration(cache: Path, caplog) -> None:
    d = tiny()
    imgs = images(12, size=64)
    fp32 = d.predict(imgs, backend="torch")
    with caplog.at_level(logging.WARNING, logger="deepfake_detect.backends"):
        int8 = d.predict(imgs, precision="int8", calibration=imgs[:8])
    assert d.last_backend.backend == AUTO and d.last_backend.precision == "int8"
    assert "int8" in caplog.text
    assert np.abs(int8 - fp32).max() < 0.05 and not np.array_equal(int8, fp32)
    assert len(graphs(cache)) == 2  # the float32 graph and its int8 version
    for backend in RUNTIMES:  # every runtime runs the same int8 file
        again = d.predict(imgs, precision="int8", calibration=imgs[:8], backend=backend)
        assert d.last_backend.backend == backend and np.abs(again - fp32).max() < 0.05
    d.predict(imgs, precision="int8", calibration=imgs[:8])  # same calibration: the same graph
    assert len(graphs(cache)) == 2
    d.predict(imgs, precision="int8", calibration=imgs[4:12])
    assert len(graphs(cache)) == 3
    d.predict(imgs)  # and back to float32: never int8 unless asked
    assert d.last_backend.precision == "fp32"


def test_int8_prepares_unchanged_calibration_files_once(cache: Path, tmp_path: Path, monkeypatch) -> None:
    files = []
    for i, im in enumerate(images(6, size=64)):
        files.append(tmp_path / f"c{i}.png")
        im.save(files[-1])
    prepared = []
    real = backends._calibration_batch
    monkeypatch.setattr(backends, "_calibration_batch", lambda det, cal: prepared.append(1) or real(det, cal))
    d = tiny()
    first = d.predict(files, precision="int8", calibration=files)
    again = d.predict(files, precision="int8", calibration=files)
    assert len(prepared) == 1 and np.array_equal(first, again)  # the second call reused the digest
    images(1, size=64)[0].rotate(90).save(files[0])  # a changed file is prepared again
    os.utime(files[0], ns=(time.time_ns(), time.time_ns() + 10**9))
    d.predict(files, precision="int8", calibration=files)
    assert len(prepared) == 2 and len(graphs(cache)) == 3  # float32, and int8 for each calibration set
    d.predict(files, precision="int8", calibration=[Image.open(f) for f in files])  # in-memory: always prepared
    assert len(prepared) == 3
    listed = []
    import deepfake_detect.data.images as images_module

    flatten = images_module.flatten_inputs
    monkeypatch.setattr(images_module, "flatten_inputs", lambda x: listed.append(x) or flatten(x))
    os.utime(files[1], ns=(time.time_ns(), time.time_ns() + 2 * 10**9))
    d.predict(files[:1], precision="int8", calibration=tmp_path)  # a folder with a changed file: listed once
    assert listed.count(tmp_path) == 1 and len(prepared) == 4
    os.utime(files[2], ns=(time.time_ns(), time.time_ns() + 3 * 10**9))
    d.predict(files[:1], precision="int8", calibration=(f for f in files))  # an iterator is not used up early
    assert len(prepared) == 5


def test_a_cached_int8_graph_is_used_without_exporting_the_float32_one(cache: Path) -> None:
    d = tiny()
    imgs = images(8, size=64)
    first = d.predict(imgs, precision="int8", calibration=imgs)
    (cache / f"{backends.weights_digest(d.model, d.config, 'fp32')}.onnx").unlink()
    later = copy.deepcopy(d)  # as a later process: the same weights, no session in memory
    again = later.predict(imgs, precision="int8", calibration=imgs)
    assert len(graphs(cache)) == 1  # only the int8 graph: float32 was not exported again
    np.testing.assert_allclose(again, first, atol=1e-6)


def test_int8_where_the_cache_folder_cannot_be_written(tmp_path: Path, monkeypatch) -> None:
    blocker = tmp_path / "a-file"  # the cache folder would be under a file: mkdir fails
    blocker.write_bytes(b"")
    monkeypatch.setenv(backends.CACHE_ENV, str(blocker))
    d = tiny()
    imgs = images(8, size=64)
    fp32 = d.predict(imgs, backend="onnxruntime")  # the float32 graph lives in memory only
    int8 = d.predict(imgs, backend="onnxruntime", precision="int8", calibration=imgs)
    assert d.last_backend.precision == "int8" and np.abs(int8 - fp32).max() < 0.05


def test_int8_and_half_precision_errors() -> None:
    d = tiny()
    with pytest.raises(DeepfakeDetectError, match="calibration images"):
        d.predict(images(2), precision="int8")
    with pytest.raises(DeepfakeDetectError, match="graph runtime, not torch"):
        d.predict(images(2), precision="int8", backend="torch", calibration=images(2))
    for precision in ("fp16", "bf16"):
        with pytest.raises(DeepfakeDetectError, match="CUDA"):
            d.predict(images(2), precision=precision)
        with pytest.raises(DeepfakeDetectError, match="CUDA"):
            d.predict(images(2), precision=precision, backend="onnxruntime")


# -- the command line ---------------------------------------------------------------------
def test_cli_backend_and_precision(tmp_path: Path, cache: Path) -> None:
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(4):
        face_like(i, 64, fake=bool(i % 2)).save(folder / f"face_{i}.png")
    model = tmp_path / "model"
    d = small("efficientnet-lite0")
    d.save_pretrained(model)

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "deepfake_detect", "predict", str(folder), "--model", str(model), *args],
            capture_output=True,
            text=True,
            timeout=600,
        )

    def scores(csv: Path) -> np.ndarray:
        return np.array([float(line.split(",")[1]) for line in csv.read_text().splitlines()[1:]])

    for backend in ("torch", *RUNTIMES):
        proc = run("--backend", backend, "--out", str(tmp_path / f"{backend}.csv"))
        assert proc.returncode == 0, proc.stderr
        np.testing.assert_allclose(scores(tmp_path / f"{backend}.csv"), scores(tmp_path / "torch.csv"), atol=1e-4)
    assert len(graphs(cache)) == 1
    proc = run("--backend", "tensorrt")
    assert proc.returncode == 2 and "invalid choice" in proc.stderr
    proc = run("--precision", "int8")
    assert proc.returncode == 2 and "--calibration" in proc.stderr  # a usage error
    proc = run("--precision", "int8", "--calibration", str(folder))
    assert proc.returncode == 0 and "int8" in proc.stderr
