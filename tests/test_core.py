"""The core library: registry, guard, weights, predict inputs, save/load round trips."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import timm
import torch
from conftest import TINY as TINY_NAME
from conftest import face_like
from PIL import Image
from torch import nn

import deepfake_detect as dd
from deepfake_detect import (
    ConfigError,
    ImageLoadError,
    ParameterLimitError,
    UnknownDetectorError,
    WeightsError,
    load_detector,
)

EXPECTED_PARAMS = {
    "resnet18-baseline": 11_177_538,
    "resnet18-finetune": 11_177_025,
    "ae-classifier": 62_565_630,
}


def _perturb_batchnorm(model: nn.Module, seed: int = 0) -> None:
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(m.weight.shape, generator=g) + 0.5)


@pytest.mark.parametrize("name", sorted(EXPECTED_PARAMS))
def test_registry_entries_have_the_seed_parameter_counts(name):
    assert name in dd.list_detectors()
    assert dd.count_parameters(name) == EXPECTED_PARAMS[name]
    detector = load_detector(name)
    assert detector.num_params == EXPECTED_PARAMS[name]


def test_over_the_limit_is_refused_before_allocation():
    with pytest.raises(ParameterLimitError) as info:
        load_detector("timm:vit_large_patch16_224")
    assert info.value.num_params > 300_000_000 and info.value.limit == 200_000_000
    assert "200,000,000" in str(info.value)
    with pytest.raises(ParameterLimitError):
        load_detector("resnet18-finetune", max_params=1_000_000)


def test_max_params_none_lifts_the_limit():
    assert dd.count_parameters("timm:resnet18") < 200_000_000
    det = load_detector("timm:resnet18", max_params=None)
    assert det.config.output == "sigmoid"


def test_unknown_names_suggest_the_closest():
    with pytest.raises(UnknownDetectorError, match="[Dd]id you mean 'resnet18-finetune'"):
        load_detector("resnet18-finetun")
    with pytest.raises(UnknownDetectorError, match="timm:resnet18"):
        load_detector("timm:resnet-18")


def test_register_detector_refuses_duplicates_and_works_for_users():
    @dd.register_detector("test-tiny-core", config=dd.DetectorConfig("test-tiny-core", input_size=32), head=("fc",))
    def tiny(**kwargs):
        return _Tiny()

    assert "test-tiny-core" in dd.list_detectors()
    det = load_detector("test-tiny-core")
    assert det.config.input_size == (32, 32) and det.config.architecture == "test-tiny-core"
    with pytest.raises(dd.DeepfakeDetectError, match="already registered"):
        dd.register_detector("test-tiny-core")(tiny)


def test_register_detector_keeps_the_old_keywords_with_a_deprecation_warning():
    with pytest.warns(DeprecationWarning, match="config=DetectorConfig"):
        dd.register_detector("test-tiny-core-legacy", input_size=40, output="softmax")(lambda **kw: _Tiny())
    entry = dd.get_entry("test-tiny-core-legacy")
    assert entry.config.input_size == (40, 40) and entry.loss == "cross_entropy" and entry.outputs == ("logits",)


def test_a_user_architecture_declares_its_own_loss_and_outputs(image_folder):
    def my_loss(output, labels, inputs):
        return torch.nn.functional.binary_cross_entropy_with_logits(output[:, 0], labels) * 0.0 + 1.25

    dd.register_detector(
        "test-tiny-core-loss",
        lambda **kw: _Tiny(),
        config=dd.DetectorConfig("test-tiny-core-loss", input_size=32),
        loss=my_loss,
    )
    assert dd.get_entry("test-tiny-core-loss").loss is my_loss
    result = load_detector("test-tiny-core-loss").finetune(
        image_folder, epochs=1, batch_size=8, progress=False, num_workers=0
    )
    assert result.history[0]["train_loss"] == pytest.approx(1.25)  # the entry's own loss was used
    with pytest.raises(dd.DeepfakeDetectError, match="loss="):
        dd.register_detector("test-tiny-core-bad", lambda **kw: _Tiny(), loss="hinge")
    with pytest.raises(dd.DeepfakeDetectError, match="outputs="):
        dd.register_detector("test-tiny-core-bad", lambda **kw: _Tiny(), outputs=("reconstruction",))


class _Tiny(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.fc = nn.Linear(4, 1)

    def forward(self, x):
        return self.fc(torch.relu(self.bn(self.conv(x))).mean((2, 3)))


class _CampFineTuning(nn.Module):
    """The camp notebook's FineTuning_Resnet18, restated from its attribute names and shapes."""

    def __init__(self) -> None:
        super().__init__()
        self.features_extractor = timm.create_model("resnet18", pretrained=False, num_classes=0, global_pool="")
        self.maxpool = nn.AdaptiveMaxPool2d((1, 1))
        self.classifier = nn.Linear(512, 1)

    def forward(self, x):
        return self.classifier(self.maxpool(self.features_extractor(x)).view(x.shape[0], -1))


