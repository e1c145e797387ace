"""Named item sets for ``dreamcs data build --preset NAME``.

- ``embedded``: the small offline set shipped in ``dreamcs/assets/meshpref`` (``dreamcs.data.embedded``).
- ``offline``: the large offline set, about 5,200 items, made without any download:
  (a) ``OFFLINE_PROCEDURAL`` objects of the procedural library (``dreamcs.data.procedural``), each
  clean, with two defects (kinds and severities chosen by a hash of the object id) and, for every
  second object, a wrong prompt (the caption of an object of another category);
  (b) every licensed real mesh shipped with dreamcs (the embedded set's objects; none of
  ``dreamcs.data.validation.HELD_OUT_OBJECTS``), each clean, with every defect kind at a graded
  severity, with a wrong prompt, and clean again at coarser levels of detail (``LICENSED_CLEAN_LODS``).
  Labels are given by construction (``construction_scores``): the synthesiser knows what it did,
  which the geometric teacher reads only at ROC-AUC ~0.74 on held-out real meshes
  (docs/teacher-eval.md). ``preset:offline-scored`` is the same item set scored by ``--scorer``.
- ``offline-realism``: items to train beside ``offline`` (``reward train --data OFFLINE --data
  REALISM``), of the same objects: clean variants that look like real meshes (open base, unwelded
  along creases; ``dreamcs.data.realism``), preferred, and defects applied to such variants,
  dispreferred, so that an open boundary alone no longer marks a mesh as damaged.

A preset is reached through the source spec ``preset:NAME`` (``dreamcs.data.sources``), so a
preset build resumes, shards and merges like any other.
"""

from __future__ import annotations

import hashlib

from dreamcs.data.sources import SourceError, SourceItem

PRESETS = ("embedded", "offline", "offline-scored", "offline-realism")
OFFLINE_PROCEDURAL = 1200
OFFLINE_SEED = 0
#: defects per procedural object (the licensed objects get every kind)
PROCEDURAL_DEFECTS = 2
SEVERITY_RANGE = (0.25, 0.95)
#: face budgets of the extra clean copies of every licensed object: real meshes have 64 clean items
#: beside ~960 defective ones, and a level of detail is a clean mesh with other triangles
LICENSED_CLEAN_LODS = (6000, 2500, 1200)


def preset_sources(name: str) -> list[str]:
    """The ``--source`` specs of preset ``name``; an unknown name is a ``SourceError``."""
    if name == "embedded":
        return ["embedded"]
    if name in PRESETS:
        return [f"preset:{name}"]
    raise SourceError(f"--preset {name}", f"unknown preset; known: {', '.join(PRESETS)}")


def _h(text: str) -> int:
    return int(hashlib.sha1(text.encode("utf-8")).hexdigest()[:12], 16)


def _severity(key: str) -> float:
    lo, hi = SEVERITY_RANGE
    return round(lo + (hi - lo) * (_h(key + "~severity") % 1000) / 999, 3)


#: overall scores by construction: a clean object, and a defect from its severity (linear from
#: ``DEFECT_SCORE[0]`` at severity 0 to ``[1]`` at 1; every kept severity is <= 3.5: dispreferred)
CLEAN_SCORE = 4.5
DEFECT_SCORE = (3.25, 0.75)
WRONG_PROMPT_SCORE = 1.0


def construction_scores(defect: str | None, severity: float | None) -> dict[str, float]:
    """The overall 0-5 score an item of the offline preset gets by construction (see above)."""
    if defect is None:
        return {"overall": CLEAN_SCORE}
    if defect == "wrong_prompt":
        return {"overall": WRONG_PROMPT_SCORE}
    s = 0.5 if severity is None else float(severity)
    return {"overall": round(DEFECT_SCORE[0] + s * (DEFECT_SCORE[1] - DEFECT_SCORE[0]), 3)}


def _variants(base: SourceItem, kinds: list[str], wrong: str | None, prefix: str) -> list[SourceItem]:
    out = [base]
    for d in kinds:
        out.append(SourceItem(
            id=f"{base.id}~{d}", path=base.path, prompt=base.prompt, source=f"{prefix}_defect", object_id=base.object_id,
            caption=base.caption, defect=d, extra={**base.extra, "severity": _severity(f"{base.id}~{d}")},
        ))
    if wrong is not None:
        out.append(SourceItem(
            id=f"{base.id}~wrong_prompt", path=base.path, prompt=wrong, source=f"{prefix}_defect", object_id=base.object_id,
            caption=base.caption, defect="wrong_prompt", extra=dict(base.extra),
        ))
    return out


