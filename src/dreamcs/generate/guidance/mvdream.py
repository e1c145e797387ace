"""``mvdream`` guidance: camera-conditioned multi-view SDS from MVDream (SD 2.1, 4 views).

``cfg.pretrained`` is a local folder in the layout of ``ashawkey/mvdream-sd2.1-diffusers``:
``unet/`` (a ``MultiViewUNetModel`` config + weights, loaded by our ``MultiViewUNet``), ``vae/``,
``text_encoder/`` + ``tokenizer/`` (SD 2.1's OpenCLIP-H as ``CLIPTextModel``) and ``scheduler/``.

Each step renders ``n_views`` = 4 views per sample at 4 orthogonal azimuths (a random start, one
elevation / distance / fov per sample): :meth:`MVDreamGuidance.sample_cameras` is the pipeline's
camera hook. The UNet sees the 4 views of a sample in one batch, with cross-view self-attention
and the camera of each view (:func:`camera_embedding`), all at the same timestep. SDS follows
threestudio-mvdream: guidance scale 50, x0 reconstruction loss with the CFG x0 rescaled towards
the conditional x0's std (``recon_std_rescale`` 0.5), annealed [min, max] step range.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from dreamcs.generate.guidance.base import GUIDANCE, GuidanceConfig, TextConditioning
from dreamcs.generate.guidance.stable_diffusion import StableDiffusionGuidance
from dreamcs.render.cameras import Cameras

#: OpenGL (y up) -> Blender (z up) world: (x, y, z) -> (x, -z, y), as MVDream's ``get_camera``
_GL_TO_BLENDER = torch.tensor([[1.0, 0, 0, 0], [0, 0, -1, 0], [0, 1, 0, 0], [0, 0, 0, 1]])


def camera_to_world(cams: Cameras) -> Tensor:
    """OpenGL camera-to-world matrices in our y-up world: (B, 4, 4); columns right, up, back, eye."""
    eye, right, up, forward = cams.frames()
    m = torch.zeros(len(cams), 4, 4)
    m[:, :3, 0], m[:, :3, 1], m[:, :3, 2], m[:, :3, 3] = right, up, -forward, eye
    m[:, 3, 3] = 1.0
    return m


def camera_embedding(cams: Cameras) -> Tensor:
    """MVDream's camera condition: the c2w matrix in Blender's z-up world with the camera moved
    onto the unit sphere (normalised distance), flattened row-major: (B, 16).

    Azimuth 0, elevation 0 (looking at the front from +z) gives
    ``[1,0,0,0, 0,0,-1,-1, 0,1,0,0, 0,0,0,1]``, as MVDream's ``get_camera(1, elevation=0)``.
    """
    m = _GL_TO_BLENDER @ camera_to_world(cams)
    t = m[:, :3, 3]
    m[:, :3, 3] = t / (t.norm(dim=1, keepdim=True) + 1e-8)
    return m.reshape(len(cams), 16)


def orthogonal_cameras(n_samples: int, n_views: int, elevation_range: Sequence[float],
                       azimuth_range: Sequence[float], distance_range: Sequence[float],
                       fov_range: Sequence[float]) -> Cameras:
    """n_samples groups of n_views cameras (consecutive): a random start azimuth, then steps of
    360 / n_views; elevation, distance and fov drawn once per group (torch's global generator)."""

    def u(r: Sequence[float]) -> Tensor:
        return float(r[0]) + (float(r[1]) - float(r[0])) * torch.rand(n_samples)

    start, el, dist, fov = u(azimuth_range), u(elevation_range), u(distance_range), u(fov_range)
    az = start[:, None] + torch.arange(n_views, dtype=torch.float32)[None] * (360.0 / n_views)
    az = (az + 180.0) % 360.0 - 180.0

    def rep(x: Tensor) -> Tensor:
        return x.repeat_interleave(n_views)

    return Cameras(rep(el), az.reshape(-1), rep(dist), rep(fov))


@GUIDANCE.register("mvdream")
class MVDreamGuidance(StableDiffusionGuidance):
    """Latent-space multi-view SDS. Images come in groups of ``cfg.n_views`` consecutive views."""

    def __init__(self, cfg: GuidanceConfig, device: str | torch.device = "cpu") -> None:
        if cfg.n_views < 1:
            raise ValueError(f"guidance.n_views must be at least 1, got {cfg.n_views}")
        super().__init__(cfg, device=device)
        self.n_views = int(cfg.n_views)
        self._cameras: Cameras | None = None

    def _load_unet(self, path: str, dtype: torch.dtype) -> torch.nn.Module:
        from dreamcs.generate.guidance.mvdream_unet import MultiViewUNet

        return MultiViewUNet.from_pretrained(path, subfolder="unet", torch_dtype=dtype)

    def latent_shape(self) -> tuple[int, int]:
        factor = 2 ** (len(self.vae.config.block_out_channels) - 1)
        return int(self.unet.config.in_channels), self.cfg.image_size // factor

    # -- the pipeline's camera hook ----------------------------------------------------------------
    def sample_cameras(self, render: Any, step: int) -> Cameras:
        """``render.batch_size`` cameras (a multiple of n_views) in groups at orthogonal azimuths;
        remembered for the next :meth:`sds_loss`."""
        b = int(render.batch_size)
        if b % self.n_views:
            raise ValueError(f"render.batch_size={b}: mvdream guidance needs a multiple of n_views={self.n_views}")
        self._cameras = orthogonal_cameras(b // self.n_views, self.n_views, render.elevation_range,
                                           render.azimuth_range, render.distance_range, render.fov_range)
        return self._cameras

    def encode_prompts(self, prompts: str | Sequence[str],
                       view_suffixes: Sequence[str | None] | None = None) -> TextConditioning:
        """As the base class, but without view suffixes: MVDream is told the view by its camera."""
        n = len(view_suffixes) if view_suffixes else None
        if isinstance(prompts, str) and n:
            prompts = [prompts] * n
        return super().encode_prompts(prompts, None)

    # -- SDS ------------------------------------------------------------------------------------------
    @torch.no_grad()
    def predict_noise_mv(self, noisy: Tensor, t: Tensor, text: TextConditioning, camera: Tensor,
                         scale: float) -> tuple[Tensor, Tensor]:
        """noisy (B, 4, h, w), t (B,), camera (B, 16) -> (eps_hat, eps_cond), each (B, 4, h, w)."""
        b = noisy.shape[0]
        x_in = torch.cat([noisy, noisy]).to(self.dtype)
        out = self.unet(x_in, torch.cat([t, t]), torch.cat([text.cond, text.uncond]).to(self.dtype),
                        camera=torch.cat([camera, camera]).to(self.device, self.dtype),
                        num_frames=self.n_views).float()
        if self.prediction_type == "v_prediction":
            ab = self.alphas_cumprod[torch.cat([t, t])].view(-1, 1, 1, 1)
            out = ab.sqrt() * out + (1 - ab).sqrt() * x_in.float()
        eps_c, eps_u = out[:b], out[b:]
        return eps_u + scale * (eps_c - eps_u), eps_c

    def sds_loss(self, images: Tensor, text: TextConditioning, step: int, guidance_scale: float | None = None,
                 as_latents: bool = False, cameras: Cameras | None = None) -> dict[str, Any]:
        """Multi-view SDS on images (B, H, W, C), B = groups of n_views; the cameras are the ones
        :meth:`sample_cameras` drew last (or ``cameras``). Returns what the base class returns."""
        cams = cameras if cameras is not None else self._cameras
        b, v = images.shape[0], self.n_views
        if cams is None or len(cams) != b:
            raise ValueError(f"mvdream sds_loss: {b} images need {b} cameras from sample_cameras() "
                             f"(got {None if cams is None else len(cams)})")
        if b % v or len(text) != b:
            raise ValueError(f"mvdream sds_loss: {b} images, {len(text)} texts; need a multiple of {v} for both")
        scale = self.cfg.guidance_scale if guidance_scale is None else guidance_scale
        latents = (self.images_as_latents(images) if as_latents else self.encode_images(images)).float()
        bad = ~torch.isfinite(latents)
        n_bad = int(bad.sum())
        latents = torch.where(bad, torch.zeros_like(latents), latents) if n_bad else latents
        lo, hi = self.timestep_range(step)
        # one timestep per sample, shared by its views (MVDream trains and samples the views jointly)
        t = torch.randint(lo, hi + 1, (b // v,), dtype=torch.long).repeat_interleave(v).to(latents.device)
        noise = torch.randn(latents.shape, dtype=latents.dtype).to(latents.device)
        with torch.no_grad():
            ab = self.alphas_cumprod[t].view(-1, 1, 1, 1)
            noisy = ab.sqrt() * latents.detach() + (1 - ab).sqrt() * noise
            eps_hat, eps_c = self.predict_noise_mv(noisy, t, text, camera_embedding(cams), scale)
            if self.cfg.recon_loss:
                x0 = (noisy - (1 - ab).sqrt() * eps_hat) / ab.sqrt()
                if self.cfg.recon_std_rescale > 0:
                    x0_c = (noisy - (1 - ab).sqrt() * eps_c) / ab.sqrt()
                    std_c = x0_c.view(-1, v, *x0_c.shape[1:]).std(dim=(1, 2, 3, 4)) + 1e-8
                    std = x0.view(-1, v, *x0.shape[1:]).std(dim=(1, 2, 3, 4)) + 1e-8
                    factor = (std_c / std).repeat_interleave(v).view(-1, 1, 1, 1)
                    r = self.cfg.recon_std_rescale
                    x0 = r * x0 * factor + (1 - r) * x0
                grad = latents.detach() - x0
            else:
                grad = self.weight(t).view(-1, 1, 1, 1) * (eps_hat - noise)
            finite = torch.isfinite(grad)
            n_bad += int((~finite).sum())
            grad = torch.where(finite, grad, torch.zeros_like(grad))
        loss = 0.5 * F.mse_loss(latents, (latents - grad).detach(), reduction="sum") / b
        return {"loss_sds": loss, "grad_norm": grad.norm().detach(), "t": t.detach(), "min_step": lo,
                "max_step": hi, "n_nonfinite": n_bad, "grad": grad}

