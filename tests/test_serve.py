"""The detection service (``deepfake_detect.serve``) through FastAPI's test client, on generated images."""

from __future__ import annotations

import asyncio
import base64
import io
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("fastapi", reason="the 'serve' extra is not installed")
pytest.importorskip("httpx", reason="FastAPI's test client needs httpx")

from conftest import TINY, face_like  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402

import deepfake_detect as dd  # noqa: E402
from deepfake_detect.data.images import load_image  # noqa: E402
from deepfake_detect.errors import DeepfakeDetectError, ImageLoadError  # noqa: E402
from deepfake_detect.serve import (  # noqa: E402
    MicroBatcher,
    QueueFullError,
    RequestError,
    ServeConfig,
    create_app,
    is_loopback,
)

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "images"


def encode(img: Image.Image, fmt: str = "PNG", **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


@pytest.fixture
def tiny() -> dd.Detector:
    """A tiny random detector (32x32 input): scores differ from image to image, fast on CPU."""
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    det = dd.build_detector(TINY)
    det.config = det.config.replace(threshold=0.5)
    return det.to("cpu")


@pytest.fixture
def images() -> list[tuple[str, bytes]]:
    """Six small images of different sizes and formats."""
    out = []
    for i in range(6):
        img = face_like(i, size=48 + 16 * i, fake=bool(i % 2))
        fmt = "JPEG" if i % 3 == 0 else "PNG"
        out.append((f"img_{i}.{fmt.lower()}", encode(img, fmt)))
    return out


def multipart(items: list[tuple[str, bytes]]) -> list[tuple[str, tuple[str, bytes, str]]]:
    return [("file", (name, data, "application/octet-stream")) for name, data in items]


# -- library pieces the service uses ---------------------------------------------------------
def test_load_image_reads_bytes_as_it_reads_the_file(tmp_path, images):
    name, data = images[0]
    (tmp_path / name).write_bytes(data)
    assert np.array_equal(np.asarray(load_image(data)), np.asarray(load_image(tmp_path / name)))
    with pytest.raises(ImageLoadError, match="empty"):
        load_image(b"")
    with pytest.raises(ImageLoadError, match="damaged or unsupported GIF file"):
        load_image(b"GIF89 but not really an image")
    with pytest.raises(ImageLoadError, match="not an image file"):
        load_image(b"just some text")
    with pytest.raises(ImageLoadError, match="over the limit"):
        load_image(data, max_pixels=100)


def test_predict_accepts_bytes(tiny, tmp_path, images):
    paths = []
    for name, data in images:
        (tmp_path / name).write_bytes(data)
        paths.append(tmp_path / name)
    np.testing.assert_array_equal(tiny.predict([d for _, d in images]), tiny.predict(paths))
    assert tiny.predict(images[0][1]).shape == (1,)


def test_crop_face_box_is_the_box_crop_face_used():
    pytest.importorskip("cv2", reason="the 'face' extra is not installed")
    from deepfake_detect.face import CropPolicy, crop_face, crop_face_box, detect_largest_face

    img = load_image(EXAMPLES / "astronaut.jpg")
    crop, box = crop_face_box(img)
    assert box == detect_largest_face(img) and box is not None
    assert crop.size == img.crop(CropPolicy().crop_box(box, img.size)).size == crop_face(img)[0].size
    blank = Image.new("RGB", (64, 64), (128, 128, 128))
    assert crop_face_box(blank)[1] is None


def test_every_face_crop_is_cut_face(tiny):
    """predict's preprocessor, crop_face(_box) and the service all crop with cut_face."""
    pytest.importorskip("cv2", reason="the 'face' extra is not installed")
    from deepfake_detect.face import CropPolicy, FaceCropPreprocessor, crop_face_box, cut_face

    img = load_image(EXAMPLES / "astronaut.jpg")
    policy = CropPolicy(margin=0.1, square=False)
    face = cut_face(img, policy)
    assert face.found and face.region == policy.crop_box(face.box, img.size)
    assert np.array_equal(np.asarray(face.image), np.asarray(img.crop(face.region)))
    crop, box = crop_face_box(img, policy)
    assert box == face.box and np.array_equal(np.asarray(crop), np.asarray(face.image))
    prep = tiny.preprocessor()
    array, box = FaceCropPreprocessor(prep, policy=policy).prepare_with_box(img)
    assert box == face.box and np.array_equal(array, prep.prepare(face.image))
    whole = cut_face(Image.new("RGB", (64, 64), (128, 128, 128)))
    assert not whole.found and whole.region is None and whole.image.size == (64, 64)


# -- predictions -------------------------------------------------------------------------------
def test_predict_multipart_and_json_equal_detector_predict(tiny, images):
    app = create_app(tiny, max_batch=4, max_wait_ms=5)
    with TestClient(app) as client:
        r = client.post("/v1/predict", files=multipart(images))
        assert r.status_code == 200, r.text
        body = r.json()
        expected = tiny.predict([d for _, d in images])  # after the service: the same inference model
        assert body["detector"] == tiny.source
        assert [x["name"] for x in body["results"]] == [n for n, _ in images]
        got = np.array([x["p_fake"] for x in body["results"]])
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)
        assert len(set(np.round(got, 6))) > 1  # the comparison is not between constants
        for x in body["results"]:
            assert x["label"] == ("fake" if x["p_fake"] >= tiny.config.threshold else "real")
            assert x["face_box"] is None

        payload = {
            "images": [{"name": n, "data": base64.b64encode(d).decode()} for n, d in images[:3]]
            + ["data:image/png;base64," + base64.b64encode(images[3][1]).decode()]
        }
        r = client.post("/v1/predict", json=payload)
        assert r.status_code == 200, r.text
        results = r.json()["results"]
        assert [x["name"] for x in results] == [n for n, _ in images[:3]] + ["images[3]"]
        np.testing.assert_allclose([x["p_fake"] for x in results], expected[:4], rtol=0, atol=1e-6)


