"""Evaluate stage: what scoring one asset costs, piece by piece (medians, ms).

A study of 110 prompts x 3 seeds x 2 variants scores 660 assets, so these figures times 660 are the
scoring bill. Meshes: a few real ones from ../shared/data when present, else an icosphere.
"""

from __future__ import annotations

import numpy as np
import torch
import trimesh
from common import SHARED_MESHES, median_ms, print_table

from dreamcs.evaluate.geometry import compare_to_reference, janus_score
from dreamcs.mesh import load_mesh, normalize, quality

MESHES = ["text2mesh/horse.obj", "threestudio_shapes/teddy.obj", "kaolin_samples/armchair.obj"]


def _meshes() -> list[tuple[str, trimesh.Trimesh]]:
    found = [(n.split("/")[-1], normalize(load_mesh(SHARED_MESHES / n))) for n in MESHES if (SHARED_MESHES / n).is_file()]
    return found or [("icosphere(4)", normalize(trimesh.creation.icosphere(subdivisions=4)))]


def main() -> None:
    from dreamcs.render import render_views

    rows: list[list[object]] = []
    meshes = _meshes()
    ref = meshes[-1][1]
    for name, mesh in meshes:
        v, f = np.asarray(mesh.vertices, np.float32), np.asarray(mesh.faces, np.int64)
        q_ms = median_ms(lambda m=mesh: quality(m), repeats=3)
        j2 = median_ms(lambda m=mesh: janus_score(m, n=2048), repeats=3)
        j4 = median_ms(lambda m=mesh: janus_score(m, n=4096), repeats=3)
        c_ms = median_ms(lambda m=mesh: compare_to_reference(m, ref), repeats=1, warmup=0)
        r_ms = median_ms(lambda v=v, f=f: render_views(v, f, 8, 224), repeats=1, warmup=0)
        rows.append([name, len(f), q_ms, j2, j4, j4 / j2, c_ms, r_ms])
    print_table(
        f"scoring one asset (ms, median; torch threads {torch.get_num_threads()})",
        ["mesh", "faces", "quality", "janus 2048 pts", "janus 4096 pts", "4096/2048", "chamfer+NC vs ref (360 deg)",
         "8 views @224"],
        rows,
    )


if __name__ == "__main__":
    main()
