"""params.yaml -> one validated effective config dict; canonical hashing of config subsets.

The CLI, nox, the benchmarks and dvc.yaml all read the same file through `load`, so a value has
one home. A profile is a deep override of the top-level sections (see params.yaml).

`load` validates once, after the profile merge and the `-S` overrides, so that no setting silently
does nothing (the rules: thtl_bench.config_rules). Every problem found is raised in one
ConfigError, each naming params.yaml:line or the `-S` text, the key and the fix.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any

import yaml

from thtl_bench import domains
from thtl_bench.config_rules import (  # noqa: F401  (CHOICES ... are read through config too)
    CHOICES,
    LAYOUTS,
    MAPPINGS,
    MODEL_KEYS,
    NULLABLE,
    RANGES,
    RESIZE_MODES,
    TEMPLATES,
    UNIQUE,
    ConfigError,
    ConfigProblem,
    Ctx,
    check,
    dotted,
    mapping_type,
    rule_key,
    show,
    unique,
    unknown_key,
    validate,
)

DEFAULT_PARAMS = "params.yaml"
PROFILE_ENV = "THTL_PROFILE"
PARAMS_ENV = "THTL_PARAMS"


# ------------------------------------------------------------------------------------ merging


def deep_merge(base: dict, override: dict, _path: tuple = ()) -> dict:
    """Return base updated by override, recursing into sections (lists, and the free mappings of
    MAPPINGS such as grid.arm_replicates, are replaced whole: a profile can give `{}`)."""
    out = copy.deepcopy(base)
    for key, value in override.items():
        path = (*_path, key)
        free = mapping_type(rule_key(path)) is not None
        if isinstance(value, dict) and isinstance(out.get(key), dict) and not free:
            out[key] = deep_merge(out[key], value, path)
        else:
            out[key] = copy.deepcopy(value)
    return out


def apply_overrides(cfg: dict, overrides: list[str] | None) -> dict:
    """Apply `a.b.c=value` strings (YAML-typed values), refusing unknown keys and values of the
    wrong type, choice or range (checked against the value replaced). A mapping value on a section
    merges into it, as a profile does; on a free mapping (MAPPINGS) it replaces it."""
    problems: list[ConfigProblem] = []
    out, layer = _apply(cfg, overrides, problems)
    ctx = Ctx([layer], "the overrides", problems)
    for path in layer:
        if _has(out, path):
            _put(out, path, check(_get(out, path), _template_at(cfg, path), path, rule_key(path), ctx))
    if problems:
        problems = unique(problems)
        raise ConfigError(problems, header=f"{len(problems)} problem(s) in the overrides")
    return out


def params_path(path: str | os.PathLike | None = None) -> Path:
    return Path(path or os.environ.get(PARAMS_ENV) or DEFAULT_PARAMS)


def load(
    path: str | os.PathLike | None = None,
    profile: str | None = None,
    overrides: list[str] | None = None,
) -> dict:
    """Effective config: params.yaml sections, then the profile's overrides, then `overrides`.

    The profile comes from the argument, else $THTL_PROFILE, else params.yaml's `profile` key.
    The returned dict has `profile` set and no `profiles` section. Every profile is checked, not
    only the chosen one, so a typo in `paper` is found on a smoke run too.
    """
    p = params_path(path)
    if not p.is_file():
        raise ConfigError(f"parameter file {p} not found: run from the repository root or set {PARAMS_ENV}")
    problems: list[ConfigProblem] = []
    raw, lines = _read_yaml(p.read_text(), str(p), problems)
    if not isinstance(raw, dict):
        raise ConfigError([*problems, ConfigProblem(str(p), "", "is not a mapping of sections",
                                                    "write `section:` blocks as in the committed params.yaml")])
    base_layer = {k: f"{p}:{n}" for k, n in lines.items() if k[0] != "profiles"}
    profiles = raw.pop("profiles", {}) or {}
    if not isinstance(profiles, dict):
        problems.append(ConfigProblem(f"{p}:{lines[('profiles',)]}", "profiles", "is not a mapping of profiles",
                                      "write `profiles:` with one `name:` block per profile"))
        profiles = {}
    default = raw.get("profile")
    if default is not None and (not isinstance(default, str) or default not in profiles):
        problems.append(ConfigProblem(f"{p}:{lines.get(('profile',), '?')}", "profile",
                                      f"names {show(default)}, which is not a profile", f"use one of {sorted(profiles)}"))
        default = None
    name = profile or os.environ.get(PROFILE_ENV) or default or "smoke"
    if name not in profiles:
        problems.append(ConfigProblem(str(p), "", f"has no profile {name!r}", f"use one of {sorted(profiles)}"))
    cfg = None
    for pname, prof in profiles.items():
        prof = _profile_body(prof, pname, f"{p}:{lines.get(('profiles', pname), '?')}", problems)
        if prof is None:
            continue
        merged = deep_merge(raw, prof)
        merged["profile"] = pname
        layers = [base_layer, _profile_layer(prof, raw, pname, lines, p)]
        if pname == name:
            merged, over = _apply(merged, overrides, problems)
            layers.append(over)
        checked = validate(merged, raw, profiles, Ctx(layers, str(p), problems))
        if pname == name:
            cfg = checked
    if cfg is None:  # the chosen profile is missing: still report what the overrides get wrong
        merged, over = _apply(dict(raw, profile=name), overrides, problems)
        validate(merged, raw, profiles, Ctx([base_layer, over], str(p), problems))
    if problems:
        problems = unique(problems)
        raise ConfigError(problems, header=f"{p}: {len(problems)} configuration problem(s)")
    cfg["_params_file"] = str(p)
    return resolve_roots(cfg)


def resolve_roots(cfg: dict) -> dict:
    """Fill the null paths: `data.root` with data/<profile>, every domain section's `root` with
    <data.root>/<domain> (each profile has its own data folder, the output of dvc.yaml's synth
    stage), and `split.dir`, `grid.records_dir`, `grid.checkpoints_dir` with
    splits|records|checkpoints/<profile>: the names dvc.yaml writes as `<kind>/${profile}`."""
    prof = str(cfg.get("profile") or "smoke")
    data = cfg.get("data") or {}
    if isinstance(cfg.get("data"), dict) and data.get("root") is None:
        data["root"] = f"data/{prof}"
    for name in domains.NAMES:
        sec = data.get(name)
        if isinstance(sec, dict) and sec.get("root") is None:
            sec["root"] = f"{str(data.get('root', 'data')).rstrip('/')}/{name}"
    for section, key, kind in (("split", "dir", "splits"), ("grid", "records_dir", "records"),
                               ("grid", "checkpoints_dir", "checkpoints")):
        sec = cfg.get(section)
        if isinstance(sec, dict) and sec.get(key) is None:
            sec[key] = f"{kind}/{prof}"
    cam, rep = cfg.get("cam"), cfg.get("report")
    if isinstance(cam, dict) and cam.get("out_dir") is None and isinstance(rep, dict):
        cam["out_dir"] = f"{str(rep.get('dir', 'report')).rstrip('/')}/figures"
    return cfg


def canonical_json(obj: Any) -> str:
    """Stable JSON text: sorted keys, no whitespace; the input of every identity hash."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)


