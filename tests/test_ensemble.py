"""The ensemble detector: members' fake log-odds averaged, saved and loaded as one detector."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import TINY, TinyNet, face_like

import deepfake_detect as dd
from deepfake_detect import load_detector
from deepfake_detect.errors import ConfigError, ParameterLimitError
from deepfake_detect.models import ensemble_of

pytestmark = pytest.mark.usefixtures("one_thread")

TINY_SOFTMAX = "test-tiny-ensemble-softmax"
if TINY_SOFTMAX not in dd.list_detectors():
    dd.register_detector(
        TINY_SOFTMAX,
        lambda **kw: TinyNet(outputs=2, **kw),
        config=dd.DetectorConfig(TINY_SOFTMAX, input_size=32, output="softmax"),
    )


def _members(seeds=(1, 2)):
    out = []
    for s in seeds:
        torch.manual_seed(s)
        out.append(load_detector(TINY))
    return out


def _images(n=6):
    return [face_like(10 + i, size=48, fake=bool(i % 2)) for i in range(n)]


def _log_odds(p):
    p = np.asarray(p, np.float64)
    return np.log(p) - np.log1p(-p)


def test_the_ensemble_scores_the_mean_of_its_members_log_odds():
    a, b = _members()
    images = _images()
    pa, pb = a.predict(images, backend="torch"), b.predict(images, backend="torch")
    assert not np.allclose(pa, pb, atol=1e-3)  # the members differ, so the mean is a real check
    ens = ensemble_of([a, b])
    expected = 1 / (1 + np.exp(-(_log_odds(pa) + _log_odds(pb)) / 2))
    np.testing.assert_allclose(ens.predict(images, backend="torch"), expected, atol=1e-5)
    weighted = ensemble_of([a, b], weights=[3, 1])
    expected = 1 / (1 + np.exp(-(0.75 * _log_odds(pa) + 0.25 * _log_odds(pb))))
    np.testing.assert_allclose(weighted.predict(images, backend="torch"), expected, atol=1e-5)
    assert ens.config.architecture == "ensemble" and ens.config.output == "sigmoid"


def test_softmax_members_enter_with_their_fake_log_odds():
    torch.manual_seed(3)
    soft = load_detector(TINY_SOFTMAX)
    (sig,) = _members((4,))
    images = _images()
    ps, pg = soft.predict(images, backend="torch"), sig.predict(images, backend="torch")
    ens = ensemble_of([soft, sig])
    expected = 1 / (1 + np.exp(-(_log_odds(ps) + _log_odds(pg)) / 2))
    np.testing.assert_allclose(ens.predict(images, backend="torch"), expected, atol=1e-5)


def test_an_ensemble_saves_and_loads_as_one_detector(tmp_path):
    ens = ensemble_of(_members(), threshold=0.42)
    images = _images()
    ens.save_pretrained(tmp_path / "ens")
    back = load_detector(tmp_path / "ens")
    assert back.config.threshold == 0.42 and len(back.model.members) == 2
    np.testing.assert_allclose(back.predict(images, backend="torch"), ens.predict(images, backend="torch"), atol=1e-6)


def test_an_ensemble_does_not_inherit_a_members_suspicious_band():
    a, b = _members()
    a.config = a.config.replace(threshold=0.99, suspicious_threshold=0.9)  # a calibrated first member
    ens = ensemble_of([a, b])  # threshold: the mean, 0.745, below a's band
    assert ens.config.threshold == pytest.approx(0.745) and ens.config.suspicious_threshold is None
    ens = ensemble_of([a, b], threshold=0.8, suspicious_threshold=0.6)
    assert (ens.config.threshold, ens.config.suspicious_threshold) == (0.8, 0.6)
    assert ens.config.verdict(0.7) == "suspicious"


def test_the_registry_entry_builds_two_fresh_lite0_members():
    ens = load_detector("ensemble")
    assert len(ens.model.members) == 2
    assert dd.count_parameters("ensemble") == 2 * dd.count_parameters("efficientnet-lite0")


def test_members_must_share_their_preprocessing_and_fit_the_limit():
    (a,) = _members((1,))
    other = load_detector(TINY)
    other.config = other.config.replace(input_size=(40, 40))
    with pytest.raises(ConfigError, match="input_size"):
        ensemble_of([a, other])
    with pytest.raises(ConfigError, match="weights"):
        ensemble_of([a, a], weights=[1, -1])
    with pytest.raises(ConfigError, match="at least one member"):
        load_detector("ensemble", members=[])
    with pytest.raises(ParameterLimitError):
        ensemble_of([a, a], max_params=10)


def test_backbone_weights_and_pretrained_backbone_reach_every_member():
    # the registry's contract: a factory takes pretrained_backbone and backbone_weights
    # (deepfake-detect finetune --model ensemble --backbone-weights FILE passes them)
    seen = []
    name = "test-tiny-ensemble-backbone"
    if name not in dd.list_detectors():
        dd.register_detector(
            name,
            lambda pretrained_backbone=False, backbone_weights=None, **kw: (
                seen.append((pretrained_backbone, backbone_weights)) or TinyNet(**kw)
            ),
            config=dd.DetectorConfig(name, input_size=32),
        )
    members = [{"architecture": name}, {"architecture": name}]
    ens = load_detector("ensemble", members=members, backbone_weights="imagenet.pth")
    assert seen[-2:] == [(False, "imagenet.pth")] * 2
    assert "backbone_weights" not in ens.config.model_kwargs  # build-only, as for any detector
    load_detector("ensemble", members=members, pretrained_backbone=True)
    assert seen[-2:] == [(True, None)] * 2
    load_detector("ensemble", members=[{"architecture": TINY}])  # factories without those arguments


def test_grad_cam_of_an_ensemble_sums_every_members_map():
    from deepfake_detect.explain import _gradcam, explain

    ens = ensemble_of(_members())
    x01 = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    parts = [_gradcam(ens, x01, f"members.{i}.features.5").detach() for i in range(2)]
    assert all(float(p.max()) > 0 for p in parts)  # both members contribute, so the sum is a real check
    torch.testing.assert_close(_gradcam(ens, x01, None).detach(), parts[0] + parts[1])
    heat = explain(ens, face_like(5, size=48, fake=True))
    assert heat.shape == (48, 48) and 0 <= heat.min() and heat.max() <= 1
