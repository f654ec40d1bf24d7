"""Training and evaluating on several data sources at once, epochs of a chosen size, and the
face-crop policy that training and prediction share. Generated images only."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import TINY, face_like
from PIL import Image

from deepfake_detect import face, load_detector
from deepfake_detect.augment import center_crop, crossscale_augment, crossvideo_augment, get_augment
from deepfake_detect.config import DetectorConfig
from deepfake_detect.crossdata import (
    cropped_view,
    default_splits,
    group_split,
    real_score_quantiles,
    real_scores,
    selection_set,
    self_blended_set,
    source_splits,
    val_set,
    video_view,
)
from deepfake_detect.errors import ConfigError, DataError, TrainingError
from deepfake_detect.face import CropPolicy
from deepfake_detect.video import h264_available


def _pairs(n: int, seed: int) -> list[tuple[Image.Image, int]]:
    return [(face_like(seed * 1000 + i, size=32, fake=bool(label)), label) for label in (0, 1) for i in range(n)]


class _Counting(torch.utils.data.Dataset):
    """(image, label) pairs that count how often each source is read."""

    def __init__(self, pairs, counter: dict, name: str) -> None:
        self.pairs, self.counter, self.name = pairs, counter, name

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, i):
        self.counter[self.name] = self.counter.get(self.name, 0) + 1
        return self.pairs[i]


def test_multi_source_history_has_per_source_metrics_and_selects_on_their_mean(one_thread):
    det = load_detector(TINY)
    a, b = _pairs(6, 1), _pairs(4, 2)
    result = det.finetune({"a": a, "b": b}, {"a": a, "b": b}, epochs=3, batch_size=8, lr=3e-3, progress=False)
    for record in result.history:
        assert set(record["val_sources"]) == {"a", "b"}
        assert record["val_sources"]["a"]["n"] == 12 and record["val_sources"]["b"]["n"] == 8
        assert record["val"]["n"] == 20
        assert record["val"]["auc_mean"] == pytest.approx(
            (record["val_sources"]["a"]["auc"] + record["val_sources"]["b"]["auc"]) / 2
        )
    best = max(result.history, key=lambda r: r["val"]["auc_mean"])
    assert result.best["auc_mean"] == best["val"]["auc_mean"]


def test_source_weights_and_epoch_size_set_what_each_epoch_reads(one_thread):
    counter: dict[str, int] = {}
    a = _Counting(_pairs(20, 3), counter, "a")
    b = _Counting(_pairs(20, 4), counter, "b")
    det = load_detector(TINY)
    det.finetune(
        {"a": a, "b": b},
        epochs=2,
        batch_size=10,
        epoch_size=40,
        source_weights={"a": 3, "b": 1},
        cache_images=False,
        progress=False,
        num_workers=0,
    )
    # as_labeled_data reads each item's label once; then 30 + 10 images per epoch
    assert counter == {"a": 40 + 2 * 30, "b": 40 + 2 * 10}
    counter.clear()
    det.finetune([a, b], epochs=1, batch_size=10, epoch_size=20, cache_images=False, progress=False, num_workers=0)
    assert counter == {"a": 40 + 10, "b": 40 + 10}  # a list of datasets; weights follow the sizes


def test_a_source_weighted_zero_gives_no_synthetic_fakes_either():
    from deepfake_detect.training import TrainConfig, Trainer
    from deepfake_detect.training.samples import AS_IS

    a, b = _pairs(10, 11), _pairs(10, 12)
    config = TrainConfig(epochs=1, synth_fakes=1.0, source_weights={"a": 1.0, "b": 0.0}, progress=False)
    trainer = Trainer(load_detector(TINY), {"a": a, "b": b}, config=config)
    trainer.setup()
    plan = trainer.samples.epoch_plan(1)
    ids = trainer.samples.source_ids
    assert {int(ids[i]) for i, kind in plan} == {0}  # nothing of b, as is or blended
    assert sum(kind != AS_IS for _, kind in plan) == 20  # one blend per drawn real: 40 drawn from a, half real


def test_a_frozen_backbone_trains_on_epochs_that_draw_a_subset(one_thread):
    """Regression: the feature cache held only what epoch 1 drew, and epoch 2 raised KeyError."""
    data = _pairs(12, 13)
    for kwargs in ({"epoch_size": 10}, {"source_weights": {"a": 0.8, "b": 0.2}}):
        train = data if "epoch_size" in kwargs else {"a": data[:12] + data[12:18], "b": data[6:12] + data[18:]}
        result = load_detector(TINY).finetune(
            train, epochs=3, batch_size=8, freeze_backbone=True, progress=False, num_workers=0, **kwargs
        )
        assert len(result.history) == 3


def test_multi_source_errors_name_the_source(one_thread):
    det = load_detector(TINY)
    a = _pairs(3, 5)
    with pytest.raises(TrainingError, match="several training sources"):
        det.finetune(a, epochs=1, source_weights={"a": 1.0}, progress=False)
    with pytest.raises(TrainingError, match=r"unknown sources \['c'\]"):
        det.finetune({"a": a, "b": a}, epochs=1, source_weights={"c": 1.0}, progress=False)
    with pytest.raises(TrainingError, match="non-negative"):
        det.finetune({"a": a, "b": a}, epochs=1, source_weights={"a": -1.0, "b": 1.0}, progress=False)
    only_real = [(img, 0) for img, y in a if y == 0]
    with pytest.raises(DataError, match="validation source 'b'"):
        det.finetune(a, {"a": a, "b": only_real}, epochs=1, progress=False)
    with pytest.raises(TrainingError, match="epoch_size"):
        det.finetune(a, epochs=1, epoch_size=0, progress=False)
    with pytest.raises(DataError, match="empty mapping"):
        det.evaluate({})
    scored = []
    det.predict = lambda *args, **kwargs: scored.append(args)  # evaluate must refuse before scoring
    with pytest.raises(DataError, match=r"source 'b' .*only label\(s\) \[0\]"):
        det.evaluate({"a": a, "b": only_real})
    with pytest.raises(DataError, match=r"only label\(s\) \[0\]"):
        det.evaluate(only_real)
    assert scored == []


def test_evaluate_per_source_equals_each_source_alone(one_thread):
    det = load_detector(TINY)
    a, b = _pairs(5, 6), _pairs(3, 7)
    metrics = det.evaluate({"a": a, "b": b})
    assert set(metrics) == {"a", "b", "pooled"}
    for name, data in (("a", a), ("b", b)):
        alone = det.evaluate(data)
        assert metrics[name]["auc"] == pytest.approx(alone["auc"])
        assert metrics[name]["n"] == alone["n"]
    assert metrics["pooled"]["auc"] == pytest.approx(det.evaluate(a + b)["auc"])
    assert metrics["pooled"]["auc_mean"] == pytest.approx((metrics["a"]["auc"] + metrics["b"]["auc"]) / 2)


def test_group_split_keeps_groups_whole():
    pairs = _pairs(10, 8)
    groups = [f"clip{i % 5}" for i in range(len(pairs))]
    kept, held = group_split(pairs, groups, 0.4, seed=0)
    assert len(kept) + len(held) == len(pairs) and len(held) > 0
    held_groups = {groups[int(n)] for n in held.names}
    kept_groups = {groups[int(n)] for n in kept.names}
    assert len(held_groups) == 2 and not held_groups & kept_groups
    with pytest.raises(DataError, match="groups has 3 entries"):
        group_split(pairs, ["x"] * 3, 0.5)


def test_self_blended_set_is_reproducible():
    src = {"a": _pairs(3, 9), "b": _pairs(2, 10)}
    one, two = self_blended_set(src, per_source=2, seed=5), self_blended_set(src, per_source=2, seed=5)
    assert [y for _, y in one] == [0, 1] * 4
    assert all(np.array_equal(np.asarray(p), np.asarray(q)) for (p, _), (q, _) in zip(one, two, strict=True))


def _challenge_folder(root, n_clips: int, *, with_sources: bool) -> None:
    """A challenge-layout source: train/ and val/ with label files; each clip has a real
    frame and the fake made from it (a dfdc-faces-like ``sources.csv`` when asked)."""
    rows = []
    for split, count in (("train", n_clips), ("val", 2)):
        (root / split).mkdir(parents=True)
        lines = ["img_name,target"]
        for c in range(count):
            for label in (0, 1):
                name = f"{split}{c}_{label}.png"
                face_like(c * 2 + label, size=32, fake=bool(label)).save(root / split / name)
                lines.append(f"{name},{label}")
                rows.append(f"{split},{name},{label},{name}.mp4,clip{c}.mp4")
        (root / f"{split}_label.txt").write_text("\n".join(lines) + "\n")
    if with_sources:
        (root / "sources.csv").write_text("split,img_name,target,video,source_video\n" + "\n".join(rows) + "\n")


def test_default_splits_hold_out_whole_clips_and_are_reproducible(tmp_path):
    _challenge_folder(tmp_path / "dfdc", 40, with_sources=True)
    _challenge_folder(tmp_path / "ffhq", 20, with_sources=False)
    train, holdout, val = default_splits(tmp_path / "dfdc", tmp_path / "ffhq", seed=3)
    assert set(train) == set(holdout) == set(val) == {"dfdc", "ffhq"}
    assert (len(holdout["dfdc"]), len(holdout["ffhq"])) == (4, 4)  # 5 % of 40 clips x 2; 10 % of 40 images
    clip = lambda name: name.split("_")[0]  # noqa: E731
    assert not {clip(n) for n in holdout["dfdc"].names} & {clip(n) for n in train["dfdc"].names}
    assert len(train["ffhq"]) + len(holdout["ffhq"]) == 40 and len(val["dfdc"]) == 4
    assert list(holdout["dfdc"].names) == list(source_splits(tmp_path / "dfdc", 0.05, seed=3)[1].names)
    assert list(holdout["ffhq"].names) == list(source_splits(tmp_path / "ffhq", 0.1, seed=3)[1].names)
    other = default_splits(tmp_path / "dfdc", tmp_path / "ffhq", seed=4)[1]
    assert any(list(other[k].names) != list(holdout[k].names) for k in holdout)  # the seed is used
    select = selection_set(holdout, seed=3, per_source=1)
    assert set(select) == {"dfdc", "ffhq", "sbi"} and [y for _, y in select["sbi"]] == [0, 1, 0, 1]
    small = default_splits(tmp_path / "dfdc", tmp_path / "ffhq", seed=3, limit=6)[0]
    assert all(len(v) <= 6 for v in small.values())


def test_third_source_and_crop_views_in_the_selection_set(tmp_path):
    _challenge_folder(tmp_path / "dfdc", 20, with_sources=True)
    _challenge_folder(tmp_path / "ffhq", 20, with_sources=False)
    _challenge_folder(tmp_path / "celebdf", 20, with_sources=True)
    train, holdout, val = default_splits(tmp_path / "dfdc", tmp_path / "ffhq", seed=3, celebdf=tmp_path / "celebdf")
    assert set(train) == set(holdout) == set(val) == {"dfdc", "ffhq", "celebdf"}
    assert list(holdout["celebdf"].names) == list(source_splits(tmp_path / "celebdf", 0.15, seed=3)[1].names)
    select = selection_set(holdout, seed=3, per_source=1, crop_sides=(0.5,), scored=("dfdc", "ffhq"))
    assert set(select) == {"dfdc", "ffhq", "sbi", "dfdc@crop0.5", "ffhq@crop0.5"}
    assert len(select["sbi"]) == 6  # one real and one self-blend from each of the three sources
    crops = select["dfdc@crop0.5"]
    assert [y for _, y in crops] == list(holdout["dfdc"].labels) and crops[0][0].size == (32, 32)
    # val's report draws its self-blends from the scored sources alone (as every default since v4)
    report = val_set(val, per_source=1, crop_sides=(0.5,))
    assert set(report) == {"dfdc", "ffhq", "sbi", "dfdc@crop0.5", "ffhq@crop0.5"}
    assert len(report["sbi"]) == 4 and [y for _, y in report["sbi"]] == [0, 1, 0, 1]
    assert list(report["dfdc"].names) == list(val["dfdc"].names)


def test_center_crop_keeps_the_inner_box_and_the_size():
    grid = np.zeros((100, 100, 3), np.uint8)
    grid[30:80, 25:75] = 255  # a white box of side 0.5 centred at (0.5, 0.55)
    out = np.asarray(center_crop(Image.fromarray(grid), 0.5))
    assert out.shape == (100, 100, 3) and out[5:-5, 5:-5].min() == 255  # the box now fills the image
    assert center_crop(Image.fromarray(grid), 1.0).size == (100, 100)
    with pytest.raises(Exception, match="side"):
        center_crop(Image.fromarray(grid), 0.0)
    views = cropped_view([(Image.fromarray(grid), 1)], 0.5)
    assert views[0][1] == 1 and np.asarray(views[0][0])[5:-5, 5:-5].min() == 255


def test_real_score_quantiles_cover_every_source_and_crop_side():
    """Thresholds come from real images alone, as given and cropped; a source without reals
    is skipped; the quantile is that of the scorer's outputs."""
    pairs = [(face_like(i, size=32), 0) for i in range(10)] + [(face_like(50, size=32, fake=True), 1)]
    only_fakes = [(face_like(60, size=32, fake=True), 1)]
    seen: list[int] = []

    def score(images):
        seen.append(len(images))
        return np.linspace(0.0, 0.9, len(images))  # reals get 0.0, 0.1, ..., 0.9

    scores = real_scores(score, {"a": pairs, "b": only_fakes}, crop_sides=(0.5,))
    q = real_score_quantiles(scores, 0.1)
    assert list(q) == ["a", "a@crop0.5"] and seen == [10, 10]  # the fake and source b are never scored
    assert q["a"] == pytest.approx(np.quantile(np.linspace(0.0, 0.9, 10), 0.9))
    assert real_score_quantiles(scores, 0.5)["a"] < q["a"] and seen == [10, 10]  # another rate scores nothing again
    with pytest.raises(DataError, match="false_alarms"):
        real_score_quantiles(scores, 1.5)


