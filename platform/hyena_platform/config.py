"""Strict YAML -> typed job sections, on pydantic v2, shared by every job.

A job file is a nested mapping; each section is a frozen pydantic dataclass declared with
``@section`` next to the component that consumes it (the data section in
`hyena_platform.data.config`, ...), each field with ``Field(description=...)``: the README's
configuration reference is generated from those descriptions (`hyena_platform.reference`).
pydantic does the typed loading; this module keeps the job-file conventions:

- an unknown key is an error that lists the valid keys of its section (and a section's
  ``KEY_HINTS`` say why a known mistake is one);
- a value of the wrong type names the dotted key and the expected type; ``Literal[...]``
  fields list their choices; no bool is taken for a number or a number for a bool;
- ``--set a.b=value`` overrides are parsed as YAML scalars and applied before validation;
- a section may define ``validate(self)`` raising ValueError for cross-field checks (run after
  loading, innermost section first); the message becomes one ConfigError line naming the file
  and the section.

Errors always name the file and the dotted key, so a user can fix them without reading code.
"""

from __future__ import annotations

import dataclasses
import functools
import sys
import types
import typing
from pathlib import Path
from typing import Any, Literal, Mapping, Sequence, TypeVar, get_args, get_origin

import yaml
from pydantic import ConfigDict, Field, TypeAdapter, ValidationError, field_validator
from pydantic.dataclasses import dataclass as pydantic_dataclass
from pydantic_core import PydanticCustomError

from hyena_platform.errors import ConfigError

T = TypeVar("T")

# extra="forbid": an unknown key is an error. coerce_numbers_to_str: YAML reads chromosome
# names such as 1 or 10 (Ensembl's human names) as numbers; a str field takes them as text.
# allow_inf_nan=False: YAML reads .nan and .inf as floats, never a meaningful setting here.
SECTION_CONFIG = ConfigDict(extra="forbid", coerce_numbers_to_str=True, allow_inf_nan=False)


def section(cls: type[T]) -> type[T]:
    """Decorator for a job section: a frozen pydantic dataclass with strict keys and scalars.

    A field typed as a section whose every key has a default, and given no default itself,
    defaults to that section's defaults (``train: TrainSection``): a job file may leave the
    section out. A section with a required key stays required (``model: ModelSection`` of a
    scoring job needs its ``uri``)."""
    _default_sections(cls)
    cls._strict_scalars = field_validator("*", mode="before")(_strict_scalars)  # type: ignore[attr-defined]
    return pydantic_dataclass(cls, frozen=True, config=SECTION_CONFIG)


def _default_sections(cls: type) -> None:
    """`Field(default_factory=S)` for each field of `cls` annotated with such a section S."""
    namespace = vars(sys.modules[cls.__module__])
    for name, annotation in cls.__dict__.get("__annotations__", {}).items():
        tp = namespace.get(annotation) if isinstance(annotation, str) else annotation
        fields = getattr(tp, "__pydantic_fields__", None)
        if name not in cls.__dict__ and fields is not None and not any(f.is_required() for f in fields.values()):
            setattr(cls, name, Field(default_factory=tp))


def kind_field(kind: str) -> Any:
    """A job file's `kind:` (what it is): `hyena run FILE` runs it as `hyena KIND`."""
    return Field(kind, description=f"what this file is; `hyena run FILE` runs it as `hyena {kind}`")


def _strict_scalars(cls: type, value: Any, info: Any) -> Any:
    """pydantic's lax mode takes true for 1 and "yes" for true; a job file must say what it means."""
    expected = _unwrap_optional(cls.__pydantic_fields__[info.field_name].annotation)
    if expected is bool and not isinstance(value, bool) and value is not None:
        raise PydanticCustomError("bool_type", "must be true or false")
    if expected in (int, float) and isinstance(value, bool):
        raise PydanticCustomError(f"{expected.__name__}_type", "must be a number")
    if expected is int and isinstance(value, str):
        raise PydanticCustomError("int_type", "must be an integer")
    return value


def _unwrap_optional(tp: Any) -> Any:
    if get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return tp


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
    """Build section `cls` from `data`, strictly. `source` names the file in errors."""
    where = prefix.rstrip(".") or "top level"
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"{source}: {where} must be a mapping, got {_describe(data)}")
    try:
        obj = _adapter(cls).validate_python(dict(data))
    except ValidationError as err:
        raise _config_error(err, cls, source=source, prefix=prefix) from None
    _run_validate(obj, source=source, prefix=prefix)
    return obj


def load_config(cls: type[T], path: str | Path, overrides: Sequence[str] = ()) -> T:
    """Load job file `path` into section `cls`, applying ``--set`` overrides first."""
    data = load_yaml_mapping(path)
    apply_overrides(data, overrides, source=str(path))
    return from_mapping(cls, data, source=str(path))


@functools.cache
def _adapter(cls: type) -> TypeAdapter:
    return TypeAdapter(cls)


def _run_validate(obj: Any, *, source: str, prefix: str) -> None:
    """Each section's cross-field ``validate()``, innermost first (a section trusts its parts)."""
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if dataclasses.is_dataclass(value):
            _run_validate(value, source=source, prefix=f"{prefix}{f.name}.")
        elif isinstance(value, (list, tuple)):
            for i, item in enumerate(value):
                if dataclasses.is_dataclass(item):
                    _run_validate(item, source=source, prefix=f"{prefix}{f.name}[{i}].")
    validate = getattr(obj, "validate", None)
    if callable(validate):
        try:
            validate()
        except ValueError as err:
            raise ConfigError(f"{source}: {prefix.rstrip('.') or 'top level'}: {err}") from None


