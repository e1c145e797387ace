"""DreamCS generation: DMTet + differentiable rendering + SDS + progressive 3D reward guidance.

Reads top to bottom like a diffusers pipeline: helpers, the output dataclass, then the pipeline
whose ``__call__`` runs numbered steps. One optimisation step is

    verts, faces = field()                                   # marching tets
    images = render(verts, faces, cameras)                   # shaded / normal maps
    L_sds = guidance.sds_loss(images, text(prompt, view))    # score distillation
    r = RewardCS(fuse(mesh).vertices_from(verts), prompt)    # layout kept while the signs hold
    loss = L_sds - alpha(t) r + sum(lambda_x loss_x)         # then Adam

Each branch runs its own backward into a detached leaf (image or vertices) so that the step's
time splits exactly into render / guidance / reward / other, and the sum of the branches'
vertex gradients is then pushed through marching tets into the field once.

    cfg = load_config(GenerateConfig, resolve_config_path("dmtet-tiny"), ["prompt=a chair"])
    out = GeneratePipeline(cfg, "runs/chair")()        # or (...)(resume=True) after a kill
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from dreamcs.config import save_config
from dreamcs.generate import checkpoint as ckpt
from dreamcs.generate import outputs
from dreamcs.generate.config import GenerateConfig
from dreamcs.generate.guidance import Guidance, build_guidance

# the reward branch lives in its own module; these names stay importable from here
from dreamcs.generate.reward_branch import RewardBranch, normalize_vertices, resolve_reward_dir  # noqa: E402
from dreamcs.schedule import C
from dreamcs.utils import append_jsonl, read_jsonl, seed_everything

__all__ = ["GenerateOutput", "GeneratePipeline", "RewardBranch", "normalize_vertices", "resolve_reward_dir"]


@dataclass
class GenerateOutput:
    """What a finished run returns (the files are in ``run_dir``)."""

    run_dir: Path
    steps: int
    final_obj: Path
    final_glb: Path
    turntable: Path
    metrics: list[dict[str, Any]]


class GeneratePipeline:
    """One text-to-3D run into ``out_dir``. Components may be passed in (tests, benchmarks)."""

    def __init__(
        self,
        cfg: GenerateConfig,
        out_dir: str | Path,
        *,
        guidance: Guidance | None = None,
        reward_model: Any = None,
        show_progress: bool = True,
    ) -> None:
        self.cfg, self.run_dir, self.show_progress = cfg, Path(out_dir), show_progress
        self._guidance, self._reward_model = guidance, reward_model

    # 1. inputs -------------------------------------------------------------------------------
    def check_inputs(self, resume: bool) -> None:
        self.cfg.validate()
        if torch.device(self.cfg.device).type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"device: {self.cfg.device!r} asked for, but torch sees no GPU (use --device cpu)")
        metrics = self.run_dir / "metrics.jsonl"
        if metrics.exists() and not resume:
            raise FileExistsError(f"{self.run_dir}: already holds a run; pass --resume or choose another --out")
        if resume:
            outputs.check_resume_config(self.run_dir, self.cfg)
        if self.cfg.geometry.name == "nerf":  # nerf.backend=nerfacc where it cannot run: say so before step 0
            from dreamcs.generate.nerf.accel import resolve_backend

            resolve_backend(self.cfg.nerf.backend, self.cfg.device)
        if self.cfg.texture_size:
            import importlib.util

            if importlib.util.find_spec("xatlas") is None:  # fail now, not after the run
                raise ImportError("texture_size needs the xatlas package: pip install 'dreamcs[texture]'")

    # 2. components ---------------------------------------------------------------------------
    def prepare(self) -> None:
        """Seed, then build every component (their random init is part of the seeded stream): the
        field, the guidance (prompt embeddings cached per view suffix), the optional 3D reward."""
        seed_everything(self.cfg.seed)
        self.prepare_field()
        self.prepare_guidance()
        self.prepare_reward()

    def prepare_field(self) -> None:
        from dreamcs.generate.background import Background
        from dreamcs.generate.geometry import build_geometry

        self.device = torch.device(self.cfg.device)
        self.field = build_geometry(self.cfg, device=self.device)
        r = self.cfg.render
        self.background = Background(r.background_model, r.background).to(self.device)
        # the modules a checkpoint holds (a learned background only when there is one)
        self.modules = {"field": self.field, **({"background": self.background} if r.background_model == "mlp" else {})}
        params = [p for m in self.modules.values() for p in m.parameters()]
        self.optimizer = torch.optim.Adam(params, lr=self.cfg.lr)

    def prepare_guidance(self) -> None:
        self.guidance = self._guidance or build_guidance(self.cfg.guidance, device=self.device)
        if self.field.has_albedo and self.guidance.latent_shape()[0] == 1:
            import warnings

            warnings.warn(f"guidance {self.cfg.guidance.name!r} sees grey images: the albedo field learns only "
                          "its grey level (use an RGB prior, e.g. stable-diffusion, for colour)", stacklevel=2)

    def prepare_reward(self) -> None:
        model, rcfg = self._reward_model, self.cfg.reward
        if model is None and rcfg.checkpoint:
            from dreamcs.reward import RewardCS

            model = RewardCS.from_pretrained(resolve_reward_dir(rcfg.checkpoint), device=self.device)
        if model is None:
            self.reward = None
        elif rcfg.path == "field" and self.cfg.geometry.name == "dmtet":
            from dreamcs.generate.fast_reward import FieldRewardBranch

            self.reward = FieldRewardBranch(model.to(self.device), self.cfg.prompt, rcfg.n_patches, rcfg.max_change,
                                            rcfg.max_age, rcfg.overlap_fusion, rcfg.normalize, rcfg.grid,
                                            rcfg.max_flipped)
        else:  # the surface path; a volume geometry's mesh has no grid edges to carry a layout through
            self.reward = RewardBranch(model.to(self.device), self.cfg.prompt, rcfg.n_patches, rcfg.normalize)
        from dreamcs.generate.reward2d.branch import build_reward_2d

        self.reward_2d = build_reward_2d(self.cfg.reward_2d, self.cfg.prompt, self.device)

    # 3. one step -----------------------------------------------------------------------------
    def sample_views(self, step: int) -> tuple[int, str, Any, Tensor]:
        """The step's render resolution, shading, B cameras and point lights (mesh and volume steps)."""
        from dreamcs import render
        from dreamcs.generate.appearance import pick_shading, sample_lights

        r = self.cfg.render
        res = max(8, int(round(C(r.resolution, step, "render.resolution") / 8)) * 8)
        shading = pick_shading(r, step)
        multiview = getattr(self.guidance, "sample_cameras", None)  # mvdream: groups of orthogonal views
        cams = multiview(r, step) if multiview else render.sample_cameras(
            r.batch_size, elevation_range=r.elevation_range, azimuth_range=r.azimuth_range,
            distance_range=r.distance_range, fov_range=r.fov_range)
        return res, shading, cams, sample_lights(cams, r)

    def render_batch(self, verts: Tensor, faces: Tensor, step: int) -> tuple[Tensor, list[str], str]:
        """Sample B cameras (and lights) and render: images (B, H, W, 3) in [0, 1] (or (B, H, W, 4)
        normal + mask latents in the ``normal+mask`` warm-up), view suffixes, shading."""
        from dreamcs import render
        from dreamcs.generate.appearance import LATENT_SHADING, normal_mask_latents

        r = self.cfg.render
        res, shading, cams, lights = self.sample_views(step)
        latent = shading == LATENT_SHADING
        colored = self.field.has_albedo and shading in ("albedo", "lambertian", "diffuse")
        rcfg = render.RenderConfig(
            shading="normal" if latent else shading, normals=r.normals, ambient=r.ambient, backend=r.backend,
            cull_backfaces=r.cull_backfaces, background=(0.0, 0.0, 0.0) if latent else tuple(r.background))
        learned_bg = r.background_model == "mlp" and shading not in ("normal", LATENT_SHADING)
        if learned_bg:
            rcfg.background = (0.0, 0.0, 0.0)  # composited over the learned background below
        out = render.render(verts, faces, cams.to(verts.device), res, rcfg,
                            albedo=self.field.albedo if colored else None,
                            light_positions=None if lights is None else lights.to(verts.device))
        if learned_bg:
            out["image"] = out["image"] + (1.0 - out["alpha"]) * self.background(cams, res, res)
        if r.view_dependent_prompting:
            suffixes = [f"{d} view" for d in render.view_directions(cams)]
        else:
            suffixes = [""] * len(cams)
        return (normal_mask_latents(out) if latent else out["image"]), suffixes, shading

    def train_step(self, step: int) -> dict[str, Any]:
        """One optimisation step at ``step`` (0-based); returns its metrics record."""
        if getattr(self.field, "volume", False):  # nerf: volume rendering (dreamcs.generate.nerf.step)
            from dreamcs.generate.nerf.step import volume_train_step

            return volume_train_step(self, step)
        cfg, lw, times = self.cfg, self.cfg.loss, {}
        t0 = time.perf_counter()
        self.optimizer.zero_grad(set_to_none=True)
        verts, faces = self.field()
        v = verts.detach().requires_grad_(True)
        rec: dict[str, Any] = {"step": step, "n_verts": int(verts.shape[0]), "n_faces": int(faces.shape[0])}
        scoring = self.reward is not None and step % cfg.reward.every == 0 and faces.shape[0] > 0
        on_field = scoring and cfg.reward.path == "field" and cfg.geometry.name == "dmtet"
        relative = scoring and cfg.reward.relative
        # the surface path keeps the reward's gradient apart from SDS's when it is compared or rescaled
        probe = scoring and not on_field and (cfg.reward.relative or cfg.reward.log_gradients)
        reward_v_grad = None
        if on_field:
            # the field path reads the grid's SDF and deformed vertices (as detached leaves, pushed
            # into the field with the rest below), not the extracted mesh
            sdf_leaf = self.field._last_sdf.detach().requires_grad_(True)
            pos_leaf = self.field._last_positions.detach().requires_grad_(True)
        if scoring and cfg.reward.overlap_fusion and not on_field:
            self.reward.prefetch(verts, faces)
        t1 = time.perf_counter()
        times["other"] = t1 - t0
        total = 0.0
        if faces.shape[0] > 0:
            # render forward; its backward is timed below with the render
            images, suffixes, shading = self.render_batch(v, faces, step)
            img = images.detach().requires_grad_(True)
            t2 = time.perf_counter()
            text = self.guidance.encode_prompts(cfg.prompt, suffixes)
            sds = self.guidance.sds_loss(img, text, step, as_latents=img.shape[-1] == 4)
            lam = C(lw.lambda_sds, step, "loss.lambda_sds")
            (lam * sds["loss_sds"]).backward()
            if getattr(self, "reward_2d", None) is not None:  # 2D reward: adds -alpha_2d dr/dimg to img.grad
                total += self.reward_2d.step(img, suffixes, step, rec)
            t3 = time.perf_counter()
            images.backward(img.grad)
            t4 = time.perf_counter()
            times["render"], times["guidance"] = (t2 - t1) + (t4 - t3), t3 - t2
            total += lam * float(sds["loss_sds"].detach())
            rec.update(loss_sds=float(sds["loss_sds"].detach()), grad_norm=float(sds["grad_norm"]),
                       t=float(sds["t"].float().mean()), n_nonfinite=int(sds["n_nonfinite"]),
                       resolution=int(images.shape[1]), shading=shading)
        # reward branch: every k steps (then weighted k alpha(t)), when a reward model is loaded
        t5 = time.perf_counter()
        alpha = C(cfg.reward.alpha, step, "reward.alpha") * cfg.reward.every
        rec.update(alpha=alpha, reward=None, loss_reward=None)
        fig_leaf = None  # the surface as the exact teacher figures read it: its own leaf, apart from SDS's
        if scoring:
            from dreamcs.mesh import MeshError
            from dreamcs.reward.exact_figures import exact_figure_values, generation_exact_figures

            try:
                # alpha = 0 (e.g. before the ramp, or a baseline run) only monitors r: no graph
                with torch.set_grad_enabled(alpha != 0.0):
                    if on_field and step % cfg.save_every == 0:  # a resume starts here without a layout
                        self.reward.reset()
                    # teacher figures read off the whole surface (floaters), differentiable in its vertices
                    names = generation_exact_figures(list(self.reward.model.config.exact_figures))
                    fig_leaf = v.detach().requires_grad_(alpha != 0.0) if names else None
                    fv = exact_figure_values(names, fig_leaf, faces)
                    if on_field:
                        r = self.reward(sdf_leaf, pos_leaf, self.field.grid, figure_values=fv)
                    else:
                        r = self.reward(v, faces, figure_values=fv)
            except MeshError as e:
                # a degenerate surface that cannot be fused: skip the reward this step, keep the run
                rec["reward_error"] = str(e)[:300]
            else:
                if alpha != 0.0:  # relative: a unit weight here, rescaled against SDS below
                    weighted = -(1.0 if relative else alpha) * r
                    if probe:  # the surface path: d(weighted)/d(extracted vertices), layout and exact figures
                        leaves = [v] if fig_leaf is None else [v, fig_leaf]
                        parts = [g for g in torch.autograd.grad(weighted, leaves, allow_unused=True) if g is not None]
                        reward_v_grad = sum(parts[1:], parts[0]) if parts else torch.zeros_like(v)
                    else:
                        weighted.backward()
                rec.update(reward=float(r.detach()), loss_reward=-alpha * float(r.detach()))
                if on_field:  # whether this step brought a new patch layout in, and how far the old one was carried
                    rec.update(reward_fused=self.reward.last_fused, reward_layout_change=self.reward.last_change,
                               reward_flipped=self.reward.last_flipped, reward_repaired=self.reward.last_repaired)
                total += -alpha * float(r.detach())
        t6 = time.perf_counter()
        times["reward"] = t6 - t5
        # regularisers, then one backward through marching tets into the field
        regs = self.field.regularizers(verts, faces)
        reg_total = verts.new_zeros(())
        for name, value in regs.items():
            lam = C(getattr(lw, f"lambda_{name}", 0.0), step, f"loss.lambda_{name}")
            rec[f"loss_{name}"] = float(value.detach())
            if lam != 0.0:
                reg_total = reg_total + lam * value
        if faces.shape[0] == 0:  # the surface vanished: nothing renders, so nothing would bring it back
            revive = self.field.revive_loss() if hasattr(self.field, "revive_loss") else None
            if revive is not None:
                reg_total = reg_total + revive
                rec["loss_revive"] = float(revive.detach())
        total += float(reg_total.detach())
        fig_grad = None if fig_leaf is None else fig_leaf.grad
        roots, grads = [verts], [v.grad if v.grad is not None else torch.zeros_like(verts)]
        if reg_total.requires_grad:
            roots.append(reg_total)
            grads.append(torch.ones_like(reg_total))
        scale = None  # reward.relative: the weight that makes the reward's SDF gradient alpha x SDS's
        if on_field and sdf_leaf.grad is not None:
            if relative or cfg.reward.log_gradients:
                from dreamcs.generate.reward_branch import compare_gradients, relative_scale, sdf_gradient

                g_sds = sdf_gradient(verts, v.grad, self.field._last_sdf)
                if relative:
                    scale = relative_scale(alpha, g_sds, sdf_leaf.grad)
                    sdf_leaf.grad.mul_(scale)
                    if pos_leaf.grad is not None:
                        pos_leaf.grad.mul_(scale)
                    if fig_grad is not None:
                        fig_grad.mul_(scale)
                if cfg.reward.log_gradients:  # the reward's whole gradient: the layout's and the exact figures'
                    g_fig = 0.0 if fig_grad is None else sdf_gradient(verts, fig_grad, self.field._last_sdf)
                    rec.update(compare_gradients(g_sds, sdf_leaf.grad + g_fig))
            roots += [self.field._last_sdf, self.field._last_positions]
            grads += [sdf_leaf.grad, pos_leaf.grad]
        if reward_v_grad is not None:  # the surface path's probe: compared with SDS's on the SDF, rescaled if relative
            from dreamcs.generate.reward_branch import probe_surface_reward

            reward_v_grad, scale, logged = probe_surface_reward(verts, grads[0], reward_v_grad, self.field._last_sdf,
                                                                alpha if relative else None)
            if cfg.reward.log_gradients:
                rec.update(logged)
            grads[0] = grads[0] + reward_v_grad
        if scale is not None:  # the loss as applied: -scale r in place of -alpha r
            rec.update(reward_weight=scale, loss_reward=-scale * rec["reward"])
            total += alpha * rec["reward"] - scale * rec["reward"]
        if fig_grad is not None:
            grads[0] = grads[0] + fig_grad
        torch.autograd.backward(roots, grads)
        self.optimizer.step()
        t7 = time.perf_counter()
        times["other"] += t7 - t6
        rec["loss"] = total
        for k in ("render", "guidance", "reward", "other"):
            rec[f"time_{k}"] = times.get(k, 0.0)
        rec["time_step"] = t7 - t0
        return rec

    # 4. export ---------------------------------------------------------------------------------
    @torch.no_grad()
    def export(self) -> dict[str, Path]:
        from dreamcs.render import RenderConfig, save_turntable_png

        verts, faces = self.field()
        r = self.cfg.render
        # vertex colours from the albedo field (None for a geometry-only run)
        colors = self.field.albedo(verts) if self.field.has_albedo and verts.shape[0] else None
        paths: dict[str, Path] = {}
        if colors is not None and self.cfg.texture_size:
            from dreamcs.generate.texture import bake_texture, write_textured

            textured = bake_texture(verts, faces, self.field.albedo, self.cfg.texture_size)
            paths.update({f"textured_{k}": p for k, p in write_textured(textured, self.run_dir / "textured").items()})
        return {
            **paths,
            "final_obj": outputs.write_mesh(verts, faces, self.run_dir / "final.obj", colors),
            "final_glb": outputs.write_mesh(verts, faces, self.run_dir / "final.glb", colors),
            "turntable": save_turntable_png(
                self.run_dir / "turntable.png", verts.cpu(), faces.cpu(), r.turntable_views, r.turntable_resolution,
                config=RenderConfig(normals=r.normals), colors=None if colors is None else colors.cpu()),
        }

    # 5. the run ----------------------------------------------------------------------------------
    def __call__(self, resume: bool = False, callback: Callable[[int, dict], None] | None = None) -> GenerateOutput:
        cfg = self.cfg
        # 1. check inputs and the run folder
        self.check_inputs(resume)
        # 2-4. seed, field, guidance, reward
        self.prepare()
        # 5. resume: field, optimizer and RNG states from the newest checkpoint
        ckpt_dir, metrics_path = self.run_dir / "checkpoints", self.run_dir / "metrics.jsonl"
        start = 0
        found = ckpt.list_checkpoints(ckpt_dir) if resume else []
        if found:
            start, _ = ckpt.load_checkpoint(found[-1], self.modules, self.optimizer)
        outputs.truncate_metrics(metrics_path, start)
        save_config(cfg, self.run_dir / "config.yaml")
        # 6. optimisation loop
        try:
            self._loop(start, ckpt_dir, metrics_path, callback)
        finally:
            if self.reward is not None:
                self.reward.close()
        # 7. export the final mesh and its turntable
        paths = self.export()
        return GenerateOutput(self.run_dir, cfg.steps, paths["final_obj"], paths["final_glb"], paths["turntable"],
                              read_jsonl(metrics_path))

    def _loop(self, start: int, ckpt_dir: Path, metrics_path: Path, callback: Callable[[int, dict], None] | None) -> None:
        from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

        cfg = self.cfg
        columns = [TextColumn("[bold]generate"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                   TextColumn("{task.fields[info]}"), TimeRemainingColumn()]
        with Progress(*columns, disable=not self.show_progress) as bar:
            task = bar.add_task("generate", total=cfg.steps, completed=start, info="")
            for step in range(start, cfg.steps):
                if cfg.mesh_every and step % cfg.mesh_every == 0:
                    with torch.no_grad():
                        outputs.write_mesh(*self.field(), self.run_dir / "meshes" / f"step_{step:06d}.obj")
                rec = self.train_step(step)
                append_jsonl(metrics_path, rec)
                done = step + 1
                if done % cfg.save_every == 0 or done == cfg.steps:
                    ckpt.save_checkpoint(ckpt_dir, done, self.modules, self.optimizer)
                info = f"loss {rec['loss']:.4g}" + (f" reward {rec['reward']:.3f}" if rec["reward"] is not None else "")
                bar.update(task, completed=done, info=info)
                if callback is not None:
                    callback(step, rec)
