"""The ``llm`` scorer, in LLaMA-Mesh's style: the mesh as OBJ text, scored by a chat model.

1. Decimate to at most ``max_faces`` (500 by default) so the mesh fits a context window.
2. Write it as OBJ text with coordinates quantised to ``bins`` (64) integer bins per axis, vertices
   sorted z-y-x and faces by their smallest index (LLaMA-Mesh's ordering, which keeps the text
   short and canonical).
3. Ask any OpenAI-compatible ``/v1/chat/completions`` endpoint for the three scores as JSON. The key
   comes from the ``DREAMCS_LLM_API_KEY`` environment variable (never from a config file).
4. Parse tolerantly (a JSON object inside prose or a code fence). A reply with a missing, non-numeric
   or out-of-range score raises ``ScoreError`` with the raw reply kept: no score is ever made up.

Transport: stdlib ``urllib`` only; a timeout per request, retries with exponential back-off on
timeouts, refused or dropped connections, 429 and 5xx (a ``Retry-After`` header, in seconds or as
an HTTP date, is honoured up to ``max_retry_after_s``). Valid replies are cached on disk, one JSON
file per (mesh hash, prompt, model, endpoint, prompt template, bins, max faces, sampling settings),
so a re-run or a resumed build never pays twice and a changed setting never gets a stale reply.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import re
import socket
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import trimesh

from dreamcs.data.scorers import SCORE_NAMES, SCORERS, ScoreError, Scores
from dreamcs.utils import atomic_write_text

API_KEY_ENV = "DREAMCS_LLM_API_KEY"

SYSTEM_PROMPT = (
    "You are an expert 3D artist who judges meshes. Meshes are given as OBJ text: 'v x y z' lines are "
    "vertices with integer coordinates in 0..{top} (y is up), 'f a b c' lines are triangles (1-based)."
)
USER_PROMPT = """Text prompt: "{prompt}"

Mesh ({n_faces} faces):
{obj}
Rate this mesh from 0 (worst) to 5 (best) on three criteria:
- alignment: how well the shape matches the text prompt;
- realism: structural plausibility (no floating parts, holes, broken or duplicated geometry);
- fidelity: surface quality and detail (no noise, melting or flattening).
Answer with JSON only, e.g. {{"alignment": 3.5, "realism": 4, "fidelity": 2.5}}."""


@dataclass
class LLMScorerConfig:
    url: str = "http://127.0.0.1:8000/v1/chat/completions"
    """An OpenAI-compatible endpoint: a full ``.../chat/completions`` URL, or a base ending in ``/v1``."""
    model: str = "llama-mesh"
    """The ``model`` field sent with each request (also part of the cache key)."""
    max_faces: int = 500
    """Decimate to at most this many faces before writing the OBJ text."""
    bins: int = 64
    """Integer bins per axis for the quantised coordinates."""
    timeout_s: float = 60.0
    """Per-request timeout."""
    retries: int = 3
    """Extra attempts after a timeout, connection error, 429 or 5xx."""
    backoff_s: float = 1.0
    """First back-off delay; doubles after each failed attempt."""
    max_retry_after_s: float = 120.0
    """Cap on a server's ``Retry-After`` wait (seconds or HTTP date), so one header cannot stall a build."""
    max_tokens: int = 256
    temperature: float = 0.0
    cache_dir: str | None = None
    """Where replies are cached; None disables the cache (the build sets DATASET/.work/llm_cache)."""


