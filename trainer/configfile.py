"""YAML config files as typed dataclasses, shared by ``linop-train`` and ``linop-bench``.

Plain data read from YAML is checked against the dataclasses' type hints (``bool``, ``int``, ``float``,
``str``, ``Literal``, unions with ``None``, ``tuple``, ``list``, ``dict`` and nested dataclasses); an unknown key
or a value of the wrong type is a :class:`ConfigError` naming the key path. ``--set a.b=c`` overrides are
parsed as YAML values and written into the plain data before the dataclasses are rebuilt, so they get the
same checks.

A field whose metadata is :func:`derived_from` another key is neither read from YAML nor written back: the
config's ``__post_init__`` sets it from that key, so one setting cannot be given two different values.
"""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml

from linop_core.errors import LinopError

DERIVED_FROM = "linop.derived_from"  # dataclass field metadata key


def derived_from(key: str) -> dict[str, str]:
    """Field metadata: the field is set from ``key`` (a dotted config key) instead of being a key of its own."""
    return {DERIVED_FROM: key}


def _own_fields(cls: Any) -> list[dataclasses.Field[Any]]:
    """The fields of dataclass ``cls`` that are config keys (all but the derived ones)."""
    return [f for f in dataclasses.fields(cls) if DERIVED_FROM not in f.metadata]


class ConfigError(LinopError):
    """A config file or override that cannot be used; ``where`` is the file, key path or ``--set`` item."""

    def __init__(self, where: str, reason: str) -> None:
        self.where = where
        self.reason = " ".join(reason.split())
        super().__init__(f"{where}: {self.reason}")


def coerce(value: Any, tp: Any, where: str) -> Any:
    """``value`` converted to type ``tp``; a ConfigError naming ``where`` if it does not fit."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        reasons = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return coerce(value, arg, where)
            except ConfigError as exc:
                reasons.append(exc.reason)
        raise ConfigError(where, "; ".join(reasons))
    if origin is Literal:
        if value not in args:
            raise ConfigError(where, f"{value!r} is not one of {', '.join(repr(a) for a in args)}")
        return value
    if origin is list:
        if not isinstance(value, list | tuple):
            raise ConfigError(where, f"expected a list, got {value!r}")
        return [coerce(v, args[0], f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is tuple:
        if not isinstance(value, list | tuple) or len(value) != len(args):
            raise ConfigError(where, f"expected a list of {len(args)} values, got {value!r}")
        return tuple(coerce(v, a, f"{where}[{i}]") for i, (v, a) in enumerate(zip(value, args, strict=True)))
    if origin is dict:
        if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
            raise ConfigError(where, f"expected a mapping of names to values, got {value!r}")
        return dict(value)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(where, f"expected a mapping, got {value!r}")
        return build(tp, value, where)
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(where, f"expected true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(where, f"expected a whole number, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(where, f"expected a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(where, f"expected text, got {value!r}")
        return value
    raise ConfigError(where, f"unsupported type {getattr(tp, '__name__', tp)}")


def build(cls: type, values: Mapping[str, Any], where: str) -> Any:
    """An instance of dataclass ``cls`` from plain ``values``; unknown keys are errors listing the known ones."""
    hints = typing.get_type_hints(cls)
    names = {f.name for f in _own_fields(cls)}
    derived = {f.name: f.metadata[DERIVED_FROM] for f in dataclasses.fields(cls) if DERIVED_FROM in f.metadata}
    kwargs = {}
    for key, value in values.items():
        path = f"{where}.{key}" if where else str(key)
        if key in derived:
            raise ConfigError(path, f"follows {derived[key]}; set that key instead")
        if key not in names:
            raise ConfigError(path, f"unknown key; known keys here: {', '.join(sorted(names))}")
        kwargs[key] = coerce(value, hints[key], path)
    return cls(**kwargs)


def to_plain(config: Any) -> Any:
    """Nested plain data (lists for tuples) that YAML and ``torch.load(weights_only=True)`` both accept."""
    if dataclasses.is_dataclass(config):
        return {f.name: to_plain(getattr(config, f.name)) for f in _own_fields(config)}
    if isinstance(config, list | tuple):
        return [to_plain(v) for v in config]
    return config


def set_overrides(values: dict[str, Any], overrides: list[str], *, example: str) -> dict[str, Any]:
    """Writes ``a.b=c`` overrides (``c`` parsed as YAML: ``null``, ``[1, 2]``, ``true``...) into ``values``.

    Intermediate keys must exist (an optional section that is ``None`` is switched on as ``{}``); unknown leaf
    keys are reported when the dataclasses are rebuilt. ``example`` is shown in the usage error.
    """
    for item in overrides:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"--set {item}", f"expected key=value, e.g. --set {example}")
        try:
            value = yaml.safe_load(text) if text.strip() else None
        except yaml.YAMLError as exc:
            raise ConfigError(f"--set {item}", f"value is not valid YAML ({exc})") from None
        parts = key.split(".")
        node: Any = values
        for depth, part in enumerate(parts[:-1]):
            if not isinstance(node, dict) or part not in node:
                raise ConfigError(".".join(parts[: depth + 1]), "unknown key in --set")
            if node[part] is None:
                node[part] = {}
            node = node[part]
        if not isinstance(node, dict):
            raise ConfigError(key, "unknown key in --set")
        node[parts[-1]] = value
    return values


def read_yaml(source: str | os.PathLike[str], shipped: Mapping[str, Path]) -> tuple[Path, dict[str, Any]]:
    """(path, plain data) of a YAML file, or of a shipped config given by name (a key of ``shipped``)."""
    path = Path(source)
    if not path.is_file() and str(source) in shipped:
        path = shipped[str(source)]
    if not path.is_file():
        raise ConfigError(str(source), f"config file not found; give a YAML file or one of {', '.join(shipped)}")
    try:
        values = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(str(path), f"cannot read the config ({exc})") from None
    return path, values


def dump_yaml(config: Any) -> str:
    return yaml.safe_dump(to_plain(config), sort_keys=False)