def test_crossscale_reaches_half_side_crops():
    """Over many draws, crossscale crops as tight as 0.45-0.5 of the side: a centred box of side
    0.5 then covers the whole output (crossdomain stops at 0.67 of the side)."""
    grid = np.zeros((64, 64, 3), np.uint8)
    grid[16:48, 16:52] = 200
    img = Image.fromarray(grid)
    tight = sum(
        np.asarray(crossscale_augment(img, np.random.default_rng(s)))[8:-8, 8:-8].min() > 100 for s in range(200)
    )
    assert tight > 0


@pytest.mark.skipif(not h264_available(), reason="PyAV with libx264 not installed")
def test_crossvideo_codes_some_images_as_h264_and_keeps_the_size():
    """crossvideo keeps the size and mode; video_view is a lossy round trip that keeps labels
    and odd sizes."""
    img = face_like(3, size=48)
    assert get_augment("crossvideo") is crossvideo_augment
    outs = [crossvideo_augment(img, np.random.default_rng(s)) for s in range(40)]
    assert all(o.size == (48, 48) and o.mode == "RGB" for o in outs)
    views = video_view([(img, 1), (face_like(4, size=47), 0)], 37)
    assert [label for _, label in views] == [1, 0] and views[1][0].size == (47, 47)
    diff = np.abs(np.asarray(views[0][0], float) - np.asarray(img, float)).mean()
    assert 0.0 < diff < 30.0


