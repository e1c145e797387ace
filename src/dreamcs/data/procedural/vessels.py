"""Lathe-turned vessels: vases, bottles, mugs and cups, bowls, teapots.

A hollow vessel is a thick-walled lathe (outer profile up, rim, inner profile down: watertight);
a thin vessel may instead be a single open sheet (``closed=False``), as many real models are.
"""

from __future__ import annotations

import numpy as np

from dreamcs.data.procedural.catalog import register
from dreamcs.data.procedural.parts import Assembly, Style, arc, lathe, sphere, tube, ycylinder
from dreamcs.data.procedural.words import caption

CERAMIC = ("ceramic", "porcelain", "glass", "clay", "terracotta")


def radius_curve(
    rng: np.random.Generator,
    n: int,
    r_base: float,
    r_belly: float,
    r_neck: float,
    r_rim: float,
    belly_at: float,
    neck_at: float,
):
    """(n,) radii at heights t in [0, 1] through base, belly, neck and rim: a smooth vase/bottle outline."""
    t = np.linspace(0, 1, n)
    knots_t = np.array([0.0, belly_at, neck_at, 1.0])
    knots_r = np.array([r_base, r_belly, r_neck, r_rim])
    from scipy.interpolate import PchipInterpolator  # monotone between knots: no overshoot

    return t, PchipInterpolator(knots_t, knots_r)(t)


def shell_profile(t, r, height: float, wall: float, floor: float):
    """A closed (r, y) profile of a hollow vessel: out along the base, up the outside, over the
    rim, down the inside to the floor, back to the axis."""
    outer = [(0.0, 0.0)] + [(ri, ti * height) for ti, ri in zip(t, r, strict=True)]
    inner = [
        (max(ri - wall, 0.2 * wall), max(ti * height, floor))
        for ti, ri in zip(t[::-1], r[::-1], strict=True)
        if ti * height >= floor
    ]
    return outer + inner + [(0.0, floor)]


