"""Robustness sweeps on a tiny hand-set detector that really separates the generated fakes."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import face_like
from PIL import Image
from torch import nn

import deepfake_detect as dd
from deepfake_detect.cli import main
from deepfake_detect.errors import DataError, DeepfakeDetectError
from deepfake_detect.robustness import PERTURBATIONS, perturb, plot_sweep, sweep

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = "test-tiny-robust"
TINY_SOFTMAX = "test-tiny-robust-softmax"


class StripeNet(nn.Module):
    """Mean |vertical difference| of the image: high for the striped fakes of ``face_like``.

    A Conv2d (so it is a CNN), fixed weights: no training needed for a clean AUC near 1.
    ``classes=2`` gives softmax logits ``(-z/2, z/2)``.
    """

    def __init__(self, classes: int = 1) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 2, (2, 1), bias=False), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten()
        )
        self.head = nn.Linear(2, classes)
        with torch.no_grad():
            w = torch.zeros(2, 3, 2, 1)
            w[0, :, 0, 0], w[0, :, 1, 0] = -1.0, 1.0
            w[1] = -w[0]
            self.features[0].weight.copy_(w)
            sign = torch.tensor([-0.5, 0.5])[:, None] if classes == 2 else torch.ones(1, 1)
            self.head.weight.copy_(4.0 * sign.expand(classes, 2))
            self.head.bias.copy_(-2.0 * sign[:, 0])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


if TINY not in dd.list_detectors():
    dd.register_detector(TINY, lambda **kw: StripeNet(**kw), config=dd.DetectorConfig(TINY, input_size=32))
    dd.register_detector(
        TINY_SOFTMAX,
        lambda **kw: StripeNet(classes=2, **kw),
        config=dd.DetectorConfig(TINY_SOFTMAX, input_size=32, output="softmax"),
    )


@pytest.fixture(scope="module")
def data() -> list[tuple[Image.Image, int]]:
    """16 generated 48x48 images, 8 real and 8 fake."""
    return [(face_like(200 + i, size=48, fake=bool(i % 2)), i % 2) for i in range(16)]


def test_a_row_per_level_for_each_perturbation(data) -> None:
    d = dd.load_detector(TINY)
    rows = sweep(d, data, limit=12)
    expected = [(name, lv) for name, levels in PERTURBATIONS.items() for lv in levels]
    assert [(r["perturbation"], r["level"]) for r in rows] == expected
    assert rows[0] == {**rows[0], "perturbation": "clean", "level": 0}
    for r in rows:
        assert set(r) == {"perturbation", "level", "auc", "acc", "false_alarms", "n"}
        assert r["n"] == 12 and 0.0 <= r["auc"] <= 1.0 and 0.0 <= r["acc"] <= 1.0 and 0.0 <= r["false_alarms"] <= 1
    json.dumps(rows)  # plain Python numbers
    assert rows[0]["auc"] >= 0.9  # the hand-set detector works on clean images


def test_attacks_lower_the_auc_and_leave_the_model_alone(data) -> None:
    for name in (TINY, TINY_SOFTMAX):
        d = dd.load_detector(name)
        state = {k: v.clone() for k, v in d.model.state_dict().items()}
        rows = sweep(d, data, ["fgsm", "pgd"], limit=12)
        auc = {(r["perturbation"], r["level"]): r["auc"] for r in rows}
        assert auc[("clean", 0)] >= 0.9
        assert auc[("fgsm", 8)] < auc[("clean", 0)], name
        assert auc[("pgd", 8)] < auc[("clean", 0)], name
        assert auc[("pgd", 8)] <= auc[("pgd", 1)] + 1e-9
        assert all(torch.equal(state[k], v) for k, v in d.model.state_dict().items())
        assert not d.model.training and all(p.requires_grad for p in d.model.parameters())
        assert all(p.grad is None for p in d.model.parameters())


def test_limit_is_stratified_and_seeded(data) -> None:
    d = dd.load_detector(TINY)
    a = sweep(d, data, ["noise", "pgd"], limit=6, seed=3)
    b = sweep(d, data, ["noise", "pgd"], limit=6, seed=3, batch_size=4)  # batching does not change results
    assert a == b and all(r["n"] == 6 for r in a)
    with pytest.raises(DeepfakeDetectError, match="limit"):
        sweep(d, data, ["jpeg"], limit=1)
    for bad in (0, "4"):
        with pytest.raises(DeepfakeDetectError, match=rf"batch_size={bad!r}: expected an int of at least 1"):
            sweep(d, data, ["jpeg"], batch_size=bad)  # type: ignore[arg-type]


def test_custom_levels_and_bad_requests(data) -> None:
    d = dd.load_detector(TINY)
    rows = sweep(d, data[:6], {"jpeg": (95, 10), "blur": (0,)})
    assert [(r["perturbation"], r["level"]) for r in rows] == [("clean", 0), ("jpeg", 95), ("jpeg", 10), ("blur", 0)]
    assert rows[3]["auc"] == rows[0]["auc"]  # blur sigma 0 is the identity
    with pytest.raises(DeepfakeDetectError, match="unknown perturbation"):
        sweep(d, data, ["jpg"])
    with pytest.raises(DeepfakeDetectError, match="bad level"):
        sweep(d, data, {"resize": (2.0,)})
    with pytest.raises(DataError, match="real and fake"):
        sweep(d, [(img, 1) for img, _ in data[:4]], ["jpeg"])


def test_perturb_keeps_shape_and_range() -> None:
    img = torch.from_numpy(np.array(face_like(1, size=32))).permute(2, 0, 1).float() / 255
    rng = np.random.default_rng(0)
    for name, levels in PERTURBATIONS.items():
        if name in ("fgsm", "pgd"):
            continue
        for lv in levels:
            out = perturb(img, name, lv, rng=rng)
            assert out.shape == img.shape and out.dtype == torch.float32
            assert 0.0 <= float(out.min()) and float(out.max()) <= 1.0
    assert float((perturb(img, "blur", 3) - img).abs().mean()) > float((perturb(img, "blur", 0.5) - img).abs().mean())
    assert float((perturb(img, "jpeg", 30) - img).abs().mean()) > float((perturb(img, "jpeg", 90) - img).abs().mean())
    noisy = perturb(img, "noise", 20, rng=np.random.default_rng(0)) - img
    assert 0.03 < float(noisy.std()) < 0.1  # about 20/255, less where clipped
    err = {crf: float((perturb(img, "video", crf) - img).abs().mean()) for crf in (0, 23, 37)}
    assert err[0] < err[23] < err[37] and err[37] > 0.01  # H.264 at a higher CRF loses more


def test_crop_keeps_the_inner_box_and_counts_false_alarms() -> None:
    """The crop perturbation magnifies the centre box (vertical centre 55 %); a detector that
    looks at the image's border scores tight crops differently, and false alarms count the
    reals at or above the threshold."""
    img = torch.zeros(3, 40, 40)
    img[:, 12:32, 10:30] = 1.0  # a bright box of side 0.5 centred at (0.5, 0.55)
    out = perturb(img, "crop", 0.5)
    assert float(out[:, 2:-2, 2:-2].min()) > 0.99 and float(img.mean()) < 0.3
    d = dd.load_detector(TINY)
    reals = [(face_like(400 + i, size=48), 0) for i in range(4)]
    fakes = [(face_like(500 + i, size=48, fake=True), 1) for i in range(4)]
    d.config = d.config.replace(threshold=0.0)  # every image is "fake": all reals are false alarms
    rows = sweep(d, reals + fakes, {"crop": (0.5,)})
    assert [r["false_alarms"] for r in rows] == [1.0, 1.0]
    with pytest.raises(DeepfakeDetectError, match=r"bad level.*side in \(0, 1\]"):
        sweep(d, reals + fakes, {"crop": (0.0,)})
    with pytest.raises(DeepfakeDetectError, match="CRF"):
        sweep(d, reals + fakes, {"video": (60,)})


def test_plot_sweep(tmp_path, data) -> None:
    rows = sweep(dd.load_detector(TINY), data, ["jpeg", "fgsm"], limit=8)
    out = plot_sweep(rows, tmp_path / "sweep.png")
    with Image.open(out) as png:
        assert png.format == "PNG" and png.size[0] > 100
    with pytest.raises(DataError):
        plot_sweep([], tmp_path / "empty.png")


def test_cli_robustness(tmp_path, capsys) -> None:
    root = tmp_path / "data"
    for label, sub in ((0, "real"), (1, "fake")):
        (root / sub).mkdir(parents=True)
        for i in range(4):
            face_like(300 + 10 * label + i, size=40, fake=bool(label)).save(root / sub / f"{i}.png")
    png, js = tmp_path / "r.png", tmp_path / "r.json"
    assert (
        main(
            [
                "robustness",
                "--model",
                TINY,
                "--labels",
                str(root),
                "--perturbations",
                "jpeg",
                "pgd",
                "--limit",
                "6",
                "--plot",
                str(png),
                "--json",
                str(js),
            ]
        )
        == 0
    )
    assert "pgd" in capsys.readouterr().out and png.is_file()
    assert len(json.loads(js.read_text())) == 1 + 4 + 4
