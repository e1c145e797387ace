"""Optional nvdiffrast backend for the z-buffer (CUDA). Imported only when chosen.

Only the discrete face ids come from nvdiffrast; the differentiable shading stays in
:func:`dreamcs.render.renderer.shade`, so both backends give the same gradients.
"""

from __future__ import annotations

import torch

_CONTEXTS: dict[str, object] = {}


def available() -> bool:
    """True when nvdiffrast imports and a CUDA device exists."""
    try:
        import nvdiffrast.torch  # noqa: F401
    except ImportError:
        return False
    return torch.cuda.is_available()


@torch.no_grad()
def rasterize_face_ids_nvdiffrast(
    ndc: torch.Tensor, faces: torch.Tensor, height: int, width: int, near: float = 1e-3, far: float = 100.0
) -> torch.Tensor:
    """Face ids (B, H, W) long (-1 background) for NDC points (B, V, 3) = (x, y, depth)."""
    try:
        import nvdiffrast.torch as dr
    except ImportError as e:
        raise ImportError("backend='nvdiffrast' needs the nvdiffrast package (and a CUDA GPU)") from e
    if ndc.device.type != "cuda":
        raise ValueError("backend='nvdiffrast' needs tensors on a CUDA device")
    key = str(ndc.device)
    if key not in _CONTEXTS:
        _CONTEXTS[key] = dr.RasterizeCudaContext(device=ndc.device)
    z = ndc[..., 2]
    clip = torch.stack(
        [ndc[..., 0] * z, ndc[..., 1] * z, (z * (far + near) - 2 * far * near) / (far - near), z], -1
    )
    rast, _ = dr.rasterize(
        _CONTEXTS[key], clip.float().contiguous(), faces.int().contiguous(), (height, width)
    )
    # nvdiffrast's row 0 is clip y = -1 (the bottom); ours is the top
    return (rast[..., 3].round().long() - 1).flip(1)
