"""Trees, mushrooms and cacti: organic shapes from tubes, lathes and (jittered) spheres."""

from __future__ import annotations

import numpy as np

from dreamcs.data.procedural.catalog import register
from dreamcs.data.procedural.parts import (
    Assembly,
    Style,
    capsule,
    hull,
    lathe,
    sphere,
    tube,
    ycone,
    ycylinder,
)
from dreamcs.data.procedural.words import caption, plural


def blob(rng: np.random.Generator, radius, center, subdiv: int, jitter: float):
    """An icosphere with smooth radial lumps (a few low-frequency bumps, not per-vertex noise,
    which would read as the "noise" defect)."""
    m = sphere(1.0, (0, 0, 0), subdiv)
    v = np.asarray(m.vertices)
    dirs = rng.normal(size=(5, 3))
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    bumps = np.clip(v @ dirs.T, 0, None) ** 4 @ rng.uniform(0.5, 1.0, 5)
    m.vertices = v * (1 + jitter * 2 * (bumps[:, None] - 0.3))
    m.vertices = m.vertices * np.asarray(radius, float) + np.asarray(center, float)
    return m


@register("tree", "pine", "palm", "oak", "fir")
def tree(rng: np.random.Generator, style: Style):
    asm = Assembly()
    kind = str(rng.choice(["conifer", "broadleaf", "palm", "bare"], p=[0.3, 0.4, 0.15, 0.15]))
    H = rng.uniform(4, 12)
    tr = H * rng.uniform(0.025, 0.05)
    secs = max(6, style.sections // 2 + 2)
    with_: list[str] = []
    if kind == "conifer":
        th = H * 0.25
        asm.add("trunk", ycylinder(tr, th + 0.5, [0, 0, 0], secs))
        tiers = int(rng.integers(2, 6))
        R = H * rng.uniform(0.18, 0.3)
        for k in range(tiers):
            y = th + (H - th) * k / tiers * 0.85
            r = R * (1 - k / (tiers + 0.5))
            asm.add("foliage", ycone(r, (H - th) / tiers * 1.8, [0, y, 0], style.sections))
        shape = ["slender"] if R < 0.22 * H else ["broad"]  # proportions survive normalisation, size does not
        noun, with_ = (
            str(rng.choice(["pine tree", "fir tree", "christmas tree"] if tiers > 2 else ["pine tree"])),
            [plural(tiers, "tier") + " of branches"],
        )
    elif kind == "palm":
        lean = rng.uniform(0.0, 0.25) * H
        s = np.linspace(0, 1, 3 + style.rings)
        path = np.c_[lean * s**2, H * s, np.zeros_like(s)]
        asm.add("trunk", tube(path, np.linspace(tr * 1.3, tr * 0.8, len(s)), secs))
        n = int(rng.integers(5, 10))
        top = path[-1]
        for k in range(n):
            a = 2 * np.pi * k / n + rng.uniform(-0.2, 0.2)
            d = np.array([np.cos(a), 0, np.sin(a)])
            L = H * rng.uniform(0.3, 0.45)
            mid = top + d * L * 0.5 + [0, L * 0.15, 0]
            tip = top + d * L + [0, -L * 0.35, 0]
            side = np.cross(d, [0, 1, 0]) * L * 0.12
            th = np.array([0, L * 0.03, 0])  # thickness, so the leaf has no razor edges
            leaf = np.array([top + d * tr, mid + side, mid - side, tip])
            asm.add("frond", hull(np.concatenate([leaf + th, leaf - th])))
        shape = [] if lean < 0.1 * H else ["leaning"]
        noun = "palm tree"
        with_ = ["a curved trunk"] if lean > 0.1 * H else []
    else:
        th = H * rng.uniform(0.35, 0.5)
        asm.add(
            "trunk", tube([[0, 0, 0], [0, th * 0.6, 0], [0, th + 0.3, 0]], [tr * 1.3, tr, tr * 0.8], secs)
        )
        n_br = int(rng.integers(2, 6))
        tips = []
        for k in range(n_br):
            a = 2 * np.pi * k / n_br + rng.uniform(-0.3, 0.3)
            y0 = th * rng.uniform(0.7, 1.0)
            L = H * rng.uniform(0.2, 0.35)
            tip = np.array([np.cos(a) * L * 0.7, y0 + L * 0.8, np.sin(a) * L * 0.7])
            asm.add(
                "branch",
                tube(
                    [[0, y0, 0], (tip + [0, y0, 0]) / 2 + [0, L * 0.1, 0], tip],
                    [tr * 0.6, tr * 0.45, tr * 0.3],
                    max(5, secs - 2),
                ),
            )
            tips.append(tip)
        if kind == "broadleaf":
            R = H * rng.uniform(0.2, 0.3)
            jitter = rng.uniform(0.0, 0.2)
            crown = np.array([0, th + R * 0.8, 0])
            asm.add("foliage", blob(rng, [R * 1.1, R, R * 1.1], crown, style.sphere_subdiv, jitter))
            for tip in tips[: int(rng.integers(0, len(tips) + 1))]:
                asm.add("foliage", blob(rng, R * rng.uniform(0.5, 0.7), tip, style.sphere_subdiv, jitter))
            shape = ["round", "leafy"]
            noun = str(rng.choice(["tree", "oak tree", "deciduous tree"]))
            with_ = ["a thick crown"] if asm.count("foliage") > 2 else []
        else:
            shape = ["bare", "leafless"]
            noun = "tree"
            with_ = [plural(n_br, "branch", "branches")]
    cap = caption(rng, noun, shape, (), with_, low_poly=style.low_poly, p_colour=0.2)
    return asm, cap, {"kind": kind, "height": H}


@register("mushroom", "toadstool", "fungus")
def mushroom(rng: np.random.Generator, style: Style):
    asm = Assembly()
    n = int(rng.choice([1, 1, 1, 2, 3]))
    spotted = rng.random() < 0.35
    kinds = []
    cr0 = 0.0
    for k in range(n):
        s = 1.0 if k == 0 else rng.uniform(0.4, 0.75)
        H, sr = s * rng.uniform(0.6, 1.2), s * rng.uniform(0.08, 0.15)
        cr = s * rng.uniform(0.3, 0.6)
        cr0 = cr0 or cr
        a = 0.2 + 1.6 * (k - 1)  # the small ones stand beside the first (right, front), caps clear of its cap
        off = np.array([np.cos(a), 0, np.sin(a)]) * (0.0 if k == 0 else (cr0 + cr) * rng.uniform(0.8, 1.0))
        bend = rng.uniform(-0.1, 0.1) * H
        path = np.c_[np.linspace(0, bend, 4), np.linspace(0, H, 4), np.zeros(4)] + off
        asm.add("stem", tube(path, np.linspace(sr * 1.3, sr, 4), max(6, style.sections // 2)))
        kind = str(rng.choice(["dome", "flat", "cone"]))
        kinds.append(kind)
        m = style.rings + 1
        t = np.linspace(0, np.pi / 2, m)
        hgt = {"dome": cr * 0.8, "flat": cr * 0.35, "cone": cr * 1.1}[kind]
        if kind == "cone":
            prof = [(0.0, 0.0)] + [(cr * (1 - i / (m - 1)), hgt * i / (m - 1)) for i in range(m)]
        else:
            prof = [(0.0, 0.0)] + [(cr * np.cos(x), hgt * np.sin(x)) for x in t]
        prof[1] = (cr, 0.0)
        prof[-1] = (0.0, hgt)
        top = path[-1] - [0, hgt * 0.05, 0]
        asm.add(
            "cap", lathe([(0.0, -hgt * 0.1), (cr * 0.9, -hgt * 0.1)] + prof[1:], style.sections, base=top)
        )
        if spotted:
            for _ in range(int(rng.integers(4, 9))):
                u, v = rng.uniform(0, 2 * np.pi), rng.uniform(0.2, 1.1)
                r = cr * np.sin(v) * 0.95 if kind != "cone" else cr * (1 - v / 1.2)
                y = hgt * np.cos(v) * (1 if kind != "cone" else 0) + (hgt * v / 1.2 if kind == "cone" else 0)
                asm.add(
                    "spot",
                    sphere([cr * 0.12, cr * 0.05, cr * 0.12], top + [np.cos(u) * r, y, np.sin(u) * r], 1),
                )
    if n > 1:  # a cluster grows from one mossy mound that joins the stems
        reach = max(
            np.abs(
                np.asarray([p.mesh.vertices[:, [0, 2]].max(0) for p in asm.parts if p.name == "stem"])
            ).max(),
            0.3,
        )
        asm.add("mound", sphere([reach * 1.3, 0.08, reach * 1.3], [0, 0.0, 0], style.sphere_subdiv))
    shape = {"dome": "dome-capped", "flat": "flat-capped", "cone": "cone-capped"}[kinds[0]]
    with_ = ["white spots"] if spotted else []
    if n == 1:
        cap = caption(
            rng,
            str(rng.choice(["mushroom", "mushroom", "toadstool"])),
            [shape],
            (),
            with_,
            low_poly=style.low_poly,
        )
    else:
        cap = caption(
            rng, f"cluster of {plural(n, 'mushroom')}", [], (), with_, low_poly=style.low_poly, p_colour=0.0
        )
    return asm, cap, {"n": n, "spotted": spotted, "caps": kinds}


@register("cactus", "saguaro")
def cactus(rng: np.random.Generator, style: Style):
    asm = Assembly()
    H = rng.uniform(1.0, 3.0)
    r = H * rng.uniform(0.06, 0.1)
    secs = max(6, style.sections)
    asm.add("trunk", capsule(r, [0, r, 0], [0, H - r, 0], secs))
    n_arms = int(rng.choice([0, 1, 2, 2, 3]))
    for k in range(n_arms):
        a = np.pi * k + rng.uniform(-0.4, 0.4) + (np.pi / 2 if k == 2 else 0)
        d = np.array([np.cos(a), 0, np.sin(a)])
        y0 = H * rng.uniform(0.3, 0.6)
        out = r * rng.uniform(2.0, 3.5)
        up = H * rng.uniform(0.15, 0.3)
        ar = r * rng.uniform(0.6, 0.8)
        asm.add(
            "arm",
            tube(
                [
                    [0, y0, 0],
                    d * out * 0.6 + [0, y0, 0],
                    d * out + [0, y0 + ar, 0],
                    d * out + [0, y0 + up, 0],
                ],
                ar,
                secs,
            ),
        )
        asm.add("arm_tip", sphere(ar, d * out + [0, y0 + up, 0], style.sphere_subdiv))
    potted = rng.random() < 0.4
    if potted:
        pr = r * rng.uniform(1.6, 2.2)
        asm.add(
            "pot",
            lathe(
                [
                    (0, -pr * 1.3),
                    (pr * 0.75, -pr * 1.3),
                    (pr, 0.05),
                    (pr * 1.1, 0.05),
                    (pr * 1.1, 0.2),
                    (0, 0.2),
                ],
                style.sections,
            ),
        )
        asm.add("soil", ycylinder(pr * 0.95, 0.02, [0, 0.2, 0], style.sections))
    with_ = [plural(n_arms, "arm")] if n_arms else []
    if potted:
        with_.append("a pot")
    shape = ["tall", "slender"] if r < 0.07 * H else []
    cap = caption(
        rng,
        str(rng.choice(["cactus", "cactus", "saguaro cactus"])),
        shape,
        (),
        with_,
        low_poly=style.low_poly,
        p_colour=0.3,
    )
    return asm, cap, {"height": H, "n_arms": n_arms, "potted": potted}