def digest(obj: Any, n: int = 12) -> str:
    return hashlib.sha256(canonical_json(obj).encode()).hexdigest()[:n]


# ------------------------------------------------------------------------------- reading YAML


class _Loader(yaml.SafeLoader):
    """SafeLoader that also reads `1e-3` as a float (YAML 1.2; YAML 1.1 makes it a string)."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def _read_yaml(text: str, label: str, problems: list[ConfigProblem]) -> tuple[Any, dict[tuple, int]]:
    """Parse text; return the data and the line of every mapping key (by path). A key given twice
    in one mapping (PyYAML would keep the last silently) is a problem naming both lines."""
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        if label.startswith("-S"):
            what = " ".join(str(x) for x in (getattr(exc, "context", None), getattr(exc, "problem", None)) if x)
            raise ConfigError(ConfigProblem(label, "", f"has a value that is not valid YAML ({what or exc})",
                                            "quote the value for the shell, e.g. -S 'grid.seeds=[0, 1]'")) from exc
        where = f"{label}:{mark.line + 1}" if mark is not None else label
        raise ConfigError(ConfigProblem(where, "", f"is not valid YAML ({exc})", "fix the line shown")) from exc
    finally:
        loader.dispose()
    lines: dict[tuple, int] = {}
    if node is not None:
        _key_lines(node, (), lines, label, problems, set())
    return data, lines


def _key_lines(node, path: tuple, lines: dict, label: str, problems: list, seen_nodes: set) -> None:
    if id(node) in seen_nodes:  # an alias: its lines were recorded where the anchor is
        return
    seen_nodes.add(id(node))
    if isinstance(node, yaml.MappingNode):
        first: dict[str, int] = {}
        for knode, vnode in node.value:
            if not isinstance(knode, yaml.ScalarNode):
                continue
            key, line = knode.value, knode.start_mark.line + 1
            where = f"{label}:{line}" if not label.startswith("-S") else label
            if key in first:
                problems.append(ConfigProblem(where, dotted(path + (key,)),
                                              f"is given twice (lines {first[key]} and {line}); YAML keeps only the last",
                                              "delete one of the two"))
            else:
                first[key] = line
                lines[path + (key,)] = line
            _key_lines(vnode, path + (key,), lines, label, problems, seen_nodes)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _key_lines(item, path + (i,), lines, label, problems, seen_nodes)


def _profile_body(prof: Any, name: str, where: str, problems: list[ConfigProblem]) -> dict | None:
    """A profile's overrides, without the keys a profile may not set; None if it is not a mapping."""
    if prof is None:
        return {}
    if not isinstance(prof, dict):
        problems.append(ConfigProblem(where, f"profiles.{name}", "is not a mapping of sections",
                                      "write the profile's overrides as `section:` blocks, or {}"))
        return None
    for bad in ("profile", "profiles"):
        if bad in prof:
            problems.append(ConfigProblem(where, f"profiles.{name}.{bad}", "cannot be set inside a profile",
                                          "remove it; choose the profile with --profile or $THTL_PROFILE"))
    return {k: v for k, v in prof.items() if k not in ("profile", "profiles")}