_UNKNOWN_KEY = ("unexpected_keyword_argument", "extra_forbidden")
# pydantic error type -> what the value must be (the message names the key and the value).
_MUST_BE = {
    "int_type": "an integer", "int_parsing": "an integer", "int_from_float": "an integer",
    "float_type": "a number", "float_parsing": "a number", "finite_number": "a finite number",
    "bool_type": "true or false", "bool_parsing": "true or false", "string_type": "a string",
    "list_type": "a list", "tuple_type": "a list", "iterable_type": "a list", "set_type": "a list",
    "dict_type": "a mapping", "mapping_type": "a mapping", "dataclass_type": "a mapping",
    "path_type": "a path string",
}


def _config_error(err: ValidationError, cls: type, *, source: str, prefix: str) -> ConfigError:
    """pydantic's first error as our one line: the file, the dotted key, what is valid."""
    errors = err.errors(include_url=False)
    unknown_keys = [e for e in errors if e["type"] in _UNKNOWN_KEY]
    first = (unknown_keys or errors)[0]  # a misspelt key explains the "missing" one beside it
    tp, loc = _walk(cls, first["loc"])
    key = _dotted(prefix, loc)
    kind, value = first["type"], first["input"]
    if kind in _UNKNOWN_KEY:
        section_tp, section_loc = _walk(cls, first["loc"][:-1])
        unknown = sorted(str(e["loc"][-1]) for e in errors
                         if e["type"] == kind and tuple(e["loc"][:-1]) == tuple(section_loc))
        return _unknown_key_error(section_tp, unknown, source=source, where=_dotted(prefix, section_loc))
    if kind == "missing":
        return ConfigError(f"{source}: missing required key {key}")
    if kind in ("value_error", "assertion_error") and dataclasses.is_dataclass(tp):
        return ConfigError(f"{source}: {key or 'top level'}: {first['ctx']['error']}")
    if get_origin(tp) is Literal:
        return ConfigError(f"{source}: {key} must be one of {', '.join(map(repr, get_args(tp)))}, got {value!r}")
    if get_origin(tp) in (typing.Union, types.UnionType):
        return ConfigError(f"{source}: {key} must be {' or '.join(_choices(tp))}, got {_describe(value)}")
    if kind == "finite_number":
        return ConfigError(f"{source}: {key} must be a finite number, got {value!r}")
    if kind in _MUST_BE:
        return ConfigError(f"{source}: {key} must be {_MUST_BE[kind]}, got {_describe(value)}")
    if kind in ("too_short", "too_long"):  # a fixed-length tuple such as train.betas
        size = first["ctx"].get("min_length" if kind == "too_short" else "max_length")
        return ConfigError(f"{source}: {key} must hold {size} items, got {value!r}")
    message = first["ctx"]["error"] if "error" in first.get("ctx", {}) else first["msg"]
    return ConfigError(f"{source}: {key}: {message}")


def _choices(tp: Any) -> list[str]:
    """What a union accepts, in words: its literal values, then "a list", "a number", ..."""
    words = {int: "an integer", float: "a number", str: "a string", bool: "true or false", Path: "a path string"}
    out = []
    for arg in get_args(tp):
        if get_origin(arg) is Literal:
            out.append(", ".join(map(repr, get_args(arg))))
        elif get_origin(arg) in (list, tuple) or arg in (list, tuple):
            out.append("a list")
        elif arg is not type(None):
            out.append("a mapping" if dataclasses.is_dataclass(arg) else words.get(arg, str(arg)))
    return out


def _unknown_key_error(tp: type, unknown: list[str], *, source: str, where: str) -> ConfigError:
    valid = sorted(f.name for f in dataclasses.fields(tp) if f.init)
    prefix = f"{where}." if where else ""
    hint = getattr(tp, "KEY_HINTS", {}).get(unknown[0])  # a ClassVar: why a known mistake is one
    return ConfigError(
        f"{source}: unknown key {prefix}{unknown[0]}"
        + (f" (and {', '.join(unknown[1:])})" if len(unknown) > 1 else "")
        + f"; valid keys in {where or 'top level'}: {', '.join(valid)}"
        + (f"; {hint}" if hint else "")
    )


def _walk(cls: type, loc: Sequence[Any]) -> tuple[Any, tuple[Any, ...]]:
    """The declared type at `loc` inside `cls`, and the part of `loc` that names keys and items.

    pydantic adds a step naming the member type inside a union; the walk stops at the union, so
    the error speaks of the key the user wrote."""
    tp: Any = cls
    walked: list[Any] = []
    for step in loc:
        tp = _unwrap_optional(tp)
        origin, args = get_origin(tp), get_args(tp)
        if dataclasses.is_dataclass(tp) and isinstance(step, str) and step in tp.__pydantic_fields__:
            tp = tp.__pydantic_fields__[step].annotation
        elif origin in (list, tuple, Sequence, typing.Sequence) and isinstance(step, int):
            fixed = origin is tuple and args and args[-1] is not Ellipsis  # tuple[float, float]
            tp = (args[step] if step < len(args) else Any) if fixed else (args[0] if args else Any)
        elif origin in (dict, Mapping, typing.Mapping) and isinstance(step, str):
            tp = args[1] if len(args) == 2 else Any
        else:
            break
        walked.append(step)
    return _unwrap_optional(tp), tuple(walked)


def _dotted(prefix: str, loc: Sequence[Any]) -> str:
    text = prefix.rstrip(".")
    for step in loc:
        text += f"[{step}]" if isinstance(step, int) else (f".{step}" if text else str(step))
    return text


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
