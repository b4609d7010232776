"""params.yaml -> one effective config dict; canonical hashing of config subsets.

The CLI, nox, the benchmarks and dvc.yaml all read the same file through `load`, so a value has
one home. A profile is a deep override of the top-level sections (see params.yaml).
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
from pathlib import Path
from typing import Any

import yaml

from thtl_bench.errors import UserError

DEFAULT_PARAMS = "params.yaml"
PROFILE_ENV = "THTL_PROFILE"
PARAMS_ENV = "THTL_PARAMS"


class ConfigError(UserError, ValueError):
    """A parameter file or override that cannot be used as given."""


def deep_merge(base: dict, override: dict) -> dict:
    """Return base updated by override, recursing into dicts (lists are replaced whole)."""
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _parse_override(text: str) -> tuple[list[str], Any]:
    if "=" not in text:
        raise ConfigError(f"override {text!r} must look like section.key=value (e.g. train.max_epochs=2)")
    key, raw = text.split("=", 1)
    return key.strip().split("."), yaml.safe_load(raw)


def apply_overrides(cfg: dict, overrides: list[str] | None) -> dict:
    """Apply `a.b.c=value` strings (YAML-typed values), refusing keys that do not exist."""
    cfg = copy.deepcopy(cfg)
    for text in overrides or []:
        path, value = _parse_override(text)
        node = cfg
        for part in path[:-1]:
            if not isinstance(node.get(part), dict):
                raise ConfigError(f"override {text!r}: no section {part!r} in params")
            node = node[part]
        if path[-1] not in node:
            raise ConfigError(f"override {text!r}: unknown key {path[-1]!r}; known: {sorted(node)}")
        node[path[-1]] = value
    return cfg


def params_path(path: str | os.PathLike | None = None) -> Path:
    return Path(path or os.environ.get(PARAMS_ENV) or DEFAULT_PARAMS)


def load(
    path: str | os.PathLike | None = None,
    profile: str | None = None,
    overrides: list[str] | None = None,
) -> dict:
    """Effective config: params.yaml sections, then the profile's overrides, then `overrides`.

    The profile comes from the argument, else $THTL_PROFILE, else params.yaml's `profile` key.
    The returned dict has `profile` set and no `profiles` section.
    """
    p = params_path(path)
    if not p.is_file():
        raise ConfigError(f"parameter file {p} not found: run from the repository root or set {PARAMS_ENV}")
    try:
        raw = yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{p}: not valid YAML ({exc}); fix the line shown") from exc
    profiles = raw.pop("profiles", {}) or {}
    name = profile or os.environ.get(PROFILE_ENV) or raw.get("profile") or "smoke"
    if name not in profiles:
        raise ConfigError(f"unknown profile {name!r} in {p}; known: {sorted(profiles)}")
    cfg = deep_merge(raw, profiles[name] or {})
    cfg["profile"] = name
    cfg = apply_overrides(cfg, overrides)
    cfg["_params_file"] = str(p)
    return cfg


def canonical_json(obj: Any) -> str:
    """Stable JSON text: sorted keys, no whitespace; the input of every identity hash."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)


def digest(obj: Any, n: int = 12) -> str:
    return hashlib.sha256(canonical_json(obj).encode()).hexdigest()[:n]
