"""The Hugging Face Hub: pull detectors by repo id, push them with a model card.

Everything goes through ``huggingface_hub`` (its cache layout, ``HF_HOME``,
``HF_ENDPOINT``, ``HF_HUB_OFFLINE``, tokens). Two things are added on top:

- fail fast: before any request the endpoint is probed with a 3-second TCP connect; when
  it cannot be reached (or ``HF_HUB_OFFLINE=1``, read at call time) only the local cache
  is used, and a miss is a :class:`HubError` within seconds saying how to pre-download;
- safety: only ``model.safetensors`` is read; a repo holding only pickles is refused;
- consistency: a load resolves the revision once and reads every file from that commit.

Partial downloads are never loaded: ``huggingface_hub`` writes to ``*.incomplete`` in the
cache's blob folder, resumes it on the next try, and only renames a complete file into place.
"""

from __future__ import annotations

import contextlib
import os
import socket
import tempfile
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from .errors import HubError
from .formats import CONFIG_NAME, DETECTOR_FILES, HUB_PREFIX, PICKLE_SUFFIXES, WEIGHTS_NAME
from .formats import strip_hub_prefix as strip_prefix
from .protocols import SavesPretrained

__all__ = ["HUB_PREFIX", "DETECTOR_FILES", "download_detector", "download_file", "push_to_hub", "strip_prefix"]

DEFAULT_ENDPOINT = "https://huggingface.co"
PROBE_TIMEOUT_S = 3.0


