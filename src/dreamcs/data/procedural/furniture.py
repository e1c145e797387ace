"""Tables, desks, beds, bookcases and cabinets. Front faces +z."""

from __future__ import annotations

import numpy as np

from dreamcs.data.procedural.catalog import register
from dreamcs.data.procedural.parts import Assembly, Style, box, lathe, sphere, ycylinder
from dreamcs.data.procedural.seating import METAL, WOOD, add_legs, leg, seat_top
from dreamcs.data.procedural.words import caption, plural


def knob(style: Style, x: float, y: float, z: float, kind: str):
    """A drawer/door pull on the +z face at (x, y, z): a round knob or a bar handle."""
    if kind == "knob":
        return sphere(0.015, [x, y, z + 0.012], max(1, style.sphere_subdiv - 1))
    return box([0.1, 0.015, 0.02], [x, y, z + 0.01], "sharp")


@register("table", "dining table", "coffee table", "side table", "bar table")
def table(rng: np.random.Generator, style: Style):
    asm = Assembly()
    kind = str(rng.choice(["dining", "dining", "coffee", "bar", "side"]))
    h = {
        "dining": rng.uniform(0.7, 0.78),
        "coffee": rng.uniform(0.35, 0.45),
        "bar": rng.uniform(0.95, 1.1),
        "side": rng.uniform(0.5, 0.65),
    }[kind]
    round_ = rng.random() < 0.4
    w = {
        "dining": rng.uniform(1.1, 2.0),
        "coffee": rng.uniform(0.8, 1.3),
        "bar": rng.uniform(0.6, 0.9),
        "side": rng.uniform(0.4, 0.6),
    }[kind]
    d = w if round_ or rng.random() < 0.2 else w * rng.uniform(0.45, 0.7)
    if round_:
        w = d = min(w, 1.4)
    t = rng.uniform(0.025, 0.07)
    asm.add("top", seat_top(style, round_, w, d, t, h))
    support = str(rng.choice(["legs", "legs", "pedestal"] if round_ else ["legs", "legs", "legs", "trestle"]))
    with_: list[str] = []
    if support == "pedestal":
        asm.add(
            "pedestal",
            lathe(
                [
                    (0, 0),
                    (0.28 * w, 0),
                    (0.25 * w, 0.04),
                    (0.06, 0.1),
                    (0.05, h - t - 0.05),
                    (0.1, h - t),
                    (0, h - t),
                ],
                style.sections,
            ),
        )
        shape = ["round", "pedestal"]
        n_legs = 0
    elif support == "trestle":  # two end frames (post, foot, cleat) joined by a stretcher
        px, pw = w / 2 - min(0.2, w * 0.15), rng.uniform(0.06, 0.12)
        for sx in (-1, 1):
            x = sx * px
            asm.add(
                "trestle_post",
                box([pw, h - t - 0.1, pw * 0.6], [x, (h - t) / 2, 0], style.bevel, 0.01, style.detail),
            )
            asm.add("trestle_foot", box([pw, 0.06, d * 0.8], [x, 0.03, 0], style.bevel, 0.01, style.detail))
            asm.add("trestle_cleat", box([pw, 0.05, d * 0.8], [x, h - t - 0.025, 0], "sharp"))
        asm.add("stretcher", box([2 * px, 0.06, 0.04], [0, (h - t) * 0.35, 0], "sharp"))
        shape = ["rectangular", "trestle"] if abs(w - d) > 1e-9 else ["square", "trestle"]
        n_legs = 0
    else:
        lkind = str(rng.choice(["square", "round", "tapered", "turned"]))
        lw = rng.uniform(0.04, 0.08)
        if round_:
            n_legs = int(rng.choice([3, 4]))
            rr = w / 2 * 0.7
            for k in range(n_legs):
                a = 2 * np.pi * (k + 0.5) / n_legs
                asm.add("leg", leg(style, lkind, np.cos(a) * rr, np.sin(a) * rr, 0.0, h - t, lw))
        else:
            n_legs = 4
            add_legs(
                asm, style, lkind, (-(w / 2 - lw), w / 2 - lw), (-(d / 2 - lw), d / 2 - lw), 0.0, h - t, lw
            )
            if rng.random() < 0.5:  # apron under the top
                for sz in (-1, 1):
                    asm.add(
                        "apron", box([w - 2 * lw, 0.08, 0.02], [0, h - t - 0.04, sz * (d / 2 - lw)], "sharp")
                    )
                for sx in (-1, 1):
                    asm.add(
                        "apron", box([0.02, 0.08, d - 2 * lw], [sx * (w / 2 - lw), h - t - 0.04, 0], "sharp")
                    )
        with_.append(plural(n_legs, "leg"))
        shape = ["round" if round_ else ("square" if abs(w - d) < 1e-9 else "rectangular")]
        if kind in ("coffee", "side") and rng.random() < 0.5:
            s = 0.85
            asm.add(
                "lower_shelf",
                seat_top(style, round_, w * s, d * s, 0.02, h * 0.25)
                if not round_
                else ycylinder(w * 0.5 * 0.72, 0.02, [0, h * 0.25, 0], style.sections),
            )
            with_.append("a lower shelf")
    noun = {"dining": "dining table", "coffee": "coffee table", "bar": "bar table", "side": "side table"}[
        kind
    ]
    if rng.random() < 0.3:
        noun = "table"
        shape.insert(0, {"coffee": "low", "bar": "tall", "dining": "large", "side": "small"}[kind])
    cap = caption(rng, noun, shape, WOOD + METAL + ("glass", "marble"), with_, low_poly=style.low_poly)
    return asm, cap, {"kind": kind, "round": round_, "n_legs": n_legs, "support": support, "height": h}


