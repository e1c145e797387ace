"""The offline 3D-MeshPref set shipped in ``dreamcs/assets/meshpref``.

The package holds permissively licensed meshes (MIT / Apache-2.0 / CC0 / CC-BY-4.0, licence files
and credits in ``assets/meshpref/LICENSES`` and ``CREDITS.md``), simplified to at most 4,000 faces,
with one caption each in ``captions.csv`` (Cap3D format: ``id,caption``, no header).

``embedded_items()`` turns them into an *unpaired* preference set: every clean mesh with its own
caption (the candidates for "preferred"), plus defective variants made by ``dreamcs.data.defects``
the way early SDS runs fail (the candidates for "dispreferred"). Each object gets only some of the
defects (a deterministic choice per object), so the two sets differ in size and need not share
objects. Labels come from the scorer, not from this module.

``make_assets(shared_meshes, out)`` rebuilt the shipped folder from ``../shared/data/meshes``.
"""

from __future__ import annotations

import csv
import hashlib
import os
import re
import shutil
from pathlib import Path

from dreamcs.data.sources import SourceItem, _read_cap3d_csv

ASSETS = Path(__file__).resolve().parents[1] / "assets" / "meshpref"
MAX_FACES = 4000

#: folders of ../shared/data/meshes that may be copied, with the licence files to keep
_COPYABLE = {
    "meshgpt-pytorch/obj_converted": ["meshgpt-pytorch/LICENSE_meshgpt-pytorch_MIT.txt", "meshgpt-pytorch/blockmesh_test/LICENSE_blockmesh_MIT.txt"],
    "text2mesh": ["text2mesh/LICENSE_text2mesh_MIT.txt"],
    "kaolin_samples": ["kaolin_samples/LICENSE_kaolin_Apache-2.0.txt", "kaolin_samples/SOURCE_README_kaolin_sample_meshes.md"],
    "threestudio_shapes": ["threestudio_shapes/SHAPES_CREDITS.md"],
}
#: research-only (ModelNet) or a duplicate of another shipped shape
_EXCLUDE = {"threestudio_shapes/nascar.obj", "threestudio_shapes/cabin.obj", "kaolin_samples/ico_smooth.obj"}

#: defects per object: each object gets one or two (by a hash of its id), 1.5 on average, which
#: with the scorer's verdicts lands near the paper's 47% preferred / 53% dispreferred balance
DEFECTS_PER_OBJECT = (1, 2)


def _stable_int(text: str) -> int:
    return int(hashlib.sha1(text.encode("utf-8")).hexdigest()[:12], 16)


def embedded_credits(root: str | os.PathLike | None = None) -> dict[str, tuple[str, str]]:
    """``{id: (origin, licence)}`` from ``CREDITS.md`` (its ``| id | source | licence |`` table)."""
    root = Path(root) if root is not None else ASSETS
    path = root / "CREDITS.md"
    out: dict[str, tuple[str, str]] = {}
    if not path.is_file():
        return out
    for line in path.read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 3 and cells[0] not in ("id", "---"):
            origin, lic = cells[1].replace("`", ""), cells[2]
            if lic == "same as the GLB source":  # the blockmesh / demo_mesh OBJ conversions
                lic = "MIT (LICENSES/LICENSE_meshgpt-pytorch_MIT.txt, LICENSES/LICENSE_blockmesh_MIT.txt)"
            out[cells[0]] = (origin, lic)
    return out


def embedded_items(root: str | os.PathLike | None = None, defects_per_object: tuple[int, int] = DEFECTS_PER_OBJECT) -> list[SourceItem]:
    """Clean items (prompt = own caption) plus between ``defects_per_object[0]`` and ``[1]``
    defective variants per object (a hash of the object id picks the number and the defects).

    A ``wrong_prompt`` variant keeps the clean mesh and takes another object's caption (from a
    different caption, chosen deterministically). Item ids are ``<object>`` and ``<object>~<defect>``.
    """
    from dreamcs.data.defects import EMBEDDED_DEFECTS

    root = Path(root) if root is not None else ASSETS
    captions = _read_cap3d_csv(root / "captions.csv")
    ids = sorted(captions)
    names = list(EMBEDDED_DEFECTS) + ["wrong_prompt"]
    credits = embedded_credits(root)
    items: list[SourceItem] = []
    for k, obj in enumerate(ids):
        path = root / "meshes" / f"{obj}.obj"
        cap = captions[obj]
        origin, lic = credits.get(obj, (None, None))
        items.append(SourceItem(id=obj, path=str(path), prompt=cap, source="embedded_clean", object_id=obj, caption=cap,
                                license=lic, origin=origin))
        start = _stable_int(obj) % len(names)
        lo, hi = defects_per_object
        for j in range(lo + _stable_int(obj + "~n") % (hi - lo + 1)):
            d = names[(start + j) % len(names)]
            if d == "wrong_prompt":
                # another object's caption: walk from a hashed offset to the first different caption
                off = 1 + _stable_int(obj + "~prompt") % (len(ids) - 1)
                other = next(captions[ids[(k + off + s) % len(ids)]] for s in range(len(ids)) if captions[ids[(k + off + s) % len(ids)]] != cap)
                items.append(
                    SourceItem(id=f"{obj}~{d}", path=str(path), prompt=other, source="embedded_defect", object_id=obj, caption=cap, defect=d,
                               license=lic, origin=origin)
                )
            else:
                items.append(
                    SourceItem(id=f"{obj}~{d}", path=str(path), prompt=cap, source="embedded_defect", object_id=obj, caption=cap, defect=d,
                               license=lic, origin=origin)
                )
    return items