def test_labels_follow_the_detectors_threshold(tiny, images):
    scores = tiny.predict([d for _, d in images], backend=served_backend())  # what the service will score with
    tiny.config = tiny.config.replace(threshold=float(np.median(scores)))
    with TestClient(create_app(tiny)) as client:
        results = client.post("/v1/predict", files=multipart(images)).json()["results"]
    labels = [x["label"] for x in results]
    assert labels == ["fake" if s >= tiny.config.threshold else "real" for s in scores]
    assert set(labels) == {"fake", "real"}
    # a sensitive operating point adds a "suspicious" band below the threshold
    tiny.config = tiny.config.replace(suspicious_threshold=float(np.min(scores)))
    with TestClient(create_app(tiny)) as client:
        results = client.post("/v1/predict", files=multipart(images)).json()["results"]
        info = client.get("/v1/models").json()
    assert [x["label"] for x in results] == ["fake" if s >= tiny.config.threshold else "suspicious" for s in scores]
    assert info["suspicious_threshold"] == tiny.config.suspicious_threshold


def test_crop_faces_reports_the_box_and_scores_as_predict():
    pytest.importorskip("cv2", reason="the 'face' extra is not installed")
    from deepfake_detect.face import detect_largest_face

    detector = dd.load_detector()
    files = [EXAMPLES / "astronaut.jpg", EXAMPLES / "grace_hopper.jpg"]
    with TestClient(create_app(detector, crop_faces=True)) as client:
        r = client.post("/v1/predict", files=multipart([(f.name, f.read_bytes()) for f in files]))
        assert r.status_code == 200, r.text
        results = r.json()["results"]
        expected = detector.predict(files, crop_faces=True)
        np.testing.assert_allclose([x["p_fake"] for x in results], expected, rtol=0, atol=1e-5)
        for f, x in zip(files, results, strict=True):
            assert tuple(x["face_box"]) == detect_largest_face(load_image(f))
        r = client.post("/v1/explain?format=json", files=multipart([(files[0].name, files[0].read_bytes())]))
        assert r.status_code == 200, r.text
        assert r.json()["shape"] == [256, 256] and r.json()["face_box"] == results[0]["face_box"]


# -- the runtime: the one predict chooses ------------------------------------------------------
def served_backend() -> str:
    """What ``backend="auto"`` scores a large job of a detector that exports with, here."""
    from deepfake_detect.backends import GRAPH_BACKENDS, runtime_available

    return next((b for b in GRAPH_BACKENDS if runtime_available(b)), "torch")