@register("desk", "writing desk", "computer desk")
def desk(rng: np.random.Generator, style: Style):
    asm = Assembly()
    w, d, h, t = (
        rng.uniform(1.0, 1.6),
        rng.uniform(0.5, 0.75),
        rng.uniform(0.72, 0.77),
        rng.uniform(0.025, 0.05),
    )
    asm.add("top", box([w, t, d], [0, h - t / 2, 0], style.bevel, 0.01, style.detail))
    pw = rng.uniform(0.35, 0.45)
    n_drawers = int(rng.integers(0, 5))
    pull = str(rng.choice(["knob", "bar"]))
    with_: list[str] = []
    if n_drawers:  # a drawer pedestal on the right, legs or a panel on the left
        px = w / 2 - pw / 2
        asm.add(
            "pedestal", box([pw, h - t, d - 0.02], [px, (h - t) / 2, -0.01], style.bevel, 0.01, style.detail)
        )
        dh = (h - t - 0.06) / n_drawers
        for k in range(n_drawers):
            y = 0.04 + dh * (k + 0.5)
            asm.add("drawer_front", box([pw - 0.04, dh - 0.02, 0.02], [px, y, d / 2 - 0.01], "sharp"))
            asm.add("pull", knob(style, px, y, d / 2, pull))
        with_.append(plural(n_drawers, "drawer"))
        if rng.random() < 0.5:
            asm.add("side_panel", box([0.04, h - t, d - 0.02], [-w / 2 + 0.02, (h - t) / 2, -0.01], "sharp"))
        else:
            add_legs(asm, style, "square", (-w / 2 + 0.03,), (-d / 2 + 0.03, d / 2 - 0.03), 0.0, h - t, 0.05)
    else:
        lk = str(rng.choice(["square", "round"]))
        add_legs(
            asm, style, lk, (-w / 2 + 0.04, w / 2 - 0.04), (-d / 2 + 0.04, d / 2 - 0.04), 0.0, h - t, 0.05
        )
        with_.append("four legs")
    if rng.random() < 0.4:
        asm.add("modesty_panel", box([w * 0.8, 0.3, 0.02], [0, h - t - 0.2, -d / 2 + 0.05], "sharp"))
    if rng.random() < 0.3:
        asm.add("monitor", box([0.55, 0.33, 0.03], [0, h + 0.3, -d / 4], style.bevel, 0.01, style.detail))
        asm.add("monitor_stand", box([0.04, 0.15, 0.04], [0, h + 0.07, -d / 4 - 0.03], "sharp"))
        asm.add("monitor_foot", box([0.2, 0.015, 0.15], [0, h + 0.0075, -d / 4 - 0.03], "sharp"))
        with_.append("a computer monitor on it")
    cap = caption(
        rng,
        str(rng.choice(["desk", "writing desk", "computer desk"])),
        [],
        WOOD + METAL,
        with_,
        low_poly=style.low_poly,
    )
    return asm, cap, {"width": w, "n_drawers": n_drawers}