def test_camp_baseline_state_dict_loads_strictly_and_predicts_the_same(tmp_path):
    torch.manual_seed(0)
    camp = timm.create_model("resnet18", pretrained=False, num_classes=2).eval()
    _perturb_batchnorm(camp)
    path = tmp_path / "baseline.pth"
    torch.save(camp.state_dict(), path)
    det = load_detector("resnet18-baseline", weights=path)
    x = torch.rand(2, 3, 256, 256)
    mean, std = (
        torch.tensor(dd.config.IMAGENET_MEAN).view(1, 3, 1, 1),
        torch.tensor(dd.config.IMAGENET_STD).view(1, 3, 1, 1),
    )
    with torch.no_grad():
        expected = torch.softmax(camp((x - mean) / std), 1)[:, 1].numpy()
    np.testing.assert_allclose(det.predict(list(x)), expected, atol=1e-5)


def test_camp_finetuning_state_dict_loads_strictly_and_predicts_the_same(tmp_path):
    torch.manual_seed(1)
    camp = _CampFineTuning().eval()
    _perturb_batchnorm(camp, 1)
    path = tmp_path / "ft.pt"
    torch.save(camp.state_dict(), path)
    det = load_detector("resnet18-finetune", weights=path)
    x = torch.rand(3, 3, 224, 224)
    mean, std = (
        torch.tensor(dd.config.IMAGENET_MEAN).view(1, 3, 1, 1),
        torch.tensor(dd.config.IMAGENET_STD).view(1, 3, 1, 1),
    )
    with torch.no_grad():
        expected = torch.sigmoid(camp((x - mean) / std))[:, 0].numpy()
    np.testing.assert_allclose(det.predict(x), expected, atol=1e-5)


def test_ae_classifier_keeps_the_seed_parameter_names(tmp_path):
    det = load_detector("ae-classifier")
    sd = det.model.state_dict()
    expected_shapes = {
        "decoder.decoder1.upsample.weight": (768, 768, 2, 2),
        "decoder.decoder1.block.0.weight": (384, 768, 3, 3),
        "decoder.decoder5.block.1.running_var": (3,),
        "mff.conv2.0.weight": (192, 192, 3, 3),
        "mff.conv3.3.weight": (192, 192, 3, 3),
        "mff.conv3.4.running_mean": (192,),
        "classfier.weight": (1, 1536),
        "encoder.patch_embed.proj.weight": (96, 3, 4, 4),
        "reduce_encoder.norm.weight": (768,),
    }
    for key, shape in expected_shapes.items():
        assert tuple(sd[key].shape) == shape, key
    # a state dict saved with torch.save from the architecture loads strictly and predicts the same
    _perturb_batchnorm(det.model, 2)
    path = tmp_path / "ae.pth"
    torch.save(det.model.state_dict(), path)
    x = torch.rand(1, 3, 224, 224)
    before = det.predict(x)
    again = load_detector("ae-classifier", weights=path)
    np.testing.assert_allclose(again.predict(x), before, atol=1e-5)
    logits, x_hat = again.model(torch.zeros(1, 3, 224, 224))
    assert logits.shape == (1, 1) and x_hat.shape == (1, 3, 224, 224)


