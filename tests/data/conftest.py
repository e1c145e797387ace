"""Small builds shared by the data tests: a handful of sample meshes, a tiny 8 x 16 patch layout."""

from __future__ import annotations

import json
import shutil
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from dreamcs.data.build import BuildConfig

TINY = dict(n_patches=8, faces_per_patch=16, shard_size=2)


def write_manifest(sample_dir: Path, dst: Path, bad: bool = True) -> Path:
    """A manifest over the sample meshes (object ids shared in pairs), plus one unreadable file."""
    dst.mkdir(parents=True, exist_ok=True)
    lines = []
    for i, p in enumerate(sorted(sample_dir.glob("*.obj"))[:5]):
        q = shutil.copy(p, dst / p.name)
        rec = {"path": str(q), "prompt": f"object number {i}", "object_id": f"obj{i // 2}"}
        if i == 4:
            rec["scores"] = {"alignment": 1, "realism": 2, "fidelity": 3}
        lines.append(rec)
    if bad:
        (dst / "broken.obj").write_text("v 0 0 0\nthis is not an obj\n")
        lines.append({"path": str(dst / "broken.obj"), "prompt": "broken", "id": "broken"})
    man = dst / "manifest.jsonl"
    man.write_text("".join(json.dumps(x) + "\n" for x in lines))
    return man


@pytest.fixture
def manifest(tmp_path, sample_dir) -> Path:
    return write_manifest(sample_dir, tmp_path / "src")


@pytest.fixture
def tiny_cfg(manifest) -> BuildConfig:
    return BuildConfig(sources=[f"manifest:{manifest}"], **TINY)


@pytest.fixture(scope="session")
def built(tmp_path_factory, sample_dir) -> Path:
    """One small dataset built once per session (tests that change it work on a copy)."""
    from dreamcs.data.build import build

    root = tmp_path_factory.mktemp("built")
    man = write_manifest(sample_dir, root / "src")
    build(BuildConfig(sources=[f"manifest:{man}"], **TINY), root / "ds", progress=False)
    return root / "ds"


@pytest.fixture
def built_copy(built, tmp_path) -> Path:
    return Path(shutil.copytree(built, tmp_path / "ds"))


class LoopbackLLM:
    """Answers each POST with the next scripted (status, content, delay) reply; records requests."""

    def __init__(self) -> None:
        self.script: list[tuple[int, str, float]] = []
        self.requests: list[dict] = []
        self.headers: list[dict] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):  # keep pytest output clean
                pass

            def do_POST(self):
                n = int(self.headers["Content-Length"])
                outer.requests.append(json.loads(self.rfile.read(n)))
                outer.headers.append(dict(self.headers))
                status, content, delay = outer.script.pop(0) if outer.script else (500, "empty script", 0)
                time.sleep(delay)
                if status == 200:
                    body = json.dumps({"choices": [{"message": {"role": "assistant", "content": content}}]})
                else:
                    body = content
                data = body.encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    s = LoopbackLLM()
    yield s
    s.close()


