"""``make gpu-check``: does generation work on this machine's GPU? Under 5 minutes on one GPU.

Each row builds tiny models from the shipped recipes (a tiny random Stable Diffusion folder in the
diffusers layout, small grids) and runs a few real steps on the device:

    cuda                 torch sees a GPU
    device audit         guidance, field and reward keep every tensor on the device after .to()
    dmtet-sd             3 SD-shaped steps (VAE encode, CFG UNet, SDS) without the reward
    dmtet-sd + reward    the same with a (random) RewardCS scoring every step, alpha > 0
    reward, grid 128     the shipped RewardCS every step at the recipe's grid: step times unguided, with
                         the fusion overlapped (the recipe's setting) and in line (issue 15)
    fantasia3d-sd        normal + mask latent warm-up, then a normal render through the VAE
    magic3d-refine-sd    colour: albedo field, point lights, a GLB with vertex colours
    nvdiffrast           the same face ids as the torch rasteriser, and a run on it (if installed)
    dreamfusion-sd + reward  the implicit volume with RewardCS every step, fused in a worker and in line
    nerfacc              nerf.backend=nerfacc renders what the torch volume renderer does, and
                         3 dreamfusion-sd steps on each backend (if nerfacc and its extension load)
    mvdream / dmtet-if   3 steps of mvdream-sd21-dmtet and dmtet-if with tiny random MVDream / IF folders,
                         RewardCS and a 2D reward
    real SD weights      one 512 px SDS step in float16 (if DREAMCS_SD_PATH names a local folder)
    prior training       a tiny prior trained 2 steps on the device and resumed 2 on the CPU lands where
                         4 CPU steps do; the library preset's UNet step time here (6,000 steps: minutes
                         on a GPU against ~4 h on 2 CPU cores)

Prints a pass / fail / skipped table; exits 1 when a row fails. Without CUDA every row is
skipped and it exits 0. ``--device cpu`` runs the same rows on the CPU (for testing this script).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import print_table  # noqa: E402

SMALL = ["steps=3", "save_every=3", "mesh_every=0", "geometry.grid_resolution=16", "geometry.hash_levels=4",
         "geometry.hash_log2_table_size=12", "geometry.hash_max_resolution=64", "geometry.init_steps=100",
         "render.batch_size=2", "render.resolution=64", "render.turntable_views=2", "render.turntable_resolution=64",
         "guidance.image_size=64"]


class Skip(Exception):
    """A row that cannot run here (a missing package or weights)."""


class Checks:
    def __init__(self, device: str, work: Path) -> None:
        self.device, self.work = device, work
        self._sd: Path | None = None

    def tiny_sd(self) -> Path:
        from dreamcs.generate.guidance.tiny_sd import save_tiny_stable_diffusion

        if self._sd is None:
            self._sd = save_tiny_stable_diffusion(self.work / "tiny-sd")
        return self._sd

    def run(self, recipe: str, name: str, *overrides: str, reward: bool = False, reward_model=None) -> list[dict]:
        from dreamcs.config import load_config
        from dreamcs.generate.config import GenerateConfig, resolve_config_path
        from dreamcs.generate.pipeline import GeneratePipeline

        cfg = load_config(GenerateConfig, resolve_config_path(recipe), [
            "prompt=a wooden chair", f"device={self.device}", *SMALL, f"guidance.pretrained={self.tiny_sd()}", *overrides])
        model = None
        if reward:
            from dreamcs.reward import RewardCS, preset

            cfg.reward.every, cfg.reward.alpha, cfg.reward.n_patches = 1, 1.0, 16
            model = RewardCS(preset("tiny", faces_per_patch=16, text_encoder="hash:32"))
        if reward_model is not None:  # a given model, in the recipe's own layout (256 patches)
            cfg.reward.every, cfg.reward.alpha, model = 1, 1.0, reward_model
        out = GeneratePipeline(cfg, self.work / name, reward_model=model, show_progress=False)()
        bad = [r["step"] for r in out.metrics if not torch.isfinite(torch.tensor(r["loss"]))]
        if bad:
            raise AssertionError(f"non-finite loss at steps {bad}")
        self.last_output = out
        return out.metrics

    # -- rows ------------------------------------------------------------------------------------
    def cuda(self) -> str:
        if self.device == "cpu":
            return "cpu run (--device cpu)"
        p = torch.cuda.get_device_properties(0)
        return f"{p.name}, {p.total_memory / 2**30:.0f} GiB, torch {torch.__version__}"

    def device_audit(self) -> str:
        from dreamcs.device_audit import misplaced_tensors
        from dreamcs.generate.dmtet import DMTet, DMTetConfig
        from dreamcs.generate.guidance import GuidanceConfig, build_guidance
        from dreamcs.reward import RewardCS, preset

        modules = {
            "stable-diffusion": build_guidance(GuidanceConfig(name="stable-diffusion", pretrained=str(self.tiny_sd()),
                                                              image_size=32), device=self.device),
            "dmtet": DMTet(DMTetConfig(grid_resolution=8, parameterization="mlp", encoding="hashgrid", hash_levels=2,
                                       hash_log2_table_size=8, init_steps=5, appearance="albedo"), device=self.device),
            "reward": RewardCS(preset("tiny", faces_per_patch=16, text_encoder="hash:32")).to(self.device),
        }
        wrong = [f"{k}: {p}" for k, m in modules.items() for p in misplaced_tensors(m, self.device)]
        if wrong:
            raise AssertionError("; ".join(wrong[:5]))
        return f"{len(modules)} modules, every tensor on {self.device}"

    def sd_run(self) -> str:
        m = self.run("dmtet-sd", "sd")
        return f"{len(m)} steps, {sum(r['time_step'] for r in m[1:]) / max(len(m) - 1, 1):.2f} s/step"

    def sd_reward_run(self) -> str:
        m = self.run("dmtet-sd", "sd-reward", reward=True)
        scored = [r["reward"] for r in m if r["reward"] is not None]
        if not scored:
            raise AssertionError("the reward never scored the mesh: " + str(m[-1].get("reward_error", "")))
        return f"reward {scored[-1]:.3f}, reward branch {m[-1]['time_reward']:.2f} s"

    def reward_per_step(self) -> str:
        """Issue 15: the shipped RewardCS on every step at the recipe's grid (128), the surface fused in a
        worker thread while render and guidance run (``overlap_fusion``, the recipe's setting) or in
        line, against the same steps unguided (tiny SD at 64 px: a real SD step hides more)."""
        import numpy as np

        from dreamcs.reward import RewardCS

        model = RewardCS.from_pretrained("embedded", device=self.device)
        grid = ["geometry.grid_resolution=128", "steps=6", "save_every=6"]

        def ms(m: list[dict], key: str) -> float:
            return float(np.median([r[key] for r in m[2:]])) * 1e3  # steps 0-1 warm up

        base = self.run("dmtet-sd", "r128-base", *grid)
        runs = {o: self.run("dmtet-sd", f"r128-{o}", *grid, f"reward.overlap_fusion={o}", reward_model=model)
                for o in ("true", "false")}
        if any(r["reward"] is None for m in runs.values() for r in m):
            raise AssertionError("the reward did not score every step")
        return (f"grid 128, ms a step: unguided {ms(base, 'time_step'):.0f}, guided {ms(runs['true'], 'time_step'):.0f} "
                f"overlapped / {ms(runs['false'], 'time_step'):.0f} in line (reward branch "
                f"{ms(runs['false'], 'time_reward'):.0f} in line, {ms(runs['true'], 'time_reward'):.0f} waited)")

    def fantasia3d(self) -> str:
        m = self.run("fantasia3d-sd", "fantasia3d", "render.latent_steps=2", "render.batch_size=1")
        shadings = [r.get("shading") for r in m]
        if shadings != ["normal+mask", "normal+mask", "normal"]:
            raise AssertionError(f"shadings {shadings}")
        return "2 latent warm-up steps + 1 VAE step"

    def magic3d(self) -> str:
        import numpy as np
        import trimesh

        self.run("magic3d-refine-sd", "magic3d", "render.batch_size=1")
        glb = trimesh.load(self.last_output.final_glb, force="mesh", process=False)
        if glb.visual.kind != "vertex":
            raise AssertionError("final.glb has no vertex colours")
        return f"GLB with {len(np.unique(glb.visual.vertex_colors, axis=0))} distinct vertex colours"

    def nvdiffrast(self) -> str:
        from dreamcs.render import nvdiff

        if not nvdiff.available():
            raise Skip("nvdiffrast not installed (pip install nvdiffrast)")
        import trimesh

        from dreamcs.render import RenderConfig, rasterize, sample_cameras

        m = trimesh.creation.icosphere(3, radius=0.7)
        v = torch.tensor(m.vertices, dtype=torch.float32, device=self.device)
        f = torch.tensor(m.faces, dtype=torch.long, device=self.device)
        cams = sample_cameras(4, generator=torch.Generator().manual_seed(0))
        ids = [rasterize(v, f, cams, 128, RenderConfig(backend=b)).face_id for b in ("torch", "nvdiffrast")]
        agree = float((ids[0] == ids[1]).float().mean())
        if agree < 0.98:  # pixel centres exactly on an edge may break ties differently
            raise AssertionError(f"face ids agree on only {agree:.1%} of pixels")
        self.run("dmtet-sd", "nvdiffrast", "render.backend=nvdiffrast")
        return f"face ids agree on {agree:.2%} of pixels; run ok"

    def nerfacc(self) -> str:
        from dreamcs.generate.nerf.accel import nerfacc_unavailable

        reason = "a cpu run" if self.device == "cpu" else nerfacc_unavailable()
        if reason is not None:
            raise Skip(f"nerfacc: {reason}")
        from dreamcs.generate.dmtet import DMTetConfig
        from dreamcs.generate.nerf import NeRFConfig, NeRFField, render_volume
        from dreamcs.render import sample_cameras

        geo = DMTetConfig(grid_resolution=16, encoding="hashgrid", hash_levels=4, hash_log2_table_size=12,
                          hash_max_resolution=64, appearance="albedo")
        field = NeRFField(geo, NeRFConfig(n_samples=128, occupancy_resolution=32), device=self.device)
        cams = sample_cameras(2, generator=torch.Generator().manual_seed(0))
        with torch.no_grad():
            field.update_occupancy()
            ref, fast = (render_volume(field, cams, 64, shading="lambertian", backend=b) for b in ("torch", "nerfacc"))
        diff = float((fast["image"] - ref["image"]).abs().mean())
        if fast["backend"] != "nerfacc" or diff > 0.01:  # fixed steps of 2r/N against chord/N: close, not equal
            raise AssertionError(f"{fast['backend']} image differs from torch's by {diff:.4f} on average")
        per_step = {}
        for b in ("torch", "nerfacc"):
            m = self.run("dreamfusion-sd", f"nerf-{b}", f"nerf.backend={b}", "nerf.n_samples=64",
                         "nerf.occupancy_resolution=32", "nerf.iso_threshold=2.5", "render.batch_size=1")
            if any(r["backend"] != b for r in m):
                raise AssertionError(f"nerf.backend={b} ran on {m[-1]['backend']}")
            per_step[b] = sum(r["time_step"] for r in m[1:]) / max(len(m) - 1, 1)
        return (f"image mean |diff| {diff:.4f}, samples {fast['n_evaluated']} vs {ref['n_evaluated']}; "
                f"s/step torch {per_step['torch']:.3f}, nerfacc {per_step['nerfacc']:.3f}")

    def nerf_reward(self) -> str:
        """The implicit volume with RewardCS every step: the iso-surface is extracted before the render
        and fused in a worker (the recipe's overlap_fusion); in line it must give the same numbers."""
        nerf = ["nerf.n_samples=64", "nerf.occupancy_resolution=32", "nerf.iso_threshold=2.5", "render.batch_size=1"]
        runs = {}
        for ov in ("true", "false"):
            torch.manual_seed(0)  # the same random RewardCS in both runs
            runs[ov] = self.run("dreamfusion-sd", f"nerf-reward-{ov}", *nerf, f"reward.overlap_fusion={ov}", reward=True)
        scored = [[r["reward"] for r in m] for m in runs.values()]
        if any(x is None for x in scored[0]):
            raise AssertionError("the reward did not score every step: " + str(runs["true"][-1].get("reward_error", "")))
        gap = max(abs(a - b) for a, b in zip(*scored, strict=True))
        if gap > 1e-3:
            raise AssertionError(f"overlapped and in-line rewards differ by {gap:.2e}")
        step = {ov: sum(r["time_step"] for r in m[1:]) / max(len(m) - 1, 1) for ov, m in runs.items()}
        return (f"reward {scored[0][-1]:.3f} (in line within {gap:.0e}); s/step overlapped {step['true']:.3f}, "
                f"in line {step['false']:.3f}")

    def multiview_and_if(self) -> str:
        from dreamcs.generate.guidance.tiny_models import save_tiny_deepfloyd_if, save_tiny_mvdream
        from dreamcs.generate.reward2d import save_tiny_blip_reward

        details = []
        for recipe, prior, head, size in (("mvdream-sd21-dmtet", save_tiny_mvdream, "reward3d-scorer", 64),
                                          ("dmtet-if", save_tiny_deepfloyd_if, "imagereward", 16)):
            folder, r2d = prior(self.work / f"tiny-{recipe}"), save_tiny_blip_reward(self.work / f"r2d-{head}", head)
            m = self.run(recipe, recipe, f"guidance.pretrained={folder}", f"guidance.image_size={size}",
                         "render.batch_size=4", f"reward_2d.checkpoint={r2d}", "reward_2d.alpha=0.5", reward=True)
            if any(r.get("reward_2d") is None or r["reward"] is None for r in m):
                raise AssertionError(f"{recipe}: a reward did not score every step")
            details.append(f"{recipe} r2d {m[-1]['reward_2d']:.3f}")
        return "; ".join(details)

    def real_sd(self) -> str:
        path = os.environ.get("DREAMCS_SD_PATH")
        if not path:
            raise Skip("set DREAMCS_SD_PATH to a local SD 1.5 / 2.1 base folder")
        from dreamcs.generate.guidance import GuidanceConfig, build_guidance

        g = build_guidance(GuidanceConfig(name="stable-diffusion", pretrained=path), device=self.device)
        img = torch.rand(1, 512, 512, 3, device=self.device, requires_grad=True)
        t0 = time.perf_counter()
        out = g.sds_loss(img, g.encode_prompts("a hamburger", ["front view"]), step=0)
        out["loss_sds"].backward()
        if not (torch.isfinite(out["loss_sds"]) and torch.isfinite(img.grad).all()):
            raise AssertionError("non-finite SDS loss or gradient")
        return f"one SDS step {time.perf_counter() - t0:.2f} s, grad norm {float(out['grad_norm']):.3g}"


    def prior_training(self) -> str:
        from dataclasses import replace

        from dreamcs.config import load_config
        from dreamcs.prior.data import ViewDataConfig
        from dreamcs.prior.train import PriorTrainConfig, PriorTrainer, preset_path, seconds_per_step

        base = PriorTrainConfig(data=ViewDataConfig(limit=3, n_views=4, image_size=16, supersample=2),
                                text_encoder="hash:32", block_out_channels=[8, 16], steps=4, batch_size=4,
                                save_every=2, log_every=1, warmup_steps=2, card=False,
                                cache_dir=str(self.work / "prior-views"))
        PriorTrainer(base, self.work / "prior-cpu", show_progress=False).run()
        moved = self.work / "prior-moved"
        PriorTrainer(replace(base, device=self.device, steps=2), moved, show_progress=False).run()
        PriorTrainer(base, moved, show_progress=False).run(resume=True)
        from safetensors.torch import load_file

        a = load_file(str(self.work / "prior-cpu" / "checkpoints" / "step_0000004.safetensors"))
        b = load_file(str(moved / "checkpoints" / "step_0000004.safetensors"))
        gap = max(float((a[k].float() - b[k].float()).abs().max()) for k in a if k != "rng")
        if gap > 1e-3:
            raise AssertionError(f"a run moved between {self.device} and cpu drifted by {gap:.2e}")
        library = load_config(PriorTrainConfig, preset_path("library"))
        wall, _ = seconds_per_step(library, steps=10 if self.device != "cpu" else 2, device=self.device)
        return (f"moved run within {gap:.1e} of the CPU one; library UNet {wall * 1000:.0f} ms/step here, "
                f"6,000 steps ~{wall * 6000 / 60:.1f} min")


ROWS: list[tuple[str, str]] = [
    ("cuda", "cuda"), ("device audit", "device_audit"), ("dmtet-sd", "sd_run"), ("dmtet-sd + reward", "sd_reward_run"),
    ("reward every step, grid 128", "reward_per_step"),
    ("fantasia3d-sd", "fantasia3d"), ("magic3d-refine-sd", "magic3d"), ("nvdiffrast", "nvdiffrast"),
    ("dreamfusion-sd + reward", "nerf_reward"), ("nerfacc", "nerfacc"), ("mvdream / dmtet-if + rewards", "multiview_and_if"), ("real SD weights", "real_sd"),
    ("prior training", "prior_training"),
]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="cuda", help="cuda (default) or cpu (to test this script)")
    args = ap.parse_args(argv)
    results: list[list[object]] = []
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("CUDA is not available here: every GPU check is skipped.")
        results = [[name, "skipped", "-", "no CUDA device"] for name, _ in ROWS]
        print_table("dreamcs gpu-check", ["check", "result", "seconds", "detail"], results)
        return 0
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory(prefix="dreamcs-gpu-check-") as tmp:
        checks = Checks(args.device, Path(tmp))
        for name, method in ROWS:
            fn: Callable[[], str] = getattr(checks, method)
            t0 = time.perf_counter()
            try:
                detail, result = fn(), "pass"
            except Skip as e:
                detail, result = str(e), "skipped"
            except Exception as e:  # a failing row is reported, the others still run
                detail, result = f"{type(e).__name__}: {e}"[:200], "FAIL"
                traceback.print_exc(limit=3)
            results.append([name, result, f"{time.perf_counter() - t0:.1f}", detail])
    print_table(f"dreamcs gpu-check ({args.device})", ["check", "result", "seconds", "detail"], results)
    failed = [r[0] for r in results if r[1] == "FAIL"]
    print(f"{len(failed)} failed: {', '.join(failed)}" if failed else "all checks passed or skipped")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
