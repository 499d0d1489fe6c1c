"""Typed views of `params.yaml` sections.

Every params section a stage reads is a `@params_section` dataclass with no code defaults:
`params.yaml` is the one home of a default, so deleting a line there is an error naming the key,
never a silent change of experiment. Stage scripts read `params.yaml` once and build their config
with `from_section` at the script boundary; library functions take the typed config, never a dict.
Validation (types, `Literal` choices, nested sections, unknown keys) is pydantic's.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import pydantic
import yaml

T = TypeVar("T")

_MARK = "__affectpipe_params_section__"


class ConfigError(ValueError):
    """A params section does not match the dataclass that consumes it."""


def params_section(cls: type[T]) -> type[T]:
    """Make `cls` a validated, frozen params section; refuse code defaults at import time."""
    own = cls.__dict__.get("__annotations__", {})
    defaults = [name for name in own if name in cls.__dict__]
    if defaults:
        raise TypeError(
            f"{cls.__name__}: params sections take no code defaults {defaults}: "
            "params.yaml is the one home of a default"
        )
    config = pydantic.ConfigDict(extra="forbid", arbitrary_types_allowed=True)
    built = pydantic.dataclasses.dataclass(frozen=True, config=config)(cls)
    setattr(built, _MARK, True)
    return built


def is_params_section(cls: Any) -> bool:
    return isinstance(cls, type) and cls.__dict__.get(_MARK, False)


def load_params(path: Path | str = "params.yaml") -> dict[str, Any]:
    """Read the whole params file (plain PyYAML: `dvc.api.params_show` costs ~0.4 s)."""
    with open(path, encoding="utf-8") as f:
        params = yaml.safe_load(f) or {}
    if not isinstance(params, dict):
        raise ConfigError(
            f"{path}: expected a mapping at the top level, got {type(params).__name__}"
        )
    return params


def section(params: dict[str, Any], dotted: str) -> dict[str, Any]:
    """Return `params['a']['b']` for `dotted='a.b'`, naming the missing key if absent."""
    node: Any = params
    for i, key in enumerate(dotted.split(".")):
        if not isinstance(node, dict) or key not in node:
            where = ".".join(dotted.split(".")[:i]) or "<top level>"
            raise ConfigError(f"params.yaml: missing section '{dotted}' (no '{key}' in {where})")
        node = node[key]
    return node


def _field_names(cls: Any, loc: tuple[Any, ...]) -> list[str]:
    """The keys valid at `loc` inside `cls`, for the error of an unknown key."""
    for part in loc:
        hints = typing.get_type_hints(cls) if dataclasses.is_dataclass(cls) else {}
        if part not in hints:
            return []
        cls = hints[part]
    return sorted(f.name for f in dataclasses.fields(cls)) if dataclasses.is_dataclass(cls) else []


def _key_path(cls: Any, loc: tuple[Any, ...]) -> tuple[Any, ...]:
    """Field names, mapping keys and indices of a pydantic error location, without the tags
    pydantic inserts after a union field to say which member failed (`workers.int`)."""
    path: list[Any] = []
    hint: Any = cls
    skip_tag = False
    for part in loc:
        if skip_tag:
            skip_tag, hint = False, None
            continue
        path.append(part)
        if dataclasses.is_dataclass(hint):
            hint = typing.get_type_hints(hint).get(part)
        elif typing.get_origin(hint) in (dict, list, tuple):
            hint = typing.get_args(hint)[-1]
        else:
            hint = None
        skip_tag = typing.get_origin(hint) in (typing.Union, types.UnionType)
    return tuple(path)


def _problems(errors: list[Any], cls: Any, name: str) -> list[str]:
    """One phrase per offending key; the alternatives of a union are joined with 'or'."""
    by_key: dict[tuple[Any, ...], list[Any]] = {}
    for error in errors:
        by_key.setdefault(_key_path(cls, tuple(error["loc"])), []).append(error)
    problems = []
    for loc, errs in by_key.items():
        key = ".".join([*([name] if name else []), *map(str, loc)])
        kind = errs[0]["type"]
        if kind == "missing":
            problems.append(f"missing key '{key}'")
        elif kind in ("unexpected_keyword_argument", "extra_forbidden"):
            valid = _field_names(cls, loc[:-1])
            problems.append(
                f"unknown key '{key}'" + (f" (valid: {', '.join(valid)})" if valid else "")
            )
        elif kind == "value_error":  # a section's own check (__post_init__) names the value
            msg = errs[0]["msg"].removeprefix("Value error, ")
            problems.append(f"'{key}': {msg}" if key else msg)
        else:
            wanted = " or ".join(dict.fromkeys(e["msg"] for e in errs))
            problems.append(f"'{key}': {wanted}, got {errs[0].get('input')!r}")
    return problems


def validate_section(cls: type[T], values: Any, name: str) -> T:
    """`cls` from a mapping; a missing, unknown or mistyped key is a `ConfigError` naming every
    offending key as `name.key`, and nothing else (the caller says where the mapping came from)."""
    if not isinstance(values, dict):
        raise ConfigError(f"'{name or cls.__name__}' must be a mapping, got {values!r}")
    try:
        return pydantic.TypeAdapter(cls).validate_python(values)
    except pydantic.ValidationError as e:
        raise ConfigError("; ".join(_problems(e.errors(), cls, name))) from None


def from_section(cls: type[T], values: Any, name: str) -> T:
    """Build params section `cls` from params.yaml's mapping at `name`: one line naming every
    missing, unknown or mistyped key."""
    if not is_params_section(cls):
        raise TypeError(f"{cls.__name__} is not a @params_section")
    try:
        return validate_section(cls, values, name)
    except ConfigError as e:
        raise ConfigError(f"params.yaml: {e}") from None
