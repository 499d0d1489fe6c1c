"""Data-layer configs for tests: params.yaml's own section, with a test's changes merged in."""

from __future__ import annotations

from typing import Any, TypeVar

from affectpipe.config import from_section, load_params, section
from affectpipe.data.image_size import preprocess_values
from tests.pipeline_repo import REPO

T = TypeVar("T")


def merged(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """`base` with `changes` applied; nested sections merge key by key."""
    out = dict(base)
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merged(out[key], value)
        else:
            out[key] = value
    return out


def config(cls: type[T], dotted: str, **changes: Any) -> T:
    """`cls` built from params.yaml's section `dotted` with `changes` (nested dicts merge); a
    `preprocess.<dataset>` section's `auto` image side resolved as the stage resolves it."""
    params = load_params(REPO / "params.yaml")
    top, _, dataset = dotted.partition(".")
    base = preprocess_values(params, dataset) if top == "preprocess" else section(params, dotted)
    values = merged(base, changes)
    return from_section(cls, values, dotted)
