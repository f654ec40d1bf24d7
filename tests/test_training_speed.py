"""The training speed options: fused optimisers, the allocator while training, torch.compile,
and the loading that runs ahead of the step."""

from __future__ import annotations

import copy
import os
import sys
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch
from conftest import TINY, TinyNet

import deepfake_detect as dd
from deepfake_detect import load_detector
from deepfake_detect.training import TrainConfig
from deepfake_detect.training.allocator import _glibc, reuse_freed_memory
from deepfake_detect.training.optim import implementation_flags, make_optimizer, restore_implementation


# -- optimisers ---------------------------------------------------------------------------
def _fused_cpu_supported() -> bool:
    try:
        torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], fused=True)
    except (RuntimeError, TypeError, ValueError):
        return False
    return True


@pytest.mark.skipif(not _fused_cpu_supported(), reason="this torch has no fused CPU optimisers (torch < 2.4)")
@pytest.mark.parametrize("name", ["adamw", "adam", "sgd"])
def test_named_optimizers_are_fused_on_cpu_and_step_like_the_loop(name):
    torch.manual_seed(0)
    # no conv bias before a BatchNorm here: its gradient is float noise, which Adam scales up
    # to full steps of either sign, so any two implementations part ways on it
    fused_model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3), torch.nn.Tanh(), torch.nn.Flatten(), torch.nn.Linear(4 * 30 * 30, 1)
    )
    loop_model = copy.deepcopy(fused_model)
    fused = make_optimizer(name, fused_model, 1e-2, 0.05)
    assert all(g["fused"] for g in fused.param_groups)
    index = {id(p): i for i, p in enumerate(fused_model.parameters())}
    others = list(loop_model.parameters())
    loop = type(fused)(
        [
            {
                **{k: v for k, v in g.items() if k not in ("params", "fused")},
                "params": [others[index[id(p)]] for p in g["params"]],
            }
            for g in fused.param_groups
        ]
    )
    assert not any(g["fused"] for g in loop.param_groups)
    x = torch.randn(4, 3, 32, 32)
    for _ in range(3):
        for model, opt in ((fused_model, fused), (loop_model, loop)):
            opt.zero_grad()
            model(x).square().mean().backward()
            opt.step()
    for (k, a), b in zip(fused_model.state_dict().items(), loop_model.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=k)


def test_a_resumed_optimizer_keeps_the_implementation_chosen_where_it_runs():
    model = TinyNet()
    opt = make_optimizer("adamw", model, 1e-3, 0.05)
    saved = opt.state_dict()
    for g in saved["param_groups"]:  # as written by a run that used torch's per-parameter loop
        g["fused"], g["foreach"] = None, None
    flags = implementation_flags(opt)
    opt.load_state_dict(saved)
    assert all(g["fused"] is None for g in opt.param_groups)  # what load_state_dict alone does
    restore_implementation(opt, flags)
    assert [{k: g[k] for k in ("fused", "foreach")} for g in opt.param_groups] == flags


# -- the allocator ------------------------------------------------------------------------
def _rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _touch_and_free(mib: int = 256) -> None:
    block = np.ones(mib * 2**20, dtype=np.uint8)
    del block


@pytest.mark.skipif(_glibc() is None, reason="needs Linux with glibc and no MALLOC_* tuning in the environment")
def test_freed_memory_is_kept_while_training_and_handed_back_after():
    before = _rss_mib()
    with reuse_freed_memory() as tuned:
        assert tuned
        with reuse_freed_memory():  # nested (trainers in several threads): the outer one restores
            pass
        _touch_and_free()
        kept = _rss_mib() - before
    after = _rss_mib() - before
    _touch_and_free()  # glibc's defaults again: a large block is unmapped when freed
    again = _rss_mib() - before
    assert kept > 200, f"a freed 256 MiB block was handed back inside reuse_freed_memory ({kept:.0f} MiB kept)"
    assert after < 100 and again < 100, (after, again)


