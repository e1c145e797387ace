"""Cars and trucks, airplanes, boats, rockets. Vehicles point their nose along +z."""

from __future__ import annotations

import numpy as np

from dreamcs.data.procedural.catalog import register
from dreamcs.data.procedural.parts import (
    Assembly,
    Style,
    box,
    capsule,
    cylinder,
    hull,
    lathe,
    prism,
    sphere,
    ycylinder,
)
from dreamcs.data.procedural.words import caption, plural

PAINT = ("metallic", "matte", "shiny")


def wheel(style: Style, x: float, z: float, r: float, w: float):
    """A wheel (a cylinder on the x axis) touching the ground at y = 0."""
    return cylinder(r, [x - w / 2, r, z], [x + w / 2, r, z], max(style.sections, 8))


@register("car", "truck", "van", "sedan", "hatchback", "pickup", "suv")
def car(rng: np.random.Generator, style: Style):
    asm = Assembly()
    kind = str(rng.choice(["sedan", "hatchback", "suv", "pickup", "van", "sports"]))
    L = {"sedan": 4.6, "hatchback": 4.0, "suv": 4.7, "pickup": 5.3, "van": 5.0, "sports": 4.4}[
        kind
    ] * rng.uniform(0.92, 1.08)
    W = rng.uniform(1.7, 1.95)
    wr = rng.uniform(0.3, 0.4) if kind not in ("suv", "pickup") else rng.uniform(0.38, 0.45)
    clear = wr * rng.uniform(0.5, 0.8)
    bh = {"sports": 0.45, "van": 0.9}.get(kind, rng.uniform(0.5, 0.7))
    bev = "round" if style.bevel == "sharp" and rng.random() < 0.5 else style.bevel
    asm.add("body", box([W, bh, L], [0, clear + bh / 2, 0], bev, 0.12, style.detail))
    top = clear + bh
    ch = {"sports": 0.4, "van": 0.9}.get(kind, rng.uniform(0.45, 0.6))
    # cabin: a trapezoid prism along z (windscreen slope at the front, rear slope at the back)
    cab = {
        "sedan": (-0.35, 0.2),
        "hatchback": (-0.5, 0.2),
        "suv": (-0.48, 0.28),
        "pickup": (-0.05, 0.3),
        "van": (-0.5, 0.42),
        "sports": (-0.3, 0.1),
    }[kind]
    z0, z1 = cab[0] * L, cab[1] * L
    rake_f, rake_b = (
        rng.uniform(0.3, 0.9) * ch,
        (0.15 if kind in ("hatchback", "suv", "van") else rng.uniform(0.4, 0.9)) * ch,
    )
    side = [(z0, 0.0), (z1, 0.0), (z1 - rake_f, ch), (z0 + rake_b, ch)]
    cabin = prism(side, -W / 2 * 0.9, W / 2 * 0.9)
    cabin.vertices = cabin.vertices[:, [2, 1, 0]] * [0.94 if rng.random() < 0.5 else 1.0, 1, 1] + [
        0,
        top - 0.01,
        0,
    ]
    asm.add("cabin", hull(cabin.vertices))
    n_axles = 3 if kind == "pickup" and rng.random() < 0.15 else 2
    axles = [L * 0.33, -L * 0.32] + ([-L * 0.18] if n_axles == 3 else [])
    for z in axles:
        for sx in (-1, 1):
            asm.add("wheel", wheel(style, sx * (W / 2 - 0.12), z, wr, 0.25))
    with_ = [plural(2 * n_axles, "wheel")]
    if kind == "pickup":  # an open cargo bed behind the cabin: floor and three walls
        bz0, bz1 = -L / 2 + 0.05, z0 - 0.05
        for sx in (-1, 1):
            asm.add(
                "bed_wall",
                box([0.06, 0.4, bz1 - bz0], [sx * (W / 2 - 0.03), top + 0.2, (bz0 + bz1) / 2], "sharp"),
            )
        asm.add("bed_wall", box([W, 0.4, 0.06], [0, top + 0.2, bz0 + 0.03], "sharp"))
        with_.append("an open cargo bed")
    if kind == "sports" and rng.random() < 0.6:
        for sx in (-1, 1):
            asm.add(
                "spoiler_post", box([0.05, 0.25, 0.08], [sx * W * 0.3, top + 0.12, -L / 2 + 0.2], "sharp")
            )
        asm.add("spoiler", box([W * 0.9, 0.04, 0.3], [0, top + 0.26, -L / 2 + 0.2], "sharp"))
        with_.append("a rear spoiler")
    for sx in (-1, 1):  # headlights on the front face
        asm.add(
            "headlight",
            sphere(
                [0.15, 0.07, 0.04],
                [sx * W * 0.32, clear + bh * 0.65, L / 2 - 0.02],
                max(1, style.sphere_subdiv - 1),
            ),
        )
    noun = {
        "sedan": "sedan car",
        "hatchback": "hatchback",
        "suv": "SUV car",
        "pickup": "pickup truck",
        "van": "van",
        "sports": "sports car",
    }[kind]
    if rng.random() < 0.3:
        noun = "car" if kind not in ("pickup", "van") else noun
    cap = caption(rng, noun, [], PAINT, with_, low_poly=style.low_poly, p_colour=0.7)
    return asm, cap, {"kind": kind, "length": L, "n_wheels": 2 * n_axles}


