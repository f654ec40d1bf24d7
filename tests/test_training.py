"""Fine-tuning and evaluation from user code: data formats, losses, freezing, resume, torchrun."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import TINY

import deepfake_detect as dd
from deepfake_detect import load_detector
from deepfake_detect.data import LabelFile, stratified_split
from deepfake_detect.training import CHECKPOINT_BEST, CHECKPOINT_LAST


def _pairs(folder: Path) -> list[tuple[Path, int]]:
    return [(p, 0) for p in sorted((folder / "real").iterdir())] + [(p, 1) for p in sorted((folder / "fake").iterdir())]


def _label_file(folder: Path) -> LabelFile:
    flat = folder.parent / "flat"
    flat.mkdir(exist_ok=True)
    rows = ["img_name,target"]
    for p, y in _pairs(folder):
        (flat / p.name).write_bytes(p.read_bytes())
        rows.append(f"{p.name},{y}")
    (folder.parent / "labels.txt").write_text("\n".join(rows) + "\n")
    return LabelFile(folder.parent / "labels.txt", flat)


class _TorchDataset(torch.utils.data.Dataset):
    def __init__(self, pairs):
        self.pairs = pairs

    def __len__(self):
        return len(self.pairs)

    def __getitem__(self, i):
        from PIL import Image

        path, label = self.pairs[i]
        return Image.open(path).convert("RGB"), label


def test_every_data_format_trains_and_evaluates(image_folder):
    pairs = _pairs(image_folder)
    zero_one = image_folder.parent / "zo"
    for sub, label in (("real", "0"), ("fake", "1")):
        (zero_one / label).mkdir(parents=True)
        for p in (image_folder / sub).iterdir():
            (zero_one / label / p.name).write_bytes(p.read_bytes())
    formats = {
        "folder": image_folder,
        "0/1 folder": zero_one,
        "pairs": pairs,
        "label file": _label_file(image_folder),
        "dataset": _TorchDataset(pairs),
    }
    for name, data in formats.items():
        det = load_detector(TINY)
        result = det.finetune(data, data, epochs=2, batch_size=8, progress=False, num_workers=0)
        assert [h["epoch"] for h in result.history] == [1, 2], name
        assert all(np.isfinite(h["train_loss"]) for h in result.history), name
        assert set(result.history[0]["val"]) >= {"auc", "tpr_at_fpr_1e-3", "acc", "ap", "eer", "logloss", "n"}
        assert result.best["epoch"] in (1, 2) and result.history[0]["val"]["n"] == 16
        metrics = det.evaluate(data)
        assert metrics["n"] == 16 and 0.0 <= metrics["auc"] <= 1.0, name


def test_training_learns_an_easy_artefact(image_folder):
    torch.manual_seed(0)
    det = load_detector(TINY)
    result = det.finetune(
        image_folder, image_folder, epochs=10, batch_size=8, lr=1e-2, augment="none", progress=False, num_workers=0
    )
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]
    assert result.best["auc"] > 0.85
    assert det.evaluate(image_folder)["auc"] == pytest.approx(result.best["auc"], abs=1e-6)  # holds the best weights


def test_losses_follow_the_head(image_folder):
    pairs = _pairs(image_folder)[:2] + _pairs(image_folder)[-2:]
    for name in ("resnet18-baseline", "ae-classifier"):  # cross-entropy on 2 logits; AELoss on (logit, x_hat)
        det = load_detector(name)
        assert det.entry.loss == {"resnet18-baseline": "cross_entropy", "ae-classifier": "ae"}[name]
        before = {k: v.clone() for k, v in det.model.state_dict().items()}
        result = det.finetune(pairs, epochs=1, batch_size=4, progress=False, num_workers=0, augment="none")
        assert np.isfinite(result.history[0]["train_loss"])
        assert any(not torch.equal(before[k], v) for k, v in det.model.state_dict().items())
    assert load_detector("resnet18-finetune").entry.loss == "bce"


def test_a_custom_loss_callable_is_used(image_folder):
    calls = []

    def loss(output, labels, inputs):
        calls.append(len(labels))
        return torch.nn.functional.binary_cross_entropy_with_logits(output[:, 0], labels)

    load_detector(TINY).finetune(image_folder, epochs=1, batch_size=8, loss=loss, progress=False, num_workers=0)
    assert sum(calls) == 16


def test_frozen_backbone_stays_frozen_bn_statistics_included(image_folder, monkeypatch):
    from deepfake_detect.training.feature_cache import FeatureCache

    caches = []
    create = FeatureCache.try_create.__func__

    def spy(cls, *args, **kwargs):
        caches.append(create(cls, *args, **kwargs))
        return caches[-1]

    monkeypatch.setattr(FeatureCache, "try_create", classmethod(spy))
    det = load_detector("resnet18-finetune")
    assert det.entry.freeze_backbone
    before = {k: v.clone() for k, v in det.model.state_dict().items()}
    result = det.finetune(image_folder, epochs=3, batch_size=8, progress=False, num_workers=0)
    after = det.model.state_dict()
    for k, v in after.items():
        if k.startswith("features_extractor."):
            assert torch.equal(before[k], v), f"{k} changed"
    assert not torch.equal(before["classifier.weight"], after["classifier.weight"])
    # the features were cached in the first epoch and used after it
    assert caches[0] is not None and caches[0].ready

    # and the cached path gives the same losses and weights as recomputing the features:
    # the same BCE as a callable loss turns the cache off
    def bce(output, labels, inputs):
        return torch.nn.functional.binary_cross_entropy_with_logits(output[:, 0], labels)

    det2 = load_detector("resnet18-finetune")
    det2.model.load_state_dict(before)
    res2 = det2.finetune(image_folder, epochs=3, batch_size=8, progress=False, num_workers=0, loss=bce)
    assert caches[1] is None  # recomputed every epoch
    np.testing.assert_allclose(
        [h["train_loss"] for h in res2.history], [h["train_loss"] for h in result.history], rtol=1e-4, atol=1e-5
    )
    for k, v in det2.model.state_dict().items():
        torch.testing.assert_close(v, after[k], rtol=1e-4, atol=1e-5, msg=f"{k} differs")


def test_unfrozen_training_changes_the_backbone(image_folder):
    det = load_detector(TINY)
    before = det.model.features[0].weight.clone()
    det.finetune(image_folder, epochs=1, batch_size=8, progress=False, num_workers=0, freeze_backbone=False)
    assert not torch.equal(before, det.model.features[0].weight)


def test_partial_freeze_keeps_named_modules_and_their_bn_statistics(image_folder):
    det = load_detector(TINY)
    before = {k: v.clone() for k, v in det.model.state_dict().items()}
    result = det.finetune(
        image_folder, epochs=2, batch_size=8, progress=False, num_workers=0, freeze=("features.0", "features.1")
    )
    after = det.model.state_dict()
    for key in ("features.0.weight", "features.1.weight", "features.1.running_mean", "features.1.running_var"):
        assert torch.equal(before[key], after[key]), f"{key} changed"
    for key in ("features.3.weight", "features.4.running_mean"):  # the unfrozen part trained and kept statistics
        assert not torch.equal(before[key], after[key]), f"{key} did not change"
    assert det.config.metadata["recipe"]["freeze"] == ["features.0", "features.1"]
    assert result.history


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"freeze": ("features.9",)}, "no such module"),
        ({"freeze": ("features.0",), "freeze_backbone": True}, "already frozen"),
        ({"freeze": "features.0"}, "sequence of module names"),
    ],
)
def test_partial_freeze_rejects_bad_names(image_folder, kwargs, message):
    with pytest.raises(dd.TrainingError, match=message):
        load_detector(TINY).finetune(image_folder, epochs=1, batch_size=8, progress=False, num_workers=0, **kwargs)


def test_checkpoints_and_history_are_written(tmp_path, image_folder):
    out = tmp_path / "run"
    det = load_detector(TINY)
    result = det.finetune(image_folder, image_folder, epochs=2, batch_size=8, output_dir=out, progress=False)
    assert (out / CHECKPOINT_LAST / "config.json").is_file() and (out / CHECKPOINT_LAST / "training_state.pt").is_file()
    assert (out / CHECKPOINT_BEST / "model.safetensors").is_file()
    lines = [json.loads(line) for line in (out / "history.jsonl").read_text().splitlines()]
    assert [entry["epoch"] for entry in lines] == [1, 2]
    best = load_detector(out)  # the output dir loads its best checkpoint
    np.testing.assert_allclose(best.predict(image_folder), det.predict(image_folder), atol=1e-6)
    assert best.config.metadata["metrics"]["auc"] == pytest.approx(result.best["auc"])
    with pytest.raises(dd.TrainingError, match="resume=True"):
        load_detector(TINY).finetune(image_folder, epochs=1, output_dir=out, progress=False)


def test_an_output_dir_trained_without_validation_loads_its_last_checkpoint(tmp_path, image_folder):
    out = tmp_path / "no-val"
    det = load_detector(TINY)
    result = det.finetune(image_folder, epochs=1, batch_size=8, output_dir=out, progress=False, num_workers=0)
    assert result.best is None and not (out / CHECKPOINT_BEST).exists()
    np.testing.assert_allclose(load_detector(out).predict(image_folder), det.predict(image_folder), atol=1e-6)


def test_resume_ends_with_the_same_weights_as_an_uninterrupted_run(tmp_path, image_folder):
    kwargs = dict(
        epochs=4, batch_size=6, lr=1e-2, augment="default", synth_fakes=0.5, progress=False, num_workers=2, ema=0.9
    )
    torch.manual_seed(0)
    full = load_detector(TINY)
    full_result = full.finetune(image_folder, image_folder, output_dir=tmp_path / "full", **kwargs)

    def stop_after_two(record):
        if record["epoch"] == 2:
            raise KeyboardInterrupt

    torch.manual_seed(0)
    part = load_detector(TINY)
    first = part.finetune(
        image_folder, image_folder, output_dir=tmp_path / "part", callbacks=[stop_after_two], **kwargs
    )
    assert first.interrupted and [h["epoch"] for h in first.history] == [1, 2]
    resumed = load_detector(tmp_path / "part" / CHECKPOINT_LAST)
    second = resumed.finetune(image_folder, image_folder, output_dir=tmp_path / "part", resume=True, **kwargs)
    assert [h["epoch"] for h in second.history] == [1, 2, 3, 4]
    for k, v in full.model.state_dict().items():
        torch.testing.assert_close(resumed.model.state_dict()[k], v, rtol=0, atol=1e-6, msg=k)
    assert second.best["epoch"] == full_result.best["epoch"]
    assert second.best["auc"] == pytest.approx(full_result.best["auc"], abs=1e-6)


def test_a_refused_or_failed_finetune_gives_the_model_back_as_it_was(tmp_path, image_folder):
    out = tmp_path / "run"
    load_detector(TINY).finetune(image_folder, epochs=1, batch_size=8, output_dir=out, progress=False)
    det = load_detector(TINY)
    before = det.predict(image_folder)
    with pytest.raises(dd.TrainingError, match="resume=True"):  # setup froze the backbone, then refused
        det.finetune(image_folder, epochs=1, freeze_backbone=True, output_dir=out, progress=False)
    assert all(p.requires_grad for p in det.model.parameters()) and not det.model.training

    def loss_goes_nan(logits, labels, inputs):
        return logits.sum() * float("nan")

    with pytest.raises(dd.TrainingError):
        det.finetune(image_folder, epochs=1, batch_size=8, loss=loss_goes_nan, freeze_backbone=True, progress=False)
    assert all(p.requires_grad for p in det.model.parameters()) and not det.model.training
    np.testing.assert_allclose(det.predict(image_folder), before, atol=1e-6)  # the weights before the bad step


def test_resuming_with_other_settings_is_refused_and_more_epochs_recompute_the_schedule(tmp_path, image_folder):
    from deepfake_detect.training import TrainConfig, Trainer

    out = tmp_path / "run"
    kwargs = dict(batch_size=8, lr=1e-2, progress=False, num_workers=0)
    load_detector(TINY).finetune(image_folder, epochs=1, output_dir=out, **kwargs)
    with pytest.raises(dd.TrainingError, match=r"batch_size=8.*batch_size=4"):
        load_detector(TINY).finetune(image_folder, epochs=2, output_dir=out, resume=True, **{**kwargs, "batch_size": 4})
    trainer = Trainer(
        load_detector(TINY), image_folder, config=TrainConfig(epochs=3, output_dir=out, resume=True, **kwargs)
    )
    trainer.setup()
    sched = trainer.scheduler
    expected = sched.base_lrs[0] * sched.lr_lambdas[0](sched.last_epoch)
    assert sched.last_epoch > 0 and 0 < expected < 1e-2  # mid-schedule of the 3-epoch run, not the 1-epoch end
    assert trainer.optimizer.param_groups[0]["lr"] == pytest.approx(expected)


def test_stratified_split_keeps_the_ratio(image_folder):
    train, val = stratified_split(image_folder, 0.25, seed=3)
    assert len(train) + len(val) == 16 and val.labels.sum() == 2 and len(val) == 4
    again, _ = stratified_split(image_folder, 0.25, seed=3)
    assert again.names == train.names


def test_data_is_checked_before_training(tmp_path, image_folder):
    det = load_detector(TINY)
    pairs = _pairs(image_folder) + [(tmp_path / "missing.png", 1)]
    with pytest.raises(dd.DataError, match="missing.png"):
        det.finetune(pairs, epochs=1, output_dir=tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()
    with pytest.raises(dd.DataError, match="only label"):
        det.finetune(_pairs(image_folder)[:8], epochs=1, progress=False)


def test_self_blended_fakes_let_real_only_data_train(image_folder):
    reals = [(p, 0) for p, y in _pairs(image_folder) if y == 0]
    result = load_detector(TINY).finetune(
        reals, epochs=1, batch_size=8, synth_fakes=1.0, progress=False, num_workers=0, augment="none"
    )
    assert np.isfinite(result.history[0]["train_loss"])


def test_submission_csv_for_a_folder_and_a_label_file(tmp_path, image_folder):
    from deepfake_detect.submission import predict_submission

    det = load_detector(TINY)
    names, scores = predict_submission(det, image_folder / "real", tmp_path / "submit.csv")
    lines = (tmp_path / "submit.csv").read_text().splitlines()
    assert lines[0] == "img_name,y_pred" and len(lines) == 9
    assert lines[1].split(",")[0] == "real_00.png"
    lf = _label_file(image_folder)
    names, _ = predict_submission(det, lf, tmp_path / "submit2.csv")
    assert names == lf.names


DDP_SCRIPT = textwrap.dedent("""
    import json, os, sys
    sys.path.insert(0, {tests!r})
    import conftest  # registers test-tiny
    import torch
    from deepfake_detect import load_detector
    torch.manual_seed(0)
    det = load_detector("test-tiny")
    res = det.finetune({data!r}, {data!r}, epochs=2, batch_size=4, output_dir={out!r}, progress=False, num_workers=0)
    # One file per rank: the two ranks' stdout can interleave or be lost in torchrun's relay.
    with open(os.path.join({results!r}, "rank" + os.environ["RANK"] + ".json"), "w") as f:
        json.dump({{"best": res.best, "epochs": len(res.history)}}, f)
