"""Houses and castles/towers. Fronts (door, gate) face +z."""

from __future__ import annotations

import numpy as np

from dreamcs.data.procedural.catalog import register
from dreamcs.data.procedural.parts import Assembly, Style, box, hull, lathe, ycone, ycylinder
from dreamcs.data.procedural.words import caption, number, plural

STONE = ("stone", "brick", "wooden", "white")


def gable_roof(w: float, d: float, y: float, h: float, over: float):
    """A triangular prism roof along z over a w x d footprint at height y, ridge h above."""
    x, z, f = w / 2 + over, d / 2 + over, 0.25  # f: fascia depth, so the eaves are not a razor edge
    pts = [[s * x, y + dy, sz * z] for s in (-1, 1) for dy in (-f, 0.0) for sz in (-1, 1)]
    return hull(pts + [[0, y + h, -z], [0, y + h, z]])


def hip_roof(w: float, d: float, y: float, h: float, over: float):
    """A hipped roof: the ridge is shorter than the house, every side slopes."""
    x, z = w / 2 + over, d / 2 + over
    r = max(z - x, 0.0) if d > w else 0.0
    eaves = [[s * x, y + dy, sz * z] for s in (-1, 1) for dy in (-0.25, 0.0) for sz in (-1, 1)]
    return hull(eaves + [[0, y + h, -r], [0, y + h, r + 1e-3]])


def windows_on_front(asm: Assembly, xs, y: float, z: float, ww: float, wh: float) -> None:
    for x in xs:
        asm.add("window", box([ww, wh, 0.08], [x, y, z], "sharp"))
        asm.add("window_sill", box([ww + 0.1, 0.06, 0.16], [x, y - wh / 2 - 0.03, z], "sharp"))


@register("house", "cottage", "cabin", "home")
def house(rng: np.random.Generator, style: Style):
    asm = Assembly()
    floors = int(rng.choice([1, 1, 2, 2, 3]))
    fh = rng.uniform(2.6, 3.1)
    w, d = rng.uniform(6, 12), rng.uniform(5, 9)
    H = floors * fh
    asm.add(
        "walls", box([w, H, d], [0, H / 2, 0], style.bevel if style.bevel != "round" else "chamfer", 0.1, 0)
    )
    roof = str(rng.choice(["gable", "hip", "flat"], p=[0.55, 0.3, 0.15]))
    rh = rng.uniform(0.3, 0.6) * min(w, d)
    over = rng.uniform(0.1, 0.6)
    if roof == "gable":
        asm.add("roof", gable_roof(w, d, H, rh, over))
    elif roof == "hip":
        asm.add(
            "roof",
            hip_roof(d, w, H, rh, over).apply_transform(
                [[0, 0, 1, 0], [0, 1, 0, 0], [-1, 0, 0, 0], [0, 0, 0, 1]]
            ),
        )
    else:
        asm.add("roof", box([w + 2 * over, 0.3, d + 2 * over], [0, H + 0.15, 0], "sharp"))
    dx = rng.uniform(-w / 4, w / 4)
    asm.add("door", box([1.0, 2.1, 0.1], [dx, 1.05, d / 2 + 0.03], "sharp"))
    with_ = [
        f"{'a' if roof != 'hip' else 'a'} {'gabled' if roof == 'gable' else 'hipped' if roof == 'hip' else 'flat'} roof"
    ]
    n_win = int(rng.integers(2, 5))
    ww, wh = rng.uniform(0.8, 1.4), rng.uniform(1.0, 1.5)
    xs = [x for x in np.linspace(-w / 2 + 1, w / 2 - 1, n_win) if abs(x - dx) > 0.5 + ww / 2 + 0.2]
    windows_on_front(asm, xs, fh * 0.55, d / 2 + 0.02, ww, wh)
    for f in range(1, floors):
        windows_on_front(
            asm, np.linspace(-w / 2 + 1, w / 2 - 1, n_win), fh * (f + 0.55), d / 2 + 0.02, ww, wh
        )
    if rng.random() < 0.6 and roof != "flat":
        cx = rng.uniform(-w / 3, w / 3)
        asm.add("chimney", box([0.7, rh + 1.2, 0.7], [cx, H + (rh + 1.2) / 2, -d / 6], "sharp"))
        with_.append("a chimney")
    if rng.random() < 0.35:
        pw = rng.uniform(2.0, 3.5)
        asm.add("porch_roof", box([pw, 0.15, 1.6], [dx, 2.8, d / 2 + 0.8], "sharp"))
        for sx in (-1, 1):
            asm.add(
                "porch_post", box([0.15, 2.8, 0.15], [dx + sx * (pw / 2 - 0.1), 1.4, d / 2 + 1.5], "sharp")
            )
        with_.append("a porch")
    if rng.random() < 0.3:
        asm.add("garage", box([3.2, 2.8, d * 0.9], [w / 2 + 1.6, 1.4, -d * 0.05], "sharp"))
        asm.add("garage_door", box([2.6, 2.2, 0.08], [w / 2 + 1.6, 1.1, d * 0.4 + 0.02], "sharp"))
        with_.append("an attached garage")
    storeys = {1: "single-storey", 2: "two-storey", 3: "three-storey"}[floors]
    noun = (
        "cottage"
        if floors == 1 and w < 8 and rng.random() < 0.5
        else str(rng.choice(["house", "house", "home"]))
    )
    cap = caption(rng, noun, [storeys], STONE, with_, low_poly=style.low_poly)
    return asm, cap, {"floors": floors, "roof": roof, "width": w}