def test_the_service_scores_with_predicts_runtime_and_says_which(tiny, images, caplog):
    app = create_app(tiny, max_batch=4, max_wait_ms=5)
    with caplog.at_level("INFO", logger="deepfake_detect.serve"), TestClient(app) as client:
        m = client.get("/v1/models").json()
        results = client.post("/v1/predict", files=multipart(images)).json()["results"]
    chosen = served_backend()
    assert m["backend"] == f"{chosen} (fp32)" == app.state.service.backend and m["backend_reason"]
    assert m["server"]["backend"] == "auto"
    assert any(f"with {chosen} (fp32)" in r.getMessage() for r in caplog.records), caplog.text  # the startup line
    # predict on the same runtime gives the same scores; torch's are within the graph's parity check
    got = [x["p_fake"] for x in results]
    np.testing.assert_allclose(got, tiny.predict([d for _, d in images], backend=chosen), rtol=0, atol=1e-6)
    np.testing.assert_allclose(got, tiny.predict([d for _, d in images], backend="torch"), rtol=0, atol=1e-4)


@pytest.mark.parametrize("backend", ["auto", "torch"])
def test_the_service_scores_on_the_detectors_own_engine(tiny, images, backend):
    app = create_app(tiny, backend=backend, max_batch=4, max_wait_ms=5)
    with TestClient(app) as client:
        service = app.state.service
        assert service.engine is tiny.engine  # one engine: one runtime, one optimised model, one session cache
        results = client.post("/v1/predict", files=multipart(images)).json()["results"]
        chosen = service.choice.backend
        one = tiny.predict([images[0][1]])  # a single image: predict finds what the service built at startup
    assert chosen == (served_backend() if backend == "auto" else "torch")
    if chosen == "torch":
        assert tiny.engine.inference_model(optimize=False) is not tiny.model  # the service's optimised copy
    else:
        assert tiny.engine.runtime.session(tiny.model, tiny.config, chosen) is not None
        assert tiny.last_backend.backend == chosen and tiny.last_backend.reason.startswith("session in memory")
    np.testing.assert_allclose(one, [results[0]["p_fake"]], rtol=0, atol=1e-6)


def test_backend_torch_scores_as_predict_torch(tiny, images):
    with TestClient(create_app(tiny, backend="torch", max_batch=4, max_wait_ms=5)) as client:
        m = client.get("/v1/models").json()
        results = client.post("/v1/predict", files=multipart(images)).json()["results"]
    assert m["backend"] == "torch (fp32)" and m["server"]["backend"] == "torch"
    expected = tiny.predict([d for _, d in images], backend="torch")
    np.testing.assert_allclose([x["p_fake"] for x in results], expected, rtol=0, atol=1e-6)


@pytest.mark.parametrize("backend", ["auto", "onnxruntime", "openvino"])
def test_a_graph_runtime_scores_as_predict_on_it(tiny, images, backend):
    pytest.importorskip("onnx", reason="exporting a graph needs onnx")
    if backend == "auto":
        if served_backend() == "torch":
            pytest.skip("neither onnxruntime nor openvino is installed")
    else:
        pytest.importorskip(backend, reason=f"{backend} is not installed")
    with TestClient(create_app(tiny, backend=backend, max_batch=4, max_wait_ms=5)) as client:
        m = client.get("/v1/models").json()
        results = client.post("/v1/predict", files=multipart(images)).json()["results"]
    runtime = served_backend() if backend == "auto" else backend
    assert m["backend"] == f"{runtime} (fp32)"
    got = [x["p_fake"] for x in results]
    np.testing.assert_allclose(got, tiny.predict([d for _, d in images], backend=runtime), rtol=0, atol=1e-4)
    assert len(set(np.round(got, 6))) > 1  # the comparison is not between constants


