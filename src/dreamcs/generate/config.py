"""``GenerateConfig``: everything a generation run reads, one dataclass per component.

Any scalar documented as a *schedule* takes a number or ``[start_step, start_value, end_value,
end_step]`` (see ``dreamcs.schedule.C``). Presets ship as YAML in ``dreamcs/configs/``
(``dmtet-sd``, ``fantasia3d-sd``, ``magic3d-refine-sd``, ``dmtet-tiny``, ``dreamfusion-sd``, ``magic3d-sd``, ...); ``resolve_config_path`` finds them by name.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dreamcs.generate.dmtet import DMTetConfig
from dreamcs.generate.guidance.base import GuidanceConfig
from dreamcs.generate.nerf.field import NeRFConfig
from dreamcs.generate.reward2d.config import Reward2DConfig
from dreamcs.schedule import validate_schedule

CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs"
SHADINGS = ("normal", "diffuse", "mixed", "albedo", "lambertian", "textureless", "dreamfusion")
#: shadings that read the field's colours (geometry.appearance: albedo)
COLOR_SHADINGS = ("albedo", "lambertian", "dreamfusion")


@dataclass
class RenderSettings:
    """Cameras and rasterisation for the SDS branch (``dreamcs.render``)."""

    batch_size: int = 4
    """Views per step."""
    resolution: Any = 64
    """Schedule: render size in pixels (e.g. [0, 64, 256, 2000]; rounded to a multiple of 8)."""
    elevation_range: list[float] = field(default_factory=lambda: [-10.0, 45.0])
    """Camera elevation in degrees, sampled uniformly."""
    azimuth_range: list[float] = field(default_factory=lambda: [-180.0, 180.0])
    """Camera azimuth in degrees (0 = front, looking down -z)."""
    distance_range: list[float] = field(default_factory=lambda: [2.0, 2.6])
    """Camera distance from the origin."""
    fov_range: list[float] = field(default_factory=lambda: [40.0, 60.0])
    """Vertical field of view in degrees."""
    shading: str = "mixed"
    """``normal`` (normal maps), ``diffuse`` (grey Lambertian) or ``mixed`` (each step picks one);
    with colours (``geometry.appearance: albedo``): ``albedo``, ``lambertian``, ``textureless`` or
    ``dreamfusion`` (each step picks one of the three as threestudio's diffuse-with-point-light:
    albedo only for ``ambient_only_steps``, then albedo with 1 - ``diffuse_prob``, else
    textureless with ``textureless_prob``, else lambertian)."""
    ambient: float = 0.2
    """Share of the light that is ambient (threestudio: 0.1 ambient, 0.9 diffuse)."""
    ambient_only_steps: int = 1000
    """``dreamfusion``: the first steps render the albedo only."""
    diffuse_prob: float = 0.75
    """``dreamfusion``: the chance of a lit (textureless or lambertian) step after the ambient-only steps."""
    textureless_prob: float = 0.5
    """``dreamfusion``: the chance that a lit step is textureless (grey)."""
    light: str = "camera"
    """``camera`` (a headlight) or ``random``: a point light per view, DreamFusion's sampling (the
    direction of the camera position plus N(0, light_position_perturb) noise, at a uniform distance)."""
    light_distance_range: list[float] = field(default_factory=lambda: [0.8, 1.5])
    """``random`` light: distance of the light from the origin."""
    light_position_perturb: float = 1.0
    """``random`` light: std of the noise added to the camera direction."""
    latent_steps: int = 0
    """Fantasia3D's warm-up: the first N steps feed the normal map (n, in [-1, 1]) and the mask
    straight to the guidance as its 4-channel latents (stable-diffusion only)."""
    backend: str = "torch"
    """Rasteriser for the face ids: ``torch`` or ``nvdiffrast`` (CUDA, imported only when chosen)."""
    cull_backfaces: bool = False
    """Skip back faces when rasterising (DMTet surfaces are closed and outward-wound)."""
    normals: str = "flat"
    """``flat`` (face normals, as the offline prior's training renders) or ``smooth`` (interpolated)."""
    normal_prob: float = 0.5
    """With ``mixed``: the chance of a normal-map step."""
    background: list[float] = field(default_factory=lambda: [0.0, 0.0, 0.0])
    """Background colour in [0, 1]."""
    background_model: str = "solid"
    """``solid`` (``background``) or ``mlp``: a tiny trainable MLP of the view direction behind the
    coloured renders (threestudio's neural environment map; normal renders stay on ``background``)."""
    view_dependent_prompting: bool = True
    """Append DreamFusion's view suffixes (front / side / back / overhead view) to the prompt."""
    turntable_views: int = 8
    """Views in the final turntable strip."""
    turntable_resolution: int = 256
    """Pixels per turntable view."""


@dataclass
class RewardConfig:
    """Progressive 3D reward guidance: loss = L_SDS - alpha(t) r + regularisers."""

    checkpoint: str | None = None
    """A RewardCS folder (``model.safetensors`` + ``config.yaml``) or a reward run folder; None = off."""
    alpha: Any = field(default_factory=lambda: [0, 0.0, 1.0, 1000])
    """Schedule alpha(t): [start_step, alpha_min, alpha_max, end_step]."""
    every: int = 1
    """Score the mesh every k steps; with k > 1 the reward term is weighted k * alpha(t) on the steps
    it runs, so that the guidance per step stays alpha(t) on average."""
    path: str = "surface"
    """``surface`` (the default): fuse the extracted surface on every scored step (exact; with
    ``overlap_fusion`` the fusion runs while render and guidance do). ``field``: keep the fused patch
    layout from step to step, its vertices projected onto the field's level set (along the normal),
    and fuse again only when the surface changed enough (``dreamcs.generate.fast_reward``). SDS folds
    some carried faces at nearly every step, so the field path fuses nearly every step too and costs
    more (dmtet-embedded: 72 against 37 ms a scored step); it is kept for ``grid`` and for work on a
    sound carry."""
    grid: int = 0
    """``field`` path: cubes per side of a coarser lattice (dividing the field's) that the SDF is
    tent-filtered onto for the reward (0 = the field's grid: the rendered surface itself). Coarser
    fuses faster and scores a smoothed surface; the gradient still reaches every grid vertex."""
    max_change: float = 0.3
    """``field`` path: fuse again when more than this share of the layout's vertices did not land on
    the surface (or moved over a cell in one step)."""
    max_flipped: int = 0
    """``field`` path: fuse again when more than this many of the layout's faces turned over (a
    carried sliver folds when its corners land on the moved surface apart; RewardCS reads folds as damage)."""
    max_age: int = 50
    """``field`` path: fuse again at the latest this many scored steps after the last fusion."""
    n_patches: int = 256
    """P: patches of the fused mesh (faces per patch come from the reward model's config)."""
    normalize: bool = True
    """Normalise the mesh into [-1, 1]^3 (differentiably) before scoring, as the training meshes were."""
    overlap_fusion: bool = False
    """Fuse in a worker thread. ``surface`` path: while render and guidance run (same result; on the
    implicit volume the iso-surface is extracted first for it); ``field`` path: a due re-fusion runs
    while the carried layout scores, and joins a step later.
    Pays off when a core is free (a GPU run); on a busy CPU the thread competes with torch."""
    relative: bool = False
    """DMTet geometry (either path): alpha(t) is the ratio of the reward's gradient norm to the SDS
    gradient norm on the grid's SDF (the reward's gradient is rescaled at every scored step) instead
    of a weight on r. The raw ratio depends on the reward and the prior (~1e-3 with an early reward,
    0.2-5 with the shipped one on the embedded prior: docs/reward-guidance-proof.md); this keeps the
    reward's push at a set share whatever their scales."""
    log_gradients: bool = False
    """DMTet geometry (either path): on scored steps also log how the SDS and the reward gradients
    compare on the grid's SDF (``grad_sds_sdf``, ``grad_reward_sdf`` norms, ``grad_cos_sdf``); costs
    one or two extra backward passes through marching tets."""


@dataclass
class LossConfig:
    """Weights (schedules) of each ``loss_x``: the total is sum(lambda_x * loss_x)."""

    lambda_sds: Any = 1.0
    lambda_normal_consistency: Any = 0.0
    lambda_laplacian: Any = 0.0
    lambda_sdf: Any = 0.0
    """SDF smoothness across grid edges (DMTet's sign-change regulariser)."""
    lambda_orient: Any = 0.0
    """``nerf``: DreamFusion's orientation loss (normals facing away from the camera)."""
    lambda_opacity: Any = 0.0
    """``nerf``: DreamFusion's opacity (sparsity) loss, mean sqrt(alpha^2 + 0.01)."""


@dataclass
class GenerateConfig:
    """One text-to-3D run."""

    prompt: str = ""
    """The text prompt."""
    seed: int = 0
    """Seeds torch, NumPy and Python: the same seed on the CPU gives the same run."""
    steps: int = 1000
    """Optimisation steps."""
    lr: float = 0.01
    """Adam learning rate of the field."""
    device: str = "cpu"
    """``cpu`` or ``cuda``."""
    save_every: int = 100
    """Checkpoint every N steps (and at the end)."""
    mesh_every: int = 100
    """Write ``meshes/step_*.obj`` every N steps (the data stage ingests them); 0 = never."""
    texture_size: int = 0
    """With colours: also bake the albedo into a UV texture of this many pixels a side (xatlas,
    ``pip install dreamcs[texture]``): ``textured.obj`` + ``.mtl`` + ``.png`` and ``textured.glb``.
    0 = vertex colours only."""
    geometry: DMTetConfig = field(default_factory=DMTetConfig)
    """The field: ``name`` dmtet (``dreamcs.generate.dmtet``) or nerf (``dreamcs.generate.nerf``, which
    reads the encoding / MLP / appearance keys here and extracts its mesh on this tet grid)."""
    nerf: NeRFConfig = field(default_factory=NeRFConfig)
    """Volume rendering settings, read when ``geometry.name`` is nerf."""
    stages: dict[str, list[str]] = field(default_factory=dict)
    """Multi-stage recipes (Magic3D): stage name -> overrides, run in order into RUN/<stage>/
    (``dreamcs.generate.stages``); empty = one stage in RUN."""
    render: RenderSettings = field(default_factory=RenderSettings)
    guidance: GuidanceConfig = field(default_factory=GuidanceConfig)
    reward: RewardConfig = field(default_factory=RewardConfig)
    reward_2d: Reward2DConfig = field(default_factory=Reward2DConfig)
    """A 2D reward on the rendered views (ImageReward / Reward3D, ``dreamcs.generate.reward2d``); off by default."""
    loss: LossConfig = field(default_factory=LossConfig)

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first bad key."""
        if not self.prompt.strip():
            raise ValueError("prompt: a generation run needs a non-empty prompt")
        for key in ("steps", "save_every"):
            if getattr(self, key) < 1:
                raise ValueError(f"{key} must be at least 1, got {getattr(self, key)}")
        if self.mesh_every < 0 or self.reward.every < 1:
            raise ValueError("mesh_every must be >= 0 and reward.every >= 1")
        if not 0.0 <= self.reward.max_change <= 1.0 or self.reward.max_age < 1 or self.reward.max_flipped < 0:
            raise ValueError("reward.max_change must be in [0, 1], reward.max_age >= 1 and reward.max_flipped >= 0")
        if self.reward.path not in ("field", "surface"):
            raise ValueError(f"reward.path: {self.reward.path!r} is not field or surface")
        if self.reward.grid and self.reward.path != "field":  # a coarser lattice for the carried layout only
            raise ValueError(f"reward.grid needs the field path (reward.path=field), got reward.path={self.reward.path}")
        sdf_read = [k for k in ("relative", "log_gradients") if getattr(self.reward, k)]
        if sdf_read and self.geometry.name != "dmtet":  # both compare gradients on the grid's SDF
            raise ValueError(f"reward.{sdf_read[0]} needs a dmtet geometry (the grid's SDF), got geometry.name="
                             f"{self.geometry.name}")
        if self.reward.grid < 0 or (self.reward.grid and self.geometry.grid_resolution % self.reward.grid):
            raise ValueError(f"reward.grid must be 0 or divide geometry.grid_resolution = "
                             f"{self.geometry.grid_resolution}, got {self.reward.grid}")
        if self.render.shading not in SHADINGS:
            raise ValueError(f"render.shading: {self.render.shading!r} is not one of {', '.join(SHADINGS)}")
        r = self.render
        if self.texture_size < 0 or (self.texture_size and self.geometry.appearance != "albedo"):
            raise ValueError(f"texture_size: {self.texture_size} needs geometry.appearance=albedo (or 0 for none)")
        if r.shading in COLOR_SHADINGS and self.geometry.appearance != "albedo":
            raise ValueError(f"render.shading: {r.shading!r} needs colours; set geometry.appearance=albedo")
        if r.background_model not in ("solid", "mlp"):
            raise ValueError(f"render.background_model: {r.background_model!r} is not solid or mlp")
        if r.light not in ("camera", "random"):
            raise ValueError(f"render.light: {r.light!r} is not camera or random")
        if r.backend not in ("torch", "nvdiffrast"):
            raise ValueError(f"render.backend: {r.backend!r} is not torch or nvdiffrast")
        if r.backend == "nvdiffrast" and not self.device.startswith("cuda"):
            raise ValueError(f"render.backend: nvdiffrast needs device=cuda, not {self.device!r}")
        if r.latent_steps < 0 or r.ambient_only_steps < 0:
            raise ValueError("render.latent_steps and render.ambient_only_steps must be >= 0")
        if r.latent_steps and self.guidance.name != "stable-diffusion":
            raise ValueError(f"render.latent_steps: the normal + mask warm-up needs 4-channel latents "
                             f"(guidance.name=stable-diffusion), not {self.guidance.name!r}")
        for key in ("ambient", "diffuse_prob", "textureless_prob"):
            if not 0.0 <= getattr(r, key) <= 1.0:
                raise ValueError(f"render.{key} must be in [0, 1], got {getattr(r, key)}")
        if self.render.normals not in ("flat", "smooth"):
            raise ValueError(f"render.normals: {self.render.normals!r} is not flat or smooth")
        if self.render.batch_size < 1:
            raise ValueError(f"render.batch_size must be at least 1, got {self.render.batch_size}")
        for key in ("elevation_range", "azimuth_range", "distance_range", "fov_range", "light_distance_range"):
            r = getattr(self.render, key)
            if len(r) != 2 or r[0] > r[1]:
                raise ValueError(f"render.{key} must be [low, high], got {r}")
        validate_schedule(self.render.resolution, "render.resolution")
        validate_schedule(self.reward.alpha, "reward.alpha")
        for key in ("lambda_sds", "lambda_normal_consistency", "lambda_laplacian", "lambda_sdf"):
            validate_schedule(getattr(self.loss, key), f"loss.{key}")
        if self.geometry.name not in ("dmtet", "nerf"):
            raise ValueError(f"geometry.name: {self.geometry.name!r} is not dmtet or nerf")
        if self.geometry.name == "nerf":
            self.nerf.validate()
            if self.nerf.backend == "nerfacc" and not self.device.startswith("cuda"):
                raise ValueError(f"nerf.backend: nerfacc needs device=cuda, not {self.device!r} (use auto or torch)")
            if self.render.latent_steps:
                raise ValueError("render.latent_steps: the normal + mask warm-up needs a mesh geometry (dmtet)")
        for key in ("lambda_orient", "lambda_opacity"):
            validate_schedule(getattr(self.loss, key), f"loss.{key}")
        self.guidance.validate()
        self.reward_2d.validate(self.render.batch_size)


def resolve_config_path(name_or_path: str) -> Path:
    """A YAML path, or the name of a shipped preset (``dmtet-tiny`` -> dreamcs/configs/dmtet-tiny.yaml)."""
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml") and p.is_file():
        return p
    shipped = CONFIG_DIR / f"{p.stem if p.suffix in ('.yaml', '.yml') else name_or_path}.yaml"
    if shipped.is_file():
        return shipped
    known = ", ".join(sorted(q.stem for q in CONFIG_DIR.glob("*.yaml"))) or "none"
    raise FileNotFoundError(f"{name_or_path}: no such config file or shipped preset (shipped: {known})")
