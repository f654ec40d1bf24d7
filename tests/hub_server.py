"""A small Hugging Face Hub look-alike on loopback, enough for ``huggingface_hub``'s
download and upload code paths: resolve (HEAD/GET, with Range), model info and file tree,
repo and branch creation, preupload and commit (files inlined as base64).

Repos live in memory: ``repos[repo_id] = {"branches": {name: sha}, "commits": {sha: {path: bytes}}}``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlparse

RESOLVE = re.compile(r"^/(?:models/)?(?P<repo>[^/]+/[^/]+)/resolve/(?P<rev>[^/]+)/(?P<path>.+)$")
API_MODEL = re.compile(r"^/api/models/(?P<repo>[^/]+/[^/]+)(?:/revision/(?P<rev>[^/]+))?$")
API_TREE = re.compile(r"^/api/models/(?P<repo>[^/]+/[^/]+)/tree/(?P<rev>[^/]+)(?:/(?P<path>.*))?$")
API_PREUPLOAD = re.compile(r"^/api/models/(?P<repo>[^/]+/[^/]+)/preupload/(?P<rev>[^/]+)$")
API_COMMIT = re.compile(r"^/api/models/(?P<repo>[^/]+/[^/]+)/commit/(?P<rev>[^/]+)$")
API_BRANCH = re.compile(r"^/api/models/(?P<repo>[^/]+/[^/]+)/branch/(?P<rev>[^/]+)$")


class HubState:
    def __init__(self) -> None:
        self.repos: dict[str, dict] = {}
        self.requests: list[tuple[str, str]] = []
        self.lock = threading.Lock()
        #: called as ``before_request(method, path)`` before each HEAD/GET is answered (tests use
        #: it to change a repo between two requests of one download)
        self.before_request = None

    def resolve(self, repo: str, rev: str) -> tuple[str | None, dict | None, str | None]:
        """(commit sha, files, error code)."""
        r = self.repos.get(repo)
        if r is None:
            return None, None, "RepoNotFound"
        sha = r["branches"].get(rev, rev if rev in r["commits"] else None)
        if sha is None:
            return None, None, "RevisionNotFound"
        return sha, r["commits"][sha], None

    def add_files(self, repo: str, files: dict[str, bytes], branch: str = "main") -> str:
        """Commit ``files`` on top of ``branch`` (creating the repo if needed); returns the sha."""
        with self.lock:
            r = self.repos.setdefault(repo, {"branches": {}, "commits": {}})
            parent = r["branches"].get(branch)
            content = dict(r["commits"][parent]) if parent else {}
            content.update(files)
            sha = hashlib.sha1(f"{repo}{time.time_ns()}{len(r['commits'])}".encode()).hexdigest()
            r["commits"][sha] = content
            r["branches"][branch] = sha
            return sha


def _handler(state: HubState):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):  # quiet
            pass

        def _send(self, code: int, body: bytes = b"", headers: dict | None = None, *, head: bool = False) -> None:
            self.send_response(code)
            for k, v in (headers or {}).items():
                self.send_header(k, str(v))
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if not head and body:
                self.wfile.write(body)

        def _json(self, code: int, obj, error_code: str | None = None, *, head: bool = False) -> None:
            headers = {"Content-Type": "application/json"}
            if error_code:
                headers["X-Error-Code"] = error_code
                headers["X-Error-Message"] = error_code
            self._send(code, json.dumps(obj).encode(), headers, head=head)

        def _body(self) -> bytes:
            n = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(n) if n else b""

        # -- downloads ------------------------------------------------------------
        def _resolve(self, head: bool) -> None:
            m = RESOLVE.match(unquote(urlparse(self.path).path))
            if not m:
                return self._json(404, {"error": "not found"}, "RepoNotFound", head=head)
            sha, files, err = state.resolve(m["repo"], m["rev"])
            if err:
                return self._json(404, {"error": err}, err, head=head)
            data = files.get(m["path"])
            if data is None:
                return self._json(404, {"error": "entry not found"}, "EntryNotFound", head=head)
            etag = '"' + hashlib.sha256(data).hexdigest() + '"'
            headers = {
                "X-Repo-Commit": sha,
                "ETag": etag,
                "Accept-Ranges": "bytes",
                "Content-Type": "application/octet-stream",
            }
            rng = self.headers.get("Range")
            if rng and not head:
                start = int(re.match(r"bytes=(\d+)-", rng).group(1))
                headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
                return self._send(206, data[start:], headers)
            if head:
                self.send_response(200)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                return None
            return self._send(200, data, headers)

        def do_HEAD(self) -> None:  # noqa: N802
            state.requests.append(("HEAD", self.path))
            if state.before_request is not None:
                state.before_request("HEAD", self.path)
            self._resolve(head=True)

        def do_GET(self) -> None:  # noqa: N802
            state.requests.append(("GET", self.path))
            if state.before_request is not None:
                state.before_request("GET", self.path)
            self._get()

        def _get(self) -> None:
            path = unquote(urlparse(self.path).path)
            if RESOLVE.match(path):
                return self._resolve(head=False)
            m = API_TREE.match(path)
            if m:
                sha, files, err = state.resolve(m["repo"], m["rev"])
                if err:
                    return self._json(404, {"error": err}, err)
                tree = [
                    {"type": "file", "path": p, "size": len(b), "oid": hashlib.sha1(b).hexdigest()}
                    for p, b in sorted(files.items())
                ]
                return self._json(200, tree)
            m = API_MODEL.match(path)
            if m:
                sha, files, err = state.resolve(m["repo"], m["rev"] or "main")
                if err:
                    return self._json(404, {"error": err}, err)
                return self._json(
                    200,
                    {
                        "id": m["repo"],
                        "modelId": m["repo"],
                        "sha": sha,
                        "private": False,
                        "siblings": [{"rfilename": p} for p in sorted(files)],
                    },
                )
            return self._json(404, {"error": "not found"}, "RepoNotFound")

        # -- uploads --------------------------------------------------------------
        def do_POST(self) -> None:  # noqa: N802
            state.requests.append(("POST", self.path))
            path = unquote(urlparse(self.path).path)
            body = self._body()
            if path == "/api/validate-yaml":  # model card metadata check before a README upload
                return self._json(200, {"errors": [], "warnings": []})
            if path == "/api/repos/create":
                req = json.loads(body or b"{}")
                repo = f"{req.get('organization')}/{req['name']}" if req.get("organization") else req["name"]
                if repo in state.repos:
                    return self._json(409, {"error": "You already created this model repo", "url": f"/{repo}"})
                with state.lock:
                    state.repos[repo] = {"branches": {}, "commits": {}}
                state.add_files(repo, {".gitattributes": b"*.safetensors filter=lfs diff=lfs merge=lfs -text\n"})
                return self._json(200, {"url": f"http://{self.headers.get('Host')}/{repo}", "name": repo})
            m = API_BRANCH.match(path)
            if m:
                r = state.repos.get(m["repo"])
                if r is None:
                    return self._json(404, {"error": "RepoNotFound"}, "RepoNotFound")
                if m["rev"] in r["branches"]:
                    return self._json(409, {"error": "Reference already exists"})
                r["branches"][m["rev"]] = r["branches"]["main"]
                return self._json(200, {})
            m = API_PREUPLOAD.match(path)
            if m:
                if m["repo"] not in state.repos:
                    return self._json(404, {"error": "RepoNotFound"}, "RepoNotFound")
                files = json.loads(body).get("files", [])
                return self._json(
                    200, {"files": [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False} for f in files]}
                )
            m = API_COMMIT.match(path)
            if m:
                if m["repo"] not in state.repos:
                    return self._json(404, {"error": "RepoNotFound"}, "RepoNotFound")
                added = {}
                for line in body.decode().splitlines():
                    if not line.strip():
                        continue
                    item = json.loads(line)
                    if item.get("key") == "file":
                        v = item["value"]
                        added[v["path"]] = base64.b64decode(v["content"])
                sha = state.add_files(m["repo"], added, branch=m["rev"])
                return self._json(
                    200,
                    {
                        "commitUrl": f"http://{self.headers.get('Host')}/{m['repo']}/commit/{sha}",
                        "commitOid": sha,
                        "success": True,
                    },
                )
            return self._json(404, {"error": "not found"})

    return Handler


class HubServer:
    """``with HubServer() as hub: hub.url ...``; ``hub.state`` holds repos and a request log."""

    def __init__(self) -> None:
        self.state = HubState()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self.state))
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> HubServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def __exit__(self, *exc) -> None:
        self.stop()