@register("castle", "tower", "fortress", "keep")
def castle(rng: np.random.Generator, style: Style):
    asm = Assembly()
    kind = str(rng.choice(["tower", "castle"]))
    round_towers = rng.random() < 0.6
    secs = max(style.sections, 8)

    def tower(x: float, z: float, r: float, h: float, roof: bool) -> None:
        if round_towers:
            asm.add("tower", ycylinder(r, h, [x, 0, z], secs))
        else:
            asm.add("tower", box([2 * r, h, 2 * r], [x, h / 2, z], "sharp"))
        if roof:
            rh = r * rng.uniform(1.2, 2.5)
            if round_towers:
                asm.add("tower_roof", ycone(r * 1.2, rh, [x, h, z], secs))
            else:
                asm.add(
                    "tower_roof",
                    hull(
                        [
                            [x - r * 1.1, h, z - r * 1.1],
                            [x + r * 1.1, h, z - r * 1.1],
                            [x - r * 1.1, h, z + r * 1.1],
                            [x + r * 1.1, h, z + r * 1.1],
                            [x, h + rh, z],
                        ]
                    ),
                )
        else:  # crenellations: merlons round the top edge
            n = 8 if round_towers else 8
            for k in range(n):
                if round_towers:
                    a = 2 * np.pi * k / n
                    p = [x + np.cos(a) * r * 0.85, h + 0.4, z + np.sin(a) * r * 0.85]
                else:
                    side, t = divmod(k, 2)
                    u = -r * 0.6 + t * 1.2 * r
                    p = [
                        [x + u, h + 0.4, z - r * 0.85],
                        [x + r * 0.85, h + 0.4, z + u],
                        [x - u, h + 0.4, z + r * 0.85],
                        [x - r * 0.85, h + 0.4, z - u],
                    ][side]
                asm.add("merlon", box([r * 0.4, 0.8, r * 0.4], p, "sharp"))

    roofs = rng.random() < 0.5
    if kind == "tower":
        r, h = rng.uniform(2, 4), rng.uniform(12, 25)
        tower(0, 0, r, h, roofs)
        asm.add("door", box([1.4, 2.5, 0.3], [0, 1.25, r], "sharp"))
        n_win = int(rng.integers(1, 4))
        for k in range(n_win):
            asm.add("window", box([0.6, 1.2, 0.3], [0, h * (k + 1) / (n_win + 1.2) + 2, r], "sharp"))
        with_ = ["a conical roof" if roofs and round_towers else "a pointed roof" if roofs else "battlements"]
        shape = ["tall", "round" if round_towers else "square"]
        noun = str(rng.choice(["stone tower", "tower", "castle tower"]))
        n_towers = 1
    else:
        W, D = rng.uniform(20, 35), rng.uniform(15, 30)
        wh = rng.uniform(6, 10)
        tr, th = rng.uniform(2.5, 4), wh * rng.uniform(1.3, 1.8)
        for sz in (-1, 1):
            asm.add("wall", box([W, wh, 1.5], [0, wh / 2, sz * D / 2], "sharp"))
        for sx in (-1, 1):
            asm.add("wall", box([1.5, wh, D], [sx * W / 2, wh / 2, 0], "sharp"))
        for sx in (-1, 1):
            for sz in (-1, 1):
                tower(sx * W / 2, sz * D / 2, tr, th, roofs)
        n_towers = 4
        with_ = [f"{number(n_towers)} {'round' if round_towers else 'square'} towers"]
        if rng.random() < 0.6:  # a central keep
            kr = rng.uniform(3, 5)
            tower(0, -D * 0.1, kr, th * rng.uniform(1.2, 1.6), roofs)
            with_.append("a central keep")
            n_towers += 1
        asm.add("ground", box([W + 2 * tr + 2, 0.5, D + 2 * tr + 2], [0, -0.25, 0], "sharp"))
        asm.add("gate", box([4, 5, 2.2], [0, 2.5, D / 2 + 0.2], "sharp"))
        asm.add(
            "gate_arch",
            lathe([(0, 0), (2, 0), (2, 0.3), (0, 0.3)], secs)
            .apply_transform([[1, 0, 0, 0], [0, 0, 1, 0], [0, -1, 0, 0], [0, 0, 0, 1]])
            .apply_translation([0, 5, D / 2 + 1.3]),
        )
        with_.append("a gate")
        shape = []
        noun = str(rng.choice(["castle", "castle", "fortress"]))
    if roofs:
        with_.append(plural(asm.count("tower_roof"), "pointed roof") if asm.count("tower_roof") > 1 else "")
    cap = caption(
        rng,
        noun,
        shape,
        ("stone", "grey stone", "medieval", "sandstone"),
        [w for w in with_ if w],
        low_poly=style.low_poly,
    )
    return asm, cap, {"kind": kind, "round_towers": round_towers, "roofs": roofs, "n_towers": n_towers}
