"""The llm scorer against a real HTTP server on loopback: good, prose, malformed, out-of-range,
slow (timeout) and error replies; the cache; the quantised OBJ text."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest
import trimesh

from dreamcs.data.scorers import ScoreError
from dreamcs.data.scorers.llm import LLMScorer, LLMScorerConfig, parse_scores, quantized_obj


class _Server:
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
    s = _Server()
    yield s
    s.close()


@pytest.fixture
def sphere():
    return trimesh.creation.icosphere(subdivisions=3)  # 1280 faces, radius 1


def _scorer(server, tmp_path, **kw):
    cfg = dict(url=server.url, model="m1", timeout_s=0.3, retries=1, backoff_s=0.01, cache_dir=str(tmp_path / "cache"))
    cfg.update(kw)
    return LLMScorer(LLMScorerConfig(**cfg))


def test_good_reply_request_and_cache(server, tmp_path, sphere, monkeypatch):
    monkeypatch.setenv("DREAMCS_LLM_API_KEY", "sk-test")
    server.script = [(200, 'Sure! Here you go:\n```json\n{"alignment": 4, "realism": "3.5", "fidelity": 2}\n```', 0)]
    sc = _scorer(server, tmp_path)
    s = sc.score(sphere, "a ball", mesh_hash="h1")
    assert (s.alignment, s.realism, s.fidelity) == (4.0, 3.5, 2.0)
    assert s.overall() == pytest.approx(9.5 / 3)
    req = server.requests[0]
    assert req["model"] == "m1" and server.headers[0]["Authorization"] == "Bearer sk-test"
    user = req["messages"][-1]["content"]
    assert '"a ball"' in user
    n_faces = sum(1 for line in user.splitlines() if line.startswith("f "))
    coords = np.array([[int(t) for t in line.split()[1:]] for line in user.splitlines() if line.startswith("v ")])
    assert 0 < n_faces <= 500 and coords.min() >= 0 and coords.max() <= 63
    # the same (mesh hash, prompt, model) is served from the cache: no new request
    s2 = sc.score(sphere, "a ball", mesh_hash="h1")
    assert s2.realism == 3.5 and s2.details["cached"] and len(server.requests) == 1
    # another model is another key
    server.script = [(200, '{"alignment": 1, "realism": 1, "fidelity": 1}', 0)]
    assert _scorer(server, tmp_path, model="m2").score(sphere, "a ball", mesh_hash="h1").realism == 1.0
    assert len(server.requests) == 2


@pytest.mark.parametrize(
    "reply, reason",
    [
        ("I think it is a nice ball, 4 out of 5.", "no JSON object"),
        ('{"alignment": 4, "realism": 3}', "'fidelity' missing"),
        ('{"alignment": 4, "realism": 7, "fidelity": 1}', "outside"),
        ('{"alignment": "high", "realism": 3, "fidelity": 1}', "not a number"),
    ],
)
def test_bad_replies_fail_with_raw_kept_and_not_cached(server, tmp_path, sphere, reply, reason):
    server.script = [(200, reply, 0)]
    sc = _scorer(server, tmp_path)
    with pytest.raises(ScoreError, match=reason) as e:
        sc.score(sphere, "a ball", mesh_hash="h")
    assert e.value.raw == reply
    assert not (tmp_path / "cache").exists() or not list((tmp_path / "cache").iterdir())


def test_slow_reply_times_out_then_retry_succeeds(server, tmp_path, sphere):
    server.script = [(200, '{"alignment": 5, "realism": 5, "fidelity": 5}', 1.0), (200, '{"alignment": 2, "realism": 2, "fidelity": 2}', 0)]
    s = _scorer(server, tmp_path).score(sphere, "a ball", mesh_hash="h")
    assert s.realism == 2.0 and len(server.requests) == 2


def test_500_retried_then_gives_up(server, tmp_path, sphere):
    server.script = [(500, "boom", 0), (200, '{"alignment": 3, "realism": 3, "fidelity": 3}', 0)]
    assert _scorer(server, tmp_path).score(sphere, "x", mesh_hash="a").realism == 3.0
    server.script = [(500, "boom", 0), (503, "busy", 0)]
    with pytest.raises(ScoreError, match="gave up after 2 attempts: HTTP 503"):
        _scorer(server, tmp_path).score(sphere, "x", mesh_hash="b")
    server.script = [(400, "bad request", 0)]  # a client error is not retried
    n = len(server.requests)
    with pytest.raises(ScoreError, match="HTTP 400"):
        _scorer(server, tmp_path).score(sphere, "x", mesh_hash="c")
    assert len(server.requests) == n + 1


def test_unreachable_endpoint(tmp_path, sphere):
    sc = LLMScorer(LLMScorerConfig(url="http://127.0.0.1:9/v1", retries=1, backoff_s=0.01, timeout_s=0.5))
    with pytest.raises(ScoreError, match="cannot reach|timeout"):
        sc.score(sphere, "x")


def test_quantized_obj_is_canonical():
    box = trimesh.creation.box(extents=(2, 2, 2))
    text, n = quantized_obj(box, bins=64)
    vs = [tuple(map(int, line.split()[1:])) for line in text.splitlines() if line.startswith("v ")]
    assert n == 12 and len(vs) == 8 and set(np.array(vs).ravel()) == {0, 63}
    assert vs == sorted(vs, key=lambda p: (p[2], p[1], p[0]))
    # a permuted copy of the same mesh gives the same text
    perm = np.random.default_rng(0).permutation(8)
    inv = np.argsort(perm)
    box2 = trimesh.Trimesh(box.vertices[perm], inv[box.faces], process=False)
    assert quantized_obj(box2)[0] == text


def test_parse_scores_picks_the_score_object():
    assert parse_scores('{"note": 1} then {"alignment": 0, "realism": 5, "fidelity": 2.5}')["fidelity"] == 2.5
