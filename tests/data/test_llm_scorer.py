"""The llm scorer against a real HTTP server on loopback: good, prose, malformed, out-of-range,
slow (timeout) and error replies; the cache; the quantised OBJ text."""

from __future__ import annotations

import numpy as np
import pytest
import trimesh

from dreamcs.data.scorers import ScoreError
from dreamcs.data.scorers.llm import LLMScorer, LLMScorerConfig, parse_scores, quantized_obj


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


def test_llm_build_keeps_going_and_caches(server, tmp_path, sample_dir):
    """A build scored by the LLM: a malformed reply fails one item (raw reply kept), the rest are
    stored; a retry asks only for the failed item, the others come from the reply cache."""
    import json

    from dreamcs.data.build import BuildConfig, build
    from dreamcs.data.store import read_table

    man = tmp_path / "m.jsonl"
    names = ["chair_modern", "primitive_sphere", "table_sit_circle"]
    man.write_text("".join(json.dumps({"path": str(sample_dir / f"blockmesh_test__s_{n}.obj"), "prompt": n, "id": n}) + "\n" for n in names))
    good = '{"alignment": 4.5, "realism": 4.5, "fidelity": 4}'
    server.script = [(200, good, 0), (200, "It looks great!", 0), (200, good, 0)]
    cfg = BuildConfig(sources=[f"manifest:{man}"], scorer="llm", n_patches=8, faces_per_patch=16)
    cfg.llm.url, cfg.llm.model, cfg.llm.retries, cfg.llm.backoff_s = server.url, "m1", 0, 0.01
    st = build(cfg, tmp_path / "ds", progress=False)
    rows = read_table(tmp_path / "ds")
    assert [r["id"] for r in rows] == ["chair_modern", "table_sit_circle"] and st["failures"] == 1
    assert {r["provenance"] for r in rows} == {"llm:m1"} and rows[0]["overall"] == pytest.approx(13 / 3, abs=1e-5)
    fail = json.loads((tmp_path / "ds" / "failures.jsonl").read_text())
    assert fail["id"] == "primitive_sphere" and fail["raw"] == "It looks great!" and "no JSON object" in fail["reason"]
    assert len(server.requests) == 3
    server.script = [(200, good, 0)]
    st = build(cfg, tmp_path / "ds", retry_failed=True, progress=False)
    assert st["failures"] == 0 and len(read_table(tmp_path / "ds")) == 3 and len(server.requests) == 4
