"""ONNX export: P(fake) output, dynamic batch, preprocessing metadata, parity with predict."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
from conftest import TinyNet, face_like
from PIL import Image

import deepfake_detect as dd
from deepfake_detect.errors import MissingDependencyError
from deepfake_detect.export import export_onnx

pytestmark = pytest.mark.usefixtures("one_thread")

ort = pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")

TINY_SOFTMAX = "test-tiny-export-softmax"
if TINY_SOFTMAX not in dd.list_detectors():
    dd.register_detector(
        TINY_SOFTMAX,
        lambda **kw: TinyNet(outputs=2, **kw),
        config=dd.DetectorConfig(
            TINY_SOFTMAX,
            input_size=(40, 32),
            output="softmax",
            mean=(0.5, 0.5, 0.5),
            std=(0.5, 0.5, 0.5),
            interpolation="bicubic",
        ),
    )


def _images(n: int) -> list[Image.Image]:
    return [face_like(50 + i, size=64, fake=bool(i % 2)).resize((64 + 8 * i, 56)) for i in range(n)]


def _preprocess_without_torch(img: Image.Image, meta: dict[str, str]) -> np.ndarray:
    """What a non-PyTorch runtime does, from the metadata alone (squash policy): (3, H, W) float32."""
    assert meta["resize"] == "squash" and meta["channel_order"] == "RGB" and meta["layout"] == "NCHW"
    h, w = json.loads(meta["input_size"])
    filt = {"bilinear": Image.Resampling.BILINEAR, "bicubic": Image.Resampling.BICUBIC}[meta["interpolation"]]
    x = np.asarray(img.convert("RGB").resize((w, h), filt), dtype=np.float32) * float(meta["pixel_scale"])
    x = (x - np.array(json.loads(meta["mean"]), np.float32)) / np.array(json.loads(meta["std"]), np.float32)
    return x.transpose(2, 0, 1)


@pytest.mark.parametrize("name", ["resnet18-finetune", TINY_SOFTMAX])
def test_onnx_parity_with_predict_dynamic_batch(tmp_path, name: str) -> None:
    d = dd.load_detector(name)
    crop = {"margin": 0.2, "square": True}
    d.config = d.config.replace(suspicious_threshold=0.3, face_crop=crop)  # the verdict bands travel too
    path = d.export_onnx(tmp_path / "model.onnx")
    assert path.is_file()
    model = onnx.load(str(path))
    onnx.checker.check_model(model)
    meta = {p.key: p.value for p in model.metadata_props}
    assert meta["architecture"] == name and json.loads(meta["input_size"]) == list(d.config.input_size)
    assert json.loads(meta["mean"]) == list(d.config.mean) and json.loads(meta["std"]) == list(d.config.std)
    assert meta["interpolation"] == d.config.interpolation and meta["output_kind"] == d.config.output
    assert float(meta["threshold"]) == d.config.threshold and meta["library_version"]
    assert json.loads(meta["suspicious_threshold"]) == 0.3 and json.loads(meta["face_crop"]) == crop

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [i.name for i in sess.get_inputs()] == ["input"] and [o.name for o in sess.get_outputs()] == ["p_fake"]
    images = _images(3)
    expected = d.predict(images)
    for batch in (images[:1], images):
        x = np.stack([_preprocess_without_torch(im, meta) for im in batch])
        (p_fake,) = sess.run(None, {"input": x})
        assert p_fake.shape == (len(batch),) and p_fake.dtype == np.float32
        np.testing.assert_allclose(p_fake, expected[: len(batch)], atol=1e-3, rtol=0)


def test_fixed_batch_and_eval_mode_restored(tmp_path) -> None:
    d = dd.load_detector(TINY_SOFTMAX)
    d.model.train()
    path = export_onnx(d, tmp_path / "deep" / "fixed.onnx", dynamic_batch=False, opset=17)
    assert d.model.training  # mode restored
    d.model.eval()
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert sess.get_inputs()[0].shape == [1, 3, 40, 32]
    prep = d.preprocessor()
    x = prep.to_tensor([prep.prepare(_images(1)[0])]).contiguous().numpy()
    np.testing.assert_allclose(sess.run(None, {"input": x})[0], d.predict(_images(1)), atol=1e-3)


def test_missing_onnx_is_a_clear_error(tmp_path, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "onnx", None)  # import onnx -> ImportError
    with pytest.raises(MissingDependencyError, match=r"deepfake-detect\[onnx\]"):
        dd.load_detector(TINY_SOFTMAX).export_onnx(tmp_path / "m.onnx")