def test_weights_are_loaded_strictly_with_a_report(tmp_path):
    sd = load_detector("resnet18-finetune").model.state_dict()
    sd.pop("classifier.bias")
    sd["extra.weight"] = torch.zeros(1)
    sd["classifier.weight"] = torch.zeros(2, 512)
    path = tmp_path / "bad.pth"
    torch.save(sd, path)
    with pytest.raises(WeightsError) as info:
        load_detector("resnet18-finetune", weights=path)
    msg = str(info.value)
    assert "classifier.bias" in msg and "extra.weight" in msg and "(2, 512)" in msg and "bad.pth" in msg


class _Boom:
    def __reduce__(self):
        return (Path.touch, (Path(_Boom.target),))


def test_a_malicious_pickle_is_not_executed(tmp_path):
    _Boom.target = str(tmp_path / "pwned")
    path = tmp_path / "evil.pth"
    with open(path, "wb") as f:
        pickle.dump({"state_dict": _Boom()}, f, protocol=2)  # torch.load's own protocol
    with pytest.raises(WeightsError, match="refused"):
        load_detector("resnet18-finetune", weights=path)
    assert not (tmp_path / "pwned").exists()


def test_save_pretrained_round_trip_predicts_identically(tmp_path, jpeg_files):
    det = load_detector("resnet18-finetune")
    _perturb_batchnorm(det.model, 3)
    before = det.predict(jpeg_files)
    folder = det.save_pretrained(tmp_path / "saved")
    assert {p.name for p in folder.iterdir()} >= {"config.json", "model.safetensors", "README.md"}
    again = load_detector(folder)
    np.testing.assert_array_equal(again.predict(jpeg_files), before)
    assert again.config.input_size == det.config.input_size


def test_fp16_storage_loads_into_float32(tmp_path, jpeg_files):
    det = load_detector("resnet18-finetune")
    det.save_pretrained(tmp_path / "half", dtype=torch.float16)
    again = load_detector(tmp_path / "half")
    assert next(again.model.parameters()).dtype == torch.float32
    np.testing.assert_allclose(again.predict(jpeg_files), det.predict(jpeg_files), atol=2e-3)


def test_config_preprocessing_is_what_changes_the_pixels():
    from deepfake_detect.config import PREPROCESSING_FIELDS
    from deepfake_detect.data import Preprocessor

    cfg = dd.DetectorConfig("x", input_size=(40, 48), resize="crop", crop_pct=0.9, interpolation="bicubic")
    assert tuple(cfg.preprocessing) == PREPROCESSING_FIELDS
    assert cfg.preprocessing["input_size"] == (40, 48) and cfg.preprocessing["crop_pct"] == 0.9
    img = face_like(0)
    other = dd.DetectorConfig("y", output="softmax", threshold=0.9, face_crop={"margin": 0.1, "square": False})
    same = other.replace(**cfg.preprocessing)  # everything else differs: the same tensor
    assert same.preprocessing == cfg.preprocessing
    np.testing.assert_array_equal(Preprocessor(same).prepare(img), Preprocessor(cfg).prepare(img))
    for name, value in (("input_size", (40, 40)), ("resize", "squash"), ("crop_pct", 0.8), ("mean", (0.5,) * 3)):
        changed = cfg.replace(**{name: value})
        assert changed.preprocessing != cfg.preprocessing, name
        a, b = Preprocessor(changed).prepare(img), Preprocessor(cfg).prepare(img)
        assert a.shape != b.shape or not np.array_equal(
            Preprocessor(changed).to_array([a]), Preprocessor(cfg).to_array([b])
        )