@register("bed", "double bed", "single bed")
def bed(rng: np.random.Generator, style: Style):
    asm = Assembly()
    double = rng.random() < 0.6
    w, L = (rng.uniform(1.4, 1.8) if double else rng.uniform(0.9, 1.05)), rng.uniform(1.95, 2.15)
    fh = rng.uniform(0.15, 0.35)
    lh = rng.uniform(0.05, 0.2)
    asm.add("frame", box([w + 0.06, fh, L], [0, lh + fh / 2, 0], style.bevel, 0.02, style.detail))
    mh = rng.uniform(0.15, 0.25)
    asm.add(
        "mattress",
        box(
            [w, mh, L - 0.05],
            [0, lh + fh + mh / 2, 0.02],
            "round" if style.bevel != "sharp" else "chamfer",
            0.04,
            style.detail,
        ),
    )
    lk = str(rng.choice(["square", "round"]))
    add_legs(asm, style, lk, (-w / 2, w / 2), (-L / 2 + 0.05, L / 2 - 0.05), 0.0, lh + 0.01, 0.06)
    top = lh + fh + mh
    hb = rng.uniform(0.35, 0.8)
    asm.add(
        "headboard",
        box([w + 0.1, top + hb, 0.06], [0, (top + hb) / 2, -L / 2 - 0.03], style.bevel, 0.02, style.detail),
    )
    with_ = ["a tall headboard" if hb > 0.6 else "a headboard"]
    if rng.random() < 0.4:
        asm.add(
            "footboard",
            box(
                [w + 0.1, top + 0.1, 0.05],
                [0, (top + 0.1) / 2, L / 2 + 0.02],
                style.bevel,
                0.02,
                style.detail,
            ),
        )
        with_.append("a footboard")
    n_pillows = int(rng.choice([0, 1, 2] if not double else [0, 2, 2, 4]))
    per_row = min(n_pillows, 2 if double else 1)
    for k in range(n_pillows):
        row, col = divmod(k, max(per_row, 1))
        pw = w / max(per_row, 1) * 0.8
        x = -w / 2 + (col + 0.5) * w / max(per_row, 1)
        asm.add(
            "pillow",
            sphere(
                [pw / 2, 0.07, 0.2],
                [x, top + 0.06 + 0.05 * row, -L / 2 + 0.3 + 0.12 * row],
                style.sphere_subdiv,
            ),
        )
    if n_pillows:
        with_.append(plural(n_pillows, "pillow"))
    if rng.random() < 0.4:
        asm.add(
            "blanket",
            box(
                [w + 0.04, 0.05, L * 0.55], [0, top + 0.015, L / 2 - L * 0.275], "chamfer", 0.02, style.detail
            ),
        )
        with_.append("a blanket")
    cap = caption(
        rng, "double bed" if double else "single bed", [], WOOD + METAL, with_, low_poly=style.low_poly
    )
    return asm, cap, {"double": double, "n_pillows": n_pillows, "footboard": asm.count("footboard") > 0}


@register("bookshelf", "bookcase", "shelf", "shelving unit")
def bookshelf(rng: np.random.Generator, style: Style):
    asm = Assembly()
    w, d = rng.uniform(0.6, 1.4), rng.uniform(0.25, 0.4)
    levels = int(rng.integers(2, 7))
    gap = rng.uniform(0.25, 0.38)
    t = rng.uniform(0.02, 0.04)
    base = rng.uniform(0.0, 0.1)
    H = base + levels * (gap + t) + t
    for sx in (-1, 1):
        asm.add("side", box([t, H, d], [sx * (w / 2 - t / 2), H / 2, 0], style.bevel, 0.005, style.detail))
    ys = [base + k * (gap + t) + t / 2 for k in range(levels + 1)]
    for k, y in enumerate(ys):
        asm.add("top" if k == levels else "shelf", box([w - 2 * t, t, d], [0, y, 0], "sharp"))
    back = rng.random() < 0.6
    if back:
        asm.add("back", box([w, H, 0.01], [0, H / 2, -d / 2 + 0.005], "sharp"))
    books = rng.random() < 0.4
    if books:
        for y in ys[:-1]:
            x = -w / 2 + t + 0.01
            while True:
                bw, bh = rng.uniform(0.02, 0.06), gap * rng.uniform(0.6, 0.9)
                if x + bw > w / 2 - t - 0.01 or rng.random() < 0.08:
                    break
                asm.add(
                    "book",
                    box([bw, bh, d * rng.uniform(0.7, 0.9)], [x + bw / 2, y + t / 2 + bh / 2, 0.0], "sharp"),
                )
                x += bw + 0.002
    shape = ["tall"] if H > 1.5 * w else (["wide", "low"] if w > 1.2 * H else [])
    with_ = [plural(levels, "shelf", "shelves")]
    if books:
        with_.append("books")
    noun = str(
        rng.choice(
            ["bookshelf", "bookcase"] if books or levels > 2 else ["shelf", "shelving unit", "bookcase"]
        )
    )
    if not back:
        with_.append("an open back")
    cap = caption(rng, noun, shape, WOOD + METAL, with_, low_poly=style.low_poly)
    return asm, cap, {"levels": levels, "books": books, "back": back, "height": H}


