"""The Hub code paths against a Hub look-alike on loopback (tests/hub_server.py), so the real
``huggingface_hub`` client runs: push, download, cache hit, revision pinning, offline."""

from __future__ import annotations

import socket
import time

import numpy as np
import pytest
import torch
from conftest import TINY, face_like
from hub_server import HubServer

import deepfake_detect as dd
from deepfake_detect import HubError, load_detector

IMAGES = [np.asarray(face_like(i, 48)) for i in range(3)]
PROXY_VARS = (
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "ALL_PROXY",
    "all_proxy",
    "NO_PROXY",
    "no_proxy",
)


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch):
    """The loopback server is reached directly, whatever proxy the machine running the tests uses."""
    for var in PROXY_VARS:
        monkeypatch.delenv(var, raising=False)


@pytest.fixture
def hub(monkeypatch, tmp_path):
    import huggingface_hub.constants as c

    with HubServer() as server:
        monkeypatch.setenv("HF_ENDPOINT", server.url)
        monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
        monkeypatch.setattr(c, "HF_HUB_OFFLINE", False)
        monkeypatch.setenv("HF_HUB_DISABLE_XET", "1")
        server.cache = tmp_path / "hub-cache"
        yield server


def _detector(seed: int):
    torch.manual_seed(seed)
    det = load_detector(TINY)
    with torch.no_grad():
        for p in det.model.parameters():
            p.add_(torch.randn_like(p) * 0.5)
    return det


def _go_offline(monkeypatch, hub):
    import huggingface_hub.constants as c

    hub.stop()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(c, "HF_HUB_OFFLINE", True)


def test_push_then_pull_predicts_the_same(hub):
    det = _detector(0)
    data = [(img, i % 2) for i, img in enumerate(IMAGES + IMAGES)]
    metrics = det.evaluate(data)
    det.record_metrics(metrics, data=data)  # evaluate has no side effects: the card shows what is recorded
    sha = det.push_to_hub("org/tiny", token="t")
    assert len(sha) == 40
    files = hub.state.repos["org/tiny"]["commits"][sha]
    assert {"config.json", "model.safetensors", "README.md"} <= set(files)
    card = files["README.md"].decode()
    assert "library_name: deepfake-detect" in card and "license:" in card and "deepfake-detection" in card
    assert f"| auc | {metrics['auc']:.4f} |" in card and "6 (image, label) pairs" in card  # the last evaluation
    for name in ("org/tiny", "hf-hub:org/tiny"):
        again = load_detector(name, cache_dir=hub.cache)
        np.testing.assert_array_equal(again.predict(IMAGES), det.predict(IMAGES))
        assert again.source == name


def test_a_push_during_a_load_does_not_mix_two_commits(hub, tmp_path):
    """Regression: config, weights and card were each resolved against ``main``, so a push
    between their downloads loaded one commit's config with another commit's weights."""
    first, second = _detector(20), _detector(21)
    first.config = first.config.replace(threshold=0.25)
    second.config = second.config.replace(threshold=0.75)
    first.push_to_hub("org/racy", token="t")
    folder = second.save_pretrained(tmp_path / "second")
    files = {p.name: p.read_bytes() for p in folder.iterdir()}

    def push_second_before_weights(method, path):
        if "model.safetensors" in path and hub.state.before_request is not None:
            hub.state.before_request = None
            hub.state.add_files("org/racy", files)

    hub.state.before_request = push_second_before_weights
    loaded = load_detector("org/racy", cache_dir=hub.cache)
    assert hub.state.before_request is None  # the second commit did land during the load
    expected = first if loaded.config.threshold == 0.25 else second
    np.testing.assert_array_equal(loaded.predict(IMAGES), expected.predict(IMAGES))


def test_the_parameter_limit_is_checked_before_the_weights_are_fetched(hub):
    _detector(22).push_to_hub("org/big", token="t")
    fetched = []
    hub.state.before_request = lambda method, path: fetched.append(path)
    with pytest.raises(dd.ParameterLimitError):
        load_detector("org/big", cache_dir=hub.cache, max_params=10)
    assert any("config.json" in p for p in fetched) and not any("model.safetensors" in p for p in fetched), fetched
    hub.state.before_request = None
    assert load_detector("org/big", cache_dir=hub.cache).num_params > 10  # and within the limit it loads


