"""Seating: chairs, stools, benches, sofas. Front faces +z, the seat's back edge is at -z."""

from __future__ import annotations

import numpy as np

from dreamcs.data.procedural.catalog import register
from dreamcs.data.procedural.parts import Assembly, Style, box, capsule, cylinder, lathe, sphere, ycylinder
from dreamcs.data.procedural.words import caption, plural

WOOD = ("wooden", "oak", "pine", "walnut")
METAL = ("metal", "steel", "aluminium")
FABRIC = ("fabric", "leather", "velvet", "upholstered")


def leg(style: Style, kind: str, x: float, z: float, y0: float, y1: float, w: float):
    """One vertical leg of width ``w`` from ``y0`` to ``y1`` at (x, z); kind square|round|tapered|turned."""
    if kind == "square":
        return box([w, y1 - y0, w], [x, (y0 + y1) / 2, z], style.bevel, 0.15 * w, style.detail)
    if kind == "round":
        return ycylinder(w / 2, y1 - y0, [x, y0, z], style.sections)
    h = y1 - y0
    if kind == "tapered":
        prof = [(0, 0), (0.3 * w, 0), (0.5 * w, h), (0, h)]
    else:  # turned: a lathe profile with a bead and a waist
        prof = [
            (0, 0),
            (0.3 * w, 0),
            (0.35 * w, 0.3 * h),
            (0.55 * w, 0.45 * h),
            (0.3 * w, 0.6 * h),
            (0.5 * w, 0.9 * h),
            (0.5 * w, h),
            (0, h),
        ]
    return lathe(prof, style.sections, base=[x, y0, z])


def add_legs(asm: Assembly, style: Style, kind: str, xs, zs, y0: float, y1: float, w: float) -> None:
    for x in xs:
        for z in zs:
            asm.add("leg", leg(style, kind, x, z, y0, y1, w))


def seat_top(style: Style, round_: bool, w: float, d: float, t: float, y: float, z: float = 0.0):
    """A seat or table top: round (a cylinder of diameter w) or rectangular w x d, top face at y."""
    if round_:
        return ycylinder(w / 2, t, [0, y - t, z], max(style.sections, 12) * 2 if style.detail else 10)
    return box([w, t, d], [0, y - t / 2, z], style.bevel, 0.3 * t, style.detail)


