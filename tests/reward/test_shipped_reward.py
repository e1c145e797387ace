"""The RewardCS shipped in dreamcs/assets/reward: it loads by name, is small, and ranks the defect
kinds it separates best on the held-out real meshes (surface noise 0.92, holes 0.82 there) below
the clean mesh on shipped sample meshes."""

from __future__ import annotations

from pathlib import Path

import pytest

from dreamcs.reward.model import EMBEDDED, embedded_dir

SAMPLES = Path(__file__).resolve().parents[2] / "src" / "dreamcs" / "assets" / "samples"


@pytest.fixture(scope="module")
def shipped():
    from dreamcs.reward import RewardCS

    if not (embedded_dir() / "model.safetensors").is_file():
        pytest.skip("no shipped reward in this checkout")
    return RewardCS.from_pretrained(EMBEDDED).eval()


def test_shipped_reward_is_small(shipped):
    assert (embedded_dir() / "model.safetensors").stat().st_size < 30 * 2**20
    assert "ROC-AUC" in (embedded_dir() / "README.md").read_text()  # the model card states its numbers


@pytest.mark.parametrize("name", ["blockmesh_test__s_chair_modern", "blockmesh_test__s_primitive_sphere", "demo_mesh__high_chair"])
def test_shipped_reward_prefers_clean_over_noisy(shipped, name):
    from dreamcs.data.defects import apply_defect
    from dreamcs.mesh import load_mesh, normalize

    mesh = normalize(load_mesh(SAMPLES / f"{name}.obj"))
    noisy = normalize(apply_defect(mesh, "noise", seed=0, severity=0.8))
    prompt = name.split("__")[-1].removeprefix("s_").replace("_", " ")
    assert shipped.score(mesh, prompt) > shipped.score(noisy, prompt)


@pytest.mark.parametrize("name", ["blockmesh_test__s_primitive_sphere", "demo_mesh__high_chair"])
def test_shipped_reward_prefers_clean_over_holed(shipped, name):
    """Holes were ranked below chance by the first shipped model (0.36 held out); the boundary channel reads them."""
    from dreamcs.data.defects import apply_defect, densify
    from dreamcs.mesh import load_mesh, normalize

    mesh = densify(normalize(load_mesh(SAMPLES / f"{name}.obj")), 4000)  # as the data build prepares meshes
    holed = normalize(apply_defect(mesh, "holes", seed=0, severity=0.8))
    prompt = name.split("__")[-1].removeprefix("s_").replace("_", " ")
    assert shipped.score(mesh, prompt) > shipped.score(holed, prompt)


def test_shipped_reward_reads_the_prompt(shipped):
    """The model shipped before scored any mesh about the same whatever the prompt (prompt agreement
    0.47 on held-out real meshes); this one scores procedural objects it never saw (a seed outside
    the offline build's) higher with their own captions than with other categories' prompts."""
    from dreamcs.data.procedural import library

    objects = list(library(8, seed=424242))
    wins = [shipped.score(o.mesh, o.caption) > shipped.score(o.mesh, other.caption)
            for o in objects for other in objects if other.category != o.category]
    assert sum(wins) / len(wins) >= 0.7  # 0.82 measured; 0.50 for the recipe shipped before


@pytest.mark.parametrize("name", ["blockmesh_test__s_chair_modern", "blockmesh_test__s_primitive_sphere", "demo_mesh__high_chair"])
def test_shipped_reward_reads_floaters_off_the_mesh(shipped, name):
    """Floaters keep too few faces in the fused layout for the figure head (held-out 0.53); the
    shipped config reads them off the mesh (exact_figures, held-out 0.76: docs/reward-floaters.md)."""
    from dreamcs.data.defects import apply_defect, densify
    from dreamcs.mesh import load_mesh, normalize

    names = list(shipped.config.exact_figures)
    assert "parts_far_small" in names
    mesh = densify(normalize(load_mesh(SAMPLES / f"{name}.obj")), 4000)
    floating = normalize(apply_defect(mesh, "floaters", seed=0, severity=0.8))
    prompt = name.split("__")[-1].removeprefix("s_").replace("_", " ")
    gap = shipped.score(mesh, prompt) - shipped.score(floating, prompt)
    shipped.config.exact_figures = [k for k in names if k != "parts_far_small"]  # the figure head's reading
    try:
        gap_head = shipped.score(mesh, prompt) - shipped.score(floating, prompt)
    finally:
        shipped.config.exact_figures = names
    assert gap > gap_head + 0.2  # measured: +0.43 to +0.66 on these three


def test_shipped_reward_reads_an_unwelded_model_as_the_welded_one(shipped):
    """A CAD-style model whose faces are separate pieces (unwelded along its creases) is not torn: with
    the ragged figures read off the mesh (session 18) the shipped reward scores it near the welded
    model, nearer than the figure head's own reading does."""
    from dreamcs.data.defects import densify
    from dreamcs.data.realism import apply_realism
    from dreamcs.mesh import load_mesh, normalize

    names = list(shipped.config.exact_figures)
    assert {"ragged_boundary", "ragged_holes"} <= set(names)
    mesh = densify(normalize(load_mesh(SAMPLES / "blockmesh_test__s_chair_modern.obj")), 4000)
    unwelded = apply_realism(mesh, "unweld", seed=0)
    gap = abs(shipped.score(mesh, "a modern chair") - shipped.score(unwelded, "a modern chair"))
    shipped.config.exact_figures = ["parts_far_small"]  # the head reads the ragged figures
    try:
        gap_head = abs(shipped.score(mesh, "a modern chair") - shipped.score(unwelded, "a modern chair"))
    finally:
        shipped.config.exact_figures = names
    assert gap < gap_head - 0.1, (gap, gap_head)
