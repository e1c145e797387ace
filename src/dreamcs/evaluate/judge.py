"""An optional VLM judge through any OpenAI-compatible chat endpoint (GPTEval3D-style criteria).

The asset's turntable views go as one PNG (data URI) with the prompt; the model returns three 1-5
scores: ``alignment`` (text-asset alignment), ``plausibility`` (3D plausibility) and
``consistency`` (geometry-texture consistency). The same robustness rules as the data stage's LLM
scorer, whose transport is reused (``LLMScorer.request``: timeouts, retries with back-off on
timeouts, connection errors, 429 and 5xx; the key from ``DREAMCS_LLM_API_KEY``):

- tolerant parsing: a JSON object anywhere in the reply (prose, code fences), keys in any case, the
  last complete object when the model restarts its answer;
- a missing, non-numeric or out-of-range score raises ``ScoreError`` with the raw reply: the asset
  is recorded as unjudged, a score is never made up;
- valid replies are cached on disk per (image hash, prompt, model, endpoint, question), so a re-run
  never pays twice.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dreamcs.utils import atomic_write_text

JUDGE_CRITERIA = ("alignment", "plausibility", "consistency")

JUDGE_PROMPT = """These images are views around one 3D asset generated from the text prompt: "{prompt}".
Rate the asset from 1 (worst) to 5 (best) on three criteria:
- alignment: how well the asset matches the text prompt;
- plausibility: whether it is a plausible 3D object (no extra faces or limbs seen from the back, no floating or missing parts);
- consistency: whether the geometry and its shading/texture agree (no details painted on a flat surface).
Answer with JSON only, e.g. {{"alignment": 4, "plausibility": 3, "consistency": 5}}."""


@dataclass
class JudgeConfig:
    url: str = "http://127.0.0.1:8000/v1/chat/completions"
    """An OpenAI-compatible endpoint (full ``.../chat/completions`` URL, or a base ending in ``/v1``)."""
    model: str = "gpt-4o"
    """The ``model`` field sent with each request (also part of the cache key)."""
    timeout_s: float = 120.0
    retries: int = 3
    backoff_s: float = 1.0
    max_tokens: int = 256
    cache_dir: str | None = None
    """Where valid replies are cached; None disables the cache."""


def parse_judgement(reply: str) -> dict[str, float]:
    """The three 1-5 scores from a reply (keys in any case, the last complete object), or ``ScoreError``."""
    from dreamcs.data.scorers.llm import score_object

    return score_object(reply, JUDGE_CRITERIA, 1.0, 5.0, what="judge score")


def _png(image: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image)).save(buf, format="PNG")
    return buf.getvalue()


class VLMJudge:
    """Scores (image strip, prompt) pairs; see the module docstring."""

    def __init__(self, cfg: JudgeConfig) -> None:
        from dreamcs.data.scorers.llm import LLMScorer, LLMScorerConfig

        self.cfg = cfg
        self._client = LLMScorer(LLMScorerConfig(url=cfg.url, model=cfg.model, timeout_s=cfg.timeout_s,
                                                 retries=cfg.retries, backoff_s=cfg.backoff_s,
                                                 max_tokens=cfg.max_tokens))

    def messages(self, png: bytes, prompt: str) -> list[dict]:
        url = "data:image/png;base64," + base64.b64encode(png).decode("ascii")
        return [{"role": "user", "content": [
            {"type": "text", "text": JUDGE_PROMPT.format(prompt=prompt)},
            {"type": "image_url", "image_url": {"url": url}},
        ]}]

    def judge(self, image: np.ndarray, prompt: str) -> dict[str, float]:
        """image (H, W, 3) uint8 (e.g. a turntable strip) -> {criterion: 1-5}; ``ScoreError`` if unusable."""
        png = _png(image)
        cache = None
        if self.cfg.cache_dir:
            from dreamcs.data.scorers.llm import _endpoint

            # the endpoint and the question are part of the key: a changed one never gets a stale reply
            key = hashlib.sha1(json.dumps([hashlib.sha1(png).hexdigest(), prompt, self.cfg.model,
                                           _endpoint(self.cfg.url), JUDGE_PROMPT]).encode()).hexdigest()
            cache = Path(self.cfg.cache_dir) / f"{key}.json"
        if cache is not None and cache.is_file():
            return parse_judgement(json.loads(cache.read_text(encoding="utf-8"))["reply"])
        reply = self._client.request(self.messages(png, prompt))
        scores = parse_judgement(reply)  # invalid replies raise and are never cached
        if cache is not None:
            atomic_write_text(cache, json.dumps({"model": self.cfg.model, "prompt": prompt, "reply": reply}))
        return scores