def test_a_process_that_tunes_its_allocator_is_left_alone(monkeypatch):
    monkeypatch.setenv("MALLOC_MMAP_MAX_", "65536")
    with reuse_freed_memory() as tuned:
        assert not tuned
    monkeypatch.delenv("MALLOC_MMAP_MAX_")
    with reuse_freed_memory(enabled=False) as tuned:
        assert not tuned


# -- torch.compile --------------------------------------------------------------------------
def _train_tiny(folder, **kwargs):
    torch.manual_seed(0)
    det = load_detector(TINY)
    result = det.finetune(
        folder, epochs=2, batch_size=8, lr=1e-2, augment="camp", progress=False, num_workers=0, **kwargs
    )
    return det, result


def _compile_works(backend: str) -> str | None:
    """None when ``torch.compile`` with ``backend`` trains a small net here, else why not."""
    if sys.platform == "win32":
        return "torch.compile is not supported on Windows by this torch"
    try:
        net = torch.compile(torch.nn.Linear(2, 1), backend=backend)
        net(torch.ones(3, 2)).sum().backward()
    except Exception as e:  # no C++ compiler, an unsupported Python, ...
        return f"torch.compile(backend={backend!r}) does not work here: {type(e).__name__}: {e}"[:300]
    return None


@pytest.mark.parametrize("backend", ["aot_eager", pytest.param(True, marks=pytest.mark.slow, id="inductor")])
def test_compiled_training_predicts_like_eager_training(image_folder, one_thread, backend):
    why = _compile_works("inductor" if backend is True else backend)
    if why:
        pytest.skip(why)
    eager, eager_result = _train_tiny(image_folder)
    compiled, compiled_result = _train_tiny(image_folder, compile=backend)
    assert "compile" not in compiled.config.metadata["recipe"]  # how it ran, not what it computed
    np.testing.assert_allclose(
        [h["train_loss"] for h in compiled_result.history], [h["train_loss"] for h in eager_result.history], rtol=1e-4
    )
    # inductor fuses and reorders float sums; two epochs at lr 1e-2 grow that rounding to ~5e-4
    atol = 1e-4 if backend == "aot_eager" else 2e-3
    np.testing.assert_allclose(compiled.predict(image_folder), eager.predict(image_folder), atol=atol)
    # and the run changed the weights: equal predictions are not those of an untrained net
    assert not np.allclose(load_detector(TINY).predict(image_folder), eager.predict(image_folder), atol=5 * atol)


def test_compile_options_are_checked_before_training(image_folder):
    with pytest.raises(dd.TrainingError, match="no backend 'no-such-backend'"):
        load_detector(TINY).finetune(image_folder, epochs=1, compile="no-such-backend", progress=False)
    with pytest.raises(dd.TrainingError, match="compile=3"):
        TrainConfig(compile=3)


# -- loading ahead of the step ------------------------------------------------------------
def test_loading_ahead_in_threads_yields_the_batches_of_the_training_thread(image_folder):
    from deepfake_detect.data.datasets import as_labeled_data
    from deepfake_detect.training.samples import Samples, load_batches, make_batches

    det = load_detector(TINY)
    samples = Samples(as_labeled_data(image_folder), det.preprocessor(), "default", 0.5, seed=7, cache=True)
    batches = make_batches(samples.epoch_plan(2), 5)
    inline = list(load_batches(samples, batches, 2, None))
    with ThreadPoolExecutor(max_workers=3) as pool:
        ahead = list(load_batches(samples, batches, 2, pool))
    assert len(inline) == len(ahead) == len(batches) and len(batches) > 2
    for (xa, ya), (xb, yb) in zip(inline, ahead, strict=True):
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, yb)
    other_epoch = list(load_batches(samples, batches, 3, None))  # augmentation is seeded per epoch
    assert any(not np.array_equal(a[0], b[0]) for a, b in zip(inline, other_epoch, strict=True))
