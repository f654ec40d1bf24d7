"""Heatmaps: Grad-CAM, saliency and the ae-classifier residual; the model is left untouched."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import TinyNet, face_like
from PIL import Image

import deepfake_detect as dd
from deepfake_detect.cli import main
from deepfake_detect.errors import DeepfakeDetectError
from deepfake_detect.explain import colorize, explain, is_cnn, save_overlay

pytestmark = pytest.mark.usefixtures("one_thread")

CROP = "test-tiny-explain-crop"
if CROP not in dd.list_detectors():
    dd.register_detector(
        CROP, lambda **kw: TinyNet(**kw), config=dd.DetectorConfig(CROP, input_size=32, resize="crop", crop_pct=0.5)
    )


@pytest.fixture(scope="module")
def resnet() -> dd.Detector:
    d = dd.load_detector("resnet18-finetune")
    d.model.features_extractor.conv1.requires_grad_(False)  # mixed flags, to check they are restored
    return d


def _state(model: torch.nn.Module) -> tuple[dict[str, torch.Tensor], list[bool]]:
    return {k: v.clone() for k, v in model.state_dict().items()}, [p.requires_grad for p in model.parameters()]


def _assert_untouched(model: torch.nn.Module, before: tuple[dict[str, torch.Tensor], list[bool]]) -> None:
    state, flags = before
    after = model.state_dict()
    assert all(torch.equal(state[k], after[k]) for k in state), "weights or buffers changed"
    assert [p.requires_grad for p in model.parameters()] == flags
    assert all(p.grad is None for p in model.parameters())
    assert all(not m._forward_hooks and not m._backward_hooks for m in model.modules())


@pytest.mark.parametrize("method", ["auto", "gradcam", "saliency"])
def test_heatmap_at_original_size_in_unit_range(resnet: dd.Detector, method: str) -> None:
    img = face_like(3, size=64).resize((70, 50))  # not square, not the 224 input size
    before = _state(resnet.model)
    heat = resnet.explain(img, method=method)
    assert heat.shape == (50, 70) and heat.dtype == np.float32
    assert np.isfinite(heat).all() and heat.min() >= 0.0 and heat.max() <= 1.0 and heat.max() > 0.5
    assert not resnet.model.training
    _assert_untouched(resnet.model, before)


def test_auto_is_gradcam_for_cnns(resnet: dd.Detector) -> None:
    img = face_like(4, size=48)
    assert is_cnn(resnet.model)
    np.testing.assert_array_equal(explain(resnet, img), explain(resnet, img, method="gradcam"))


def test_train_mode_model_keeps_buffers_and_mode(resnet: dd.Detector) -> None:
    resnet.model.train()
    try:
        before = _state(resnet.model)
        resnet.explain(face_like(5, size=40), method="gradcam")  # BatchNorm in train mode would move its stats
        assert resnet.model.training
        _assert_untouched(resnet.model, before)
    finally:
        resnet.model.eval()


def test_inputs_paths_arrays_tensors(tmp_path, resnet: dd.Detector) -> None:
    img = face_like(6, size=40)
    path = tmp_path / "face.png"
    img.save(path)
    from_path = resnet.explain(path, method="gradcam")
    np.testing.assert_allclose(from_path, resnet.explain(np.asarray(img), method="gradcam"), atol=1e-6)
    t = torch.from_numpy(np.array(img)).permute(2, 0, 1).float() / 255
    np.testing.assert_allclose(from_path, resnet.explain(t, method="gradcam"), atol=1e-6)


def test_bad_method_and_residual_without_reconstruction(resnet: dd.Detector) -> None:
    with pytest.raises(DeepfakeDetectError, match="method='bogus'"):
        resnet.explain(face_like(0, size=32), method="bogus")
    with pytest.raises(DeepfakeDetectError, match="reconstruction|x_hat"):
        resnet.explain(face_like(0, size=32), method="residual")
    with pytest.raises(DeepfakeDetectError, match="not a module"):
        explain(resnet, face_like(0, size=32), method="gradcam", layer="no.such.layer")


def test_gradcam_named_layer(resnet: dd.Detector) -> None:
    heat = explain(resnet, face_like(7, size=48), method="gradcam", layer="features_extractor.layer3")
    assert heat.shape == (48, 48) and 0.0 <= heat.min() and heat.max() <= 1.0


def test_crop_policy_leaves_unseen_border_at_zero() -> None:
    d = dd.load_detector(CROP)  # input 32, crop_pct 0.5: a 64x64 image is seen as its centre 32x32
    for method in ("gradcam", "saliency"):
        heat = d.explain(face_like(8, size=64), method=method)
        assert heat.shape == (64, 64)
        border = np.ones((64, 64), bool)
        border[16:48, 16:48] = False
        assert heat[border].max() == 0.0
        if method == "saliency":  # (Grad-CAM of an untrained net may hold no positive evidence at all)
            assert heat[16:48, 16:48].max() > 0.5


def test_residual_on_ae_classifier() -> None:
    d = dd.load_detector("ae-classifier")  # 62M parameters: one small image only
    img = face_like(9, size=40).resize((40, 30))
    heat = d.explain(img)  # auto -> residual
    assert heat.shape == (30, 40) and heat.dtype == np.float32
    assert heat.min() >= 0.0 and heat.max() <= 1.0 and heat.max() > 0.5
    np.testing.assert_array_equal(heat, explain(d, img, method="residual"))
    assert not d.model.training
    assert all(not m._forward_hooks for m in d.model.modules())


def test_save_overlay(tmp_path) -> None:
    img = face_like(10, size=40)
    heat = np.zeros((40, 40), np.float32)
    heat[10:20, 10:20] = 1.0
    out = save_overlay(img, heat, tmp_path / "sub" / "ov.png", alpha=0.5)
    with Image.open(out) as png:
        assert png.format == "PNG" and png.size == (40, 40)
        arr = np.asarray(png.convert("RGB")).astype(int)
    assert arr[15, 15, 0] > arr[30, 30, 0] or arr[15, 15, 2] < arr[30, 30, 2]  # hot = red end of the map
    same = save_overlay(img, heat, tmp_path / "plain.png", alpha=0.0)
    with Image.open(same) as png:
        np.testing.assert_array_equal(np.asarray(png.convert("RGB")), np.asarray(img))
    save_overlay(img, np.ones((10, 10), np.float32), tmp_path / "resized.png")  # heat resized to the image
    with pytest.raises(DeepfakeDetectError):
        save_overlay(img, heat, tmp_path / "x.png", alpha=2.0)


def test_colorize_is_jet_like() -> None:
    c = colorize(np.array([[0.0, 0.5, 1.0]], np.float32))
    assert c.shape == (1, 3, 3) and c.dtype == np.uint8
    assert c[0, 0, 2] > c[0, 0, 0]  # low: blue
    assert c[0, 1, 1] > c[0, 1, 2]  # middle: green
    assert c[0, 2, 0] > c[0, 2, 2]  # high: red


def test_cli_explain(tmp_path, capsys) -> None:
    path = tmp_path / "face.png"
    face_like(11, size=40).save(path)
    out = tmp_path / "heat.png"
    assert main(["explain", str(path), "--model", CROP, "--out", str(out), "--method", "saliency"]) == 0
    assert out.is_file() and "P(fake)" in capsys.readouterr().out
