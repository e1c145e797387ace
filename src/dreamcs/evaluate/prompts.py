"""Prompt files for a study, and stable folder names for (prompt, seed) runs.

Three formats, chosen by content (not by extension):

- a JSON list of strings: ``["a chair", "a horse"]``;
- a JSON object of named lists, as DreamFusion's prompt library: ``{"dreamfusion": [...], ...}``
  (the lists are concatenated in key order);
- plain text, one prompt per line (blank lines and lines starting with ``#`` are skipped).

Duplicates are dropped (first occurrence kept), so every prompt maps to one run folder per seed.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path


class PromptFileError(ValueError):
    """A prompt file that cannot be read; ``str()`` names the file and the reason."""

    def __init__(self, path: str | os.PathLike, reason: str) -> None:
        self.path, self.reason = Path(path), reason
        super().__init__(f"{self.path}: {reason}")


def _check_list(path: Path, items: object, where: str) -> list[str]:
    if not isinstance(items, list):
        raise PromptFileError(path, f"{where} must be a list of strings, got {type(items).__name__}")
    out = []
    for i, p in enumerate(items):
        if not isinstance(p, str):
            raise PromptFileError(path, f"{where}[{i}] is a {type(p).__name__}, not a string")
        if p.strip():
            out.append(" ".join(p.split()))
    return out


def load_prompts(path: str | os.PathLike) -> list[str]:
    """The prompts in ``path`` (JSON list, JSON object of lists, or one per line), deduplicated."""
    p = Path(path)
    if not p.exists():
        raise PromptFileError(p, "file not found")
    if p.is_dir():
        raise PromptFileError(p, "is a directory, not a prompt file")
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise PromptFileError(p, f"not UTF-8 text ({e.reason} at byte {e.start})") from None
    stripped = text.lstrip()
    if stripped[:1] in ("[", "{"):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise PromptFileError(p, f"invalid JSON at line {e.lineno}, column {e.colno}: {e.msg}") from None
        if isinstance(data, dict):
            prompts = []
            for key, items in data.items():
                prompts += _check_list(p, items, f"key {key!r}")
        else:
            prompts = _check_list(p, data, "the JSON list")
    else:
        prompts = [" ".join(line.split()) for line in text.splitlines()]
        prompts = [q for q in prompts if q and not q.startswith("#")]
    prompts = list(dict.fromkeys(prompts))
    if not prompts:
        raise PromptFileError(p, "holds no prompts")
    return prompts


def prompt_slug(prompt: str, max_len: int = 48) -> str:
    """A readable, filesystem-safe, collision-free name: ``a-wooden-chair-3f9a1c``.

    The 6-hex suffix is a hash of the whole prompt, so two prompts that read the same once
    truncated or stripped of punctuation still get different folders, on every machine.
    """
    words = re.sub(r"[^a-z0-9]+", "-", prompt.lower()).strip("-")[:max_len].strip("-") or "prompt"
    return f"{words}-{hashlib.sha1(prompt.encode('utf-8')).hexdigest()[:6]}"


def run_name(prompt: str, seed: int) -> str:
    """The run folder name of (prompt, seed): ``<slug>-s<seed>``."""
    return f"{prompt_slug(prompt)}-s{int(seed)}"
