"""One config style everywhere: a typed dataclass per component, loaded from YAML, overridden by
``key=value`` strings (dotted keys reach nested dataclasses), saved as plain YAML in every output.

    cfg = load_config(TrainConfig, "configs/train.yaml", ["lr=3e-4", "model.depth=4"])
    save_config(cfg, run_dir / "config.yaml")

OmegaConf structured configs do the type checking: a wrong key or a value of the wrong type raises
a ``ConfigError`` that names it.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar

import yaml
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

T = TypeVar("T")


class ConfigError(ValueError):
    """A config file or override that does not fit its dataclass."""


def load_config(
    cls: type[T],
    path: str | os.PathLike | None = None,
    overrides: Sequence[str] = (),
) -> T:
    """Build ``cls`` from its defaults, then the YAML file at ``path``, then ``key=value`` overrides."""
    try:
        schema = OmegaConf.structured(cls)
        merged = [schema]
        if path is not None:
            p = Path(path)
            if not p.is_file():
                raise ConfigError(f"{p}: config file not found")
            try:
                with open(p, encoding="utf-8") as f:
                    data = yaml.safe_load(f) or {}
            except yaml.YAMLError as e:
                raise ConfigError(f"{p}: not valid YAML ({' '.join(str(e).split())})") from None
            if not isinstance(data, dict):
                raise ConfigError(f"{p}: a config file must hold a mapping, got {type(data).__name__}")
            merged.append(OmegaConf.create(data))
        for item in overrides:
            if "=" not in item:
                raise ConfigError(f"override {item!r} is not of the form key=value")
            try:  # one at a time, so that an unparsable value is named
                merged.append(OmegaConf.from_dotlist([item]))
            except yaml.YAMLError:
                raise ConfigError(f"override {item!r}: the value is not valid YAML (quote it: key='...')") from None
        cfg = OmegaConf.merge(*merged)
        return OmegaConf.to_object(cfg)  # type: ignore[return-value]
    except OmegaConfBaseException as e:
        where = f"{path}: " if path is not None else ""
        raise ConfigError(f"{where}{e}".split("\n")[0]) from e


def config_to_dict(cfg: Any) -> dict[str, Any]:
    """A dataclass config as plain Python types (lists, dicts, str, numbers), for YAML."""
    if not dataclasses.is_dataclass(cfg):
        raise TypeError(f"expected a dataclass instance, got {type(cfg).__name__}")
    return OmegaConf.to_container(OmegaConf.structured(cfg), resolve=True, enum_to_str=True)  # type: ignore[return-value]


def save_config(cfg: Any, path: str | os.PathLike) -> Path:
    """Write ``cfg`` as plain YAML, atomically (tmp file + rename)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(p.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        yaml.safe_dump(config_to_dict(cfg), f, sort_keys=False)
    os.replace(tmp, p)
    return p
