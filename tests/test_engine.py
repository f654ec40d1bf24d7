"""The inference engine (deepfake_detect.engine): the one owner of a detector's model, config and
what runs them, through which predict, predict_tensor, validation during fine-tuning, robustness
sweeps and the service all score."""

from __future__ import annotations

import copy
import pickle

import numpy as np
import pytest
import torch
from conftest import TINY, face_like

import deepfake_detect as dd
from deepfake_detect.data import as_labeled_data
from deepfake_detect.distributed import DistContext
from deepfake_detect.engine import InferenceEngine
from deepfake_detect.evaluate import validation_scores
from deepfake_detect.models import ensemble_of

pytestmark = pytest.mark.usefixtures("one_thread")


def tiny(seed: int = 0) -> dd.Detector:
    torch.manual_seed(seed)
    return dd.load_detector(TINY, backend="torch")


def images(n: int) -> list:
    return [face_like(200 + i, size=48, fake=bool(i % 2)) for i in range(n)]


def test_the_detector_holds_its_model_and_config_in_its_engine():
    d = tiny()
    assert isinstance(d.engine, InferenceEngine)
    assert d.model is d.engine.model and d.config is d.engine.config
    d.config = d.config.replace(threshold=0.25)  # the façade's setters write the engine's state
    assert d.engine.config.threshold == 0.25
    other = tiny(1).model
    d.model = other
    assert d.engine.model is other and d.device == d.engine.device
    assert d.last_backend is None and d.engine.last_choice is None


def test_predict_and_predict_tensor_run_on_the_engine(monkeypatch):
    d = tiny()
    chosen = []
    select = d.engine.select
    monkeypatch.setattr(d.engine, "select", lambda *a, **kw: chosen.append(kw) or select(*a, **kw))
    imgs = images(5)
    scores = d.predict(imgs)
    assert [kw["num_images"] for kw in chosen] == [5]  # one choice for the whole call, by the engine
    assert d.last_backend is d.engine.last_choice and d.last_backend.backend == "torch"
    np.testing.assert_array_equal(scores, d.engine.predict(imgs, backend="torch"))
    x = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    np.testing.assert_array_equal(d.predict_tensor(x).numpy(), d.engine.predict_tensor(x).numpy())


def test_an_engine_scores_a_model_and_config_without_a_detector():
    d = tiny()
    engine = InferenceEngine(d.model, d.config)  # what validation during fine-tuning does
    imgs = images(4)
    np.testing.assert_array_equal(engine.predict(imgs, backend="torch"), d.predict(imgs, backend="torch"))
    assert engine.last_choice is not None and engine.last_choice.backend == "torch"
    with pytest.raises(dd.DeepfakeDetectError, match="batch_size"):
        engine.predict(imgs, batch_size=0)
    with pytest.raises(dd.DeepfakeDetectError, match="backend='tensorrt'"):
        engine.predict(imgs, backend="tensorrt")


def test_copies_get_an_engine_of_their_own_without_its_state():
    d = tiny()
    d.predict(images(2))
    fast = d.engine.inference_model()  # the optimised copy is built
    for twin in (copy.deepcopy(d), pickle.loads(pickle.dumps(d))):
        assert twin.engine is not d.engine and twin.model is not d.model
        assert twin.engine.runtime is not d.engine.runtime
        assert twin.engine.inference_model(optimize=False) is twin.model  # no optimised copy carried over
        assert twin.last_backend == d.last_backend
        np.testing.assert_allclose(twin.predict(images(3)), d.predict(images(3)), atol=1e-6)
    assert d.engine.inference_model(optimize=False) is fast


def test_validation_scores_are_predicts_torch_scores():
    d = tiny()
    imgs = images(6)
    data = as_labeled_data([(img, i % 2) for i, img in enumerate(imgs)])
    got = validation_scores(d.model, d.config, data, DistContext(), batch_size=4)
    np.testing.assert_allclose(got, d.predict(imgs, backend="torch", batch_size=4), atol=1e-6)


def test_an_ensemble_is_wrapped_in_its_members_class():
    class MyDetector(dd.Detector):
        pass

    members = [MyDetector(tiny(s).model, tiny(s).config, source=f"m{s}") for s in (1, 2)]
    ens = ensemble_of(members)
    assert type(ens) is MyDetector and ens.source == "ensemble_of(m1, m2)"
    assert isinstance(ens.engine, InferenceEngine) and ens.config.architecture == "ensemble"
