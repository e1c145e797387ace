"""Caption words. Colour and material are sampled freely (the meshes carry neither, as in Cap3D
captions of untextured renders); every shape word a generator passes in must be true of its geometry."""

from __future__ import annotations

import numpy as np

COLOURS = (
    "red", "blue", "green", "white", "black", "grey", "brown", "yellow", "orange", "pink",
    "purple", "beige", "dark blue", "light grey", "teal", "cream",
)  # fmt: skip

NUMBERS = {
    1: "one",
    2: "two",
    3: "three",
    4: "four",
    5: "five",
    6: "six",
    7: "seven",
    8: "eight",
    9: "nine",
    10: "ten",
}

PREFIXES = ("a", "a", "a", "a 3D model of a", "a simple", "a render of a")


def number(n: int) -> str:
    return NUMBERS.get(n, str(n))


def plural(n: int, noun: str, nouns: str | None = None) -> str:
    """'three legs', 'one leg'."""
    return f"{number(n)} {noun if n == 1 else (nouns or noun + 's')}"


def _article_fix(text: str) -> str:
    """'a' -> 'an' before a vowel sound, for every standalone 'a'."""
    words = text.split(" ")
    for i in range(len(words) - 1):
        if words[i].lower() == "a" and words[i + 1][:1].lower() in "aeiou":
            words[i] = words[i] + "n"
    return " ".join(words)


def join(items: list[str]) -> str:
    """'x', 'x and y', 'x, y and z'."""
    items = [s for s in items if s]
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def caption(
    rng: np.random.Generator,
    noun: str,
    shape: list[str] | None = None,
    materials: tuple[str, ...] = (),
    with_: list[str] | None = None,
    tail: str = "",
    low_poly: bool = False,
    p_colour: float = 0.5,
) -> str:
    """'a tall blue wooden chair with armrests and a slatted back'.

    ``shape`` are true shape adjectives (all kept, order as given); a colour and a material are
    added by chance; ``with_`` are noun phrases joined after 'with'; ``tail`` is appended as is.
    """
    words = [str(rng.choice(PREFIXES))]
    words += list(shape or [])
    if rng.random() < p_colour:
        words.append(str(rng.choice(COLOURS)))
    if materials and rng.random() < 0.5:
        words.append(str(rng.choice(materials)))
    words.append(noun)
    text = " ".join(words)
    if with_:
        text += " with " + join(with_)
    if tail:
        text += " " + tail
    if low_poly and rng.random() < 0.5:
        text += ", low poly"
    return _article_fix(text)