def test_corrupt_safetensors_and_config_errors_name_the_file(tmp_path):
    det = load_detector("resnet18-finetune")
    folder = det.save_pretrained(tmp_path / "m")
    data = (folder / "model.safetensors").read_bytes()
    (folder / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(WeightsError, match="model.safetensors"):
        load_detector(folder)
    cfg = (folder / "config.json").read_text()
    (folder / "config.json").write_text(cfg.replace('"resnet18-finetune"', '"no-such-net"'))
    with pytest.raises(ConfigError, match="no-such-net"):
        load_detector(folder)
    (folder / "config.json").write_text(cfg.replace('"format_version": 1', '"format_version": 99'))
    with pytest.raises(ConfigError, match="newer"):
        load_detector(folder)


def test_predict_accepts_every_input_kind_in_order(tmp_path, jpeg_files):
    det = load_detector("resnet18-finetune")
    pil = Image.open(jpeg_files[0])
    arr = np.asarray(Image.open(jpeg_files[1]).convert("RGB"))
    tensor = torch.rand(3, 224, 224)
    scores = det.predict([jpeg_files[0], str(jpeg_files[1]), pil, arr, tensor, tensor[None].repeat(2, 1, 1, 1)])
    assert scores.shape == (7,) and scores.dtype == np.float32
    assert np.all((scores >= 0) & (scores <= 1))
    assert scores[0] == pytest.approx(scores[2], abs=1e-6)  # path and PIL image agree
    assert scores[1] == pytest.approx(scores[3], abs=1e-6)  # path and numpy array agree
    assert scores[4] == pytest.approx(scores[5], abs=1e-6) and scores[5] == pytest.approx(scores[6], abs=1e-6)
    # a folder is scanned recursively, sorted, image files only
    (tmp_path / "sub").mkdir()
    (tmp_path / "notes.txt").write_text("not an image")
    Image.open(jpeg_files[0]).save(tmp_path / "sub" / "a.png")
    listed = dd.data.list_images(tmp_path)
    assert [p.name for p in listed] == [p.name for p in sorted(jpeg_files)] + ["a.png"]
    np.testing.assert_allclose(det.predict(tmp_path), det.predict(listed), atol=1e-6)


def test_predict_batches_and_single_calls_agree(jpeg_files):
    det = load_detector("resnet18-finetune")
    together = det.predict(jpeg_files, batch_size=4)
    alone = np.concatenate([det.predict(p) for p in jpeg_files])
    np.testing.assert_allclose(together, alone, atol=1e-5)


def test_fast_path_matches_the_plain_float32_forward(jpeg_files):
    many = jpeg_files * 7  # enough images for predict to take the optimised path
    assert len(many) >= dd.backends.FAST_PATH_MIN_IMAGES
    for name in ("resnet18-baseline", "resnet18-finetune", "efficientnet-lite0"):
        det = load_detector(name)
        _perturb_batchnorm(det.model, 4)
        det.model.eval()
        prep = det.preprocessor()
        x = prep.to_tensor([prep.prepare(p) for p in jpeg_files]).contiguous()
        with torch.no_grad():
            plain = det.scores_from_output(det.model(x)).numpy()
        np.testing.assert_allclose(det.predict_tensor(x, optimize=True).numpy(), plain, atol=1e-4)
        np.testing.assert_allclose(det.predict(many), np.tile(plain, 7), atol=1e-4)
        np.testing.assert_allclose(det.predict(jpeg_files), plain, atol=1e-4)  # small jobs: the plain model


def test_large_jpegs_are_decoded_in_full_unless_fast_decode(tmp_path):
    """Draft-mode JPEG decoding changes pixels, so it is opt-in; the default matches a full
    decode followed by the config's resize (what the camp notebook's transforms do)."""
    det = load_detector("resnet18-finetune")
    _perturb_batchnorm(det.model, 5)
    paths = []
    for i in range(2):
        big = face_like(i, size=96).resize((900, 900), Image.Resampling.BICUBIC)
        big = Image.fromarray(
            np.clip(
                np.asarray(big, dtype=np.int16) + np.random.default_rng(i).integers(-40, 41, (900, 900, 3)), 0, 255
            ).astype(np.uint8)
        )
        paths.append(tmp_path / f"big_{i}.jpg")
        big.save(paths[-1], quality=90)
    prep = det.preprocessor()
    full = [np.array(Image.open(p).convert("RGB").resize((224, 224), Image.Resampling.BILINEAR)) for p in paths]
    assert all(np.array_equal(prep.prepare(p), f) for p, f in zip(paths, full, strict=True))
    x = prep.to_tensor(full).contiguous()
    det.model.eval()
    with torch.no_grad():
        plain = det.scores_from_output(det.model(x)).numpy()
    np.testing.assert_allclose(det.predict(paths), plain, atol=1e-4)
    drafted = det.preprocessor(draft=True).prepare(paths[0])
    assert drafted.shape == (224, 224, 3) and not np.array_equal(drafted, full[0])
    assert np.isfinite(det.predict(paths, fast_decode=True)).all()


def test_fast_model_follows_weight_changes(jpeg_files):
    det = load_detector("resnet18-finetune")
    many = jpeg_files * 7
    first = det.predict(many)
    with torch.no_grad():
        det.model.classifier.bias.add_(3.0)
    second = det.predict(many)
    assert np.all(second > first)
    np.testing.assert_allclose(det.predict(jpeg_files), second[: len(jpeg_files)], atol=1e-4)


def test_unreadable_image_raises_or_is_skipped(tmp_path, jpeg_files):
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"<!DOCTYPE html><html>404</html>")
    det = load_detector("resnet18-finetune")
    with pytest.raises(ImageLoadError, match="broken.jpg"):
        det.predict([jpeg_files[0], bad])
    with pytest.warns(dd.SkippedImagesWarning, match="broken.jpg"):
        scores = det.predict([jpeg_files[0], bad, jpeg_files[1]], errors="skip")
    assert np.isnan(scores[1]) and not np.isnan(scores[[0, 2]]).any()
    np.testing.assert_allclose(scores[[0, 2]], det.predict([jpeg_files[0], jpeg_files[1]]), atol=1e-6)


