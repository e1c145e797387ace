"""The geometric scorer's figures per mesh: what v5's two new figures add to the rest; and what the
shipped reward's exact figures (read off the mesh) add to ``RewardCS.score``.

Licensed meshes of the embedded set, densified to >= 4,000 faces as the offline build stores them,
clean and with two defects (bloating, flatten); each figure family is timed per mesh (median over
repeats) and v5's figures are printed as a ratio against all the others, in the same process; then
``score`` with the shipped ``exact_figures`` against the floaters alone.
"""

from __future__ import annotations

import os

from common import median_ms, print_table

N_MESHES = int(os.environ.get("BENCH_SCORER_MESHES", "6"))


def _meshes() -> list:
    from dreamcs.data.defects import apply_defect, densify
    from dreamcs.data.embedded import embedded_items
    from dreamcs.mesh import load_mesh, normalize

    clean = [i for i in embedded_items() if i.defect is None][:N_MESHES]
    out = []
    for k, item in enumerate(clean):
        m = densify(normalize(load_mesh(item.path)), 4000)
        out += [m] + [normalize(apply_defect(m, d, seed=k)) for d in ("bloating", "flatten")]
    return out


def main() -> None:
    from dreamcs.data.scorers.figures import surface_v2
    from dreamcs.data.scorers.figures_v3 import surface_v3
    from dreamcs.data.scorers.figures_v5 import surface_v5
    from dreamcs.data.scorers.geometric import GeometricScorer, surface_figures
    from dreamcs.mesh import quality

    meshes = _meshes()
    scorer = GeometricScorer()
    families = {
        "quality + surface (v1)": lambda m: (quality(m), surface_figures(m)),
        "v2 (parts, roughness, thin, ...)": lambda m: surface_v2(m),
        "v3 (ragged, handles, creases)": lambda m: surface_v3(m),
        "v5 (self_crossing, normal_anisotropy)": lambda m: surface_v5(m),
        "all (GeometricScorer.figures)": scorer.figures,
    }
    times = {name: sum(median_ms(lambda f=f, m=m: f(m), repeats=3) for m in meshes) / len(meshes) for name, f in families.items()}
    rest = sum(t for name, t in times.items() if name.startswith(("quality", "v2", "v3")))
    rows = [[name, t, t / rest] for name, t in times.items()]
    faces = sum(len(m.faces) for m in meshes) / len(meshes)
    print_table(f"geometric scorer figures, ms per mesh ({len(meshes)} meshes, mean {faces:,.0f} faces; "
                "ratio against v1-v3's figures together)", ["figures", "ms / mesh", "x v1-v3"], rows)

    from dreamcs.reward import RewardCS

    model = RewardCS.from_pretrained("embedded")
    shipped = list(model.config.exact_figures)
    score_ms = {}
    for label, names in (("floaters only", ["parts_far_small"]), ("shipped exact_figures", shipped)):
        model.config.exact_figures = names
        score_ms[label] = sum(median_ms(lambda m=m: model.score(m, "a chair"), repeats=3) for m in meshes) / len(meshes)
    base = score_ms["floaters only"]
    print_table("RewardCS.score, ms per mesh (fuse + forward + exact figures off the mesh)", ["exact figures", "ms / mesh", "x floaters only"],
                [[k, v, v / base] for k, v in score_ms.items()])


if __name__ == "__main__":
    main()
