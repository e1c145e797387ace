"""The LLM client against a loopback server that drops connections and answers 429 with
Retry-After; robust reply parsing; a cache key that changes with every setting of the question."""

from __future__ import annotations

import json
import socket
import struct
import threading
import time
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import trimesh

from dreamcs.data.scorers import ScoreError
from dreamcs.data.scorers.llm import LLMScorer, LLMScorerConfig, parse_scores, retry_after_seconds

GOOD = '{"alignment": 4, "realism": 3, "fidelity": 5}'


class FlakyServer:
    """Each POST takes the next action: ("drop",) closes without a reply, ("reset",) sends a TCP
    RST, (429, retry_after) refuses politely, (200, content) answers. Arrival times are kept."""

    def __init__(self, script):
        self.script, self.times = list(script), []
        outer = self

        class H(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_POST(self):  # noqa: N802
                self.rfile.read(int(self.headers["Content-Length"]))
                outer.times.append(time.monotonic())
                act = outer.script.pop(0) if outer.script else (500, None)
                if act[0] == "drop":
                    self.close_connection = True
                    return
                if act[0] == "reset":  # linger 0: close() sends RST, the client sees ConnectionResetError
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    self.close_connection = True
                    return
                status, arg = act
                body = (json.dumps({"choices": [{"message": {"content": arg}}]}) if status == 200 else "slow down").encode()
                self.send_response(status)
                if status == 429 and arg is not None:
                    self.send_header("Retry-After", arg)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), H)
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def flaky():
    servers = []

    def make(script):
        servers.append(FlakyServer(script))
        return servers[-1]

    yield make
    for s in servers:
        s.close()


@pytest.fixture
def box():
    return trimesh.creation.box(extents=(2, 2, 2))


def _client(url, **kw):
    cfg = dict(url=url, model="m", timeout_s=2.0, retries=2, backoff_s=0.01)
    cfg.update(kw)
    return LLMScorer(LLMScorerConfig(**cfg))


@pytest.mark.parametrize("how", ["drop", "reset"])
def test_dropped_connection_is_retried(flaky, box, how):
    srv = flaky([(how,), (how,), (200, GOOD)])
    s = _client(srv.url).score(box, "a box")
    assert (s.alignment, s.realism, s.fidelity) == (4.0, 3.0, 5.0) and len(srv.times) == 3


def test_dropped_connections_give_up_with_a_score_error(flaky, box):
    srv = flaky([("drop",), ("drop",), ("drop",)])
    with pytest.raises(ScoreError, match="gave up after 3 attempts: connection to .* dropped"):
        _client(srv.url).score(box, "a box")


def test_retry_after_seconds_is_honoured_and_capped(flaky, box):
    srv = flaky([(429, "1"), (200, GOOD)])
    assert _client(srv.url).score(box, "a box").realism == 3.0
    assert srv.times[1] - srv.times[0] >= 0.95  # waited the server's second, not the 0.01 s back-off
    srv = flaky([(429, "3600"), (200, GOOD)])
    assert _client(srv.url, max_retry_after_s=0.2).score(box, "a box").realism == 3.0
    assert 0.19 <= srv.times[1] - srv.times[0] < 5  # an hour asked, the cap taken


def test_retry_after_http_date(flaky, box):
    srv = flaky([(429, formatdate(time.time() + 2, usegmt=True)), (200, GOOD)])
    assert _client(srv.url).score(box, "a box").fidelity == 5.0
    assert srv.times[1] - srv.times[0] >= 0.9  # HTTP dates have whole seconds: 1-2 s left


def test_retry_after_parsing():
    assert retry_after_seconds("7") == 7.0 and retry_after_seconds(" 0 ") == 0.0
    assert retry_after_seconds(None) is None and retry_after_seconds("soon") is None
    now = 1_700_000_000.0
    assert retry_after_seconds(formatdate(now + 30, usegmt=True), now=now) == pytest.approx(30, abs=1)
    assert retry_after_seconds(formatdate(now - 30, usegmt=True), now=now) == 0.0


@pytest.mark.parametrize("reply", [
    '{"Alignment": 4, "REALISM": 3, "Fidelity": 5}',
    '{"alignment": 4, {"alignment": 4, "realism": 3, "fidelity": 5}',
    '{"alignment": 2} wait, all three: {"alignment": 4, "realism": 3, "fidelity": 5}',
    '{"alignment": 1, "realism": 1, "fidelity": 1} On reflection: {"alignment": 4, "realism": 3, "fidelity": 5}',
])
def test_parse_is_case_insensitive_and_takes_the_last_complete_object(reply):
    assert parse_scores(reply) == {"alignment": 4.0, "realism": 3.0, "fidelity": 5.0}


def test_parse_still_names_what_is_missing():
    with pytest.raises(ScoreError, match="'fidelity' missing"):
        parse_scores('{"Alignment": 4, "Realism": 3}')


def test_cache_key_covers_the_question(tmp_path):
    base = dict(cache_dir=str(tmp_path))
    key = LLMScorer(LLMScorerConfig(**base))._cache_path("h", "p")
    assert key == LLMScorer(LLMScorerConfig(**base, timeout_s=5, retries=9))._cache_path("h", "p")
    for change in ({"bins": 128}, {"max_faces": 800}, {"url": "http://10.0.0.1:8000/v1"}, {"model": "x"},
                   {"temperature": 0.7}):
        assert LLMScorer(LLMScorerConfig(**base, **change))._cache_path("h", "p") != key, change
    import dreamcs.data.scorers.llm as llm

    old = llm.USER_PROMPT
    try:
        llm.USER_PROMPT = old + "\nBe strict."
        assert LLMScorer(LLMScorerConfig(**base))._cache_path("h", "p") != key
    finally:
        llm.USER_PROMPT = old