@register("cabinet", "dresser", "chest of drawers", "cupboard", "nightstand")
def cabinet(rng: np.random.Generator, style: Style):
    asm = Assembly()
    kind = str(rng.choice(["drawers", "doors", "nightstand"]))
    w = {
        "drawers": rng.uniform(0.8, 1.4),
        "doors": rng.uniform(0.6, 1.2),
        "nightstand": rng.uniform(0.4, 0.55),
    }[kind]
    h = {
        "drawers": rng.uniform(0.7, 1.3),
        "doors": rng.uniform(0.8, 1.9),
        "nightstand": rng.uniform(0.45, 0.65),
    }[kind]
    d = rng.uniform(0.35, 0.55)
    lh = rng.uniform(0.05, 0.2) if rng.random() < 0.6 else 0.0
    asm.add("body", box([w, h - lh, d], [0, lh + (h - lh) / 2, 0], style.bevel, 0.015, style.detail))
    asm.add("top", box([w + 0.03, 0.03, d + 0.03], [0, h + 0.015, 0], style.bevel, 0.01, style.detail))
    if lh:
        add_legs(
            asm,
            style,
            str(rng.choice(["square", "tapered", "round"])),
            (-w / 2 + 0.04, w / 2 - 0.04),
            (-d / 2 + 0.04, d / 2 - 0.04),
            0.0,
            lh + 0.01,
            0.04,
        )
    pull = str(rng.choice(["knob", "bar"]))
    fz = d / 2 + 0.01
    y0, y1 = lh + 0.03, h - 0.03
    with_: list[str] = []
    if kind == "doors":
        n_doors = int(rng.choice([1, 2, 2]))
        dw = (w - 0.04) / n_doors
        for k in range(n_doors):
            x = -w / 2 + 0.02 + dw * (k + 0.5)
            asm.add("door", box([dw - 0.01, y1 - y0, 0.02], [x, (y0 + y1) / 2, fz], "sharp"))
            hx = x + (dw / 2 - 0.06) * (1 if k == 0 else -1)  # pulls sit by the meeting edges
            asm.add("pull", knob(style, hx, (y0 + y1) / 2 + 0.1, fz, pull))
        with_.append("one door" if n_doors == 1 else "two doors")
        noun = str(rng.choice(["cabinet", "cupboard"]))
    else:
        rows = int(rng.integers(1, 3)) if kind == "nightstand" else int(rng.integers(2, 6))
        cols = 1 if kind == "nightstand" or w < 1.0 or rng.random() < 0.5 else 2
        dh, dw = (y1 - y0) / rows, (w - 0.04) / cols
        for r in range(rows):
            for c in range(cols):
                x, y = -w / 2 + 0.02 + dw * (c + 0.5), y0 + dh * (r + 0.5)
                asm.add("drawer_front", box([dw - 0.015, dh - 0.015, 0.02], [x, y, fz], "sharp"))
                asm.add("pull", knob(style, x, y, fz + 0.01, pull))
        n = rows * cols
        with_.append(plural(n, "drawer"))
        noun = "nightstand" if kind == "nightstand" else str(rng.choice(["dresser", "chest of drawers"]))
    shape = ["tall"] if h > 1.5 * w else (["low", "wide"] if w > 1.5 * h else [])
    with_.append(f"{'round knobs' if pull == 'knob' else 'bar handles'}")
    if lh:
        with_.append("legs")
    cap = caption(rng, noun, shape, WOOD + ("white-painted", "metal"), with_, low_poly=style.low_poly)
    return (
        asm,
        cap,
        {
            "kind": kind,
            "legs": bool(lh),
            "pull": pull,
            "n_fronts": asm.count("drawer_front") + asm.count("door"),
        },
    )