def test_card_yaml_keeps_licence_and_dataset_names_as_strings(tmp_path):
    """Regression: the hand-written YAML turned ``cc-by-nc-4.0 # see: notes`` into
    ``cc-by-nc-4.0`` (a comment) and the dataset ``ffhq: stylegan`` into a mapping."""
    from huggingface_hub import ModelCard

    det = _detector(22)
    det.config = det.config.replace(
        metadata={"license": "cc-by-nc-4.0 # see: notes", "datasets": ["ffhq: stylegan", "dfdc"]}
    )
    card = ModelCard.load(det.save_pretrained(tmp_path / "card") / "README.md")
    assert card.data.license == "cc-by-nc-4.0 # see: notes"
    assert card.data.datasets == ["ffhq: stylegan", "dfdc"]
    assert card.data.library_name == "deepfake-detect"


def test_card_states_the_threshold_rule_false_alarms_and_extra_sections(tmp_path):
    det = _detector(23)
    det.config = det.config.replace(
        threshold=0.75,
        metadata={
            "threshold_rule": "the 99 % quantile of hold-out reals",
            "false_alarm_rate": {"val reals": 0.02, "examples": 0.0},
            "card_sections": {"Cross-dataset results": "| train | test |\n|---|---|\n| a | 0.9 |"},
        },
    )
    card = (det.save_pretrained(tmp_path / "card") / "README.md").read_text()
    assert "## Decision threshold" in card and "at least 0.75 are labelled fake" in card
    assert "How it was set: the 99 % quantile of hold-out reals" in card
    assert "| val reals | 2.0% |" in card and "| examples | 0.0% |" in card
    assert card.index("## Cross-dataset results") > card.index("## Metrics")
    assert "| a | 0.9 |" in card
    assert "## Decision threshold" not in (_detector(24).save_pretrained(tmp_path / "plain") / "README.md").read_text()


def test_second_load_is_a_cache_hit_and_offline_works(hub, monkeypatch):
    det = _detector(1)
    det.push_to_hub("org/cached", token="t")
    load_detector("org/cached", cache_dir=hub.cache)
    gets = [p for m, p in hub.state.requests if m == "GET" and "/resolve/" in p]
    load_detector("org/cached", cache_dir=hub.cache)
    assert [p for m, p in hub.state.requests if m == "GET" and "/resolve/" in p] == gets  # nothing downloaded again
    _go_offline(monkeypatch, hub)
    start = time.perf_counter()
    again = load_detector("org/cached", cache_dir=hub.cache)
    assert time.perf_counter() - start < 10
    np.testing.assert_array_equal(again.predict(IMAGES), det.predict(IMAGES))


def test_revision_pinning(hub):
    first, second = _detector(2), _detector(3)
    sha1 = first.push_to_hub("org/pinned", token="t")
    sha2 = second.push_to_hub("org/pinned", token="t")
    assert sha1 != sha2
    np.testing.assert_array_equal(
        load_detector("org/pinned", revision=sha1, cache_dir=hub.cache).predict(IMAGES), first.predict(IMAGES)
    )
    np.testing.assert_array_equal(
        load_detector("org/pinned", cache_dir=hub.cache).predict(IMAGES), second.predict(IMAGES)
    )
    branch_sha = first.push_to_hub("org/pinned", token="t", revision="v1")
    np.testing.assert_array_equal(
        load_detector("org/pinned", revision="v1", cache_dir=hub.cache).predict(IMAGES), first.predict(IMAGES)
    )
    assert hub.state.repos["org/pinned"]["branches"]["v1"] == branch_sha


def test_unknown_repo_and_revision_fail_fast_naming_them(hub):
    start = time.perf_counter()
    with pytest.raises(HubError, match="org/nothing-here"):
        load_detector("org/nothing-here", cache_dir=hub.cache)
    assert time.perf_counter() - start < 10
    _detector(4).push_to_hub("org/exists", token="t")
    with pytest.raises(HubError, match="no-such-branch"):
        load_detector("org/exists", revision="no-such-branch", cache_dir=hub.cache)


