"""Typed views of `params.yaml` sections.

Stage scripts read `params.yaml` once, pick their section and turn it into a small dataclass
with `from_section`, so a misspelt or missing key fails loudly and by name (nanoGPT's habit)
instead of silently falling back to a default.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, TypeVar

import yaml

T = TypeVar("T")


class ConfigError(ValueError):
    """A params section does not match the dataclass that consumes it."""


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


def from_section(cls: type[T], values: dict[str, Any], name: str) -> T:
    """Build dataclass `cls` from a params mapping; unknown or missing keys are errors."""
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ConfigError(
            f"params '{name}': unknown key(s) {unknown}; valid keys: {sorted(fields)}"
        )
    missing = [
        n
        for n, f in fields.items()
        if n not in values
        and f.default is dataclasses.MISSING
        and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise ConfigError(f"params '{name}': missing key(s) {missing}")
    return cls(**values)
