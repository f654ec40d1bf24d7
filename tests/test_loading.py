"""Name resolution (deepfake_detect.loading): each name is one kind, decided before anything is
read or downloaded; a mistyped local path is an error naming the three possibilities, never a
Hub request."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from conftest import TINY

import deepfake_detect as dd
from deepfake_detect import ConfigError, UnknownDetectorError, load_detector
from deepfake_detect.loading import (
    CONFIG_NAME,
    HUB_PREFIX,
    LOCAL_PREFIX,
    PICKLE_SUFFIXES,
    WEIGHTS_NAME,
    is_hub_id,
    looks_like_path,
    resolve,
)

THREE = ("not a registered detector", "list_detectors()", "not an existing file or folder", "not a Hub id")


@pytest.fixture
def no_network(monkeypatch):
    """Any Hub download or connection attempt fails the test."""
    import socket

    import huggingface_hub

    import deepfake_detect.hub as hub

    def refuse(*args, **kwargs):
        pytest.fail(f"network used: {args} {kwargs}")

    for name in ("snapshot_download", "hf_hub_download"):
        monkeypatch.setattr(huggingface_hub, name, refuse)
    monkeypatch.setattr(hub, "download_detector", refuse)
    monkeypatch.setattr(hub, "_reachable", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


@pytest.fixture
def in_tmp(monkeypatch, tmp_path):
    """Run in an empty working directory (the rule for ``owner/name`` looks at it)."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def saved(tmp_path):
    return load_detector(TINY).save_pretrained(tmp_path / "saved")


def test_none_registered_names_and_timm_resolve_to_the_registry(in_tmp, no_network):
    assert resolve(None).kind == "default"
    default = dd.list_detectors(pretrained=True)[0]
    assert resolve(default).kind == "weights" and resolve(default).target == default
    assert resolve(TINY).kind == "architecture"
    assert resolve("timm:resnet18").kind == "architecture"
    assert load_detector(TINY).source == TINY


def test_existing_folders_and_files_resolve_to_local(in_tmp, saved, no_network):
    where = resolve(str(saved))
    assert where.kind == "local" and where.path == saved
    assert load_detector(str(saved)).source == str(saved)
    assert load_detector(saved).source == str(saved)  # a Path
    os.rename(saved, in_tmp / "x")
    assert resolve("x").kind == "local"  # a bare existing folder name
    assert load_detector("x").source == "x"
    assert resolve(f"{LOCAL_PREFIX}x").kind == "local"
    # a checkpoint folder a crash left moved aside still counts as existing
    (in_tmp / "run").mkdir()
    os.rename(in_tmp / "x", in_tmp / "run" / ".best.old")
    assert resolve("run/best").kind == "local"
    assert Path(load_detector("run/best").source) == Path("run", ".best.old")
    # an existing weights file is local: loading it says how to load a weights file
    weights = in_tmp / "run" / ".best.old" / WEIGHTS_NAME
    assert resolve(str(weights)).kind == "local"
    with pytest.raises(ConfigError, match=r"is a file.*weights="):
        load_detector(str(weights))


def test_hub_ids_resolve_to_the_hub_without_a_request(in_tmp, no_network):
    assert resolve(f"{HUB_PREFIX}org/name").kind == "hub"
    assert resolve(f"{HUB_PREFIX}org/name").target == "org/name"
    for name in ("org/name", "runs/exp1", "google/vit-base-patch16-224", "meta-llama/Llama-3.1-8B"):
        where = resolve(name)
        assert (where.kind, where.target) == ("hub", name), name


def test_hub_ids_are_handed_to_the_hub_download(in_tmp, monkeypatch):
    import deepfake_detect.hub as hub

    asked = []

    def fake(name, **kwargs):
        asked.append(name)
        raise dd.HubError("stop here")

    monkeypatch.setattr(hub, "download_detector", fake)
    for name in ("org/name", f"{HUB_PREFIX}org/name"):
        with pytest.raises(dd.HubError, match="stop here"):
            load_detector(name)
    assert asked == ["org/name", "org/name"]


@pytest.mark.parametrize(
    "name",
    [
        "runs/exp1/best",
        "runs/exp1/",
        "./nothere",
        "../nothere",
        "nothere.safetensors",
        "runs/model.safetensors",
        "org/weights.pt",
        "/no/such/folder",
        "~/no-such-folder-here",
        "C:\\x",
        "C:/x",
        "runs\\exp1",
        "nothere",
    ],
)
def test_mistyped_local_paths_name_the_three_possibilities_offline(name, in_tmp, no_network):
    with pytest.raises(UnknownDetectorError) as info:
        load_detector(name)
    msg = str(info.value)
    assert all(part in msg for part in THREE), msg
    assert repr(name) in msg and TINY in msg and f"{HUB_PREFIX}owner/name" in msg


def test_owner_name_is_a_path_when_the_owner_folder_exists(in_tmp, no_network):
    (in_tmp / "runs").mkdir()
    with pytest.raises(UnknownDetectorError, match="'runs' is a folder here") as info:
        load_detector("runs/exp1")
    assert all(part in str(info.value) for part in THREE)
    assert f"{HUB_PREFIX}runs/exp1" in str(info.value)  # how to ask for the Hub repo instead
    assert resolve(f"{HUB_PREFIX}runs/exp1").kind == "hub"


def test_a_path_object_is_always_local(in_tmp, no_network):
    with pytest.raises(UnknownDetectorError, match="no file or folder"):
        load_detector(Path("org/name"))
    with pytest.raises(UnknownDetectorError, match="no file or folder"):
        load_detector(Path(TINY))


def test_a_registered_name_wins_over_a_folder_with_a_warning(in_tmp, saved, no_network):
    os.rename(saved, in_tmp / TINY)
    with pytest.warns(UserWarning, match=f"'./{TINY}'"):
        assert resolve(TINY).kind == "architecture"
    assert resolve(f"./{TINY}").kind == "local"
    assert Path(load_detector(f"./{TINY}").source) == Path(TINY)


def test_close_registered_names_are_suggested(in_tmp, no_network):
    with pytest.raises(UnknownDetectorError, match=f"Did you mean '{TINY}'"):
        load_detector(TINY + "x")


def test_path_form_and_repo_id_rules():
    for name in ("./x", "../x", "/x", "~/x", "a/b/c", "a/b/", "a\\b", "C:x", "m.safetensors", "a/b.pt", "c.json"):
        assert looks_like_path(name), name
    for name in ("org/name", "org/name.v2", "org/Llama-3.1-8B", "runs/exp1"):
        assert not looks_like_path(name) and is_hub_id(name), name
    for name in ("org/na--me", "org/a..b", "org/name.git", "-org/name", "org/" + "x" * 100, "org name/x"):
        assert not is_hub_id(name), name
    assert CONFIG_NAME == "config.json" and WEIGHTS_NAME == "model.safetensors" and ".pt" in PICKLE_SUFFIXES