@register("chair", "armchair", "office chair", "dining chair")
def chair(rng: np.random.Generator, style: Style):
    asm = Assembly()
    office = rng.random() < 0.2
    w, d = rng.uniform(0.4, 0.55), rng.uniform(0.38, 0.5)
    h, t = rng.uniform(0.4, 0.5), rng.uniform(0.03, 0.08)
    lw = rng.uniform(0.03, 0.06)
    back_kind = str(rng.choice(["solid", "slatted", "ladder"]))
    back_h = rng.uniform(0.3, 0.65)
    arms = rng.random() < 0.35
    round_seat = not office and not arms and rng.random() < 0.25
    with_, shape = [], []
    if round_seat:  # a disc seat; legs and back move inside its outline
        d = w
        asm.add("seat", ycylinder(w / 2, t, [0, h - t, 0], max(style.sections, 12) * 2))
        with_.append("a round seat")
    else:
        asm.add("seat", box([w, t, d], [0, h - t / 2, 0], style.bevel, 0.4 * t, style.detail))
    if office:
        ys = h - t
        asm.add("column", ycylinder(0.03, ys - 0.08, [0, 0.1, 0], style.sections))  # reaches into the seat
        n = int(rng.choice([4, 5]))
        for k in range(n):
            a = 2 * np.pi * k / n
            tip = np.array([np.cos(a) * 0.3, 0.07, np.sin(a) * 0.3])
            asm.add("base_spoke", capsule(0.025, [0, 0.1, 0], tip, max(style.sections, 6)))
            asm.add("wheel", sphere(0.035, tip - [0, 0.035, 0], style.sphere_subdiv))
        with_.append(
            f"a {n}-star base on wheels".replace("4-star", "four-star").replace("5-star", "five-star")
        )
        noun = "office chair"
    else:
        kind = str(rng.choice(["square", "round", "tapered", "turned"]))
        x, z = (w / 2 * 0.6,) * 2 if round_seat else (w / 2 - lw, d / 2 - lw)
        add_legs(asm, style, kind, (-x, x), (-z, z), 0.0, h - t, 2 * lw * 0.8)
        if rng.random() < 0.4:
            for zz in (-z, z):
                asm.add("stretcher", box([2 * x, lw, lw], [0, 0.12, zz], "sharp"))
        noun = "armchair" if arms else str(rng.choice(["chair", "chair", "dining chair"]))
        if kind == "turned":
            shape.append("classic")
    # back: two posts carry the slats/rails, or one solid panel
    by0, by1, bz = h, h + back_h, -d / 2 + (0.08 if round_seat else 0.02)
    w = w * 0.7 if round_seat else w  # the back's width (narrower on a disc seat)
    if back_kind == "solid":
        asm.add("back", box([w, back_h, 0.04], [0, (by0 + by1) / 2, bz], style.bevel, 0.015, style.detail))
        with_.append("a solid back")
    else:
        for sx in (-1, 1):
            asm.add(
                "back_post",
                box(
                    [0.035, back_h, 0.035],
                    [sx * (w / 2 - 0.02), (by0 + by1) / 2, bz],
                    style.bevel,
                    0.01,
                    style.detail,
                ),
            )
        asm.add("back_rail", box([w, 0.06, 0.035], [0, by1 - 0.03, bz], style.bevel, 0.01, style.detail))
        if back_kind == "slatted":
            n = int(rng.integers(2, 6))
            for k in range(n):
                xk = (k + 1) / (n + 1) * (w - 0.04) - (w - 0.04) / 2
                asm.add(
                    "back_slat", box([0.025, back_h - 0.06, 0.02], [xk, (by0 + by1 - 0.06) / 2, bz], "sharp")
                )
            with_.append("a slatted back")
        else:
            n = int(rng.integers(2, 4))
            for k in range(n):
                yk = by0 + (k + 1) / (n + 1) * (back_h - 0.06)
                asm.add("back_rail", box([w, 0.04, 0.025], [0, yk, bz], "sharp"))
            with_.append("a ladder back")
    if back_h > 0.55:
        shape.insert(0, "high-backed")
    if arms:  # never with a round seat, so w is still the seat width here
        for sx in (-1, 1):
            ax = sx * (w / 2 + 0.02)
            asm.add("arm_post", box([0.035, 0.22, 0.035], [ax, h + 0.11, d / 2 - 0.05], "sharp"))
            asm.add("armrest", box([0.05, 0.03, d], [ax, h + 0.23, 0], style.bevel, 0.01, style.detail))
        with_.insert(0, "armrests")
    cap = caption(
        rng, noun, shape, METAL + FABRIC if office else WOOD + METAL, with_, low_poly=style.low_poly
    )
    return (
        asm,
        cap,
        {
            "office": office,
            "round_seat": round_seat,
            "back": back_kind,
            "arms": arms,
            "back_height": back_h,
            "n_legs": asm.count("leg"),
        },
    )