def embedded_ground_truth(root: str | os.PathLike | None = None) -> dict[str, Path]:
    """``{caption: mesh path}`` for every caption that names exactly one embedded mesh.

    These are the "known objects" of the offline demo and the Janus benchmark: a prompt equal to one
    of these captions has a ground-truth shape (the prior was trained on its renders).
    """
    root = Path(root) if root is not None else ASSETS
    captions = _read_cap3d_csv(root / "captions.csv")
    by_caption: dict[str, list[str]] = {}
    for obj, cap in captions.items():
        by_caption.setdefault(" ".join(cap.split()), []).append(obj)
    return {cap: root / "meshes" / f"{objs[0]}.obj" for cap, objs in sorted(by_caption.items()) if len(objs) == 1}


def make_assets(shared_meshes: str | os.PathLike, out: str | os.PathLike = ASSETS, max_faces: int = MAX_FACES) -> list[str]:
    """Copy the permissively licensed meshes of ``shared_meshes`` into ``out``, simplified.

    Writes ``out/meshes/<id>.obj`` (normalised into [-1, 1]^3, at most ``max_faces`` faces),
    ``out/captions.csv`` (from MANIFEST.csv's caption column), ``out/LICENSES/`` and ``out/CREDITS.md``.
    Returns the ids written.
    """
    from dreamcs.mesh import load_mesh, normalize, simplify
    from dreamcs.utils import atomic_write_text

    src, out = Path(shared_meshes), Path(out)
    (out / "meshes").mkdir(parents=True, exist_ok=True)
    (out / "LICENSES").mkdir(exist_ok=True)
    rows = list(csv.DictReader(open(src / "MANIFEST.csv", encoding="utf-8")))
    written, credits = [], []
    for row in rows:
        folder = row["path"].rsplit("/", 1)[0]
        if folder not in _COPYABLE or row["path"] in _EXCLUDE or not row["path"].endswith(".obj"):
            continue
        stem = Path(row["path"]).stem.replace(" ", "_")
        mesh = simplify(normalize(load_mesh(src / row["path"])), max_faces=max_faces)
        # compact OBJ: 5 decimals in [-1, 1] (~1e-5 error), positions and triangles only
        lines = [f"v {x:.5f} {y:.5f} {z:.5f}" for x, y, z in mesh.vertices]
        lines += [f"f {a + 1} {b + 1} {c + 1}" for a, b, c in mesh.faces]
        atomic_write_text(out / "meshes" / f"{stem}.obj", "\n".join(lines) + "\n")
        written.append((stem, re.sub(r"\s*\(.*?\)", "", row["caption"]).strip()))  # drop "(caption uncertain)"
        credits.append(f"| {stem} | {row['repo']}@{row['commit'][:10]} `{row['repo_path']}` | {row['license']} |")
    for files in _COPYABLE.values():
        for f in files:
            shutil.copy(src / f, out / "LICENSES" / Path(f).name)
    with open(out / "captions.csv", "w", encoding="utf-8", newline="") as fh:
        csv.writer(fh).writerows(sorted(written))
    (out / "CREDITS.md").write_text(
        "# Embedded 3D-MeshPref meshes: sources and licences\n\n"
        "Third-party meshes, simplified to at most 4,000 faces and normalised into [-1, 1]^3. Licence texts\n"
        "are in LICENSES/ (threestudio is Apache-2.0, the same text as LICENSE_kaolin_Apache-2.0.txt;\n"
        "its per-shape credits are in LICENSES/SHAPES_CREDITS.md). Captions are short descriptions\n"
        "written for this collection.\n\n| id | source | licence |\n|---|---|---|\n" + "\n".join(credits) + "\n",
        encoding="utf-8",
    )
    return [w[0] for w in written]
