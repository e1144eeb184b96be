"""A loopback stand-in for the Hugging Face Hub, serving repositories the tests write, so that the real
`huggingface_hub.snapshot_download` path (repo info, tree listing, HEAD for metadata, GET for content, the
local cache it fills) is exercised without the network. Point `HF_ENDPOINT` at `HubServer.url`.

It speaks only the part of the Hub API that `snapshot_download` uses: no LFS, no Xet, no pagination."""

from __future__ import annotations

import hashlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit


def _git_blob_id(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


class HubServer:
    def __init__(self) -> None:
        self.repos: dict[tuple[str, str], dict[str, bytes]] = {}  # (type, id) -> {path: content}
        self.commits: dict[tuple[str, str], str] = {}
        self.downloads: list[str] = []  # paths whose content was sent (GET on resolve)
        self.gated: set[str] = set()  # repository ids that refuse a request without access
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    def add_repo(self, repo_type: str, repo_id: str, folder: Path) -> str:
        """Publish every file under `folder` as the repository's main branch; returns its commit hash."""
        files = {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}
        commit = hashlib.sha1(json.dumps(sorted((k, _git_blob_id(v)) for k, v in files.items())).encode()).hexdigest()
        self.repos[(repo_type, repo_id)] = files
        self.commits[(repo_type, repo_id)] = commit
        return commit

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> HubServer:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _make_handler(self))
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def route(self, path: str) -> tuple[str, tuple[str, str], str, str]:
        """(kind, repo, revision, rest) for /api/{type}s/{owner}/{name}/(revision|tree)/{rev}[/...] and
        /[datasets/]{owner}/{name}/resolve/{rev}/{file}."""
        parts = [unquote(p) for p in urlsplit(path).path.strip("/").split("/")]
        if parts[0] == "api":
            repo_type, owner, name, kind, revision = parts[1][:-1], parts[2], parts[3], parts[4], parts[5]
            return kind, (repo_type, f"{owner}/{name}"), revision, "/".join(parts[6:])
        repo_type = "model"
        if parts[0] in ("datasets", "spaces"):
            repo_type, parts = parts[0][:-1], parts[1:]
        return parts[2], (repo_type, f"{parts[0]}/{parts[1]}"), parts[3], "/".join(parts[4:])


def _make_handler(hub: HubServer):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args) -> None:
            pass

        def do_GET(self) -> None:
            self._answer(send_body=True)

        def do_HEAD(self) -> None:
            self._answer(send_body=False)

        def _answer(self, send_body: bool) -> None:
            try:
                kind, repo, revision, rest = hub.route(self.path)
            except IndexError:
                return self._send(404, b'{"error": "not found"}', {}, send_body)
            if repo[1] in hub.gated:
                return self._send(403, b'{"error": "Access to this repository is restricted"}',
                                  {"X-Error-Code": "GatedRepo"}, send_body)
            files = hub.repos.get(repo)
            commit = hub.commits.get(repo)
            if files is None:
                return self._send(404, b'{"error": "Repository not found"}', {"X-Error-Code": "RepoNotFound"},
                                  send_body)
            if revision not in ("main", commit):
                return self._send(404, b'{"error": "Invalid rev id"}', {"X-Error-Code": "RevisionNotFound"},
                                  send_body)
            if kind == "revision":
                siblings = [{"rfilename": p} for p in files]
                body = json.dumps({"id": repo[1], "sha": commit, "siblings": siblings, "private": False}).encode()
                return self._send(200, body, {}, send_body)
            if kind == "tree":
                tree = [{"type": "file", "path": p, "size": len(data), "oid": _git_blob_id(data)}
                        for p, data in files.items()]
                return self._send(200, json.dumps(tree).encode(), {}, send_body)
            if kind == "resolve" and rest in files:
                data = files[rest]
                if send_body:
                    with hub._lock:
                        hub.downloads.append(rest)
                headers = {"X-Repo-Commit": commit, "ETag": f'"{_git_blob_id(data)}"',
                           "content-type": "application/octet-stream"}
                return self._send(200, data, headers, send_body)
            return self._send(404, b'{"error": "Entry not found"}', {"X-Error-Code": "EntryNotFound"}, send_body)

        def _send(self, status: int, body: bytes, headers: dict, send_body: bool) -> None:
            self.send_response(status)
            headers = {"content-type": "application/json", **headers}
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            if send_body:
                self.wfile.write(body)

    return Handler
