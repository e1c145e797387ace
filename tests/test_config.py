from dataclasses import dataclass, field

import pytest
import yaml

from dreamcs.config import ConfigError, load_config, save_config
from dreamcs.registry import Registry


@dataclass
class _Inner:
    depth: int = 2
    name: str = "small"


@dataclass
class _Outer:
    lr: float = 1e-3
    inner: _Inner = field(default_factory=_Inner)
    tags: list[str] = field(default_factory=list)


def test_yaml_then_overrides(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("lr: 0.5\ninner:\n  depth: 7\n")
    cfg = load_config(_Outer, p, ["inner.name=base", "lr=0.25"])
    assert cfg.lr == 0.25 and cfg.inner.depth == 7 and cfg.inner.name == "base"
    assert isinstance(cfg.inner, _Inner)


def test_bad_key_and_type_are_named(tmp_path):
    with pytest.raises(ConfigError, match="nope"):
        load_config(_Outer, overrides=["nope=1"])
    with pytest.raises(ConfigError):
        load_config(_Outer, overrides=["inner.depth=deep"])
    with pytest.raises(ConfigError, match="key=value"):
        load_config(_Outer, overrides=["lr"])
    with pytest.raises(ConfigError, match="not found"):
        load_config(_Outer, tmp_path / "missing.yaml")


def test_unparsable_yaml_is_a_config_error_naming_file_or_override(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("inner: {name: a: b}\n")
    with pytest.raises(ConfigError, match="bad.yaml: not valid YAML"):
        load_config(_Outer, bad)
    with pytest.raises(ConfigError, match=r"override 'inner.name=q: \{x\} a:'.*quote it"):
        load_config(_Outer, overrides=["lr=0.5", "inner.name=q: {x} a:"])
    assert load_config(_Outer, overrides=["inner.name='q: {x} a:'"]).inner.name == "q: {x} a:"


def test_save_round_trip(tmp_path):
    cfg = load_config(_Outer, overrides=["tags=[a,b]"])
    out = save_config(cfg, tmp_path / "run" / "config.yaml")
    assert yaml.safe_load(out.read_text())["tags"] == ["a", "b"]
    assert load_config(_Outer, out) == cfg


def test_registry_rejects_duplicates_and_names_unknown():
    reg: Registry[type] = Registry("widget")
    reg.register("a")(int)
    with pytest.raises(KeyError, match="already"):
        reg.register("a")(float)
    with pytest.raises(KeyError, match="known: a"):
        reg.get("b")
    assert reg.get("a") is int and "a" in reg
