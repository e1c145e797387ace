"""What a generation run writes, and how a resumed run finds its place again.

    RUN/config.yaml            resolved config (``prompt`` is a top-level key)
    RUN/metrics.jsonl          one record per step
    RUN/checkpoints/           step_*.safetensors (see ``checkpoint.py``)
    RUN/meshes/step_*.obj      intermediate meshes every ``mesh_every`` steps
    RUN/final.obj, final.glb   the final mesh (with vertex colours when the field has colours)
    RUN/textured.{obj,mtl,glb} + material_0.png   a baked UV texture (``texture_size`` > 0)
    RUN/turntable.png          a strip of views around the final mesh (coloured with colours)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from dreamcs.config import config_to_dict
from dreamcs.utils import atomic_write_text, read_jsonl

# keys a resumed run may change without invalidating its checkpoint
RESUMABLE_CHANGES = {"steps", "device", "save_every", "mesh_every", "texture_size", "render.backend",
                     "nerf.backend"}


def to_trimesh(verts: torch.Tensor, faces: torch.Tensor, colors: torch.Tensor | None = None) -> Any:
    """verts (V, 3), faces (F, 3), optional colours (V, 3) in [0, 1] -> an unprocessed
    ``trimesh.Trimesh`` (vertex order kept; colours as uint8 RGBA vertex colours)."""
    import trimesh

    vc = None
    if colors is not None:
        rgb = (colors.detach().cpu().float().clamp(0, 1).numpy() * 255.0 + 0.5).astype("uint8")
        vc = np.concatenate([rgb, np.full((rgb.shape[0], 1), 255, np.uint8)], 1)
    return trimesh.Trimesh(
        vertices=verts.detach().cpu().double().numpy(), faces=faces.detach().cpu().numpy(), process=False,
        validate=False, vertex_colors=vc,
    )


def write_mesh(verts: torch.Tensor, faces: torch.Tensor, path: str | Path, colors: torch.Tensor | None = None) -> Path:
    """Write a mesh atomically (format from the extension: .obj, .glb, .ply); ``colors`` (V, 3)
    in [0, 1] become vertex colours (GLB ``COLOR_0``, PLY ``red/green/blue``, OBJ ``v x y z r g b``)."""
    from dreamcs.mesh import save_mesh

    if faces.shape[0] == 0 and str(path).lower().endswith(".obj"):
        # trimesh writes bare "v" / "f" lines for an empty mesh, which no reader parses; a comment
        # reads back as "no faces found" with the file named
        atomic_write_text(Path(path), "# dreamcs: empty mesh (the generated surface vanished)\n")
        return Path(path)
    return save_mesh(to_trimesh(verts, faces, colors), path)


def check_resume_config(run_dir: Path, cfg: Any) -> None:
    """Raise ``ValueError`` naming the keys where ``cfg`` differs from the run's saved config."""
    saved_path = run_dir / "config.yaml"
    if not saved_path.is_file():
        return
    saved = yaml.safe_load(saved_path.read_text(encoding="utf-8")) or {}
    now = config_to_dict(cfg)

    def flat(d: dict, prefix: str = "") -> dict[str, Any]:
        out = {}
        for k, v in d.items():
            key = f"{prefix}{k}"
            out.update(flat(v, key + ".") if isinstance(v, dict) else {key: v})
        return out

    a, b = flat(saved), flat(now)
    diff = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k) and k not in RESUMABLE_CHANGES)
    if diff:
        raise ValueError(f"{saved_path}: cannot resume with a different config; changed: {', '.join(diff)}")


def truncate_metrics(path: Path, step: int) -> list[dict[str, Any]]:
    """Keep the records of steps < ``step`` (a resumed run rewrites the rest); returns them."""
    import json

    records = [r for r in read_jsonl(path) if int(r.get("step", -1)) < step]
    atomic_write_text(path, "".join(json.dumps(r) + "\n" for r in records))
    return records