@register("stool", "bar stool", "footstool")
def stool(rng: np.random.Generator, style: Style):
    asm = Assembly()
    tall = rng.random() < 0.5
    h = rng.uniform(0.7, 0.85) if tall else rng.uniform(0.35, 0.5)
    round_ = rng.random() < 0.6
    r = rng.uniform(0.15, 0.22)
    t = rng.uniform(0.03, 0.06)
    n = int(rng.choice([3, 4])) if round_ else 4
    lw = rng.uniform(0.025, 0.045)
    asm.add("seat", seat_top(style, round_, 2 * r, 2 * r, t, h))
    kind = str(rng.choice(["round", "square", "tapered"]))
    splay = rng.uniform(0.0, 0.06)
    for k in range(n):
        a = 2 * np.pi * (k + 0.5) / n
        top = np.array([np.cos(a) * (r - lw), h - t, np.sin(a) * (r - lw)])
        foot = np.array([np.cos(a) * (r - lw + splay), 0.0, np.sin(a) * (r - lw + splay)])
        if kind == "square" and splay < 0.01:
            asm.add("leg", leg(style, "square", top[0], top[2], 0.0, h - t, 2 * lw))
        else:
            asm.add("leg", cylinder(lw, foot, top, style.sections))
    with_ = [plural(n, "leg")]
    if tall and rng.random() < 0.7:
        yr = rng.uniform(0.2, 0.3)
        rr = r - lw + splay * (1 - yr / h)
        for k in range(n):
            a0, a1 = 2 * np.pi * (k + 0.5) / n, 2 * np.pi * (k + 1.5) / n
            p0 = [np.cos(a0) * rr, yr, np.sin(a0) * rr]
            p1 = [np.cos(a1) * rr, yr, np.sin(a1) * rr]
            asm.add("footrest", cylinder(0.012, p0, p1, max(6, style.sections // 2)))
        with_.append("a footrest")
    shape = ["tall" if tall else "short", "round" if round_ else "square"]
    cap = caption(
        rng,
        "bar stool" if tall and rng.random() < 0.5 else "stool",
        shape,
        WOOD + METAL,
        with_,
        low_poly=style.low_poly,
    )
    return asm, cap, {"tall": tall, "round": round_, "n_legs": n, "height": h}


@register("bench", "park bench")
def bench(rng: np.random.Generator, style: Style):
    asm = Assembly()
    L, d, h = rng.uniform(1.1, 1.9), rng.uniform(0.35, 0.5), rng.uniform(0.4, 0.48)
    slats = rng.random() < 0.5
    back = rng.random() < 0.5
    t = 0.04
    if slats:
        n = int(rng.integers(3, 6))
        sd = d / n
        for k in range(n):
            asm.add(
                "seat_slat",
                box(
                    [L, t, sd * 0.8], [0, h - t / 2, -d / 2 + sd * (k + 0.5)], style.bevel, 0.01, style.detail
                ),
            )
    else:
        asm.add(
            "seat", box([L, rng.uniform(0.04, 0.09), d], [0, h - 0.03, 0], style.bevel, 0.02, style.detail)
        )
    panel_ends = rng.random() < 0.4
    if panel_ends:
        for sx in (-1, 1):
            asm.add(
                "end_panel",
                box(
                    [0.05, h - t, d * 0.9],
                    [sx * (L / 2 - 0.1), (h - t) / 2, 0],
                    style.bevel,
                    0.015,
                    style.detail,
                ),
            )
    else:
        kind = str(rng.choice(["square", "round"]))
        add_legs(
            asm,
            style,
            kind,
            (-(L / 2 - 0.08), L / 2 - 0.08),
            (-(d / 2 - 0.05), d / 2 - 0.05),
            0.0,
            h - t,
            0.05,
        )
    with_ = []
    if back:
        bh = rng.uniform(0.25, 0.4)
        for sx in (-1, 1):
            asm.add(
                "back_post",
                box([0.05, bh + 0.05, 0.04], [sx * (L / 2 - 0.08), h + bh / 2, -d / 2 + 0.02], "sharp"),
            )
        nb = int(rng.integers(1, 4))
        for k in range(nb):
            asm.add(
                "back_slat",
                box(
                    [L, bh / (nb + 1), 0.03],
                    [0, h + bh * (k + 0.8) / (nb + 0.3), -d / 2 + 0.02],
                    style.bevel,
                    0.008,
                    style.detail,
                ),
            )
        with_.append("a backrest")
    if slats:
        with_.insert(0, "a slatted seat")
    noun = "park bench" if back and slats else "bench"
    shape = ["long"] if L > 1.6 else []
    cap = caption(rng, noun, shape, WOOD + METAL + ("stone",), with_, low_poly=style.low_poly)
    return asm, cap, {"length": L, "slats": slats, "back": back, "panel_ends": panel_ends}


@register("sofa", "couch", "loveseat")
def sofa(rng: np.random.Generator, style: Style):
    asm = Assembly()
    seats = int(rng.choice([2, 3, 3, 4]))
    sw = rng.uniform(0.5, 0.65)
    d, h = rng.uniform(0.75, 0.95), rng.uniform(0.38, 0.46)
    arms = rng.random() < 0.8
    aw = rng.uniform(0.1, 0.22) if arms else 0.0
    W = seats * sw + 2 * aw
    leg_h = rng.uniform(0.03, 0.15)
    bev, r = ("round", 0.04) if style.bevel == "sharp" and rng.random() < 0.6 else (style.bevel, 0.03)
    asm.add(
        "base", box([W, h - 0.12 - leg_h, d], [0, leg_h + (h - 0.12 - leg_h) / 2, 0], bev, r, style.detail)
    )
    for k in range(seats):
        x = -seats * sw / 2 + sw * (k + 0.5)
        asm.add("seat_cushion", box([sw - 0.01, 0.13, d - 0.2], [x, h - 0.06, 0.09], bev, r, style.detail))
    back_h = rng.uniform(0.3, 0.5)
    asm.add(
        "back",
        box([W, back_h + 0.12, 0.2], [0, h - 0.12 + (back_h + 0.12) / 2, -d / 2 + 0.1], bev, r, style.detail),
    )
    if rng.random() < 0.5:
        for k in range(seats):
            x = -seats * sw / 2 + sw * (k + 0.5)
            asm.add(
                "back_cushion",
                box(
                    [sw - 0.02, back_h * 0.8, 0.12],
                    [x, h + back_h * 0.45, -d / 2 + 0.25],
                    bev,
                    r,
                    style.detail,
                ),
            )
    if arms:
        ah = rng.uniform(0.12, 0.25)
        for sx in (-1, 1):
            asm.add(
                "arm",
                box(  # 5 mm below the base, 1 cm deeper: no corner shared (a vertex merge would be non-manifold)
                    [aw, h - leg_h + ah + 0.005, d + 0.01],
                    [sx * (W - aw) / 2, leg_h - 0.005 + (h - leg_h + ah + 0.005) / 2, 0],
                    bev,
                    r,
                    style.detail,
                ),
            )
    for sx in (-1, 1):
        for sz in (-1, 1):
            asm.add(
                "leg",
                ycylinder(0.025, leg_h + 0.01, [sx * (W / 2 - 0.06), 0, sz * (d / 2 - 0.06)], style.sections),
            )
    chaise = seats >= 3 and rng.random() < 0.3
    if chaise:  # an L-shaped sectional: the right-hand seat runs forward into a chaise
        ext = rng.uniform(0.6, 0.9)
        x = seats * sw / 2 - sw / 2
        zc = d / 2 + ext / 2 - 0.005  # overlaps the base by 5 mm: one touching solid, no shared corner
        bh = h - 0.12 - leg_h
        asm.add("chaise_base", box([sw, bh, ext], [x, leg_h + bh / 2 + 0.002, zc], bev, r, style.detail))
        asm.add("chaise_cushion", box([sw - 0.01, 0.13, ext], [x, h - 0.06, zc + 0.01], bev, r, style.detail))
        for sx in (-1, 1):
            asm.add(
                "leg",
                ycylinder(
                    0.025, leg_h + 0.01, [x + sx * (sw / 2 - 0.06), 0, d / 2 + ext - 0.06], style.sections
                ),
            )
    noun = "loveseat" if seats == 2 and rng.random() < 0.5 else str(rng.choice(["sofa", "couch"]))
    if chaise:
        noun = f"L-shaped sectional {noun}"
    with_ = ["two armrests"] if arms else []
    shape = [f"{['', '', 'two', 'three', 'four'][seats]}-seat"] + ([] if arms else ["armless"])
    cap = caption(rng, noun, shape, FABRIC, with_, low_poly=style.low_poly)
    return asm, cap, {"seats": seats, "arms": arms, "width": W, "chaise": chaise}