def test_pretrained_backbone_offline_fails_fast_with_advice(monkeypatch):
    import time

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.perf_counter()
    with pytest.raises(dd.HubError, match="backbone_weights"):
        load_detector("resnet18-finetune", pretrained_backbone=True)
    assert time.perf_counter() - start < 10


def test_backbone_weights_from_a_local_file(tmp_path):
    backbone = timm.create_model("resnet18", pretrained=False)  # ImageNet-shaped, 1000 classes
    from deepfake_detect.weights import save_weights

    save_weights(backbone, tmp_path / "r18.safetensors")
    det = load_detector("resnet18-finetune", backbone_weights=tmp_path / "r18.safetensors")
    got = det.model.features_extractor.state_dict()
    for k, v in got.items():
        torch.testing.assert_close(v, backbone.state_dict()[k])
    base = load_detector("resnet18-baseline", backbone_weights=tmp_path / "r18.safetensors")
    torch.testing.assert_close(base.model.conv1.weight, backbone.conv1.weight)
    assert base.model.fc.weight.shape == (2, 512)  # the 1000-class head was dropped


def test_the_built_in_default_loads_offline_from_the_package(monkeypatch, jpeg_files):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    det = load_detector()
    assert det.config.architecture == "ensemble" and det.source == "built-in default detector"
    shipped = Path(dd.registry.default_weights().source).parent  # every shipped detector counts
    assert sum(f.stat().st_size for f in shipped.glob("*/model.safetensors")) < 25_000_000
    assert len(det.model.members) == 2
    assert det.num_params == 2 * dd.count_parameters("efficientnet-lite0") < 200_000_000
    assert {"dfdc_auc", "ffhq_auc", "sbi_auc"} <= set(det.config.metadata["metrics"])
    scores = det.predict(jpeg_files)
    assert scores.shape == (5,) and np.all((scores >= 0) & (scores <= 1))