def quantized_obj(mesh: trimesh.Trimesh, bins: int = 64) -> tuple[str, int]:
    """OBJ text of a mesh normalised into [-1, 1]^3, coordinates quantised to ``bins`` integer bins.

    Vertices that fall in the same bin are merged and faces that collapse are dropped. Returns
    (text, number of faces written).
    """
    v = np.asarray(mesh.vertices, dtype=np.float64)
    q = np.clip(np.round((v + 1.0) * 0.5 * (bins - 1)), 0, bins - 1).astype(np.int64)
    uniq, inverse = np.unique(q, axis=0, return_inverse=True)
    order = np.lexsort((uniq[:, 0], uniq[:, 1], uniq[:, 2]))  # sort by z, then y, then x
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    f = rank[inverse.reshape(-1)][np.asarray(mesh.faces)]
    f = f[(f[:, 0] != f[:, 1]) & (f[:, 1] != f[:, 2]) & (f[:, 0] != f[:, 2])]
    # rotate each face so its smallest index leads (keeps the winding), then sort faces
    shift = np.argmin(f, axis=1)
    idx = (shift[:, None] + np.arange(3)[None, :]) % 3
    f = np.take_along_axis(f, idx, axis=1)
    f = np.unique(f, axis=0)
    lines = [f"v {x} {y} {z}" for x, y, z in uniq[order]]
    lines += [f"f {a + 1} {b + 1} {c + 1}" for a, b, c in f]
    return "\n".join(lines) + "\n", int(len(f))


def _json_objects(text: str) -> list[Any]:
    """Every parseable ``{...}`` object in ``text`` (a brace scan, so prose around it is fine)."""
    found = []
    for start in [m.start() for m in re.finditer(r"\{", text)]:
        depth = 0
        for end in range(start, len(text)):
            if text[end] == "{":
                depth += 1
            elif text[end] == "}":
                depth -= 1
                if depth == 0:
                    try:
                        found.append(json.loads(text[start : end + 1]))
                    except json.JSONDecodeError:
                        pass
                    break
    return found


def score_object(reply: str, names: tuple[str, ...], lo: float, hi: float, what: str = "score") -> dict[str, float]:
    """``{name: value}`` from the reply's score object, or ``ScoreError`` (raw reply kept).

    Keys are matched case-insensitively (``"Alignment"`` counts). Of several objects the last one
    holding every name wins (a model that restarts its answer, or a partial object followed by a
    full one); with none complete, the last one holding any name is checked, to say what is wrong.
    """
    objs = [{str(k).strip().lower(): v for k, v in o.items()} for o in _json_objects(reply) if isinstance(o, dict)]
    cands = [o for o in objs if any(k in o for k in names)]
    if not cands:
        raise ScoreError(f"no JSON object with {what}s in the reply", raw=reply)
    full = [o for o in cands if all(k in o for k in names)]
    obj = (full or cands)[-1]
    out = {}
    for k in names:
        v = obj.get(k)
        if isinstance(v, str):
            try:
                v = float(v.strip())
            except ValueError:
                raise ScoreError(f"{what} {k!r} is not a number: {v!r}", raw=reply) from None
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not np.isfinite(v):
            raise ScoreError(f"{what} {k!r} missing or not a number", raw=reply)
        if not lo <= float(v) <= hi:
            raise ScoreError(f"{what} {k!r} = {v} is outside [{lo:g}, {hi:g}]", raw=reply)
        out[k] = float(v)
    return out


def parse_scores(reply: str) -> dict[str, float]:
    """The three 0-5 scores from a model reply, or ``ScoreError`` (raw reply kept) when any is bad."""
    return score_object(reply, SCORE_NAMES, 0.0, 5.0)


def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta seconds or an HTTP date); None if absent or bad."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    from email.utils import parsedate_to_datetime

    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def _endpoint(url: str) -> str:
    url = url.rstrip("/")
    if url.endswith("/chat/completions"):
        return url
    if url.endswith("/v1"):
        return url + "/chat/completions"
    return url + "/v1/chat/completions"