def test_auto_falls_back_to_torch_as_predict_does(tiny, images, monkeypatch):
    import torch

    import deepfake_detect.backends as backends

    # no graph runtime installed
    monkeypatch.setattr(backends, "runtime_available", lambda backend: False)
    with TestClient(create_app(tiny)) as client:
        m = client.get("/v1/models").json()
    assert m["backend"] == "torch (fp32)" and "no graph runtime" in m["backend_reason"]
    monkeypatch.undo()
    if served_backend() == "torch":
        return
    pytest.importorskip("onnx", reason="exporting a graph needs onnx")

    # a model whose export fails (other weights than the other tests', so no graph is cached for them)
    def fail(*args, **kwargs):
        raise DeepfakeDetectError("cannot export this one")

    with torch.no_grad():
        next(tiny.model.parameters()).add_(0.125)
    monkeypatch.setattr(backends, "_export_checked", fail)
    with TestClient(create_app(tiny, max_batch=4, max_wait_ms=5)) as client:
        m = client.get("/v1/models").json()
        results = client.post("/v1/predict", files=multipart(images)).json()["results"]
    assert m["backend"] == "torch (fp32)" and "cannot export this one" in m["backend_reason"]
    expected = tiny.predict([d for _, d in images])  # predict too scores these weights with torch now
    assert tiny.last_backend is not None and tiny.last_backend.backend == "torch"
    np.testing.assert_allclose([x["p_fake"] for x in results], expected, rtol=0, atol=1e-6)


