"""Household and outdoor objects: umbrellas, buckets, barrels, wine glasses, chess pieces,
ladders, bicycles."""

from __future__ import annotations

import numpy as np

from dreamcs.data.procedural.catalog import register
from dreamcs.data.procedural.parts import Assembly, Style, arc, box, cylinder, lathe, sphere, tube, ycylinder
from dreamcs.data.procedural.vessels import shell_profile
from dreamcs.data.procedural.words import caption, plural


@register("umbrella", "parasol")
def umbrella(rng: np.random.Generator, style: Style):
    asm = Assembly()
    R, H = rng.uniform(0.45, 0.7), rng.uniform(0.8, 1.1)
    ribs = int(rng.choice([6, 8, 8, 10, 12]))
    dome = rng.uniform(0.15, 0.35) * R
    closed_canopy = rng.random() < 0.4
    # canopy: a shallow dome sheet with one section per rib, so it reads as panels
    k = max(3, style.rings)
    a = np.linspace(0, 1, k)
    prof = [(R * x, H - dome * x**2) for x in a][::-1]  # listed from the rim up: normals face up/out
    if closed_canopy:
        # a thin solid: out along the underside, back along the top (counter-clockwise in (r, y))
        prof = (
            [(0.0, H - dome - 0.01)]
            + [(R * x * 0.999, H - dome * x**2 - 0.008) for x in a[1:]]
            + [(R * x, H - dome * x**2) for x in a[::-1][:-1]]
            + [(0.0, H)]
        )
        asm.add("canopy", lathe(prof, ribs * (2 if style.detail > 1 else 1)))
    else:
        asm.add("canopy", lathe(prof, ribs * (2 if style.detail > 1 else 1), closed=False), closed=False)
    asm.add("shaft", ycylinder(0.01, H + 0.06, [0, 0.08, 0], max(6, style.sections // 2)))
    asm.add("tip", sphere(0.015, [0, H + 0.14, 0], style.sphere_subdiv))
    for j in range(ribs):
        t = 2 * np.pi * (j + 0.5) / ribs
        d = np.array([np.cos(t), 0, np.sin(t)])
        asm.add(
            "rib",
            cylinder(0.004, [0, H * 0.75, 0] + d * 0.012, d * R * 0.55 + [0, H - dome * 0.3 - 0.01, 0], 4),
        )
    hooked = rng.random() < 0.6
    if hooked:  # a J handle
        hp = arc([0.04, 0.08, 0], 0.04, np.pi, 2 * np.pi, 3 + style.rings)
        asm.add("handle", tube(np.concatenate([[[0, 0.2, 0]], hp]), 0.012, max(6, style.sections // 2)))
    else:
        asm.add("handle", ycylinder(0.018, 0.14, [0, 0.0, 0], max(6, style.sections // 2)))
    with_ = [plural(ribs, "rib"), "a curved handle" if hooked else "a straight handle"]
    cap = caption(
        rng,
        "umbrella",
        ["open"],
        ("nylon", "striped", "polka-dot"),
        with_,
        low_poly=style.low_poly,
        p_colour=0.6,
    )
    return asm, cap, {"ribs": ribs, "hooked": hooked, "radius": R}


@register("bucket", "pail")
def bucket(rng: np.random.Generator, style: Style):
    asm = Assembly()
    H, rb = rng.uniform(0.22, 0.35), rng.uniform(0.1, 0.14)
    rt = rb * rng.uniform(1.1, 1.35)
    t = np.linspace(0, 1, 3)
    asm.add(
        "body",
        lathe(
            shell_profile(t, rb + (rt - rb) * t, H, 0.006, 0.008),
            style.sections * 2 if style.detail > 1 else style.sections,
        ),
    )
    handle = rng.random() < 0.8
    if handle:  # a wire bail from ear to ear over the top
        up = rng.uniform(0.05, 0.15)
        e = rt - 0.004
        hp = arc([0, H * 0.9, 0], e, 0, np.pi, 4 + style.rings)
        hp[:, 1] = H * 0.9 + np.sin(np.linspace(0, np.pi, len(hp))) * (e * 0.6 + up)
        asm.add("handle", tube(hp, 0.004, 6))
        for sx in (-1, 1):
            asm.add("ear", sphere(0.012, [sx * e, H * 0.9, 0], 1))
    shape = ["tapered"] if rt > 1.2 * rb else []
    cap = caption(
        rng,
        str(rng.choice(["bucket", "pail"])),
        shape,
        ("metal", "plastic", "galvanised steel", "wooden"),
        ["a handle"] if handle else [],
        low_poly=style.low_poly,
    )
    return asm, cap, {"height": H, "handle": handle}


@register("barrel", "cask", "keg")
def barrel(rng: np.random.Generator, style: Style):
    asm = Assembly()
    H, r = rng.uniform(0.8, 1.1), rng.uniform(0.28, 0.38)
    bulge = rng.uniform(1.05, 1.2)
    n = style.rings + 2
    y = np.linspace(0, H, n)
    rr = r + (bulge - 1) * r * np.sin(np.pi * y / H)
    prof = [(0.0, 0.0)] + list(zip(rr, y, strict=True)) + [(0.0, H)]
    secs = (
        max(style.sections, 8) if rng.random() < 0.5 else int(rng.choice([12, 16, 20]))
    )  # coarse sections read as staves
    asm.add("body", lathe(prof, secs))
    n_hoops = int(rng.choice([2, 3, 4]))
    hy = [H * 0.08, H * 0.92] + ([H * 0.35, H * 0.65] if n_hoops == 4 else [H * 0.5] if n_hoops == 3 else [])
    for yy in hy:
        ri = r + (bulge - 1) * r * np.sin(np.pi * yy / H)
        asm.add("hoop", ycylinder(ri + 0.008, 0.04, [0, yy - 0.02, 0], secs))
    on_side = rng.random() < 0.2
    if on_side:  # lying on its side: turn everything about z
        for p in asm.parts:
            p.mesh.apply_transform(np.array([[0, -1, 0, 0], [1, 0, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1.0]]))
    with_ = [plural(n_hoops, "metal hoop")]
    cap = caption(
        rng,
        str(rng.choice(["barrel", "wooden barrel", "cask"])),
        ["lying"] if on_side else [],
        ("oak",),
        with_,
        low_poly=style.low_poly,
        p_colour=0.2,
    )
    return asm, cap, {"height": H, "hoops": n_hoops, "on_side": on_side}


@register("wine_glass", "wine glass", "goblet", "champagne flute", "glass")
def wine_glass(rng: np.random.Generator, style: Style):
    asm = Assembly()
    kind = str(rng.choice(["wine", "flute", "goblet", "martini"]))
    stem = {"wine": 0.08, "flute": 0.07, "goblet": 0.05, "martini": 0.08}[kind] * rng.uniform(0.8, 1.2)
    cup_h = {"wine": 0.1, "flute": 0.15, "goblet": 0.08, "martini": 0.07}[kind] * rng.uniform(0.85, 1.15)
    cup_r = {"wine": 0.045, "flute": 0.028, "goblet": 0.05, "martini": 0.065}[kind] * rng.uniform(0.85, 1.15)
    foot = min(cup_r, 0.045) * rng.uniform(0.75, 1.0)
    k = max(4, style.rings)
    s = np.linspace(0, 1, k)
    if kind == "martini":
        outer = [(0.004 + cup_r * x, stem + cup_h * x) for x in s]
    else:
        bowl = np.sin(s * np.pi * (0.6 if kind == "wine" else 0.5))
        outer = [
            (0.004 + cup_r * (b if kind != "flute" else 0.6 + 0.4 * b), stem + cup_h * x)
            for x, b in zip(s, bowl, strict=True)
        ]
    wall = 0.002
    inner = [(max(r_ - wall, 0.001), y) for r_, y in outer[::-1] if y > stem + 0.01]
    prof = (
        [(0.0, 0.0), (foot, 0.0), (foot, 0.003), (foot * 0.85, 0.006), (0.005, 0.012), (0.004, stem)]
        + outer
        + inner
        + [(0.0, stem + 0.01)]
    )
    asm.add("glass", lathe(prof, style.sections * 2 if style.detail > 1 else style.sections))
    noun = {
        "wine": "wine glass",
        "flute": "champagne flute",
        "goblet": "goblet",
        "martini": "cocktail glass",
    }[kind]
    shape = ["tall"] if stem + cup_h > 4 * cup_r else []
    cap = caption(
        rng,
        noun,
        shape,
        ("crystal", "clear glass"),
        ["a long stem" if stem > 0.075 else "a short stem"],
        low_poly=style.low_poly,
        p_colour=0.2,
    )
    return asm, cap, {"kind": kind, "stem": stem}


@register("chess_piece", "chess piece", "pawn", "rook", "king", "queen", "bishop")
def chess_piece(rng: np.random.Generator, style: Style):
    asm = Assembly()
    kind = str(rng.choice(["pawn", "rook", "king", "queen", "bishop"]))
    b = rng.uniform(0.9, 1.1)
    base = [(0.0, 0.0), (0.5 * b, 0.0), (0.5 * b, 0.08), (0.42 * b, 0.12), (0.4 * b, 0.18), (0.28 * b, 0.24)]
    H = {"pawn": 1.0, "rook": 1.2, "bishop": 1.5, "queen": 1.8, "king": 1.9}[kind] * rng.uniform(0.95, 1.05)
    neck = [
        (0.16 * b, 0.3 * H + 0.2),
        (0.12 * b, 0.65 * H),
        (0.3 * b, 0.68 * H),
        (0.3 * b, 0.72 * H),
        (0.14 * b, 0.75 * H),
    ]
    secs = style.sections * 2 if style.detail > 1 else style.sections
    if kind == "pawn":
        prof = base + neck[:4] + [(0.1 * b, 0.74 * H), (0.0, 0.74 * H)]
        asm.add("body", lathe(prof, secs))
        asm.add("head", sphere(0.2 * b, [0, 0.86 * H, 0], style.sphere_subdiv))
    elif kind == "rook":
        prof = base + [
            (0.26 * b, 0.3 * H),
            (0.22 * b, 0.75 * H),
            (0.32 * b, 0.8 * H),
            (0.32 * b, H),
            (0.0, H),
        ]
        asm.add("body", lathe(prof, secs))
        for j in range(4):  # merlons on the crown
            t = 2 * np.pi * j / 4
            asm.add(
                "merlon",
                box(
                    [0.12 * b, 0.12, 0.12 * b],
                    [np.cos(t) * 0.25 * b, H + 0.05, np.sin(t) * 0.25 * b],
                    "sharp",
                ),
            )
    else:
        top = {"bishop": 0.85, "queen": 0.85, "king": 0.82}[kind] * H
        prof = base + neck + [(0.2 * b, top - 0.05), (0.24 * b, top), (0.0, top + 0.02)]
        asm.add("body", lathe(prof, secs))
        if kind == "bishop":
            asm.add("mitre", sphere([0.17 * b, 0.25, 0.17 * b], [0, top + 0.15, 0], style.sphere_subdiv))
            asm.add("finial", sphere(0.06, [0, top + 0.42, 0], style.sphere_subdiv))
        elif kind == "queen":
            asm.add(
                "crown", lathe([(0.0, top), (0.26 * b, top), (0.3 * b, top + 0.2), (0.0, top + 0.14)], secs)
            )
            asm.add("finial", sphere(0.08, [0, top + 0.22, 0], style.sphere_subdiv))
        else:
            asm.add(
                "crown", lathe([(0.0, top), (0.24 * b, top), (0.2 * b, top + 0.18), (0.0, top + 0.2)], secs)
            )
            asm.add("cross", box([0.06, 0.3, 0.06], [0, top + 0.33, 0], "sharp"))
            asm.add("cross", box([0.2, 0.06, 0.06], [0, top + 0.38, 0], "sharp"))
    noun = f"chess {kind}" if rng.random() < 0.6 else f"{kind} chess piece"
    cap = caption(
        rng, noun, [], ("wooden", "marble", "ivory", "ebony"), [], low_poly=style.low_poly, p_colour=0.4
    )
    return asm, cap, {"kind": kind}


@register("ladder", "stepladder")
def ladder(rng: np.random.Generator, style: Style):
    asm = Assembly()
    H, W = rng.uniform(1.5, 3.0), rng.uniform(0.35, 0.5)
    rungs = int(round(H / rng.uniform(0.25, 0.32))) - 1
    step = rng.random() < 0.4
    round_rungs = rng.random() < 0.5
    lean = 0.18 * H if step else 0.0
    for sx in (-1, 1):  # the front pair of rails (leaning back when it is a stepladder)
        asm.add(
            "rail",
            box([0.05, H, 0.03], [sx * W / 2, H / 2, 0], style.bevel, 0.008, style.detail)
            if not step
            else cylinder(0.02, [sx * W / 2, 0, lean], [sx * W / 2 * 0.9, H, 0], 6),
        )
    for j in range(rungs):
        y = H * (j + 1) / (rungs + 1)
        z = lean * (1 - y / H)
        w = W * (1 - 0.1 * y / H if step else 1)
        if round_rungs and not step:
            asm.add("rung", cylinder(0.015, [-w / 2, y, z], [w / 2, y, z], max(6, style.sections // 2)))
        else:
            asm.add("rung", box([w, 0.025, 0.08 if step else 0.03], [0, y, z], "sharp"))
    if step:
        for sx in (-1, 1):
            asm.add(
                "back_leg", cylinder(0.02, [sx * W / 2, 0, -lean], [sx * W / 2 * 0.9, H - 0.02, -0.03], 6)
            )
        asm.add("top_step", box([W, 0.04, 0.2], [0, H + 0.02, -0.04], "sharp"))
    noun = "stepladder" if step else "ladder"
    cap = caption(
        rng,
        noun,
        ["tall"] if H > 2.4 else [],
        ("wooden", "aluminium", "metal"),
        [plural(rungs, "step" if step else "rung")],
        low_poly=style.low_poly,
    )
    return asm, cap, {"height": H, "rungs": rungs, "step": step}


@register("bicycle", "bike")
def bicycle(rng: np.random.Generator, style: Style):
    asm = Assembly()
    wr = rng.uniform(0.3, 0.36)
    wb = rng.uniform(1.0, 1.15)  # wheelbase along z
    tire = rng.uniform(0.015, 0.03)
    from trimesh import creation

    rear, front = np.array([0, wr, -wb / 2]), np.array([0, wr, wb / 2])
    for c in (rear, front):
        t = creation.torus(
            wr, tire, major_sections=max(12, style.sections * 2), minor_sections=max(4, style.sections // 3)
        )
        t.apply_transform(
            np.array([[0, 0, 1, 0], [0, 1, 0, 0], [-1, 0, 0, 0], [0, 0, 0, 1.0]])
        )  # ring in the y-z plane
        asm.add("wheel", t.apply_translation(c))
        asm.add("hub", cylinder(0.03, c - [0.04, 0, 0], c + [0.04, 0, 0], 8))
        n_sp = 8 if style.detail < 2 else 12
        for j in range(n_sp):  # spokes from hub to rim (each overlaps both)
            a = 2 * np.pi * j / n_sp
            d = np.array([0, np.sin(a), np.cos(a)])
            hub_end = c + d * 0.02 + [0.02 * (-1) ** j, 0, 0]  # from alternate hub flanges: no shared vertex
            asm.add("spoke", cylinder(0.003, hub_end, c + d * (wr - tire * 0.5), 3))
    bb = np.array([0, wr * 0.9, -0.05])  # bottom bracket
    seat = np.array([0, wr + 0.55, -0.2])
    head = np.array([0, wr + 0.5, wb / 2 - 0.2])
    step_through = rng.random() < 0.3
    fr = 0.018
    tubes = [(bb, seat), (bb, head if not step_through else head - [0, 0.3, 0.05]), (bb, rear), (seat, rear)]
    if not step_through:
        tubes.append((seat - [0, 0.05, 0], head))
    for p0, p1 in tubes:
        asm.add("frame", cylinder(fr, p0, p1, max(6, style.sections // 2)))
    asm.add("fork", cylinder(fr, head + [0, 0.1, 0], front, max(6, style.sections // 2)))
    asm.add("saddle", sphere([0.07, 0.03, 0.13], seat + [0, 0.06, -0.02], style.sphere_subdiv))
    asm.add("seat_post", cylinder(0.013, seat, seat + [0, 0.06, 0], 6))
    bars = head + [0, 0.12, 0]
    asm.add(
        "handlebar", cylinder(0.012, bars - [0.25, 0, 0], bars + [0.25, 0, 0], max(6, style.sections // 2))
    )
    asm.add("stem", cylinder(0.014, head, bars, 6))
    basket = rng.random() < 0.25
    if basket:
        asm.add(
            "basket",
            box([0.3, 0.2, 0.25], [0, bars[1] - 0.05, bars[2] + 0.18], "chamfer", 0.02, style.detail),
        )
    with_ = (
        ["two wheels"]
        + (["a front basket"] if basket else [])
        + (["a step-through frame"] if step_through else [])
    )
    cap = caption(
        rng,
        str(rng.choice(["bicycle", "bike"])),
        [],
        ("metal", "carbon"),
        with_,
        low_poly=style.low_poly,
        p_colour=0.6,
    )
    return asm, cap, {"step_through": step_through, "basket": basket, "wheel_radius": wr}
