"""Lamps, street lamps and doors."""

from __future__ import annotations

import numpy as np

from dreamcs.data.procedural.catalog import register
from dreamcs.data.procedural.parts import Assembly, Style, box, cylinder, lathe, sphere, tube, ycylinder
from dreamcs.data.procedural.words import caption, plural

METALS = ("metal", "brass", "black metal", "chrome")


def shade(
    rng: np.random.Generator, style: Style, r_top: float, r_bottom: float, h: float, y0: float, open_: bool
):
    """A lampshade from height ``y0``: an open truncated cone (a sheet, no caps) or a closed drum."""
    if open_:
        return lathe(
            [(r_bottom, y0), (r_top, y0 + h)],
            style.sections * 2 if style.detail > 1 else style.sections,
            closed=False,
        )
    return lathe(
        [(0, y0), (r_bottom, y0), (r_top, y0 + h), (0, y0 + h)],
        style.sections * 2 if style.detail > 1 else style.sections,
    )


@register("lamp", "floor lamp", "desk lamp", "table lamp")
def lamp(rng: np.random.Generator, style: Style):
    asm = Assembly()
    kind = str(rng.choice(["floor", "table", "desk"]))
    H = {"floor": rng.uniform(1.4, 1.8), "table": rng.uniform(0.35, 0.6), "desk": rng.uniform(0.35, 0.5)}[
        kind
    ]
    square_base = rng.random() < 0.3
    br = rng.uniform(0.1, 0.2) if kind == "floor" else rng.uniform(0.06, 0.1)
    if square_base:
        asm.add("base", box([2 * br, 0.03, 2 * br], [0, 0.015, 0], style.bevel, 0.01, style.detail))
    else:
        asm.add("base", lathe([(0, 0), (br, 0), (br * 0.9, 0.03), (0, 0.035)], style.sections))
    with_: list[str] = []
    open_shade = rng.random() < 0.5
    if kind == "desk":  # an articulated arm ending in a cone head pointing down
        elbow = np.array([0.0, H * 0.55, -0.05])
        head = np.array([0.0, H * 0.9, H * rng.uniform(0.35, 0.5)])
        asm.add("arm", tube([[0, 0.02, 0], elbow, head], 0.012, max(6, style.sections // 2)))
        asm.add("joint", sphere(0.022, elbow, style.sphere_subdiv))
        hr = rng.uniform(0.06, 0.09)
        asm.add(
            "shade",
            shade(rng, style, 0.025, hr, 0.1, head[1] - 0.08, open_shade).apply_translation([0, 0, head[2]]),
            closed=not open_shade,
        )
        with_.append("an adjustable arm")
        shape_word = "conical"
    else:
        pr = 0.012 if kind == "floor" else 0.015
        if kind == "table" and rng.random() < 0.5:  # a turned ceramic body instead of a pole
            bh = H * 0.55
            asm.add(
                "body",
                lathe(
                    [(0, 0.03), (br * 0.9, 0.03), (br * 1.2, bh * 0.5), (0.03, bh), (0, bh)], style.sections
                ),
            )
            asm.add("pole", ycylinder(pr, H - bh, [0, bh - 0.01, 0], style.sections))
            with_.append("a vase-shaped base")
        else:
            asm.add("pole", ycylinder(pr, H - 0.03, [0, 0.03, 0], style.sections))
        sh = rng.uniform(0.2, 0.35) if kind == "floor" else rng.uniform(0.15, 0.25)
        rb = rng.uniform(0.15, 0.25) if kind == "floor" else rng.uniform(0.1, 0.16)
        cone = rng.random() < 0.6
        rt = rb * rng.uniform(0.5, 0.75) if cone else rb
        asm.add("shade", shade(rng, style, rt, rb, sh, H - sh * 0.8, open_shade), closed=not open_shade)
        asm.add("bulb", sphere(0.03, [0, H - sh * 0.5, 0], style.sphere_subdiv))
        if open_shade:  # a harp: spokes from the pole top to the shade's upper rim hold the shade
            n_sp = int(rng.choice([2, 3, 4]))
            yt = H - sh * 0.8 + sh * 0.97
            for k in range(n_sp):
                a = 2 * np.pi * k / n_sp
                rim = [np.cos(a) * rt * 0.98, yt, np.sin(a) * rt * 0.98]
                asm.add("harp", cylinder(0.004, [0, H - 0.01, 0], rim, 5))
        shape_word = "conical" if cone else "drum"
    with_.insert(0, f"a {shape_word} shade")
    if square_base:
        with_.append("a square base")
    noun = {"floor": "floor lamp", "table": "table lamp", "desk": "desk lamp"}[kind]
    shape = ["tall"] if kind == "floor" else []
    cap = caption(rng, noun, shape, METALS, with_, low_poly=style.low_poly)
    return asm, cap, {"kind": kind, "height": H, "open_shade": open_shade}


@register("street_lamp", "street lamp", "lamp post", "street light")
def street_lamp(rng: np.random.Generator, style: Style):
    asm = Assembly()
    H = rng.uniform(3.5, 6.0)
    pr = rng.uniform(0.05, 0.09)
    asm.add(
        "foot", lathe([(0, 0), (pr * 2.5, 0), (pr * 2.2, 0.3), (pr * 1.3, 0.5), (0, 0.5)], style.sections)
    )
    asm.add("pole", lathe([(0, 0.45), (pr * 1.2, 0.45), (pr * 0.8, H), (0, H)], style.sections))
    n_arms = int(rng.choice([0, 1, 1, 2]))
    kind = str(rng.choice(["lantern", "cobra", "globe"])) if n_arms else str(rng.choice(["lantern", "globe"]))
    heads = []
    if n_arms == 0:
        heads.append(np.array([0.0, H, 0.0]))
    for k in range(n_arms):
        sx = 1 if k == 0 else -1
        reach = rng.uniform(0.6, 1.2)
        curl = rng.uniform(0.1, 0.5)
        s = np.linspace(0, 1, 3 + style.rings)
        path = np.c_[sx * reach * s, H - 0.3 + 0.3 * np.sin(s * np.pi) * curl + 0.3 * s, np.zeros_like(s)]
        asm.add("arm", tube(path, pr * 0.5, max(6, style.sections // 2)))
        heads.append(path[-1])
    for hp in heads:
        if kind == "lantern":
            asm.add(
                "lantern",
                lathe(
                    [(0, -0.35), (0.08, -0.35), (0.16, -0.1), (0.18, 0.0), (0, 0.08)],
                    4 if rng.random() < 0.5 else style.sections,
                    base=hp,
                ),
            )
            asm.add("lantern_cap", lathe([(0, 0.02), (0.2, 0.02), (0.0, 0.2)], style.sections, base=hp))
        elif kind == "globe":
            asm.add("globe", sphere(0.18, hp + [0, 0.15, 0], style.sphere_subdiv))
        else:  # cobra head: a flattened, forward-pointing cap
            asm.add(
                "head",
                sphere([0.25, 0.07, 0.13], hp + [0.12 * np.sign(hp[0] or 1), -0.03, 0], style.sphere_subdiv),
            )
    with_ = [plural(n_arms, "arm")] if n_arms else []
    head_word = {"lantern": "a lantern", "globe": "a globe light", "cobra": "a curved head"}[kind]
    if n_arms == 2:
        head_word = {"lantern": "two lanterns", "globe": "two globe lights", "cobra": "two curved heads"}[
            kind
        ]
    with_.append(head_word)
    cap = caption(
        rng,
        str(rng.choice(["street lamp", "lamp post", "street light"])),
        ["tall"] if H > 5 else [],
        ("cast iron",) + METALS,
        with_,
        low_poly=style.low_poly,
    )
    return asm, cap, {"height": H, "n_arms": n_arms, "head": kind}


@register("door", "front door", "gate")
def door(rng: np.random.Generator, style: Style):
    asm = Assembly()
    W, H, T = rng.uniform(0.8, 1.0), rng.uniform(1.95, 2.2), rng.uniform(0.035, 0.06)
    double = rng.random() < 0.2
    leaves = 2 if double else 1
    lw = W / leaves
    rows = int(rng.choice([0, 1, 2, 3]))
    cols = int(rng.choice([1, 2])) if rows else 0
    window = rng.random() < 0.3
    handle = str(rng.choice(["knob", "lever"]))
    frame = rng.random() < 0.6
    for k in range(leaves):
        x = -W / 2 + lw * (k + 0.5)
        asm.add("leaf", box([lw - 0.004, H, T], [x, H / 2, 0], style.bevel, 0.006, style.detail))
        top = H - 0.12
        if window:
            wh = H * 0.3
            ww, wy = lw * 0.6, top - wh / 2
            asm.add("window", box([ww, wh, T * 0.4], [x, wy, 0], "sharp"))  # the glass, set into the leaf
            for sz in (-1, 1):  # a moulding round the glass on both faces, and a cross bar
                for dx, dy, sx_, sy_ in (
                    (0, wh / 2, ww + 0.06, 0.03),
                    (0, -wh / 2, ww + 0.06, 0.03),
                    (ww / 2, 0, 0.03, wh),
                    (-ww / 2, 0, 0.03, wh),
                ):
                    asm.add(
                        "window_frame",
                        box([sx_, sy_, 0.02], [x + dx, wy + dy, sz * (T / 2 + 0.005)], "sharp"),
                    )
                asm.add("window_bar", box([ww, 0.02, 0.014], [x, wy, sz * (T / 2 + 0.002)], "sharp"))
            top -= wh + 0.1
        if rows:
            ph = (top - 0.15) / rows - 0.08
            pw = (lw - 0.2) / cols - 0.08 * (cols - 1) / cols
            for r in range(rows):
                for c in range(cols):
                    px = x - (lw - 0.2) / 2 + (pw + 0.08) * c + pw / 2
                    py = 0.15 + (ph + 0.08) * r + ph / 2
                    for sz in (-1, 1):
                        bev = "chamfer" if style.bevel == "sharp" else style.bevel  # raised, bevelled panels
                        asm.add("panel", box([pw, ph, 0.03], [px, py, sz * T / 2], bev, 0.012, style.detail))
        hx = x + (lw / 2 - 0.08) * (1 if k == 0 else -1)  # by the free edge; double doors meet in the middle
        for sz in (-1, 1):
            if handle == "knob":
                asm.add("knob", sphere(0.03, [hx, 1.0, sz * (T / 2 + 0.04)], style.sphere_subdiv))
                asm.add(
                    "knob_stem", cylinder(0.008, [hx, 1.0, sz * T / 2], [hx, 1.0, sz * (T / 2 + 0.03)], 6)
                )
            else:
                asm.add(
                    "lever",
                    box(
                        [0.13, 0.02, 0.02], [hx - 0.05 * np.sign(hx or 1), 1.0, sz * (T / 2 + 0.04)], "sharp"
                    ),
                )
                asm.add("lever_rose", box([0.05, 0.08, 0.02], [hx, 1.0, sz * (T / 2 + 0.01)], "sharp"))
    if frame:
        fw = 0.08
        for sx in (-1, 1):
            asm.add("frame", box([fw, H + fw, T * 2], [sx * (W / 2 + fw / 2), (H + fw) / 2, 0], "sharp"))
        asm.add("frame", box([W + 2 * fw, fw, T * 2], [0, H + fw / 2, 0], "sharp"))
    with_: list[str] = []
    if rows:
        with_.append(plural(rows * cols * leaves, "panel"))
    if window:
        with_.append("a window" if leaves == 1 else "windows")
    with_.append("a round knob" if handle == "knob" else "a lever handle")
    if frame:
        with_.append("a frame")
    noun = "double door" if double else str(rng.choice(["door", "front door"]))
    cap = caption(rng, noun, [], ("wooden", "oak", "white-painted", "metal"), with_, low_poly=style.low_poly)
    return (
        asm,
        cap,
        {
            "double": double,
            "panels": rows * cols * leaves,
            "window": window,
            "frame": frame,
            "handle": handle,
        },
    )
