"""The VLM judge: tolerant parsing, never a made-up score, retries on 5xx, the reply cache."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import numpy as np
import pytest

from dreamcs.data.scorers import ScoreError
from dreamcs.evaluate.judge import JudgeConfig, VLMJudge, parse_judgement


@pytest.mark.parametrize("reply, expect", [
    ('{"alignment": 4, "plausibility": 3, "consistency": 5}', {"alignment": 4.0, "plausibility": 3.0, "consistency": 5.0}),
    ('Sure!\n```json\n{"Alignment": "2.5", "plausibility": 1, "consistency": 4}\n```', {"alignment": 2.5}),
])
def test_parse_tolerant(reply, expect):
    out = parse_judgement(reply)
    assert all(out[k] == v for k, v in expect.items()) and len(out) == 3


@pytest.mark.parametrize("reply, reason", [
    ("I cannot rate this.", "no JSON object"),
    ('{"alignment": 4, "plausibility": 3}', "'consistency' missing"),
    ('{"alignment": 0, "plausibility": 3, "consistency": 3}', "outside [1, 5]"),
    ('{"alignment": "good", "plausibility": 3, "consistency": 3}', "not a number"),
])
def test_parse_rejects_and_keeps_raw(reply, reason):
    with pytest.raises(ScoreError) as e:
        parse_judgement(reply)
    assert reason in e.value.reason and e.value.raw == reply


class _Server:
    """A local OpenAI-compatible endpoint that answers from a script of (status, content)."""

    def __init__(self, script):
        self.script, self.requests = list(script), []
        outer = self

        class H(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                outer.requests.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
                status, content = outer.script.pop(0)
                body = json.dumps({"choices": [{"message": {"content": content}}]}).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *a):
                pass

        self.httpd = HTTPServer(("127.0.0.1", 0), H)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.httpd.server_port}/v1"

    def close(self):
        self.httpd.shutdown()


def test_judge_retries_then_caches(tmp_path):
    good = 'Here: {"alignment": 5, "plausibility": 4, "consistency": 3}'
    srv = _Server([(503, "busy"), (200, good), (200, "no idea")])
    try:
        judge = VLMJudge(JudgeConfig(url=srv.url, model="m", backoff_s=0.01, cache_dir=str(tmp_path / "cache")))
        img = np.zeros((8, 16, 3), np.uint8)
        assert judge.judge(img, "a chair") == {"alignment": 5.0, "plausibility": 4.0, "consistency": 3.0}
        assert len(srv.requests) == 2  # the 503 was retried
        msg = srv.requests[1]["messages"][0]["content"]
        assert msg[1]["image_url"]["url"].startswith("data:image/png;base64,") and "a chair" in msg[0]["text"]
        assert judge.judge(img, "a chair")["alignment"] == 5.0 and len(srv.requests) == 2  # cached
        with pytest.raises(ScoreError, match="no JSON object"):  # another prompt: asks, gets nonsense
            judge.judge(img, "a red car")
        assert len(list((tmp_path / "cache").iterdir())) == 1  # the bad reply was not cached
    finally:
        srv.close()
