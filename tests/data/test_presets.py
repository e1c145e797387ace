"""The ``offline`` preset: procedural + licensed real objects with graded defects and wrong prompts,
none of them held out; reachable as ``--preset offline`` / ``preset:offline``."""

from __future__ import annotations

from collections import Counter

import pytest

from dreamcs.data.defects import DEFECTS
from dreamcs.data.presets import LICENSED_CLEAN_LODS, OFFLINE_PROCEDURAL, offline_items, preset_sources
from dreamcs.data.sources import SourceError, parse_source
from dreamcs.data.validation import is_held_out


@pytest.fixture(scope="module")
def items(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:  # generated meshes go to a temporary cache
        mp.setenv("DREAMCS_PROCEDURAL_CACHE", str(tmp_path_factory.mktemp("proc")))
        yield offline_items(n_procedural=26)


def test_offline_items(items):
    ids = [i.id for i in items]
    assert len(set(ids)) == len(ids)
    proc = [i for i in items if i.id.startswith("procedural/")]
    real = [i for i in items if i.id.startswith("licensed/")]
    assert len([i for i in proc if i.defect is None]) == 26 and len(proc) + len(real) == len(items)
    # every licensed object gets every defect kind, one wrong prompt and clean coarser levels of detail
    per = Counter(i.object_id for i in real)
    assert set(per.values()) == {len(DEFECTS.names()) + 2 + len(LICENSED_CLEAN_LODS)}
    lods = [i for i in real if "max_faces" in i.extra]
    assert {i.defect for i in lods} == {None} and {i.extra["max_faces"] for i in lods} == set(LICENSED_CLEAN_LODS)
    assert not any(is_held_out(i.object_id) for i in items)
    for i in items:
        if i.defect not in (None, "wrong_prompt"):
            assert 0.25 <= i.extra["severity"] <= 0.95 and i.prompt == i.caption
        if i.defect == "wrong_prompt":
            assert i.prompt != i.caption
    wrong = [i for i in proc if i.defect == "wrong_prompt"]
    assert wrong and all(i.extra["category"] not in i.prompt for i in wrong if i.extra["category"] in i.caption)
    assert len({i.extra.get("severity") for i in items if i.defect not in (None, "wrong_prompt")}) > 10


def test_full_offline_preset_is_large_enough():
    per_object = 1 + 2 + 0.5  # clean, two defects, a wrong prompt for every second object
    assert OFFLINE_PROCEDURAL * per_object + 64 * (len(DEFECTS.names()) + 2) >= 5000


def test_preset_specs():
    assert preset_sources("embedded") == ["embedded"] and preset_sources("offline") == ["preset:offline"]
    assert preset_sources("offline-realism") == ["preset:offline-realism"]
    with pytest.raises(SourceError, match="unknown preset"):
        preset_sources("nope")
    with pytest.raises(SourceError, match="unknown preset"):
        parse_source("preset:nope")


def test_severity_reaches_the_defect(items, tmp_path):
    from dreamcs.data.build import BuildConfig, prepare_mesh

    it = next(i for i in items if i.id.startswith("licensed/") and i.defect == "holes")
    lo = prepare_mesh(type(it)(**{**it.to_dict(), "extra": {"severity": 0.0}}), BuildConfig())
    hi = prepare_mesh(type(it)(**{**it.to_dict(), "extra": {"severity": 1.0}}), BuildConfig())
    assert len(hi.faces) < len(lo.faces)  # more and larger holes torn out


def test_clean_and_defective_meshes_share_one_triangle_density(items):
    """A coarse clean mesh beside its subdivided defective copies would let density stand in for the label."""
    from dreamcs.data.build import BuildConfig, prepare_mesh

    clean_item = next(i for i in items if i.id.startswith("procedural/") and i.defect is None)
    cfg = BuildConfig()

    def with_defect(kind):
        return type(clean_item)(**{**clean_item.to_dict(), "defect": kind, "extra": {**clean_item.extra, "severity": 0.5}})

    clean, noisy, holed = (len(prepare_mesh(i, cfg).faces) for i in (clean_item, with_defect("noise"), with_defect("holes")))
    assert clean >= cfg.densify_faces and noisy == clean  # noise displaces vertices: same triangles as clean
    assert holed < clean  # holes only remove faces: no finer triangles than clean
    off = len(prepare_mesh(clean_item, BuildConfig(densify_faces=0)).faces)
    assert off < clean  # the library's objects are coarser than that on their own


def test_licensed_lod_items_are_coarser_clean_copies(items):
    from dreamcs.data.build import BuildConfig, prepare_mesh

    obj = next(i.object_id for i in items if "max_faces" in i.extra)
    full = next(i for i in items if i.object_id == obj and i.defect is None and "max_faces" not in i.extra)
    lod = min((i for i in items if i.object_id == obj and "max_faces" in i.extra), key=lambda i: i.extra["max_faces"])
    cfg = BuildConfig(densify_faces=0)
    a, b = prepare_mesh(full, cfg), prepare_mesh(lod, cfg)
    assert len(b.faces) <= lod.extra["max_faces"] < len(a.faces)
    assert abs(a.bounds - b.bounds).max() < 0.05  # the same object


def test_construction_scores_label_every_item():
    from dreamcs.data.presets import construction_scores

    assert construction_scores(None, None)["overall"] >= 4.0  # clean: preferred
    assert construction_scores("wrong_prompt", None)["overall"] <= 3.5
    mild, severe = (construction_scores("holes", s)["overall"] for s in (0.25, 0.95))
    assert severe < mild <= 3.5  # every defect dispreferred, worse with severity


def test_offline_spec_is_labelled_by_construction(monkeypatch, tmp_path):
    import dreamcs.data.presets as presets

    monkeypatch.setenv("DREAMCS_PROCEDURAL_CACHE", str(tmp_path))
    monkeypatch.setattr(presets, "OFFLINE_PROCEDURAL", 26)
    monkeypatch.setattr(presets.offline_items, "__defaults__", (26, presets.OFFLINE_SEED))
    given = parse_source("preset:offline")
    assert all(i.scores is not None for i in given)
    assert {i.defect is None for i in given if i.scores["overall"] >= 4.0} == {True}
    assert all(i.scores is None for i in parse_source("preset:offline-scored"))