@register("airplane", "plane", "jet", "aircraft", "airliner")
def airplane(rng: np.random.Generator, style: Style):
    asm = Assembly()
    kind = str(rng.choice(["airliner", "jet", "prop"]))
    L = {"airliner": rng.uniform(30, 45), "jet": rng.uniform(14, 20), "prop": rng.uniform(7, 10)}[kind]
    R = L * {"airliner": 0.055, "jet": 0.06, "prop": 0.07}[kind]
    # fuselage: a lathe along y turned to z (nose +z), rounded nose, tapered tail
    n = style.rings
    prof = [(0.0, 0.0)]
    prof += [(R * (0.35 + 0.65 * (k / n) ** 0.7), 0.3 * L * k / n) for k in range(1, n + 1)]
    prof += [(R, 0.75 * L), (R * 0.3, L * 0.98), (0.0, L)]
    fus = lathe(prof, style.sections)
    fus.apply_transform(
        np.array([[1, 0, 0, 0], [0, 0, 1, 0], [0, 1, 0, 0], [0, 0, 0, 1.0]])
    )  # swap y and z: tail at +z
    fus.apply_transform(np.diag([1.0, 1.0, -1.0, 1.0]))  # mirror z: nose at +z
    fus.apply_translation([0, 0, L / 2])
    if fus.volume < 0:
        fus.invert()
    asm.add("fuselage", fus)
    span = (
        L
        * {"airliner": rng.uniform(0.9, 1.1), "jet": rng.uniform(0.6, 0.8), "prop": rng.uniform(1.1, 1.4)}[
            kind
        ]
    )
    chord = L * rng.uniform(0.12, 0.18)
    sweep = {"airliner": 0.3, "jet": 0.45, "prop": 0.02}[kind] * span / 2
    wy = -R * 0.4 if kind != "prop" or rng.random() < 0.5 else R * 0.7
    wz = L * 0.05
    high = wy > 0
    for sx in (-1, 1):
        tip = chord * rng.uniform(0.3, 0.5)
        x0 = sx * R * 0.3  # root inside the fuselage, off the centre line: the two wings share no vertex
        pts = np.array(
            [[x0, 0, 0], [x0, 0, -chord], [sx * span / 2, 0, -sweep - tip], [sx * span / 2, 0, -sweep]]
        )
        asm.add("wing", hull(np.concatenate([pts + [0, wy + R * 0.06, wz], pts + [0, wy - R * 0.06, wz]])))
        ts, tc = span * 0.18, chord * 0.5
        tpts = np.array(
            [
                [x0 * 0.5, 0, 0],
                [x0 * 0.5, 0, -tc],
                [sx * ts, 0, -tc * 0.8 - ts * 0.4],
                [sx * ts, 0, -ts * 0.4],
            ]
        )
        asm.add(
            "stabiliser",
            hull(
                np.concatenate(
                    [tpts + [0, R * 0.1 + 0.04 * R, -L * 0.4], tpts + [0, R * 0.1 - 0.04 * R, -L * 0.4]]
                )
            ),
        )
    fin = np.array([[0, 0, 0], [0, 0, -chord * 0.8], [0, R * 2.2, -chord * 0.9], [0, R * 2.2, -chord * 0.45]])
    asm.add(
        "tail_fin",
        hull(np.concatenate([fin + [R * 0.05, R * 0.5, -L * 0.35], fin + [-R * 0.05, R * 0.5, -L * 0.35]])),
    )
    n_eng = {"airliner": int(rng.choice([2, 2, 4])), "jet": 0, "prop": 1}[kind]
    with_: list[str] = []
    if kind == "airliner":
        offs = [0.3, -0.3] if n_eng == 2 else [0.25, -0.25, 0.55, -0.55]
        for o in offs:
            x = o * span / 2
            z = wz - chord * 0.1 + abs(x) * 0.3 / 0.5 * 0 - sweep * abs(o)
            asm.add(
                "engine",
                cylinder(
                    R * 0.45,
                    [x, wy - R * 0.6, z - chord * 0.5],
                    [x, wy - R * 0.6, z + chord * 0.15],
                    style.sections,
                ),
            )
        with_.append(plural(n_eng, "engine"))
        shape = ["passenger"]
        noun = str(rng.choice(["airliner", "airplane", "plane"]))
    elif kind == "prop":
        asm.add("spinner", sphere(R * 0.45, [0, 0, L / 2 + R * 0.1], style.sphere_subdiv))
        blades = int(rng.choice([2, 3]))
        for k in range(blades):
            a = 2 * np.pi * k / blades
            d = np.array([np.cos(a), np.sin(a), 0.0])
            asm.add(
                "propeller",
                capsule(
                    R * 0.12,
                    d * R * 0.3 + [0, 0, L / 2 + R * 0.25],
                    d * R * 2.2 + [0, 0, L / 2 + R * 0.25],
                    max(6, style.sections // 2),
                ),
            )
        with_.append("a propeller")
        shape = ["small", "high-wing" if high else "low-wing"]
        noun = str(rng.choice(["propeller plane", "airplane"]))
    else:
        shape = ["swept-wing"]
        noun = str(rng.choice(["jet", "fighter jet", "aircraft"]))
    cap = caption(rng, noun, shape, ("white", "silver", "military"), with_, low_poly=style.low_poly)
    return asm, cap, {"kind": kind, "n_engines": n_eng, "span": span}


@register("boat", "sailboat", "ship", "yacht", "rowboat", "motorboat")
def boat(rng: np.random.Generator, style: Style):
    asm = Assembly()
    kind = str(rng.choice(["sail", "motor", "row"]))
    L = {"sail": rng.uniform(8, 14), "motor": rng.uniform(6, 12), "row": rng.uniform(3, 5)}[kind]
    B = L * rng.uniform(0.28, 0.38)
    D = B * rng.uniform(0.35, 0.5)
    # hull: deck outline at y = D (pointed bow at +z), keel line at y = 0: convex
    k = max(3, style.rings)
    t = np.linspace(-1, 1, 2 * k + 1)
    half = B / 2 * np.sqrt(np.clip(1 - ((t + 1) / 2) ** 3, 0, 1)) * np.where(t < -0.8, 0.85, 1)
    deck = np.c_[np.r_[half, -half], np.full(2 * len(t), D), np.r_[t, t] * L / 2]
    keel = np.c_[
        np.r_[half, -half] * 0.15, np.zeros(2 * len(t)), np.r_[t, t] * L / 2 * 0.7
    ]  # shorter: bow and stern rise
    asm.add("hull", hull(np.concatenate([deck, keel])))
    with_: list[str] = []
    if kind == "sail":
        mh = L * rng.uniform(1.0, 1.4)
        mz = L * 0.1
        asm.add("mast", ycylinder(L * 0.012, mh, [0, D, mz], max(6, style.sections // 2)))
        asm.add("boom", cylinder(L * 0.01, [0, D + mh * 0.12, mz], [0, D + mh * 0.12, mz - L * 0.42], 6))
        asm.add(
            "sail",
            prism([(0, D + mh * 0.14), (0, D + mh * 0.97), (-L * 0.4, D + mh * 0.14)], -L * 0.004, L * 0.004)
            .apply_transform(np.array([[0, 0, 1, 0], [0, 1, 0, 0], [1, 0, 0, 0], [0, 0, 0, 1.0]]))
            .apply_translation([0, 0, mz - 0.01]),
        )
        if rng.random() < 0.6:
            asm.add(
                "jib",
                prism(
                    [(mz + L * 0.02, D + mh * 0.85), (mz + L * 0.02, D + mh * 0.08), (L * 0.45, D + 0.05)],
                    -L * 0.004,
                    L * 0.004,
                ).apply_transform(np.array([[0, 0, 1, 0], [0, 1, 0, 0], [1, 0, 0, 0], [0, 0, 0, 1.0]])),
            )
            with_.append("two sails")
        else:
            with_.append("one sail")
        noun = str(rng.choice(["sailboat", "sailing boat", "yacht"]))
    elif kind == "motor":
        cl = L * rng.uniform(0.3, 0.45)
        asm.add(
            "cabin", box([B * 0.7, D * 0.9, cl], [0, D + D * 0.45, -L * 0.05], style.bevel, 0.1, style.detail)
        )
        if rng.random() < 0.5:
            asm.add(
                "windscreen",
                prism(
                    [
                        (L * 0.05 + cl / 2 - 0.1, D * 1.9),
                        (L * 0.05 + cl / 2 + 0.5, D * 0.95),
                        (L * 0.05 + cl / 2 - 0.1, D * 0.95),
                    ],
                    -B * 0.35,
                    B * 0.35,
                )
                .apply_transform(np.array([[0, 0, 1, 0], [0, 1, 0, 0], [1, 0, 0, 0], [0, 0, 0, 1.0]]))
                .apply_translation([0, 0, -L * 0.1]),
            )
        asm.add("motor", box([0.4, 0.8, 0.4], [0, D * 0.6, -L / 2 * 0.92], "chamfer", 0.05, style.detail))
        with_.append("a cabin")
        noun = str(rng.choice(["motorboat", "boat", "speedboat"]))
    else:
        for zs in (-0.2, 0.15):
            asm.add("thwart", box([B * 0.8, 0.05, 0.25], [0, D * 0.75, zs * L], "sharp"))
        for sx in (-1, 1):
            asm.add("oar", capsule(0.03, [sx * B * 0.3, D * 1.1, 0], [sx * B * 1.3, D * 0.1, -L * 0.2], 6))
        with_.append("two oars")
        noun = str(rng.choice(["rowboat", "rowing boat", "small boat"]))
    cap = caption(rng, noun, [], ("wooden", "white fibreglass"), with_, low_poly=style.low_poly)
    return asm, cap, {"kind": kind, "length": L}


@register("rocket", "spaceship", "missile")
def rocket(rng: np.random.Generator, style: Style):
    asm = Assembly()
    R = rng.uniform(0.3, 0.6)
    H = R * rng.uniform(6, 22)
    nose = H * rng.uniform(0.1, 0.25)
    n = style.rings
    conical = rng.random() < 0.4
    staged = rng.random() < 0.4  # a narrower upper stage above an interstage taper
    r_up = R * rng.uniform(0.6, 0.8) if staged else R
    y_st = H * rng.uniform(0.4, 0.6)
    prof = [(0.0, 0.0), (R, 0.0)]
    if staged:
        prof += [(R, y_st), (r_up, y_st + R * 0.6)]
    if conical:
        prof += [(r_up, H - nose), (0.0, H)]
    else:  # ogive: radius falls off as a cosine power
        prof += [
            (r_up * np.cos(np.pi / 2 * k / n) ** 0.7, H - nose + nose * np.sin(np.pi / 2 * k / n))
            for k in range(n)
        ]
        prof += [(0.0, H)]
    asm.add("body", lathe(prof, style.sections))
    n_fins = int(rng.choice([0, 3, 4, 4, 6]))
    fh, fw = H * rng.uniform(0.1, 0.25), R * rng.uniform(0.6, 1.6)
    sweep = rng.uniform(-0.15, 0.4)
    for k in range(n_fins):
        a = 2 * np.pi * k / n_fins
        fin = prism(
            [(R * 0.8, 0.0), (R + fw, -fh * sweep), (R + fw, fh * (0.35 - sweep)), (R * 0.8, fh)],
            -R * 0.04,
            R * 0.04,
        )
        c, s_ = np.cos(a), np.sin(a)
        fin.apply_transform(np.array([[c, 0, -s_, 0], [0, 1, 0, 0], [s_, 0, c, 0], [0, 0, 0, 1.0]]))
        asm.add("fin", fin)
    asm.add(
        "nozzle", lathe([(R * 0.7, -R * 0.6), (R * 0.4, 0.0)], style.sections, closed=False), closed=False
    )
    n_boost = int(rng.choice([0, 0, 2, 4]))
    br, bh = R * rng.uniform(0.3, 0.45), H * rng.uniform(0.3, 0.5)
    for k in range(n_boost):
        a = 2 * np.pi * (k + 0.5) / n_boost
        c = np.array([np.cos(a), 0, np.sin(a)]) * (R + br * 0.9)
        asm.add("booster", lathe([(0, 0), (br, 0), (br, bh * 0.85), (0, bh)], style.sections, base=c))
    with_ = ([plural(n_fins, "fin")] if n_fins else []) + [
        "a conical nose" if conical else "a rounded nose cone"
    ]
    if n_boost:
        with_.append(f"{plural(n_boost, 'side booster')}")
    if staged:
        with_.append("two stages")
    if rng.random() < 0.4:
        asm.add(
            "window",
            sphere([r_up * 0.25, r_up * 0.25, r_up * 0.08], [0, H * 0.7, r_up * 0.97], style.sphere_subdiv),
        )
        with_.append("a round window")
    shape = ["tall", "slender"] if H > 14 * R else ["stubby"] if H < 9 * R else []
    cap = caption(
        rng,
        str(rng.choice(["rocket", "rocket", "spaceship"])),
        shape,
        ("metal", "silver", "toy"),
        with_,
        low_poly=style.low_poly,
    )
    return asm, cap, {"n_fins": n_fins, "height": H, "radius": R, "boosters": n_boost, "staged": staged}
