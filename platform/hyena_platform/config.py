"""Strict YAML -> typed dataclass loading, shared by every job.

A job file is a nested mapping; each section is a frozen dataclass declared next to the
component that consumes it (the data section in `hyena_platform.data.config`, ...). This module
only knows how to turn a mapping into a dataclass tree, strictly:

- an unknown key is an error that lists the valid keys;
- a value of the wrong type is an error naming the dotted key and the expected type;
- ``Literal[...]`` fields only accept their listed values;
- ``--set a.b=value`` overrides are parsed as YAML scalars and applied before validation;
- a dataclass may define ``validate(self)`` raising ValueError for cross-field checks; the
  message is re-raised as ConfigError naming the file and the section.

Errors always name the file and the dotted key, so a user can fix them without reading code.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from pathlib import Path
from typing import Any, Literal, Mapping, Sequence, TypeVar, get_args, get_origin, get_type_hints

import yaml

from hyena_platform.errors import ConfigError

T = TypeVar("T")


def load_yaml_mapping(path: str | Path) -> dict[str, Any]:
    """Read a YAML file whose top level must be a mapping."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: job file not found")
    try:
        data = yaml.safe_load(path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError as err:
        line = err.object[:err.start].count(b"\n") + 1
        raise ConfigError(f"{path}: line {line}: byte 0x{err.object[err.start]:02x} is not UTF-8 text; save the job "
                          "file as UTF-8") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path}:{where} is not valid YAML ({getattr(err, 'problem', err)})") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of sections, got {type(data).__name__}")
    return data


def apply_overrides(data: dict[str, Any], overrides: Sequence[str], *, source: str) -> dict[str, Any]:
    """Apply ``a.b=value`` overrides (value parsed as YAML) to a nested mapping, in place."""
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE, for example --set train.lr=3e-4")
        key, raw = item.split("=", 1)
        parts = [p for p in key.strip().split(".") if p]
        if not parts:
            raise ConfigError(f"--set {item!r}: empty key")
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            value = raw
        node = data
        for depth, part in enumerate(parts[:-1]):
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                dotted = ".".join(parts[: depth + 1])
                raise ConfigError(f"--set {item!r}: {dotted} in {source} is a value, not a section")
            node = child
        node[parts[-1]] = value
    return data


def from_mapping(cls: type[T], data: Any, *, source: str, prefix: str = "") -> T:
    """Build dataclass `cls` from `data`, strictly. `source` names the file in errors."""
    where = prefix.rstrip(".") or "top level"
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"{source}: {where} must be a mapping, got {_describe(data)}")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        hint = getattr(cls, "KEY_HINTS", {}).get(unknown[0])  # a ClassVar: why a known mistake is one
        raise ConfigError(
            f"{source}: unknown key {prefix}{unknown[0]!s}"
            + (f" (and {', '.join(map(str, unknown[1:]))})" if len(unknown) > 1 else "")
            + f"; valid keys in {where}: {', '.join(sorted(fields))}"
            + (f"; {hint}" if hint else "")
        )
    hints = get_type_hints(cls)
    kwargs = {}
    for name, field in fields.items():
        if name in data:
            kwargs[name] = _convert(hints[name], data[name], source=source, key=prefix + name)
        elif field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
            raise ConfigError(f"{source}: missing required key {prefix}{name}")
    try:
        obj = cls(**kwargs)
    except (ValueError, TypeError) as err:
        raise ConfigError(f"{source}: {where}: {err}") from None
    validate = getattr(obj, "validate", None)
    if callable(validate):
        try:
            validate()
        except ValueError as err:
            raise ConfigError(f"{source}: {where}: {err}") from None
    return obj


def load_config(cls: type[T], path: str | Path, overrides: Sequence[str] = ()) -> T:
    """Load job file `path` into dataclass `cls`, applying ``--set`` overrides first."""
    data = load_yaml_mapping(path)
    apply_overrides(data, overrides, source=str(path))
    return from_mapping(cls, data, source=str(path))


def to_dict(obj: Any) -> Any:
    """The fully resolved config as plain YAML-able data (for logging and config.yaml)."""
    if dataclasses.is_dataclass(obj):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    if isinstance(obj, Path):
        return str(obj)
    return obj


def _describe(value: Any) -> str:
    return f"{type(value).__name__} {value!r}" if not isinstance(value, (dict, list)) else type(value).__name__


def _convert(tp: Any, value: Any, *, source: str, key: str) -> Any:
    origin = get_origin(tp)
    args = get_args(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _convert(arg, value, source=source, key=key)
            except ConfigError as err:
                errors.append(err)
        raise errors[0] if len(errors) == 1 else ConfigError(
            f"{source}: {key} must be one of {_type_name(tp)}, got {_describe(value)}"
        )
    if origin is Literal:
        if value not in args:
            raise ConfigError(f"{source}: {key} must be one of {', '.join(map(repr, args))}, got {value!r}")
        return value
    if dataclasses.is_dataclass(tp):
        return from_mapping(tp, value, source=source, prefix=key + ".")
    if origin in (tuple, list, Sequence, typing.Sequence) or tp in (tuple, list):
        if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
            raise ConfigError(f"{source}: {key} must be a list, got {_describe(value)}")
        item_tp = args[0] if args else Any
        items = [_convert(item_tp, v, source=source, key=f"{key}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is not list and tp is not list else items
    if origin in (dict, Mapping) or tp is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{source}: {key} must be a mapping, got {_describe(value)}")
        vt = args[1] if len(args) == 2 else Any
        return {str(k): _convert(vt, v, source=source, key=f"{key}.{k}") for k, v in value.items()}
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{source}: {key} must be true or false, got {_describe(value)}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                return int(value)
            raise ConfigError(f"{source}: {key} must be an integer, got {_describe(value)}")
        return value
    if tp is float:
        number = None
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            number = float(value)
        elif isinstance(value, str):  # YAML 1.1 reads "3e-4" (no dot) as a string; accept numeric strings
            try:
                number = float(value)
            except ValueError:
                pass
        if number is None:
            raise ConfigError(f"{source}: {key} must be a number, got {_describe(value)}")
        if not math.isfinite(number):  # YAML reads .nan and .inf as floats
            raise ConfigError(f"{source}: {key} must be a finite number, got {value!r}")
        return number
    if tp is str:
        if not isinstance(value, str):
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                return str(value)
            raise ConfigError(f"{source}: {key} must be a string, got {_describe(value)}")
        return value
    if tp is Path:
        if not isinstance(value, str):
            raise ConfigError(f"{source}: {key} must be a path string, got {_describe(value)}")
        return Path(value)
    raise TypeError(f"unsupported config field type {tp!r} for {key}")  # programming error


def _type_name(tp: Any) -> str:
    return " | ".join(getattr(a, "__name__", str(a)) for a in get_args(tp) if a is not type(None))