def _profile_layer(prof: dict, base: dict, name: str, lines: dict, p: Path) -> dict[tuple, str]:
    """Where each value a profile sets comes from: the leaves it replaces (sections it merges into
    are not its own, so their other keys stay attributed to the base)."""
    layer: dict[tuple, str] = {}

    def walk(node: dict, under: Any, path: tuple) -> None:
        for key, value in node.items():
            sub = path + (key,)
            if isinstance(value, dict) and isinstance(under, dict) and isinstance(under.get(key), dict):
                walk(value, under[key], sub)
            else:
                layer[sub] = f"{p}:{lines.get(('profiles', name) + sub, '?')} (profile {name})"

    walk(prof, base, ())
    return layer


# ---------------------------------------------------------------------------------- overrides


def _apply(cfg: dict, overrides: list[str] | None, problems: list[ConfigProblem]) -> tuple[dict, dict]:
    """Apply overrides structurally (known keys only); return the config and where each came from."""
    cfg = copy.deepcopy(cfg)
    layer: dict[tuple, str] = {}
    for text in overrides or []:
        where = f"-S {text}"
        key, sep, raw = text.partition("=")
        parts = tuple(key.strip().split("."))
        if not sep or "" in parts:
            problems.append(ConfigProblem(where, "", "is not KEY=VALUE", "write e.g. -S train.max_epochs=2"))
            continue
        if parts == ("profile",):
            problems.append(ConfigProblem(where, "profile", "does not switch the profile",
                                          f"use --profile {raw.strip() or 'NAME'} (or ${PROFILE_ENV})"))
            continue
        try:
            value, _ = _read_yaml(raw, where, problems)
        except ConfigError as exc:
            problems.extend(exc.problems)
            continue
        node, ok = cfg, True
        for i, part in enumerate(parts):
            here = parts[: i + 1]
            last = i == len(parts) - 1
            if not isinstance(node, dict):
                problems.append(ConfigProblem(where, dotted(here[:-1]), "is not a section",
                                              f"override {dotted(here[:-1])} itself"))
                ok = False
                break
            if part not in node and not (last and mapping_type(rule_key(here[:-1])) is not None):
                problems.append(unknown_key(where, here, node, is_override=True))
                ok = False
                break
            if not last:
                node = node[part]
        if not ok:
            continue
        if isinstance(value, dict) and isinstance(node.get(parts[-1]), dict) and mapping_type(rule_key(parts)) is None:
            node[parts[-1]] = deep_merge(node[parts[-1]], value)
        else:
            node[parts[-1]] = value
        layer[parts] = where
    return cfg, layer


def _has(cfg: dict, path: tuple) -> bool:
    node = cfg
    for part in path:
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True


def _get(cfg: dict, path: tuple) -> Any:
    for part in path:
        cfg = cfg[part]
    return cfg


def _put(cfg: dict, path: tuple, value: Any) -> None:
    _get(cfg, path[:-1])[path[-1]] = value


def _template_at(cfg: dict, path: tuple) -> Any:
    """The value an override replaced: its type is the one to keep (a new entry of a free mapping
    takes the mapping's value type)."""
    if _has(cfg, path):
        return _get(cfg, path)
    mapping = mapping_type(rule_key(path[:-1]))
    return TEMPLATES[mapping] if mapping is not None else None