@SCORERS.register("llm")
class LLMScorer:
    """Scores by asking a chat model (LLaMA-Mesh style); see the module docstring."""

    config_cls = LLMScorerConfig

    def __init__(self, cfg: LLMScorerConfig | None = None) -> None:
        self.cfg = cfg or LLMScorerConfig()

    def messages(self, mesh: trimesh.Trimesh, prompt: str) -> list[dict[str, str]]:
        from dreamcs.mesh import simplify

        small = simplify(mesh, max_faces=self.cfg.max_faces) if len(mesh.faces) > self.cfg.max_faces else mesh
        obj, n = quantized_obj(small, self.cfg.bins)
        return [
            {"role": "system", "content": SYSTEM_PROMPT.format(top=self.cfg.bins - 1)},
            {"role": "user", "content": USER_PROMPT.format(prompt=prompt, n_faces=n, obj=obj)},
        ]

    def _cache_path(self, mesh_hash: str, prompt: str) -> Path | None:
        if not self.cfg.cache_dir:
            return None
        c = self.cfg  # everything that changes the question or the answer; not timeouts or retries
        key = hashlib.sha1(json.dumps([mesh_hash, prompt, c.model, _endpoint(c.url), SYSTEM_PROMPT, USER_PROMPT,
                                       c.bins, c.max_faces, c.temperature, c.max_tokens]).encode()).hexdigest()
        return Path(self.cfg.cache_dir) / f"{key}.json"

    def request(self, messages: list[dict[str, str]]) -> str:
        """POST the chat request with retries; the reply's message content."""
        body = json.dumps(
            {
                "model": self.cfg.model,
                "messages": messages,
                "temperature": self.cfg.temperature,
                "max_tokens": self.cfg.max_tokens,
            }
        ).encode("utf-8")
        headers = {"Content-Type": "application/json"}
        if key := os.environ.get(API_KEY_ENV):
            headers["Authorization"] = f"Bearer {key}"
        url = _endpoint(self.cfg.url)
        last = "no attempt"
        wait_s: float | None = None  # a server's Retry-After for the next attempt
        for attempt in range(self.cfg.retries + 1):
            if attempt:
                backoff = self.cfg.backoff_s * 2 ** (attempt - 1)
                time.sleep(backoff if wait_s is None else max(backoff, min(wait_s, self.cfg.max_retry_after_s)))
            wait_s = None
            try:
                req = urllib.request.Request(url, data=body, headers=headers, method="POST")
                with urllib.request.urlopen(req, timeout=self.cfg.timeout_s) as resp:
                    payload = resp.read().decode("utf-8", errors="replace")
            except urllib.error.HTTPError as e:
                detail = e.read().decode("utf-8", errors="replace")[:500]
                last = f"HTTP {e.code} from {url}: {detail}"
                if e.code == 429 or e.code >= 500:
                    wait_s = retry_after_seconds(e.headers.get("Retry-After") if e.headers else None)
                    continue
                raise ScoreError(last, raw=detail) from None
            except TimeoutError as e:
                last = f"timeout after {self.cfg.timeout_s}s from {url} ({e})"
                continue
            except urllib.error.URLError as e:
                last = f"cannot reach {url}: {e.reason}"
                if isinstance(e.reason, (TimeoutError, socket.timeout)):
                    last = f"timeout after {self.cfg.timeout_s}s from {url}"
                continue
            except (http.client.HTTPException, ConnectionError) as e:
                # a dropped connection (RemoteDisconnected, ConnectionResetError, IncompleteRead) is
                # raised by urlopen/read unwrapped: as retryable as a timeout
                last = f"connection to {url} dropped: {type(e).__name__}: {e}"
                continue
            try:
                return str(json.loads(payload)["choices"][0]["message"]["content"])
            except (json.JSONDecodeError, KeyError, IndexError, TypeError):
                raise ScoreError("the endpoint's reply is not a chat completion", raw=payload[:2000]) from None
        raise ScoreError(f"gave up after {self.cfg.retries + 1} attempts: {last}")

    def score(self, mesh: trimesh.Trimesh, prompt: str, *, caption: str | None = None, mesh_hash: str = "") -> Scores:
        """Scores for ``mesh`` (normalised into [-1, 1]^3) against ``prompt``; ``caption`` is unused."""
        cache = self._cache_path(mesh_hash, prompt) if mesh_hash else None
        cached = cache is not None and cache.is_file()
        if cached:
            reply = json.loads(cache.read_text(encoding="utf-8"))["reply"]
        else:
            reply = self.request(self.messages(mesh, prompt))
        s = parse_scores(reply)  # raises with the raw reply; invalid replies are never cached
        if cache is not None and not cached:
            atomic_write_text(cache, json.dumps({"model": self.cfg.model, "prompt": prompt, "reply": reply}))
        return Scores(s["alignment"], s["realism"], s["fidelity"], details={"reply": reply, "cached": cached})