# -- the crop policy ---------------------------------------------------------------------------
def test_crop_policy_box():
    square = CropPolicy(margin=0.25, square=True)
    assert square.crop_box((40, 30, 60, 70), (200, 200)) == (20, 20, 80, 80)  # a 40x40 square + 10 px each side
    assert CropPolicy(margin=0.0, square=False).crop_box((40, 30, 60, 70), (200, 200)) == (40, 30, 60, 70)
    assert square.crop_box((0, 0, 20, 20), (30, 30)) == (0, 0, 25, 25)  # clipped to the image
    with pytest.raises(Exception, match="margin"):
        CropPolicy(margin=-1)


def test_face_crop_travels_in_the_config(tmp_path):
    cfg = DetectorConfig("efficientnet-lite0", face_crop={"margin": 0.1, "square": False})
    cfg.save(tmp_path / "config.json")
    again = DetectorConfig.load(tmp_path / "config.json")
    assert CropPolicy.from_config(again.face_crop) == CropPolicy(margin=0.1, square=False)
    assert CropPolicy.from_config(None) == CropPolicy()
    with pytest.raises(ConfigError, match="face_crop"):
        DetectorConfig("efficientnet-lite0", face_crop={"margin": 0.1, "tight": True})


def test_training_and_predict_see_the_same_face_crop(monkeypatch, one_thread):
    """finetune(crop_faces=True) feeds the model exactly the crop predict(crop_faces=True) makes."""
    pytest.importorskip("cv2", reason="the face extra is not installed")
    monkeypatch.setattr(face, "detect_largest_face", lambda img, cascade=None, **kw: (20, 16, 44, 48))
    det = load_detector(TINY)
    det.config = det.config.replace(face_crop={"margin": 0.3, "square": True})
    images = [(face_like(i, size=96, fake=bool(i % 2)), i % 2) for i in range(4)]
    seen: list[torch.Tensor] = []
    hook = det.model.register_forward_pre_hook(lambda m, args: seen.append(args[0].detach().clone()))
    det.finetune(images, epochs=1, batch_size=4, augment="none", crop_faces=True, progress=False, num_workers=0)
    trained = seen[-1]
    seen.clear()
    det.predict([img for img, _ in images], crop_faces=True, batch_size=4)
    hook.remove()
    predicted = seen[-1]
    assert trained.shape == predicted.shape == (4, 3, 32, 32)
    # training shuffles: compare as sets of images
    dist = torch.cdist(trained.flatten(1), predicted.flatten(1))
    assert (dist.min(dim=1).values < 1e-4).all()
    # and it is the policy's crop, not the whole image
    whole = det.preprocessor().to_tensor([det.preprocessor().prepare(img) for img, _ in images])
    assert torch.cdist(whole.flatten(1), predicted.flatten(1)).min() > 1e-2