""")


@pytest.mark.slow
def test_torchrun_two_processes_on_cpu(tmp_path, image_folder):
    script = tmp_path / "ddp.py"
    out = tmp_path / "ddp_run"
    results_dir = tmp_path / "results"
    results_dir.mkdir()
    script.write_text(
        DDP_SCRIPT.format(
            tests=str(Path(__file__).parent), data=str(image_folder), out=str(out), results=str(results_dir)
        )
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", str(script)],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = [json.loads((results_dir / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert results[0] == results[1]  # both ranks agree on the gathered metrics
    assert results[0]["epochs"] == 2 and results[0]["best"]["n"] == 16
    assert (out / CHECKPOINT_BEST / "model.safetensors").is_file()
    history = (out / "history.jsonl").read_text().splitlines()
    assert len(history) == 2  # written once, by rank 0
    # what the ranks validated together is the model rank 0 saved (BatchNorm statistics too)
    saved = load_detector(out).evaluate(image_folder, progress=False)
    assert saved["logloss"] == pytest.approx(results[0]["best"]["logloss"], abs=1e-6)


def test_ema_with_a_frozen_backbone_validates_the_ema_head(image_folder):
    """Regression: with the feature cache, the EMA copy was scored through a hook on the live
    model's head: ``finetune(d, d, epochs=2, ema=True)`` raised IndexError (and would have
    scored the live head, not the EMA one)."""
    det = load_detector("resnet18-finetune")
    result = det.finetune(image_folder, image_folder, epochs=2, batch_size=8, ema=True, progress=False, num_workers=0)
    assert [h["epoch"] for h in result.history] == [1, 2]
    # the detector keeps the EMA weights of the best epoch, and they score what validation saw
    assert det.evaluate(image_folder)["auc"] == pytest.approx(result.best["auc"], abs=1e-6)


def test_evaluate_has_no_side_effects_and_record_metrics_feeds_the_card(tmp_path, image_folder):
    """Regression: ``evaluate`` rewrote ``config.metadata``."""
    import copy

    det = load_detector(TINY)
    before = copy.deepcopy(det.config)
    metrics = det.evaluate(image_folder)
    assert det.config == before
    det.record_metrics(metrics, data="the test folder")
    assert det.config.metadata["metrics"] == metrics and det.config.metadata["metrics_data"] == "the test folder"
    card = (det.save_pretrained(tmp_path / "saved") / "README.md").read_text()
    assert f"| auc | {metrics['auc']:.4f} |" in card and "Measured on: the test folder" in card


def test_train_config_is_the_recipe_and_kwargs_override_it(tmp_path, image_folder):
    from deepfake_detect.training import CheckpointDir, TrainConfig

    config = TrainConfig(epochs=1, batch_size=8, lr=5e-3, progress=False, num_workers=0)
    det = load_detector(TINY)
    det.finetune(image_folder, image_folder, config=config, seed=3, output_dir=tmp_path / "run")
    recipe = det.config.metadata["recipe"]
    assert recipe["lr"] == 5e-3 and recipe["seed"] == 3 and recipe["epochs"] == 1 and "output_dir" not in recipe
    state = CheckpointDir(tmp_path / "run").read_state()
    assert json.loads(state["recipe"]) == recipe
    assert "## Recipe" in (tmp_path / "run" / CHECKPOINT_BEST / "README.md").read_text()
    with pytest.raises(dd.TrainingError, match="unknown finetune argument"):
        load_detector(TINY).finetune(image_folder, epochs=1, learning_rate=1e-3)
    with pytest.raises(dd.TrainingError, match="epochs"):
        TrainConfig(epochs=0)


def test_a_last_batch_of_one_joins_the_previous_one_and_no_image_is_lost():
    """Regression: ``out[-2] += out.pop()`` took its target before the pop, so a plan of
    2k+1 images trained on the second batch twice and never on the first."""
    from deepfake_detect.training.samples import make_batches

    plan = [(i, 0) for i in range(17)]
    batches = make_batches(plan, 8)
    assert [len(b) for b in batches] == [8, 9]
    assert [x for b in batches for x in b] == plan
    assert [len(b) for b in make_batches(plan[:16], 8)] == [8, 8] and make_batches(plan[:1], 8) == [plan[:1]]


def test_the_trainer_runs_step_by_step(image_folder):
    from deepfake_detect.training import TrainConfig, Trainer

    det = load_detector(TINY)
    trainer = Trainer(
        det,
        {"a": image_folder, "b": image_folder},
        {"a": image_folder, "b": image_folder},
        TrainConfig(epochs=1, batch_size=8, progress=False, num_workers=0, source_weights={"a": 3, "b": 1}),
    )
    trainer.setup()
    record = trainer.train_epoch(1)
    assert record["epoch"] == 1 and np.isfinite(record["train_loss"]) and "val" not in record
    val = trainer.validate()
    assert set(val["val_sources"]) == {"a", "b"} and "auc_mean" in val["val"]
    ids = trainer.samples.source_ids[[i for i, _ in trainer.samples.epoch_plan(1)]]
    assert np.sum(ids == 0) == 3 * np.sum(ids == 1)  # an epoch drawn 3:1 from the sources


def test_a_fine_tuned_detector_has_its_own_card_and_config(tmp_path, image_folder, one_thread):
    """Regression: after ``finetune`` + ``save_pretrained`` the card and config still named the
    base model ("deepfake-detect default v4"), its weights tag and source, and showed its
    false-alarm rates (2.7 % shown, not measured on these weights) and cross-dataset tables."""
    old_name = "deepfake-detect default v4 (EfficientNet-Lite0; DFDC face swaps, StyleGAN, self-blended fakes)"
    base_meta = {
        "name": old_name,
        "license": "other",
        "weights_tag": "efficientnet-lite0.dfdc_ffhq_sbi",
        "weights_license": "research-only (DFDC terms, FFHQ CC BY-NC-SA 4.0)",
        "weights_source": "the default v3 fine-tuned further at 256x256 by scripts/train_default.py --init",
        "training_data": "dfdc-faces train and ffhq-stylegan train, sampled 0.75/0.25 per epoch",
        "recipe": {"epochs": 12, "epoch_size": 4000, "init": "runs/default-v3/best"},
        "metrics": {"dfdc_auc": 0.9163586945394239, "ffhq_auc": 0.9224444444444444},
        "metrics_data": "val splits of dfdc-faces (884 real, 884 fake) and ffhq-stylegan (150 + 150)",
        "false_alarm_rate": {"dfdc val reals": 0.0, "ffhq val reals": 0.02666666666666667},
        "threshold_rule": 'the highest over hold-out sources of the 99% quantile: {"dfdc": 0.9649, "ffhq": 0.9935}',
        "card_sections": {
            "Cross-dataset results": "| trained on | dfdc-faces val |\n|---|---:|\n| default v3 | 0.912 |"
        },
    }
    det = load_detector(TINY)
    det.config = det.config.replace(threshold=0.9935, metadata=base_meta)
    result = det.finetune(image_folder, image_folder, epochs=1, batch_size=8, progress=False, num_workers=0)
    folder = det.save_pretrained(tmp_path / "fine-tuned")
    card = (folder / "README.md").read_text()
    config_text = (folder / "config.json").read_text()
    meta = json.loads(config_text)["metadata"]

    # nothing of the base's identity or measurements is presented as the new model's
    assert meta["name"] == f"fine-tuned {TINY}" and f"# fine-tuned {TINY}\n" in card
    own_lines = "\n".join(
        line for line in card.splitlines() if not line.startswith(("Fine-tuned from ", "| base model |"))
    )
    for gone in (
        old_name,
        "efficientnet-lite0.dfdc_ffhq_sbi",
        "default v3",
        "0.9649",
        "ffhq val reals",
        "2.7%",
        "Cross-dataset results",
        "dfdc_auc",
        "884 real",
        "dfdc-faces train",
    ):
        assert gone not in own_lines, gone
    for gone in ("ffhq val reals", "Cross-dataset results", "dfdc_auc", "0.9649", "default v3", "dfdc-faces train"):
        assert gone not in config_text, gone
    for key in ("weights_tag", "weights_source", "false_alarm_rate", "threshold_rule", "card_sections"):
        assert key not in meta, key

    # the base model, the licence it passes on, the new data, recipe and measured metrics
    assert meta["base_model"] == {
        "name": old_name,
        "source": "efficientnet-lite0.dfdc_ffhq_sbi",
        "threshold": 0.9935,
        "license": "research-only (DFDC terms, FFHQ CC BY-NC-SA 4.0)",
    }
    assert f"Fine-tuned from {old_name} (`efficientnet-lite0.dfdc_ffhq_sbi`)" in card
    assert "stay under its licence: research-only" in card and "for research use only" in card
    assert "license: other" in card
    assert meta["training_data"] == f"{image_folder} (real/ and fake/ folders)" and str(image_folder) in card
    assert meta["recipe"]["epochs"] == 1 and "## Recipe" in card and '"epochs": 1,' in card
    assert meta["metrics"] == pytest.approx({k: v for k, v in result.best.items() if k != "epoch"})
    assert meta["metrics_data"].endswith("at epoch 1") and f"| auc | {result.best['auc']:.4f} |" in card
    assert json.loads(config_text)["threshold"] == 0.9935
    assert "How it was set: inherited unchanged from the base model" in card and "not re-calibrated" in card
    det.config = det.config.replace(threshold=0.5)  # set after fine-tuning, without a recorded rule
    again = (det.save_pretrained(tmp_path / "recalibrated") / "README.md").read_text()
    assert "How it was set: set after fine-tuning (the base model's was 0.9935)" in again