@register("vase", "urn", "amphora")
def vase(rng: np.random.Generator, style: Style):
    asm = Assembly()
    H = rng.uniform(0.2, 0.6)
    rb = rng.uniform(0.05, 0.12)
    belly = rng.uniform(0.06, 0.2)
    neck = rng.uniform(0.03, belly)
    rim = rng.uniform(neck, max(neck * 1.8, neck + 0.01))
    t, r = radius_curve(
        rng, 2 * style.rings + 2, rb, belly, neck, rim, rng.uniform(0.25, 0.55), rng.uniform(0.7, 0.9)
    )
    asm.add(
        "body",
        lathe(
            shell_profile(t, r, H, rng.uniform(0.006, 0.015), 0.015),
            style.sections * 2 if style.detail > 1 else style.sections,
        ),
    )
    handles = rng.random() < 0.2
    if handles:
        for sx in (-1, 1):
            y0, y1 = 0.85 * H, 0.55 * H
            x0, x1 = sx * (np.interp(0.85, t, r) - 0.005), sx * (np.interp(0.55, t, r) - 0.005)
            mid = [sx * (max(abs(x0), abs(x1)) + 0.05), (y0 + y1) / 2, 0]
            pts = np.array(
                [
                    [x0, y0, 0],
                    [(x0 + mid[0]) / 2, y0 + 0.02, 0],
                    mid,
                    [(x1 + mid[0]) / 2, y1 - 0.02, 0],
                    [x1, y1, 0],
                ]
            )
            asm.add("handle", tube(pts, 0.008, max(6, style.sections // 2)))
    width = 2 * r.max()
    shape = ["tall", "slender"] if H > 2.2 * width else (["short", "wide"] if H < 1.1 * width else [])
    shape.append("round" if belly > 1.5 * max(rb, rim) else "")
    noun = (
        "amphora"
        if handles and rng.random() < 0.5
        else str(rng.choice(["vase", "vase", "urn"] if not handles else ["vase"]))
    )
    cap = caption(
        rng,
        noun,
        [s for s in shape if s],
        CERAMIC,
        ["two handles"] if handles else [],
        low_poly=style.low_poly,
    )
    return asm, cap, {"height": H, "width": width, "handles": handles}


@register("bottle", "wine bottle", "flask", "jar")
def bottle(rng: np.random.Generator, style: Style):
    asm = Assembly()
    kind = str(rng.choice(["wine", "water", "flask", "jar"]))
    H = {
        "wine": rng.uniform(0.28, 0.34),
        "water": rng.uniform(0.2, 0.3),
        "flask": rng.uniform(0.15, 0.22),
        "jar": rng.uniform(0.1, 0.2),
    }[kind]
    R = {
        "wine": 0.037,
        "water": rng.uniform(0.03, 0.045),
        "flask": rng.uniform(0.05, 0.07),
        "jar": rng.uniform(0.04, 0.08),
    }[kind]
    neck = {
        "wine": 0.014,
        "water": 0.013,
        "flask": rng.uniform(0.01, 0.015),
        "jar": R * rng.uniform(0.7, 0.9),
    }[kind]
    shoulder = {"wine": rng.uniform(0.55, 0.65), "water": rng.uniform(0.6, 0.8), "flask": 0.45, "jar": 0.9}[
        kind
    ]
    neck_start = {"wine": 0.78, "water": 0.85, "flask": 0.75, "jar": 0.94}[kind]
    n = style.rings
    prof = [(0.0, 0.0), (R * 0.95, 0.0), (R, 0.01)]
    if kind == "flask":  # a round-bottomed flask: a sphere-like belly
        a = np.linspace(-np.pi / 2 + 0.3, np.pi / 2 - 0.5, n + 2)
        prof = [(0.0, 0.0)] + [(R * np.cos(x), R + R * np.sin(x)) for x in a]
    else:
        prof.append((R, shoulder * H))
        for k in range(1, n + 1):  # the shoulder curves in to the neck
            s = k / n
            prof.append(
                (
                    R + (neck - R) * (1 - np.cos(s * np.pi / 2)) ** 0.8,
                    shoulder * H + (neck_start - shoulder) * H * np.sin(s * np.pi / 2),
                )
            )
    prof += [(neck, neck_start * H), (neck, H), (0.0, H)]
    asm.add("body", lathe(prof, style.sections))
    capped = rng.random() < 0.6
    if capped:
        ch = {"jar": 0.03}.get(kind, 0.025)
        asm.add("cap", ycylinder(neck * 1.12, ch, [0, H - ch * 0.6, 0], style.sections))
    tall = H > 4 * R
    shape = ["tall"] if tall else (["short", "wide"] if H < 2.6 * R else [])
    noun = {"wine": "wine bottle", "water": "bottle", "flask": "round flask", "jar": "jar"}[kind]
    cap = caption(
        rng,
        noun,
        shape,
        ("glass", "plastic"),
        ["a cap" if kind != "jar" else "a lid"] if capped else [],
        low_poly=style.low_poly,
    )
    return asm, cap, {"kind": kind, "height": H, "radius": R, "capped": capped}


@register("mug", "cup", "teacup", "tumbler")
def mug(rng: np.random.Generator, style: Style):
    asm = Assembly()
    kind = str(rng.choice(["mug", "teacup", "tumbler"], p=[0.5, 0.3, 0.2]))
    H = {
        "mug": rng.uniform(0.09, 0.12),
        "teacup": rng.uniform(0.05, 0.07),
        "tumbler": rng.uniform(0.09, 0.14),
    }[kind]
    rb = {
        "mug": rng.uniform(0.035, 0.045),
        "teacup": rng.uniform(0.02, 0.03),
        "tumbler": rng.uniform(0.025, 0.035),
    }[kind]
    rt = {
        "mug": rb * rng.uniform(1.0, 1.1),
        "teacup": rng.uniform(0.04, 0.05),
        "tumbler": rb * rng.uniform(1.1, 1.35),
    }[kind]
    t = np.linspace(0, 1, style.rings)
    r = rb + (rt - rb) * (np.sin(t * np.pi / 2) if kind == "teacup" else t)
    asm.add(
        "body",
        lathe(
            shell_profile(t, r, H, rng.uniform(0.003, 0.006), 0.006),
            style.sections * 2 if style.detail > 1 else style.sections,
        ),
    )
    with_: list[str] = []
    handle = kind != "tumbler" and rng.random() < 0.9
    if handle:  # a C-shaped tube whose ends sink into the wall
        ht, hb = 0.8 * H, 0.25 * H
        rx_t, rx_b = np.interp(0.8, t, r) - 0.002, np.interp(0.25, t, r) - 0.002
        reach = rng.uniform(0.025, 0.04)
        c = np.array([(rx_t + rx_b) / 2 + 0.002, (ht + hb) / 2, 0.0])
        pts = arc(c, 1.0, np.pi / 2, -np.pi / 2, 2 + style.rings)
        pts[:, 0] = c[0] + reach * np.cos(np.linspace(np.pi / 2, -np.pi / 2, len(pts))) * 1.0
        pts[:, 1] = c[1] + (ht - hb) / 2 * np.sin(np.linspace(np.pi / 2, -np.pi / 2, len(pts)))
        pts[0, 0], pts[-1, 0] = rx_t, rx_b
        asm.add("handle", tube(pts, rng.uniform(0.004, 0.007), max(6, style.sections // 2)))
        with_.append("a handle")
    saucer = kind == "teacup" and rng.random() < 0.5
    if saucer:
        R = rt * 1.7
        prof = [(0, -0.012), (R * 0.5, -0.012), (R, -0.002), (R, 0.0), (R * 0.5, -0.008), (0, -0.008)]
        asm.add("saucer", lathe(prof, style.sections * 2 if style.detail > 1 else style.sections))
        with_.append("a saucer")
    noun = {"mug": str(rng.choice(["mug", "coffee mug", "cup"])), "teacup": "teacup", "tumbler": "cup"}[kind]
    shape = ["tall"] if H > 3 * rb and kind == "tumbler" else []
    if kind == "tumbler" and not handle:
        with_.append("no handle")
    cap = caption(rng, noun, shape, CERAMIC + ("enamel",), with_, low_poly=style.low_poly)
    return asm, cap, {"kind": kind, "handle": handle, "saucer": saucer, "height": H}


@register("bowl", "dish", "basin")
def bowl(rng: np.random.Generator, style: Style):
    asm = Assembly()
    R = rng.uniform(0.06, 0.15)
    depth = R * rng.uniform(0.3, 0.8)
    n = style.rings + 2
    a = np.linspace(0, 1, n)
    foot = R * rng.uniform(0.3, 0.5)
    r = foot + (R - foot) * np.sin(a * np.pi / 2) ** rng.uniform(0.6, 1.2)
    thin = rng.random() < 0.35
    secs = style.sections * 2 if style.detail > 1 else style.sections
    if thin:  # a single sheet, open at the rim: not watertight, as many real models
        prof = [(0.0, 0.0)] + [(ri, ai * depth) for ai, ri in zip(a, r, strict=True)]
        asm.add("body", lathe(prof, secs, closed=False), closed=False)
    else:
        asm.add("body", lathe(shell_profile(a, r, depth, R * rng.uniform(0.04, 0.1), depth * 0.1), secs))
    footed = not thin and rng.random() < 0.4
    if footed:
        asm.add("foot", ycylinder(foot * 0.9, depth * 0.12, [0, -depth * 0.1, 0], secs))
    shape = ["shallow", "wide"] if depth < 0.45 * R else (["deep"] if depth > 0.65 * R else [])
    cap = caption(
        rng,
        str(rng.choice(["bowl", "bowl", "dish"] if depth < 0.45 * R else ["bowl"])),
        shape,
        CERAMIC + ("wooden", "metal"),
        ["a foot ring"] if footed else [],
        low_poly=style.low_poly,
    )
    return asm, cap, {"radius": R, "depth": depth, "thin_sheet": thin, "footed": footed}


@register("teapot", "kettle")
def teapot(rng: np.random.Generator, style: Style):
    asm = Assembly()
    R, H = rng.uniform(0.07, 0.1), rng.uniform(0.09, 0.16)
    n = style.rings + 2
    a = np.linspace(-np.pi / 2, np.pi / 2, n)
    squash = rng.uniform(0.0, 0.4)
    prof = [(0.0, 0.0)] + [
        (R * 0.6 + R * 0.4 * np.cos(x) * (1 + squash * np.cos(x)) / (1 + squash), H / 2 + H / 2 * np.sin(x))
        for x in a[1:-1]
    ]
    lid_r = R * rng.uniform(0.45, 0.6)
    prof += [(lid_r, H), (0.0, H)]
    secs = style.sections * 2 if style.detail > 1 else style.sections
    asm.add("body", lathe(prof, secs))
    asm.add(
        "lid",
        lathe([(0, H - 0.003), (lid_r * 1.05, H - 0.003), (lid_r * 0.8, H + 0.012), (0, H + 0.018)], secs),
    )
    asm.add("knob", sphere(0.01 + 0.004 * rng.random(), [0, H + 0.022, 0], style.sphere_subdiv))
    # spout on +x, handle on -x: tubes starting inside the body
    s0 = np.array([R * 0.8, H * 0.35, 0.0])
    tip = np.array([R + rng.uniform(0.05, 0.08), H * rng.uniform(0.85, 1.1), 0.0])
    ctrl = np.array([tip[0] - 0.01, H * 0.4, 0.0])
    s = np.linspace(0, 1, 3 + style.rings // 2)[:, None]
    spout = (1 - s) ** 2 * s0 + 2 * s * (1 - s) * ctrl + s**2 * tip
    asm.add("spout", tube(spout, np.linspace(0.014, 0.007, len(spout)), max(6, style.sections // 2)))
    hp = arc([-R * 0.95, H * 0.55, 0.0], H * 0.3, np.pi / 2, 3 * np.pi / 2, 3 + style.rings // 2)
    hp[:, 0] = -R * 0.8 - (R * 0.15 + rng.uniform(0.03, 0.05)) * np.cos(
        np.linspace(-np.pi / 2, np.pi / 2, len(hp))
    )
    hp[[0, -1], 0] = -R * 0.8
    asm.add("handle", tube(hp, 0.007, max(6, style.sections // 2)))
    shape = ["squat"] if H < 1.2 * R else ["round"] if H < 1.8 * R else ["tall"]
    noun = str(rng.choice(["teapot", "teapot", "kettle"]))
    cap = caption(
        rng,
        noun,
        shape,
        CERAMIC + ("metal",),
        ["a lid", "a curved spout", "a handle"],
        low_poly=style.low_poly,
    )
    return asm, cap, {"radius": R, "height": H, "squash": squash}
