"""One optimisation step of the pipeline for a volume geometry (``geometry.name: nerf``).

The same branches and metrics record as the DMTet step in ``pipeline.py``, with the SDS images
from volume rendering instead of rasterisation:

    occupancy.update()  (every k steps)
    images = render_volume(field, cameras, shading, lights, background)
    L_sds = guidance.sds_loss(images, text)                    # image-space grad, then back to the field
    L_reg = lambda_orient * orient + lambda_opacity * opacity  # DreamFusion's volume regularisers
    r = RewardCS(fuse(marching_tets(threshold - density)))     # every k steps, grad -> density
    loss = L_sds - k alpha(t) r + L_reg                        # then Adam (k = reward.every)
"""

from __future__ import annotations

import time
from typing import Any

import torch

from dreamcs.generate.nerf.volume_render import opacity_loss, render_volume
from dreamcs.schedule import C


def render_volume_batch(pipe: Any, step: int) -> tuple[dict[str, Any], list[str], str]:
    """Sample B cameras (and lights), pick the shading and render; (render output, view suffixes, shading)."""
    from dreamcs import render

    r, field = pipe.cfg.render, pipe.field
    res, shading, cams, lights = pipe.sample_views(step)
    # the mesh path's "diffuse": lit albedo when there are colours, lit grey otherwise
    vol_shading = ("lambertian" if field.has_albedo else "textureless") if shading == "diffuse" else shading
    if r.background_model == "mlp" and shading != "normal":
        bg = pipe.background(cams, res, res)
    else:
        bg = torch.tensor(r.background, dtype=torch.float32, device=pipe.device).view(1, 1, 1, 3).expand(
            len(cams), res, res, 3)
    lw = pipe.cfg.loss
    orient_on = C(lw.lambda_orient, step, "loss.lambda_orient") != 0.0
    out = render_volume(field, cams, res, shading=vol_shading, ambient=r.ambient, light_positions=lights,
                        background=bg, perturb=True, need_normals=vol_shading != "albedo" or orient_on)
    if r.view_dependent_prompting:
        suffixes = [f"{d} view" for d in render.view_directions(cams)]
    else:
        suffixes = [""] * len(cams)
    return out, suffixes, shading


def volume_train_step(pipe: Any, step: int) -> dict[str, Any]:
    """One step of ``pipe`` (a ``GeneratePipeline`` whose field is a ``NeRFField``); its metrics record."""
    cfg, lw, field, times = pipe.cfg, pipe.cfg.loss, pipe.field, {}
    t0 = time.perf_counter()
    pipe.optimizer.zero_grad(set_to_none=True)
    if step % cfg.nerf.occupancy_update_every == 0 and cfg.nerf.occupancy:
        field.update_occupancy()
    rec: dict[str, Any] = {"step": step}
    # every k steps, weighted k alpha(t) there (as on DMTet: RewardConfig.every)
    alpha = C(cfg.reward.alpha, step, "reward.alpha") * cfg.reward.every
    scoring = pipe.reward is not None and step % cfg.reward.every == 0
    surface, t_ex = None, time.perf_counter()
    if scoring and cfg.reward.overlap_fusion:  # extract first, fuse in a worker while render and SDS run
        with torch.set_grad_enabled(alpha != 0.0):
            surface = field()
        if surface[1].shape[0] > 0:
            pipe.reward.prefetch(*surface)
    t1 = time.perf_counter()
    t_extract = t1 - t_ex  # the reward's, though it runs first
    # 1. SDS on the volume renders, plus the volume regularisers (one backward into the field)
    out, suffixes, shading = render_volume_batch(pipe, step)
    images = out["image"]
    img = images.detach().requires_grad_(True)
    t2 = time.perf_counter()
    text = pipe.guidance.encode_prompts(cfg.prompt, suffixes)
    sds = pipe.guidance.sds_loss(img, text, step)
    lam = C(lw.lambda_sds, step, "loss.lambda_sds")
    (lam * sds["loss_sds"]).backward()
    total = lam * float(sds["loss_sds"].detach())
    if getattr(pipe, "reward_2d", None) is not None:  # 2D reward: adds -alpha_2d dr/dimg to img.grad
        total += pipe.reward_2d.step(img, suffixes, step, rec)
    t3 = time.perf_counter()
    regs = {"orient": out["orient"], "opacity": opacity_loss(out["alpha"])}
    graph = (images * img.grad).sum()
    for name, value in regs.items():
        lam_x = C(getattr(lw, f"lambda_{name}"), step, f"loss.lambda_{name}")
        rec[f"loss_{name}"] = float(value.detach())
        if lam_x != 0.0:
            graph = graph + lam_x * value
            total += lam_x * float(value.detach())
    graph.backward()
    t4 = time.perf_counter()
    times["render"], times["guidance"] = (t2 - t1) + (t4 - t3), t3 - t2
    rec.update(loss_sds=float(sds["loss_sds"].detach()), grad_norm=float(sds["grad_norm"]),
               t=float(sds["t"].float().mean()), n_nonfinite=int(sds["n_nonfinite"]), resolution=int(images.shape[1]),
               shading=shading, occupied=field.occupancy.occupied_fraction if cfg.nerf.occupancy else 1.0,
               samples_evaluated=out["n_evaluated"] / max(out["n_samples"], 1), backend=out["backend"])
    # 2. the 3D reward on the iso-surface mesh: its vertex gradient flows through marching tets into the density
    rec.update(alpha=alpha, reward=None, loss_reward=None)
    if scoring:
        from dreamcs.mesh import MeshError

        if surface is None:
            with torch.set_grad_enabled(alpha != 0.0):
                surface = field()
        verts, faces = surface
        rec.update(n_verts=int(verts.shape[0]), n_faces=int(faces.shape[0]))
        if faces.shape[0] > 0:
            v = verts.detach().requires_grad_(alpha != 0.0)
            try:
                with torch.set_grad_enabled(alpha != 0.0):
                    from dreamcs.reward.exact_figures import exact_figure_values, generation_exact_figures

                    fv = exact_figure_values(generation_exact_figures(list(pipe.reward.model.config.exact_figures)), v, faces)
                    r = pipe.reward(v, faces, figure_values=fv)
            except MeshError as e:
                rec["reward_error"] = str(e)[:300]
            else:
                if alpha != 0.0:
                    (-alpha * r).backward()
                    verts.backward(v.grad)
                rec.update(reward=float(r.detach()), loss_reward=-alpha * float(r.detach()))
                total += -alpha * float(r.detach())
    t5 = time.perf_counter()
    times["reward"] = t5 - t4 + t_extract
    pipe.optimizer.step()
    t6 = time.perf_counter()
    times["other"] = (t1 - t0 - t_extract) + (t6 - t5)
    rec["loss"] = total
    for k in ("render", "guidance", "reward", "other"):
        rec[f"time_{k}"] = times[k]
    rec["time_step"] = t6 - t0
    return rec
