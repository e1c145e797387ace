"""The procedural shape library: valid, watertight-where-promised, captioned, seeded meshes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from dreamcs.data.procedural import CATEGORIES, MAX_FACES, library, make_object, synonyms
from dreamcs.data.procedural.words import NUMBERS
from dreamcs.data.sources import SourceError, parse_source

SEEDS = range(10)


@pytest.fixture(scope="module")
def objects():
    return {(c, s): make_object(c, s) for c in CATEGORIES for s in SEEDS}


def test_at_least_twenty_categories():
    assert len(CATEGORIES) >= 20, CATEGORIES


@pytest.mark.parametrize("category", CATEGORIES)
def test_every_object_is_a_valid_normalised_mesh(objects, category):
    for s in SEEDS:
        obj = objects[category, s]
        v, f = np.asarray(obj.mesh.vertices), np.asarray(obj.mesh.faces)
        assert len(f) > 0 and len(f) < MAX_FACES, (obj.object_id, len(f))
        assert np.isfinite(v).all()
        assert v.min() >= -1.0 and v.max() <= 1.0
        # normalised: the longest side spans [-1, 1]
        assert np.isclose((v.max(0) - v.min(0)).max(), 2.0, atol=1e-6)
        assert obj.object_id == f"{category}-{s}" and obj.category == category
        assert sum(len(p.mesh.faces) for p in obj.parts) == len(f)


@pytest.mark.parametrize("category", CATEGORIES)
def test_closed_parts_are_watertight_and_outward(objects, category):
    for s in SEEDS:
        for part in objects[category, s].parts:
            if part.closed:
                m = part.mesh
                assert m.is_watertight and m.is_winding_consistent, (category, s, part.name)
                assert m.volume > 0, (category, s, part.name, "inward winding")


@pytest.mark.parametrize("category", CATEGORIES)
def test_captions_name_the_category(objects, category):
    words = synonyms(category)
    for s in SEEDS:
        cap = objects[category, s].caption
        assert any(w in cap for w in words), (category, cap)
        assert cap == cap.strip() and "  " not in cap


def test_same_seed_same_mesh_and_distinct_seeds_differ(objects):
    for c in CATEGORIES:
        a, b = make_object(c, 3), objects[c, 3]
        assert a.caption == b.caption and a.params == b.params
        np.testing.assert_array_equal(a.mesh.vertices, b.mesh.vertices)
        np.testing.assert_array_equal(a.mesh.faces, b.mesh.faces)
        meshes = [objects[c, s].mesh for s in SEEDS]
        for i, m in enumerate(meshes):
            for n in meshes[:i]:
                same = m.vertices.shape == n.vertices.shape and np.allclose(m.vertices, n.vertices)
                assert not same, (c, "two seeds gave the same mesh")


def test_style_varies_across_seeds(objects):
    details = {objects[k].params["detail"] for k in objects}
    bevels = {objects[k].params["bevel"] for k in objects}
    assert details == {0, 1, 2, 3} and len(bevels) == 3
    dense = [objects[k].params["dense"] for k in objects]
    assert 0.15 < np.mean(dense) < 0.45, np.mean(dense)  # DENSE_SHARE = 0.3 of the objects subdivided
    assert any(not p.closed for o in objects.values() for p in o.parts), "no open surfaces at all"


def test_shape_words_match_parameters(objects):
    for s in SEEDS:
        t = objects["table", s]
        if t.params["n_legs"]:
            n = {3: "three", 4: "four"}[t.params["n_legs"]]
            assert f"{n} legs" in t.caption, t.caption
            assert sum(p.name == "leg" for p in t.parts) == t.params["n_legs"]
        c = objects["chair", s]
        assert ("armrests" in c.caption) == c.params["arms"], c.caption
        st = objects["stool", s]
        assert ("tall" in st.caption) == st.params["tall"], st.caption
        assert sum(p.name == "leg" for p in st.parts) == st.params["n_legs"]
        r = objects["rocket", s]
        assert sum(p.name == "fin" for p in r.parts) == r.params["n_fins"]
        if r.params["n_fins"]:
            assert f"{NUMBERS[r.params['n_fins']]} fins" in r.caption, r.caption
        b = objects["bookshelf", s]
        assert f"{NUMBERS[b.params['levels']]} shel" in b.caption, b.caption
        assert sum(p.name == "shelf" for p in b.parts) == b.params["levels"]
        sofa = objects["sofa", s]
        assert sum(p.name == "seat_cushion" for p in sofa.parts) == sofa.params["seats"]
        assert ("armrests" in sofa.caption) == sofa.params["arms"], sofa.caption
        car = objects["car", s]
        assert sum(p.name == "wheel" for p in car.parts) == car.params["n_wheels"]
        assert f"{NUMBERS[car.params['n_wheels']]} wheels" in car.caption, car.caption
        lamp = objects["lamp", s]
        shade = next(p for p in lamp.parts if p.name == "shade")
        assert shade.closed != lamp.params["open_shade"] and shade.mesh.is_watertight == shade.closed


def test_library_round_robin_and_deterministic():
    a = list(library(len(CATEGORIES) + 2, seed=1))
    assert [o.category for o in a[: len(CATEGORIES)]] == list(CATEGORIES)
    assert a[len(CATEGORIES)].category == CATEGORIES[0] and a[0].object_id != a[len(CATEGORIES)].object_id
    assert a[0].object_id == f"{CATEGORIES[0]}-1000000"
    b = list(library(3, seed=1))
    assert [o.caption for o in b] == [o.caption for o in a[:3]]


def test_unknown_category_or_bad_seed_is_a_clear_error():
    with pytest.raises(KeyError, match="unknown procedural category 'spaceship'"):
        make_object("spaceship", 0)
    for seed in (-1, 1.5, "3"):
        with pytest.raises(ValueError, match="non-negative integer"):
            make_object("chair", seed)


def test_procedural_source_yields_items(tmp_path, monkeypatch):
    monkeypatch.setenv("DREAMCS_PROCEDURAL_CACHE", str(tmp_path))
    items = parse_source("procedural:4:2")
    assert len(items) == 4 and len({it.id for it in items}) == 4
    from dreamcs.mesh import load_mesh

    for it in items:
        assert it.source == "procedural" and it.prompt == it.caption and it.object_id in it.id
        m = load_mesh(it.path)
        assert len(m.faces) > 0 and np.abs(m.vertices).max() <= 1.0 + 1e-6
    # a second parse reads the sidecars instead of regenerating, and gives the same items
    again = parse_source("procedural:4:2")
    assert [(it.id, it.caption, it.path) for it in again] == [(it.id, it.caption, it.path) for it in items]
    side = json.loads(Path(items[0].path).with_suffix(".json").read_text())
    assert side["caption"] == items[0].caption and side["category"] == items[0].extra["category"]


@pytest.mark.parametrize(
    "spec", ["procedural:", "procedural:x", "procedural:0", "procedural:3:-1", "procedural:1:2:3"]
)
def test_bad_procedural_spec_names_the_spec(spec):
    with pytest.raises(SourceError, match="procedural:N"):
        parse_source(spec)