def _endpoint() -> str:
    return (os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")


def _offline_env() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in ("1", "ON", "YES", "TRUE")


def _reachable(endpoint: str, timeout: float = PROBE_TIMEOUT_S) -> bool:
    """A quick TCP probe, so that no network fails in seconds rather than after retries.
    Behind a proxy the endpoint is not reached directly: the probe is skipped and the
    client's own (short) timeouts decide."""
    url = urlparse(endpoint)
    proxies = urllib.request.getproxies()
    if (proxies.get(url.scheme) or proxies.get("all")) and not urllib.request.proxy_bypass(url.hostname or ""):
        return True
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        with socket.create_connection((url.hostname or "", port), timeout=timeout):
            return True
    except OSError:
        return False


def _how_to_get(repo_id: str, revision: str | None) -> str:
    rev = f" --revision {revision}" if revision else ""
    return (
        f"download it while online (`hf download {repo_id}{rev}`, or load it once with "
        f"load_detector), or pass a local folder written by save_pretrained"
    )


@contextlib.contextmanager
def _hub_errors(repo_id: str, revision: str | None, what: str, why: str, endpoint: str) -> Iterator[None]:
    """huggingface_hub's typed errors -> :class:`HubError` naming the repo, revision and file."""
    from huggingface_hub.errors import (
        EntryNotFoundError,
        GatedRepoError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    where = f"{repo_id!r} (revision {revision or 'main'})"
    try:
        yield
    except GatedRepoError:  # before RepositoryNotFoundError: it subclasses it
        raise HubError(f"Hub repo {where} is gated: accept its terms on the Hub and pass token=") from None
    except RepositoryNotFoundError:
        raise HubError(
            f"Hub repo {where} was not found at {endpoint}; check the name, or pass token= for a private repo"
        ) from None
    except RevisionNotFoundError:
        raise HubError(f"revision {revision!r} of Hub repo {repo_id!r} was not found at {endpoint}") from None
    except LocalEntryNotFoundError:  # before EntryNotFoundError: it may subclass it
        raise HubError(
            f"{what} of Hub repo {where}: not in the local cache, and {why}; {_how_to_get(repo_id, revision)}"
        ) from None
    except EntryNotFoundError:
        raise HubError(f"Hub repo {where} has no file {what!r}") from None
    except (HfHubHTTPError, OSError, ValueError) as e:
        raise HubError(f"could not download {what} of Hub repo {where} from {endpoint}: {e}") from None


def _offline(local_files_only: bool, endpoint: str) -> tuple[bool, str]:
    """``(use only the cache, why)``: asked for, offline mode, or the endpoint unreachable."""
    if local_files_only:
        return True, "local_files_only=True"
    if _offline_env():
        return True, "offline mode is on (HF_HUB_OFFLINE=1)"
    if not _reachable(endpoint):
        return True, f"{endpoint} cannot be reached"
    return False, ""


def download_file(
    repo_id: str,
    filename: str,
    *,
    revision: str | None = None,
    cache_dir: Any = None,
    token: str | bool | None = None,
    local_files_only: bool = False,
) -> str:
    """One file of a Hub model repo, from the cache or downloaded into it; returns its path.

    Raises:
        HubError: unknown repo, revision or file (naming them), or no network / offline
            mode with the file not cached (within seconds, saying how to pre-download).
    """
    from huggingface_hub import hf_hub_download

    repo_id = strip_prefix(repo_id)
    endpoint = _endpoint()
    offline, why = _offline(local_files_only, endpoint)
    with _hub_errors(repo_id, revision, filename, why, endpoint):
        return hf_hub_download(
            repo_id,
            filename,
            revision=revision,
            cache_dir=cache_dir,
            token=token,
            local_files_only=offline,
            endpoint=endpoint,
            etag_timeout=5,
        )
    raise AssertionError("unreachable")  # pragma: no cover (for type checkers)


def download_detector(
    name: str,
    *,
    revision: str | None = None,
    cache_dir: Any = None,
    token: str | bool | None = None,
    local_files_only: bool = False,
    check_config: Callable[[Path], None] | None = None,
) -> Path:
    """Fetch ``config.json`` + ``model.safetensors`` (+ ``README.md``) of a detector repo, all
    from one commit: the revision is resolved once (``snapshot_download`` with
    ``allow_patterns``), so a push during the download cannot mix two commits.

    Args:
        name: ``"org/name"`` or ``"hf-hub:org/name"``.
        revision: a branch, tag or commit sha (pin a sha for reproducible results).
        check_config: called with the path of ``config.json`` before the weights are fetched
            (e.g. the parameter limit), so a refused detector costs no weights download.

    Returns:
        The snapshot folder in the Hub cache that holds the files (named by the commit sha).

    Raises:
        HubError: see :func:`download_file`; also for a repo without ``config.json`` or
            safetensors weights.
    """
    from huggingface_hub import snapshot_download

    repo_id = strip_prefix(name)
    endpoint = _endpoint()
    offline, why = _offline(local_files_only, endpoint)

    def snapshot(rev: str | None, files: list[str]) -> Path:
        with _hub_errors(repo_id, revision, "the detector files", why, endpoint):
            return Path(
                snapshot_download(
                    repo_id,
                    revision=rev,
                    cache_dir=cache_dir,
                    token=token,
                    local_files_only=offline,
                    endpoint=endpoint,
                    etag_timeout=5,
                    allow_patterns=files,
                )
            )

    folder = None
    if check_config is not None:
        folder = snapshot(revision, [CONFIG_NAME])  # resolves the revision to one commit
        if (folder / CONFIG_NAME).is_file():
            check_config(folder / CONFIG_NAME)
    folder = snapshot(folder.name if folder is not None else revision, list(DETECTOR_FILES))
    where = f"Hub repo {repo_id!r} (revision {revision or 'main'}, commit {folder.name})"
    for needed in (CONFIG_NAME, WEIGHTS_NAME):
        if (folder / needed).is_file():
            continue
        if offline:
            raise HubError(f"{needed} of {where}: not in the local cache, and {why}; {_how_to_get(repo_id, revision)}")
        if needed == CONFIG_NAME:
            raise HubError(f"{where} has no {CONFIG_NAME}; it was not written by deepfake-detect's push_to_hub")
        pickles = [f for f in _list_files(repo_id, folder.name, token) if f.endswith(PICKLE_SUFFIXES)]
        hint = (
            (
                f" It holds {pickles}: pickled weights are not read, since loading them can run code. "
                "Convert them with `safetensors.torch.save_file(torch.load(path, weights_only=True), "
                f"'{WEIGHTS_NAME}')` and push again"
            )
            if pickles
            else ""
        )
        raise HubError(f"{where} has no {WEIGHTS_NAME}.{hint}")
    return folder


def _list_files(repo_id: str, revision: str | None, token: str | bool | None) -> list[str]:
    from huggingface_hub import HfApi

    try:
        return HfApi(endpoint=_endpoint(), token=token).list_repo_files(repo_id, revision=revision)
    except Exception:  # only used to improve an error message
        return []


def push_to_hub(
    detector: SavesPretrained,
    repo_id: str,
    *,
    private: bool = False,
    token: str | bool | None = None,
    commit_message: str = "Upload deepfake-detect detector",
    revision: str | None = None,
) -> str:
    """Upload ``config.json``, ``model.safetensors`` and a model card ``README.md``.

    Creates the repo (and the branch ``revision``) if needed.

    Returns:
        The commit sha (pass it as ``revision=`` to load exactly this upload).

    Raises:
        HubError: offline mode, no network, or an error from the Hub, naming the repo.
    """
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError

    repo_id = strip_prefix(repo_id)
    endpoint = _endpoint()
    if _offline_env():
        raise HubError(
            f"cannot push to {repo_id!r}: offline mode is on (HF_HUB_OFFLINE=1); "
            "save_pretrained(folder) works offline, push later"
        )
    if not _reachable(endpoint):
        raise HubError(
            f"cannot push to {repo_id!r}: {endpoint} cannot be reached; save_pretrained(folder) "
            "works offline, push later"
        )
    api = HfApi(endpoint=endpoint, token=token)
    try:
        with tempfile.TemporaryDirectory(prefix="deepfake-detect-push-") as tmp:
            detector.save_pretrained(tmp)
            api.create_repo(repo_id, private=private, exist_ok=True)
            if revision and revision != "main":
                api.create_branch(repo_id, branch=revision, exist_ok=True)
            info = api.upload_folder(folder_path=tmp, repo_id=repo_id, commit_message=commit_message, revision=revision)
    except (HfHubHTTPError, OSError, ValueError) as e:
        raise HubError(f"could not push to Hub repo {repo_id!r} at {endpoint}: {e}") from None
    return info.oid