# -- batching --------------------------------------------------------------------------------
def test_concurrent_requests_are_merged_into_batches(tiny, images):
    app = create_app(tiny, max_batch=len(images), max_wait_ms=400)
    start = threading.Barrier(len(images))
    responses: dict[int, object] = {}
    with TestClient(app) as client:

        def one(i: int) -> None:
            start.wait()
            responses[i] = client.post("/v1/predict", files=multipart([images[i]]))

        threads = [threading.Thread(target=one, args=(i,)) for i in range(len(images))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        stats = client.get("/healthz").json()
    assert all(responses[i].status_code == 200 for i in range(len(images)))  # type: ignore[attr-defined]
    got = [responses[i].json()["results"][0]["p_fake"] for i in range(len(images))]  # type: ignore[attr-defined]
    np.testing.assert_allclose(got, tiny.predict([d for _, d in images]), rtol=0, atol=1e-6)
    assert stats["images"] == len(images)
    assert stats["largest_batch"] >= 2 and stats["batches"] < len(images), stats


def test_micro_batcher_fills_batches_and_survives_a_failing_batch():
    from concurrent.futures import ThreadPoolExecutor

    calls: list[int] = []

    def run(arrays: list) -> np.ndarray:
        calls.append(len(arrays))
        if any(a < 0 for a in arrays):
            raise ValueError("negative input")
        return np.asarray(arrays, dtype=np.float32) / 10

    async def main() -> tuple[list, list]:
        with ThreadPoolExecutor(1) as pool:
            b = MicroBatcher(run, pool, max_batch=4, max_wait_ms=100, max_queue=12)
            await b.start()
            got = await asyncio.gather(*(b.score([i]) for i in range(10)))
            with pytest.raises(ValueError, match="negative"):
                await b.score([-1])
            after = await b.score([5, 6])
            with pytest.raises(QueueFullError):
                await b.score(list(range(13)))
            await b.stop()
        return got, after

    got, after = asyncio.run(main())
    assert [g[0] for g in got] == pytest.approx([i / 10 for i in range(10)])
    assert after == pytest.approx([0.5, 0.6])
    assert calls[:3] == [4, 4, 2]  # ten concurrent images: two full batches and the rest


# -- bad input -------------------------------------------------------------------------------
def big_noise_png(side: int = 1000) -> bytes:
    rng = np.random.default_rng(0)
    return encode(Image.fromarray(rng.integers(0, 256, (side, side, 3), dtype=np.uint8)))


@pytest.mark.parametrize(
    "case",
    [
        "content-type",
        "no-content-type",
        "empty-body",
        "empty-multipart",
        "unknown-field",
        "unreadable",
        "empty-file",
        "too-large",
        "too-many-pixels",
        "too-many-files",
        "bad-json",
        "no-images-key",
        "images-not-list",
        "bad-base64",
        "base64-not-string",
        "broken-multipart",
    ],
)
def test_bad_input_gets_a_4xx_naming_the_field(tiny, images, case):
    app = create_app(tiny, max_upload_bytes=200_000, max_pixels=200 * 200, max_files=8)
    ok = multipart(images[:1])
    boundary = "xyzzy"
    requests = {
        "content-type": (415, "Content-Type", dict(content=b"abc", headers={"content-type": "text/plain"})),
        "no-content-type": (415, "Content-Type", dict(content=b"abc")),
        "empty-body": (400, "body", dict(content=b"", headers={"content-type": "application/json"})),
        "empty-multipart": (
            400,
            "file",
            dict(
                content=f"--{boundary}--\r\n".encode(),
                headers={"content-type": f"multipart/form-data; boundary={boundary}"},
            ),
        ),
        "unknown-field": (400, "image", dict(files=[("image", ("a.png", images[0][1], "image/png"))])),
        "unreadable": (
            422,
            "file[1]",
            dict(files=ok + [("file", ("notes.txt", b"hello, not an image", "text/plain"))]),
        ),
        "empty-file": (422, "file[0]", dict(files=[("file", ("empty.png", b"", "image/png"))])),
        "too-large": (413, "body", dict(files=[("file", ("big.png", big_noise_png(), "image/png"))])),
        "too-many-pixels": (
            422,
            "file[0]",
            dict(files=[("file", ("wide.png", encode(Image.new("RGB", (400, 400))), "image/png"))]),
        ),
        "too-many-files": (413, "file", dict(files=multipart(images[:1] * 9))),
        "bad-json": (400, "body", dict(content=b"{not json", headers={"content-type": "application/json"})),
        "no-images-key": (400, "images", dict(json={"files": []})),
        "images-not-list": (400, "images", dict(json={"images": "abc"})),
        "bad-base64": (422, "images[0].data", dict(json={"images": [{"name": "a", "data": "%%%"}]})),
        "base64-not-string": (422, "images[0]", dict(json={"images": [42]})),
        "broken-multipart": (
            400,
            "body",
            dict(
                content=b'--xyzzy\r\nContent-Disposition: form-data; name="file"\r\n'
                b"\r\n" + images[0][1][:50] + b"\r\n--other--",
                headers={"content-type": "multipart/form-data; boundary=xyzzy"},
            ),
        ),
    }
    status, field, kwargs = requests[case]
    with TestClient(app) as client:
        r = client.post("/v1/predict", **kwargs)
        assert r.status_code == status, r.text
        body = r.json()
        assert body["field"] == field and body["reason"] and body["detail"].startswith(field), body
        if case == "too-many-pixels":
            assert "pixels" in body["reason"] and "wide.png" in body["reason"]
        if case == "unreadable":
            assert "notes.txt" in body["reason"] and "not an image" in body["reason"]
        # the service is still up and still right
        r = client.post("/v1/predict", files=ok)
        assert r.status_code == 200
        assert r.json()["results"][0]["p_fake"] == pytest.approx(float(tiny.predict(images[0][1])[0]), abs=1e-6)


def test_a_body_without_content_length_is_cut_at_the_limit(tiny):
    def body():  # chunked transfer: no Content-Length to refuse it by
        for _ in range(100):
            yield b"x" * 10_000

    with TestClient(create_app(tiny, max_upload_bytes=50_000)) as client:
        r = client.post("/v1/predict", content=body(), headers={"content-type": "application/json"})
    assert r.status_code == 413 and r.json()["field"] == "body" and "50,000" in r.json()["reason"]


def test_an_empty_request_is_400_whatever_its_content_type_and_a_body_of_another_type_is_415(tiny, images):
    """docs/serve.md: no body is a bad request (400, field "body"), with or without a Content-Type;
    415 is for a body in a format the service does not take."""
    with TestClient(create_app(tiny)) as client:
        for headers in ({}, {"content-type": "text/plain"}, {"content-type": "multipart/form-data; boundary=x"}):
            r = client.post("/v1/predict", headers=headers)
            assert r.status_code == 400, (headers, r.text)
            body = r.json()
            assert body["field"] == "body" and "empty request" in body["reason"], body
            assert "multipart/form-data" in body["reason"] and "'file' field" in body["reason"], body
        r = client.post("/v1/explain")
        assert r.status_code == 400 and r.json()["field"] == "body"
        for headers in ({}, {"content-type": "text/plain"}, {"content-type": "image/png"}):
            r = client.post("/v1/predict", content=images[0][1], headers=headers)
            assert r.status_code == 415 and r.json()["field"] == "Content-Type", (headers, r.text)
            assert "multipart/form-data" in r.json()["reason"]


def test_explain_rejects_bad_parameters_and_several_images(tiny, images):
    with TestClient(create_app(tiny)) as client:
        r = client.post("/v1/explain?method=magic", files=multipart(images[:1]))
        assert r.status_code == 422 and r.json()["field"] == "method"
        r = client.post("/v1/explain?format=gif", files=multipart(images[:1]))
        assert r.status_code == 422 and r.json()["field"] == "format"
        r = client.post("/v1/explain", files=multipart(images[:2]))
        assert r.status_code == 400 and r.json()["field"] == "file" and "exactly one" in r.json()["reason"]
        r = client.post("/v1/explain?method=residual", files=multipart(images[:1]))  # not an ae-classifier
        assert r.status_code == 422 and r.json()["field"] == "method"


def test_uploads_are_not_written_to_disk(tiny, monkeypatch):
    data = big_noise_png(1000)  # 3 MB: a multipart parser that spools would write this to a temporary file
    assert len(data) > 2 * 1024 * 1024

    def refuse(*args, **kwargs):
        raise AssertionError("an upload was written to a temporary file")

    for name in ("SpooledTemporaryFile", "NamedTemporaryFile", "TemporaryFile", "mkstemp"):
        monkeypatch.setattr(tempfile, name, refuse)
    with TestClient(create_app(tiny)) as client:
        r = client.post("/v1/predict", files=[("file", ("noise.png", data, "image/png"))])
        assert r.status_code == 200, r.text
        r = client.post("/v1/predict", json={"images": [base64.b64encode(data).decode()]})
        assert r.status_code == 200, r.text


def test_a_request_that_times_out_gets_503(tiny, images, monkeypatch):
    app = create_app(tiny, timeout_s=0.3)
    with TestClient(app) as client:
        service = app.state.service
        real = service.scorer

        def slow(batch):
            time.sleep(1.0)
            return real(batch)

        monkeypatch.setattr(service, "scorer", slow)
        t0 = time.perf_counter()
        r = client.post("/v1/predict", files=multipart(images[:1]))
        assert r.status_code == 503 and r.json()["field"] == "request" and "retry" in r.json()["reason"]
        assert r.headers["retry-after"] == "1"
        assert time.perf_counter() - t0 < 0.9  # answered at the timeout, not after the slow batch
        monkeypatch.setattr(service, "scorer", real)
        time.sleep(1.0)
        assert client.post("/v1/predict", files=multipart(images[:1])).status_code == 200


def test_a_full_queue_gets_503_at_once(tiny, images, monkeypatch):
    app = create_app(tiny, max_batch=1, max_queue=1, max_files=1, max_wait_ms=0)
    with TestClient(app) as client:
        real = app.state.service.scorer
        monkeypatch.setattr(app.state.service, "scorer", lambda b: (time.sleep(0.5), real(b))[1])
        codes: list[int] = []
        threads = [
            threading.Thread(
                target=lambda: codes.append(client.post("/v1/predict", files=multipart(images[:1])).status_code)
            )
            for _ in range(4)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
    assert 200 in codes and 503 in codes and set(codes) <= {200, 503}, codes


# -- the other routes ---------------------------------------------------------------------------
def test_explain_png_and_json(tiny, images):
    name, data = images[5]  # 128x128 PNG
    with TestClient(create_app(tiny)) as client:
        r = client.post("/v1/explain", files=multipart([(name, data)]))
        assert r.status_code == 200 and r.headers["content-type"] == "image/png"
        png = Image.open(io.BytesIO(r.content))
        assert png.format == "PNG" and png.size == (128, 128)
        score = float(tiny.predict(data)[0])
        assert float(r.headers["x-p-fake"]) == pytest.approx(score, abs=1e-5)
        # the overlay differs from the image itself: a heatmap was drawn on it
        assert np.abs(np.asarray(png.convert("RGB"), np.int16) - np.asarray(load_image(data), np.int16)).mean() > 5
        r = client.post("/v1/explain?format=json", files=multipart([(name, data)]))
        info = r.json()
        assert info["shape"] == [128, 128] and info["p_fake"] == pytest.approx(score, abs=1e-6)
        assert info["method"] == "gradcam" and info["name"] == name


def test_explain_png_is_shrunk_to_max_side(tiny):
    data = encode(face_like(3, size=300))
    with TestClient(create_app(tiny, explain_max_side=100)) as client:
        r = client.post("/v1/explain", files=[("file", ("a.png", data, "image/png"))])
    assert Image.open(io.BytesIO(r.content)).size == (100, 100)


def test_models_healthz_and_page(tiny):
    with TestClient(create_app(tiny, max_batch=7)) as client:
        m = client.get("/v1/models").json()
        assert m["architecture"] == TINY and m["parameters"] == tiny.num_params
        assert m["config"]["input_size"] == [32, 32] and m["server"]["max_batch"] == 7
        assert m["threshold"] == tiny.config.threshold and "# " in m["card"]
        h = client.get("/healthz").json()
        assert h["status"] == "ok" and h["pending"] == 0
        r = client.get("/")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    page = r.text
    assert 'type="file"' in page and "v1/predict" in page and "v1/explain" in page and "img_name,y_pred" in page
    # no external assets: the page works offline
    assert "http://" not in page and "https://" not in page and "//cdn" not in page


def test_a_stalled_upload_gets_408_and_json_nested_too_deeply_400(tiny):
    import asyncio

    from deepfake_detect.serve.app import _read_body

    class StalledRequest:
        headers = {"content-length": "1000"}

        async def stream(self):
            yield b"12345"
            await asyncio.sleep(30)  # the rest never comes

    with pytest.raises(RequestError) as info:
        asyncio.run(_read_body(StalledRequest(), limit=10_000, timeout_s=0.2))
    assert info.value.status == 408 and info.value.field == "body"
    with TestClient(create_app(tiny)) as client:
        r = client.post("/v1/predict", content=b"[" * 200_000, headers={"content-type": "application/json"})
        assert r.status_code == 400 and "nested too deeply" in r.json()["reason"]
        assert client.get("/v1/models").status_code == 200  # and the server goes on


def test_settings_are_checked():
    with pytest.raises(DeepfakeDetectError, match="max_batch"):
        ServeConfig(max_batch=0)
    with pytest.raises(DeepfakeDetectError, match="max_wait_ms"):
        ServeConfig(max_wait_ms=-1)
    with pytest.raises(DeepfakeDetectError, match="max_queue"):
        ServeConfig(max_batch=64, max_queue=8)
    with pytest.raises(DeepfakeDetectError, match="max_files"):  # a full request could never be queued
        ServeConfig(max_queue=32, max_files=64)
    with pytest.raises(DeepfakeDetectError, match="backend"):
        ServeConfig(backend="tensorrt")
    with pytest.raises(DeepfakeDetectError, match="not both"):
        create_app(None, ServeConfig(), max_batch=2)


def test_loopback_hosts():
    assert is_loopback("127.0.0.1") and is_loopback("localhost") and is_loopback("::1")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.10") and not is_loopback("example.org")


def test_cli_serve_warns_when_exposed(monkeypatch, capsys):
    import deepfake_detect.serve as serve_module
    from deepfake_detect.cli import main

    seen: dict = {}
    monkeypatch.setattr(serve_module, "serve", lambda detector, **kw: seen.update(kw, detector=detector))
    monkeypatch.setattr(serve_module, "return_freed_memory", lambda: seen.update(malloc=True))  # not in pytest
    assert main(["serve", "--host", "0.0.0.0", "--port", "8123", "--max-batch", "8", "--max-wait-ms", "5"]) == 0
    err = capsys.readouterr().err
    assert "no authentication" in err and "reverse proxy" in err and "docs/serve.md" in err
    assert seen["host"] == "0.0.0.0" and seen["port"] == 8123
    assert seen["config"].max_batch == 8 and seen["config"].max_wait_ms == 5 and seen["malloc"]
    assert seen["config"].backend == "auto"
    assert main(["serve", "--port", "8124", "--backend", "torch"]) == 0
    assert "no authentication" not in capsys.readouterr().err
    assert seen["config"].backend == "torch"
    with pytest.raises(SystemExit):
        main(["serve", "--backend", "tensorrt"])
    capsys.readouterr()
    assert main(["serve", "--max-batch", "0"]) == 1
    assert "max_batch" in capsys.readouterr().err


def test_malloc_setting_leaves_an_explicit_environment_alone(monkeypatch):
    from deepfake_detect.serve import return_freed_memory

    monkeypatch.setenv("MALLOC_MMAP_THRESHOLD_", "33554432")
    assert return_freed_memory() is False