def _with_construction_scores(items: list[SourceItem]) -> list[SourceItem]:
    for it in items:
        it.scores = construction_scores(it.defect, it.extra.get("severity"))
    return items


def _wrong_prompt(key: str, own: str, pool: list[tuple[str, str]]) -> str:
    """A caption from ``pool`` ((group, caption) pairs) of another group, chosen by a hash of ``key``."""
    others = [c for g, c in pool if g != own]
    return others[_h(key + "~prompt") % len(others)]


def offline_items(n_procedural: int = OFFLINE_PROCEDURAL, seed: int = OFFLINE_SEED) -> list[SourceItem]:
    """The items of the ``offline`` preset (see the module docstring)."""
    from dreamcs.data.defects import DEFECTS
    from dreamcs.data.embedded import ASSETS
    from dreamcs.data.procedural.source import procedural_items
    from dreamcs.data.sources import _read_cap3d_csv
    from dreamcs.data.validation import is_held_out

    kinds = DEFECTS.names()
    items: list[SourceItem] = []
    proc = procedural_items(f"procedural:{n_procedural}:{seed}", f"{n_procedural}:{seed}")
    pool = [(it.extra.get("category", ""), it.caption or it.prompt) for it in proc]
    for it in proc:
        start = _h(it.id) % len(kinds)
        picked = [kinds[(start + 5 * j) % len(kinds)] for j in range(PROCEDURAL_DEFECTS)]
        wrong = _wrong_prompt(it.id, it.extra.get("category", ""), pool) if _h(it.id + "~w") % 2 == 0 else None
        items += _variants(it, picked, wrong, "procedural")
    caps = _read_cap3d_csv(ASSETS / "captions.csv")
    real_pool = [(c.split()[-1], c) for c in caps.values()]
    for obj in sorted(caps):
        if is_held_out(obj):
            continue
        cap = caps[obj]
        base = SourceItem(id=f"licensed/{obj}", path=str(ASSETS / "meshes" / f"{obj}.obj"), prompt=cap,
                          source="licensed_clean", object_id=obj, caption=cap)
        items += _variants(base, kinds, _wrong_prompt(obj, cap.split()[-1], real_pool), "licensed")
        for lod in LICENSED_CLEAN_LODS:  # the same clean object, coarser: preferred, with other triangles
            items.append(SourceItem(id=f"licensed/{obj}~lod{lod}", path=base.path, prompt=cap, source="licensed_clean",
                                    object_id=obj, caption=cap, extra={"max_faces": lod}))
    return items


#: defects applied on each licensed object's realism variants (every ``LICENSED_REALISM_STRIDE``-th kind)
LICENSED_REALISM_STRIDE = 3


def realism_items(n_procedural: int = OFFLINE_PROCEDURAL, seed: int = OFFLINE_SEED) -> list[SourceItem]:
    """The items of the ``offline-realism`` preset (see the module docstring): per procedural object
    one variant (kind by a hash), clean and with one defect; per licensed object every variant, clean
    and with every ``LICENSED_REALISM_STRIDE``-th defect kind. Object ids match ``offline_items``, so
    both sets split every object the same way."""
    from dreamcs.data.defects import DEFECTS
    from dreamcs.data.realism import REALISM

    kinds, variants = DEFECTS.names(), REALISM.names()
    items: list[SourceItem] = []
    for it in offline_items(n_procedural, seed):
        if it.defect is not None or it.extra.get("max_faces"):
            continue
        prefix = it.source.removesuffix("_clean")
        chosen = variants if prefix == "licensed" else [variants[_h(it.id + "~realism") % len(variants)]]
        for j, v in enumerate(chosen):
            base = SourceItem(id=f"{it.id}~{v}", path=it.path, prompt=it.prompt, source=f"{prefix}_clean",
                              object_id=it.object_id, caption=it.caption, extra={**it.extra, "realism": v})
            if prefix == "licensed":
                picked = kinds[j % LICENSED_REALISM_STRIDE :: LICENSED_REALISM_STRIDE]
            else:
                picked = [kinds[(_h(base.id) + 3) % len(kinds)]]
            items += _variants(base, picked, None, prefix)
    return items


def preset_items(name: str) -> list[SourceItem]:
    """Items of the source spec ``preset:NAME``."""
    if name == "offline":
        return _with_construction_scores(offline_items())
    if name == "offline-realism":
        return _with_construction_scores(realism_items())
    if name == "offline-scored":
        return offline_items()
    if name == "embedded":
        from dreamcs.data.embedded import embedded_items

        return embedded_items()
    raise SourceError(f"preset:{name}", f"unknown preset; known: {', '.join(PRESETS)}")
