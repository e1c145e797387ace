"""A labelled contact sheet: one row per category, one rendered view per seed, for eyeballing."""

from __future__ import annotations

import io
import os
import textwrap
from pathlib import Path

import numpy as np


def contact_sheet(
    out: str | os.PathLike,
    categories: tuple[str, ...] | None = None,
    seeds: tuple[int, ...] = tuple(range(6)),
    resolution: int = 160,
    azimuth: float = 35.0,
    elevation: float = 30.0,
) -> Path:
    """Render ``make_object(category, seed)`` for every pair into a grid PNG at ``out``.

    Rows are categories, columns seeds; each cell is labelled with the object id and the start
    of its caption. The view looks from the front-right (azimuth 35 degrees).
    """
    import torch
    from PIL import Image, ImageDraw

    from dreamcs.data.procedural import CATEGORIES, make_object
    from dreamcs.render.cameras import Cameras
    from dreamcs.render.renderer import render
    from dreamcs.utils import atomic_write_bytes

    cats = tuple(categories or CATEGORIES)
    label_h = 48
    cw, ch = resolution, resolution + label_h
    sheet = Image.new("RGB", (cw * len(seeds), ch * len(cats)), "white")
    draw = ImageDraw.Draw(sheet)
    cam = Cameras(torch.tensor([elevation]), torch.tensor([azimuth]), torch.tensor(3.6), torch.tensor(50.0))
    for r, cat in enumerate(cats):
        for c, seed in enumerate(seeds):
            obj = make_object(cat, seed)
            v = torch.as_tensor(np.asarray(obj.mesh.vertices, np.float32))
            f = torch.as_tensor(np.asarray(obj.mesh.faces, np.int64))
            # one-sided light: a wrongly wound face shows dark
            img = render(v, f, cam, resolution, background=(1.0, 1.0, 1.0), two_sided=False)["image"][
                0
            ].clamp(0, 1)
            sheet.paste(Image.fromarray((img.numpy() * 255 + 0.5).astype(np.uint8)), (c * cw, r * ch))
            lines = [
                f"{obj.object_id} ({len(obj.mesh.faces)} faces)",
                *textwrap.wrap(obj.caption, resolution // 6),
            ]
            for k, line in enumerate(lines[: label_h // 12]):
                draw.text((c * cw + 3, r * ch + resolution + 12 * k), line, fill="black")
    buf = io.BytesIO()
    sheet.save(buf, format="PNG")
    return atomic_write_bytes(out, buf.getvalue())