def test_weights_are_tagged_registry_entries(tmp_path):
    from deepfake_detect.registry import default_weights, get_weights

    default = default_weights()
    assert default.name == "ensemble.dfdc_ffhq_sbi" and default.default
    assert "efficientnet-lite0.dfdc_ffhq_sbi" in dd.list_weights()  # v7 alone, the first member
    assert dd.list_detectors(pretrained=True) == dd.list_weights() and default.name in dd.list_weights()
    assert "research-only" in default.license
    shipped = json.loads((Path(default.source) / "config.json").read_text())["metadata"]
    assert default.metrics == shipped["metrics"] and default.recipe == shipped.get("recipe", {})
    named = load_detector(default.name)
    untrained = load_detector("ensemble")
    assert named.config.input_size == load_detector().config.input_size
    for k, v in load_detector().model.state_dict().items():
        torch.testing.assert_close(named.model.state_dict()[k], v)
    assert not torch.equal(named.model.members[0].classifier.weight, untrained.model.members[0].classifier.weight)
    v7 = load_detector("efficientnet-lite0.dfdc_ffhq_sbi")  # the default's first member, alone
    for k, v in v7.model.state_dict().items():
        torch.testing.assert_close(named.model.members[0].state_dict()[k], v)
    assert named.config.metadata["weights_tag"] == default.name
    with pytest.raises(dd.UnknownDetectorError, match="efficientnet-lite0"):
        load_detector("efficientnet-lite0.no_such_tag")
    # your own weights under a tag, and the explicit local-dir: prefix
    folder = load_detector(TINY_NAME).save_pretrained(tmp_path / "mine")
    entry = dd.register_weights(TINY_NAME, "mine", folder, license="apache-2.0")
    assert get_weights(f"{TINY_NAME}.mine") is entry
    assert load_detector(f"{TINY_NAME}.mine").config.metadata["weights_license"] == "apache-2.0"
    assert load_detector(f"local-dir:{folder}").source == str(folder)
    with pytest.raises(dd.ConfigError, match="local-dir:"):
        load_detector(f"local-dir:{tmp_path / 'nothing'}")
    with pytest.raises(dd.DeepfakeDetectError, match="already the default"):
        dd.register_weights(TINY_NAME, "other", folder, default=True)


def test_verdicts_follow_the_operating_points():
    cfg = dd.DetectorConfig("x", threshold=0.9, suspicious_threshold=0.4)
    assert [cfg.verdict(p) for p in (0.0, 0.39, 0.4, 0.89, 0.9, 1.0)] == [
        "real",
        "real",
        "suspicious",
        "suspicious",
        "fake",
        "fake",
    ]
    assert cfg.verdict(float("nan")) == "error"
    assert dd.DetectorConfig.from_dict(cfg.to_dict()) == cfg  # the band is saved with the weights
    plain = dd.DetectorConfig("x", threshold=0.9)
    assert "suspicious_threshold" not in plain.to_dict() and plain.verdict(0.5) == "real"
    with pytest.raises(dd.ConfigError, match="suspicious_threshold"):
        dd.DetectorConfig("x", threshold=0.5, suspicious_threshold=0.6)  # above the threshold


def test_the_card_states_both_operating_points_and_their_false_alarms():
    from deepfake_detect.card import model_card

    det = dd.load_detector(TINY_NAME)
    meta = {"false_alarm_rate": {"a val reals": 0.01}, "suspicious_rate": {"a val reals": 0.08}}
    det.config = det.config.replace(threshold=0.9, suspicious_threshold=0.6, metadata=meta)
    card = model_card(det)
    assert "decision threshold 0.9; suspicious from 0.6" in card
    assert "From 0.6 up to that, they are labelled suspicious" in card
    assert "| a val reals | 1.0% | 8.0% |" in card


def test_saved_files_get_the_usual_permissions(tmp_path):
    import os

    from deepfake_detect.weights import save_weights

    umask = os.umask(0)
    os.umask(umask)
    save_weights({"a": torch.zeros(3)}, tmp_path / "w.safetensors")  # safetensors recreates the temp file
    assert (tmp_path / "w.safetensors").stat().st_mode & 0o777 == 0o666 & ~umask


def test_every_library_error_is_a_deepfake_detect_error_and_survives_pickling():
    from deepfake_detect.errors import MissingDependencyError
    from deepfake_detect.serve.batching import QueueFullError

    err = MissingDependencyError("av", "video", "video input")
    back = pickle.loads(pickle.dumps(err))  # sent between processes under torchrun
    assert str(back) == str(err) and (back.package, back.extra, back.name) == ("av", "video", "av")
    assert issubclass(QueueFullError, dd.DeepfakeDetectError)