def test_offline_with_an_empty_cache_fails_fast_with_advice(hub, monkeypatch):
    _go_offline(monkeypatch, hub)
    start = time.perf_counter()
    with pytest.raises(HubError) as info:
        load_detector("org/never-downloaded", cache_dir=hub.cache)
    assert time.perf_counter() - start < 10
    msg = str(info.value)
    assert (
        "org/never-downloaded" in msg and "HF_HUB_OFFLINE" in msg and "hf download" in msg and "save_pretrained" in msg
    )


def test_unreachable_endpoint_fails_fast(monkeypatch, tmp_path):
    import huggingface_hub.constants as c

    with socket.socket() as s:  # a loopback port with nothing listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(c, "HF_HUB_OFFLINE", False)
    start = time.perf_counter()
    with pytest.raises(HubError, match="cannot be reached"):
        load_detector("org/anything", cache_dir=tmp_path)
    with pytest.raises(HubError, match="cannot be reached"):
        _detector(5).push_to_hub("org/anything")
    assert time.perf_counter() - start < 10


def test_the_reachability_probe_defers_to_a_proxy(monkeypatch):
    from deepfake_detect import hub as hub_module

    with socket.socket() as s:  # a loopback port with nothing listening
        s.bind(("127.0.0.1", 0))
        dead = f"https://127.0.0.1:{s.getsockname()[1]}"
    assert not hub_module._reachable(dead)
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.invalid:3128")
    assert hub_module._reachable(dead)  # the proxy, not a direct connection, decides
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    assert not hub_module._reachable(dead)


def test_a_repo_with_only_pickles_is_refused(hub, tmp_path):
    det = _detector(6)
    folder = det.save_pretrained(tmp_path / "d")
    hub.state.add_files(
        "org/pickled", {"config.json": (folder / "config.json").read_bytes(), "pytorch_model.bin": b"\x80\x04pickle"}
    )
    with pytest.raises(HubError, match="pytorch_model.bin.*pickled weights are not read"):
        load_detector("org/pickled", cache_dir=hub.cache)


def test_an_unregistered_architecture_is_named(hub, tmp_path):
    det = _detector(7)
    folder = det.save_pretrained(tmp_path / "d")
    cfg = (folder / "config.json").read_text().replace(f'"{TINY}"', '"someone-elses-net"')
    hub.state.add_files(
        "org/foreign", {"config.json": cfg.encode(), "model.safetensors": (folder / "model.safetensors").read_bytes()}
    )
    with pytest.raises(dd.ConfigError, match="someone-elses-net"):
        load_detector("org/foreign", cache_dir=hub.cache)


def test_a_leftover_partial_download_is_not_loaded(hub):
    det = _detector(8)
    det.push_to_hub("org/partial", token="t")
    load_detector("org/partial", cache_dir=hub.cache)
    blobs = next(hub.cache.glob("models--org--partial")) / "blobs"
    for blob in blobs.iterdir():  # simulate an interrupted download of every file
        (blobs / (blob.name + ".incomplete")).write_bytes(blob.read_bytes()[:10])
        blob.unlink()
    for snap in (hub.cache / "models--org--partial" / "snapshots").rglob("*"):
        if snap.is_symlink():
            snap.unlink()
    again = load_detector("org/partial", cache_dir=hub.cache)
    np.testing.assert_array_equal(again.predict(IMAGES), det.predict(IMAGES))


def test_pretrained_backbone_uses_the_hub_cache_path(hub, monkeypatch, tmp_path):
    """timm ImageNet weights go through the same fail-fast download (here: not on the server)."""
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(HubError, match="backbone_weights"):
        load_detector("resnet18-finetune", pretrained_backbone=True)


def test_named_weights_can_live_on_the_hub_pinned_to_a_revision(hub):
    first, second = _detector(23), _detector(24)
    sha = first.push_to_hub("org/tagged", token="t")
    second.push_to_hub("org/tagged", token="t")  # main moves on; the tag stays on the first commit
    entry = dd.register_weights(TINY, "hub_pinned", f"hf-hub:org/tagged@{sha}", license="apache-2.0")
    loaded = load_detector(entry.name, cache_dir=hub.cache)
    np.testing.assert_array_equal(loaded.predict(IMAGES), first.predict(IMAGES))
    assert loaded.source == entry.name and loaded.config.metadata["weights_tag"] == entry.name
