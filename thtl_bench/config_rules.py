"""The rules `config.load` checks a merged config against, and the problems it reports.

The rules come from the base sections of params.yaml themselves, so a new key needs no code
here: a value must have the type of the base value it replaces (true/false, an integer, a
number (an integer is accepted and stored as a float), a string, a list whose items have the
base list's item type (item by item for a mixed list such as bench.session_case), or a section
holding only the base section's keys). Only what the base cannot say is tabled below: CHOICES,
RANGES, NULLABLE, MAPPINGS, UNIQUE, MODEL_KEYS (model names, checked against the vocabulary of
thtl_bench.catalog), and a few relations between keys (`relations`). Every problem names
params.yaml:line or the `-S` text, the key and the fix (ConfigProblem); config.load raises them
together in one ConfigError.
"""

from __future__ import annotations

import difflib
import math
import re
import shlex
from dataclasses import dataclass
from typing import Any

import yaml

from thtl_bench import arms, catalog, domains
from thtl_bench.errors import UserError

# The data layer's thtl_bench.data.cache.RESIZE_MODES, repeated because config may not import the
# data layer; tests/test_config.py checks that they agree. Layouts per domain: thtl_bench.domains.
RESIZE_MODES = ("shorter_side_center_crop", "pad_to_square", "stretch")
LAYOUTS = {d.name: domains.LAYOUTS[d.role] for d in domains.DOMAINS.values()}

# Enumerated strings: only values the code implements. "cuda:N" stands for cuda:0, cuda:1, ...
CHOICES: dict[str, tuple[str, ...]] = {
    "data.kind": ("phantom", "real"),
    "data.resize": RESIZE_MODES,
    **{f"data.{domain}.layout": layouts for domain, layouts in LAYOUTS.items()},
    "data.larynx.cenbi_label_source": ("folder", "spreadsheet"),
    "train.optimizer": ("adamw", "sgd"),
    "train.schedule": ("cosine", "constant"),
    "train.precision": ("fp32", "bf16", "fp16"),
    "train.device": ("auto", "cpu", "cuda", "cuda:N"),
}

# Intervals, in interval notation; on a list or a mapping they apply to every item. Keys named
# `seed`, `seeds` or `*_seed` are non-negative integers without an entry (numpy refuses others).
RANGES: dict[str, str] = {
    "data.image_size": "[1, inf)",
    "synth.image_size": "[1, inf)",
    "synth.fundus.per_grade": "[1, inf)",
    "synth.larynx.patients": "[1, inf)",
    "synth.larynx.images_per_patient": "[1, inf)",
    "synth.difficulty.tortuosity_overlap": "[0, 1]",
    "synth.difficulty.noise": "[0, 1]",
    "synth.difficulty.blur": "[0, inf)",
    "synth.difficulty.illumination": "[0, 1]",
    "split.val": "(0, 1)",
    "split.test": "(0, 1)",
    "train.batch_size": "[1, inf)",
    "train.lr_head": "(0, inf)",
    "train.lr_backbone": "(0, inf)",
    "train.lr_scratch": "(0, inf)",
    "train.weight_decay": "[0, inf)",
    "train.max_epochs": "[1, inf)",
    "train.min_epochs": "[0, inf)",
    "train.warmup_epochs": "[0, inf)",
    "train.patience": "[1, inf)",
    "train.swft_lr_decay": "(0, 1]",
    "train.head_init_std": "(0, inf)",
    "train.augment.rotate_deg": "[0, 180]",
    "train.augment.brightness": "[0, 1]",
    "train.augment.contrast": "[0, 1]",
    "train.head_only_views": "[1, inf)",
    "train.feature_cache_max_gb": "[0, inf)",
    "train.num_threads": "[0, inf)",
    "train.max_grad_norm": "(0, inf)",
    "train.divergence_loss": "(0, inf)",
    "train.checkpoint_every_min": "[0, inf)",
    "stats.confidence": "(0, 1)",
    "stats.tolerance_pp": "[0, inf)",
    "stats.min_replicates": "[1, inf)",
    "stats.fit.min_train_accuracy": "[0, 1]",
    "stats.fit.min_kappa": "[0, 1]",
    "stats.fit.min_fit_gain": "[0, 1]",
    "stats.fit.max_excluded_share": "[0, 1)",
    "stats.calibration.n_sim": "[1, inf)",
    "stats.calibration.replicates": "[2, inf)",
    "stats.calibration.pessimistic_scale": "(0, inf)",
    "stats.calibration.min_power": "(0, 1)",
    "stats.bootstrap": "[1, inf)",
    "grid.replicates": "[0, inf)",  # (training seed, split seed) pairs
    "grid.target_fractions": "(0, 1]",
    "grid.intermediate_fractions": "(0, 1]",
    "stats.equivalence_margin_pp": "(0, inf)",
    "stats.alpha": "(0, 1)",
    "cam.images_per_class": "[1, inf)",
    "transferability.max_images": "[2, inf)",  # the scores need two images of each class at least
    "report.projection.fundus_images": "[1, inf)",
    "report.projection.larynx_images": "[1, inf)",
    "report.projection.gpu_peak_tflops": "(0, inf)",
    "report.projection.mfu": "(0, 1]",
    "bench.session_wall_s": "(0, inf)",
    "bench.session_peak_gib": "(0, inf)",
    "bench.data_pipeline_ratio": "(0, inf)",
    "bench.feature_cache_speedup": "(0, inf)",
    "bench.feature_cache_epochs": "[1, inf)",
    "bench.cache_probs_atol": "(0, 1]",
    "bench.gpu_ratio": "(0, inf)",
    "bench.gpu_image_size": "[1, inf)",
    "bench.gpu_batch_size": "[1, inf)",
    "bench.study_gpu_hours": "(0, inf)",
    "bench.inference_rounds": "[1, inf)",
    "bench.timed_steps": "[1, inf)",
    "bench.warmup_steps": "[0, inf)",
    "bench.throughput_rounds": "[1, inf)",
    "bench.gpu_timed_steps": "[1, inf)",
    "bench.gpu_warmup_steps": "[0, inf)",
    "bench.scaling_steps": "[1, inf)",
    "bench.grid_workers": "[1, inf)",
}
SEED_RANGE = "[0, inf)"

# Keys where null is a documented value (beside any key that is null in the base).
NULLABLE = frozenset({
    "data.root",  # null = data/<profile> (dvc.yaml's synth stage output)
    "data.*.root",  # null = <data.root>/<domain>
    "split.dir",  # null = splits/<profile>
    "grid.records_dir",  # null = records/<profile>
    "grid.checkpoints_dir",  # null = checkpoints/<profile>
    "cam.out_dir",  # null = <report.dir>/figures
    "train.max_grad_norm",  # null = no clipping
    "stats.fit.min_fit_gain",  # null = the selected weights' kappa alone (the gate before its amendment)
    "stats.fit.max_excluded_share",  # null = any failing replicate withholds the claim (before the amendment)
    "bench.session_wall_s",  # null = no target on this profile
    "bench.session_peak_gib",
})

# Mappings whose keys are free (folder names, class names, model names), with their value type;
# every other mapping is a section whose keys are the base's. `*` matches one key.
MAPPINGS: dict[str, type] = {
    "data.*.folder_map": str,
    "synth.*.patients": int,
    "weights.files": str,
    "grid.arm_replicates": int,  # arm -> how many of grid.replicates it runs (the first ones)
    "grid.model_replicates": int,  # model -> how many of grid.replicates it runs (the first ones)
}

# Lists whose items may not repeat (a repeat would run or count a case twice).
UNIQUE = frozenset({"data.modes", "data.*.classes", "grid.models", "grid.arms", "grid.replicates", "grid.domains",
                    "grid.target_fractions", "grid.intermediate_fractions", "cam.arms"})


# Keys holding model names, each checked against the model vocabulary (thtl_bench.catalog.model_known:
# the registered models, or torchvision / timm names) at load time, so a typo fails before anything
# runs. `*` stands for every list item or mapping key, a number for that list position.
MODEL_KEYS = ("grid.models.*", "grid.exclude.*.0", "cam.model", "stats.primary_models.*", "bench.scaling_model",
              "bench.session_case.0", "weights.files.*", "grid.model_replicates.*")


class ConfigError(UserError, ValueError):
    """A parameter file or override that cannot be used as given; `problems` lists every one."""

    def __init__(self, problems: list[ConfigProblem] | ConfigProblem | str, header: str | None = None):
        self.problems = [problems] if isinstance(problems, (str, ConfigProblem)) else list(problems)
        lines = [str(p) for p in self.problems]
        if len(lines) == 1 and header is None:
            super().__init__(lines[0])
        else:
            head = header or f"{len(lines)} configuration problem(s)"
            super().__init__(head + ":\n  " + "\n  ".join(lines))


@dataclass(frozen=True)
class ConfigProblem:
    where: str  # params.yaml:LINE, or the override as given (-S key=value)
    key: str  # dotted key, "" for the file as a whole
    message: str
    fix: str

    def __str__(self) -> str:
        return f"{self.where}: {self.key + ' ' if self.key else ''}{self.message} (fix: {self.fix})"



# --------------------------------------------------------------------------------- validation

@dataclass
class Ctx:
    layers: list[dict[tuple, str]]  # base, profile, overrides: later ones win
    fallback: str
    problems: list[ConfigProblem]

    def where(self, path: tuple) -> str:
        for layer in reversed(self.layers):
            for n in range(len(path), 0, -1):
                if path[:n] in layer:
                    return layer[path[:n]]
        return self.fallback

    def add(self, path: tuple, message: str, fix: str) -> None:
        self.problems.append(ConfigProblem(self.where(path), dotted(path), message, fix))


def validate(cfg: dict, base: dict, profiles: dict, ctx: Ctx) -> dict:
    """The checked, normalised config (`profile` is load's own key, checked there)."""
    out = check({k: v for k, v in cfg.items() if k != "profile"},
                 {k: v for k, v in base.items() if k != "profile"}, (), "", ctx)
    for path, message, fix in _relations(out, profiles):
        ctx.add(path, message, fix)
    return {k: cfg[k] if k == "profile" else out[k] for k in cfg}  # in the file's order


def check(value: Any, template: Any, path: tuple, rule: str, ctx: Ctx) -> Any:
    """Check value against the base value it replaces and the tables; return it normalised (an
    integer where the base has a float becomes a float, so both spellings hash alike)."""
    if value is None:
        if template is not None and not _table_get(NULLABLE, rule):
            ctx.add(path, f"is null; expected {_expected(template, rule)}", _fix(ctx, path, template, rule, value))
        return value
    if template is None:  # the base is null: no type to hold it to, only the tables
        _check_rules(value, path, rule, ctx, template)
        return value
    want, have = _kind(template), _kind(value)
    if want == "float" and have == "int":
        value, have = float(value), "float"
    if want != have:
        ctx.add(path, f"is {show(value)} ({_noun(have)}); expected {_expected(template, rule)}",
                _fix(ctx, path, template, rule, value))
        return value
    if want == "list":
        return _check_list(value, template, path, rule, ctx)
    if want == "dict":
        return _check_dict(value, template, path, rule, ctx)
    _check_rules(value, path, rule, ctx, template)
    return value


def _check_list(value: list, template: list, path: tuple, rule: str, ctx: Ctx) -> list:
    item = _item_template(template)
    if item is _MIXED:  # a record such as [model, arm, seed]: item by item
        if len(value) != len(template):
            ctx.add(path, f"has {len(value)} items; expected {_expected(template, rule)}",
                    _fix(ctx, path, template, rule, value))
            return value
        return [check(v, t, path + (i,), rule, ctx) for i, (v, t) in enumerate(zip(value, template, strict=True))]
    out = [check(v, item, path + (i,), rule, ctx) for i, v in enumerate(value)]
    if _table_get(UNIQUE, rule) and not (path and isinstance(path[-1], int)):  # the outer list, not its items
        repeats = sorted({show(v) for i, v in enumerate(out) if v in out[:i]})
        if repeats:
            ctx.add(path, f"repeats {', '.join(repeats)}", "list each item once")
    return out


def _check_dict(value: dict, template: dict, path: tuple, rule: str, ctx: Ctx) -> dict:
    mapping = mapping_type(rule)
    out = {}
    for key, v in value.items():
        sub = path + (key,)
        if mapping is not None:
            if not isinstance(key, str):
                ctx.add(sub, f"has {_noun(_kind(key))} as a key; expected a string", f'quote the key: "{key}"')
            out[key] = check(v, TEMPLATES[mapping], sub, rule, ctx)
        elif key not in template:
            ctx.problems.append(unknown_key(ctx.where(sub), sub, template, is_override=ctx.where(sub).startswith("-S")))
            out[key] = v
        else:
            out[key] = check(v, template[key], sub, f"{rule}.{key}" if rule else str(key), ctx)
    return out


def _check_rules(value: Any, path: tuple, rule: str, ctx: Ctx, template: Any) -> None:
    choices = _table_get(CHOICES, rule)
    if choices and not (isinstance(value, str) and any(_chosen(value, c) for c in choices)):
        ctx.add(path, f"is {show(value)}, which is not implemented; choose one of {' | '.join(choices)}",
                _fix(ctx, path, template, rule, value))
    interval = _interval(rule)
    if interval and (_kind(value) not in ("int", "float") or value not in interval):
        # a range implies a number, which also catches a base value of the wrong type
        number = 0.0 if _kind(template) not in ("int", "float") else template
        ctx.add(path, f"is {show(value)}; expected {_expected(number, rule)}", _fix(ctx, path, number, rule, value))


def _relations(cfg: dict, profiles: dict) -> list[tuple[tuple, str, str]]:
    """Checks that join two keys (run on a config whose types are already checked)."""
    out = []
    split = cfg.get("split")
    if isinstance(split, dict) and all(isinstance(split.get(k), float) for k in ("val", "test")):
        if split["val"] + split["test"] >= 1:
            out.append((("split", "test"), f"+ split.val = {split['val'] + split['test']:g} leaves no training split",
                        "make split.val + split.test < 1"))
    for name, sec in (cfg.get("synth") or {}).items():
        span = sec.get("images_per_patient") if isinstance(sec, dict) else None
        if isinstance(span, list) and (len(span) != 2 or (all(isinstance(x, int) for x in span) and span[0] > span[1])):
            out.append((("synth", name, "images_per_patient"), f"is {show(span)}; expected an inclusive range [low, high]",
                        "give two integers, low <= high, e.g. [2, 6]"))
    for name, sec in (cfg.get("data") or {}).items():
        classes = sec.get("classes") if isinstance(sec, dict) else None
        if not isinstance(classes, list):
            continue
        if "positive" in sec and sec["positive"] not in classes:
            out.append((("data", name, "positive"), f"is {show(sec['positive'])}, not one of data.{name}.classes {classes}",
                        f"set it to one of {classes}"))
        for folder, label in (sec.get("folder_map") or {}).items():
            if label not in classes:
                out.append((("data", name, "folder_map", folder), f"maps to {show(label)}, not one of data.{name}.classes",
                            f"map it to one of {classes}"))
    for i, pair in enumerate((cfg.get("grid") or {}).get("exclude") or []):
        if not (isinstance(pair, list) and len(pair) == 2 and all(isinstance(x, str) for x in pair)
                and pair[1] in arms.NAMES):
            out.append((("grid", "exclude", i), f"is {show(pair)}; expected [model, arm] with an arm of "
                        f"{list(arms.NAMES)}", "write e.g. [resnet18, scratch]"))
    out += _model_problems(cfg)
    for arm, n in ((cfg.get("grid") or {}).get("arm_replicates") or {}).items():
        if arm not in arms.NAMES:
            out.append((("grid", "arm_replicates", arm), f"names an unknown arm; arms are {list(arms.NAMES)}",
                        "use an arm name of thtl_bench.arms"))
        elif isinstance(n, int) and n < 1:  # more than grid.replicates holds: all of them
            out.append((("grid", "arm_replicates", arm), f"is {n}; an arm runs at least one replicate",
                        "give a count of 1 or more, or leave the arm out of the mapping"))
    for model, n in ((cfg.get("grid") or {}).get("model_replicates") or {}).items():
        if isinstance(n, int) and n < 1:
            out.append((("grid", "model_replicates", model), f"is {n}; a model runs at least one replicate",
                        "give a count of 1 or more, or leave the model out of the mapping"))
    proj = (cfg.get("report") or {}).get("projection")
    if isinstance(proj, dict) and isinstance(proj.get("profile"), str) and proj["profile"] not in profiles:
        out.append((("report", "projection", "profile"), f"is {proj['profile']!r}, not a profile",
                    f"use one of {sorted(profiles)}"))
    return out


def _model_names(cfg: Any, pattern: str) -> list[tuple[tuple, Any]]:
    """(path, value) of every place `pattern` (a MODEL_KEYS entry) names a model in cfg; `*` is
    every item of a list or every key of a mapping (the key is the model name)."""
    found = [((), cfg)]
    for part in pattern.split("."):
        nxt = []
        for path, node in found:
            if part == "*" and isinstance(node, list):
                nxt += [(path + (i,), v) for i, v in enumerate(node)]
            elif part == "*" and isinstance(node, dict):
                nxt += [(path + (k,), k) for k in node]
            elif part.isdigit() and isinstance(node, list) and int(part) < len(node):
                nxt.append((path + (int(part),), node[int(part)]))
            elif isinstance(node, dict) and part in node:
                nxt.append((path + (part,), node[part]))
        found = nxt
    return found


def _model_problems(cfg: dict) -> list[tuple[tuple, str, str]]:
    """One problem per key of MODEL_KEYS that names models the registry would refuse, listing them all."""
    out = []
    for pattern in MODEL_KEYS:
        bad = [(path, v) for path, v in _model_names(cfg, pattern) if isinstance(v, str) and catalog.model_known(v) is False]
        if bad:
            parts = pattern.split(".")
            key = bad[0][0][:parts.index("*")] if "*" in parts else bad[0][0]  # the list itself, or the key
            out.append((key, catalog.unknown_models_text(list(dict.fromkeys(v for _, v in bad))),
                        "correct the name(s); `thtl-bench weights list` lists the registered models"))
    return out


# ------------------------------------------------------------------------------------ helpers

_MIXED = object()
TEMPLATES: dict[type, Any] = {str: "", int: 0, float: 0.0, bool: False}
_NOUNS = {"null": ("null", "nulls"), "bool": ("true/false", "true/false values"), "int": ("an integer", "integers"),
          "float": ("a number", "numbers"), "str": ("a string", "strings"), "list": ("a list", "lists"),
          "dict": ("a mapping", "mappings")}


@dataclass(frozen=True)
class _Interval:
    lo: float
    hi: float
    lo_closed: bool
    hi_closed: bool

    @classmethod
    def parse(cls, text: str) -> _Interval:
        m = re.fullmatch(r"([\[(])\s*([^,\s]+)\s*,\s*([^,\s]+)\s*([\])])", text)
        if m is None:
            raise ValueError(f"bad interval {text!r}")
        return cls(float(m[2]), float(m[3]), m[1] == "[", m[4] == "]")

    def __contains__(self, x: float) -> bool:
        above = x >= self.lo if self.lo_closed else x > self.lo
        below = x <= self.hi if self.hi_closed else x < self.hi
        return bool(above and below)

    def __str__(self) -> str:
        lo = f"{self.lo:g}"
        if math.isinf(self.hi):
            return f"{'>=' if self.lo_closed else '>'} {lo}"
        return f"in {'[' if self.lo_closed else '('}{lo}, {self.hi:g}{']' if self.hi_closed else ')'}"


_PARSED_RANGES = {k: _Interval.parse(v) for k, v in RANGES.items()}
_SEED = _Interval.parse(SEED_RANGE)


def _kind(v: Any) -> str:
    for t, name in ((type(None), "null"), (bool, "bool"), (int, "int"), (float, "float"), (str, "str"),
                    (list, "list"), (dict, "dict")):
        if isinstance(v, t):
            return name
    return type(v).__name__


def _noun(kind: str, plural: bool = False) -> str:
    return _NOUNS.get(kind, (kind, kind + "s"))[plural]


def dotted(path: tuple) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def rule_key(path: tuple) -> str:
    """The key the tables use: list positions dropped, a free mapping's own keys dropped."""
    rule = ""
    for part in path:
        if isinstance(part, int) or (rule and mapping_type(rule) is not None):
            continue
        rule = f"{rule}.{part}" if rule else str(part)
    return rule


def _matches(pattern: str, key: str) -> bool:
    a, b = pattern.split("."), key.split(".")
    return len(a) == len(b) and all(x in ("*", y) for x, y in zip(a, b, strict=True))


def _table_get(table, key: str):
    if key in table:
        return table[key] if isinstance(table, dict) else True
    for pattern in table:
        if "*" in pattern and _matches(pattern, key):
            return table[pattern] if isinstance(table, dict) else True
    return None


def mapping_type(rule: str) -> type | None:
    return _table_get(MAPPINGS, rule)


def _interval(rule: str) -> _Interval | None:
    last = rule.rsplit(".", 1)[-1]
    if last in ("seed", "seeds") or last.endswith("_seed"):
        return _SEED
    found = _table_get(_PARSED_RANGES, rule)
    return found


def _chosen(value: str, choice: str) -> bool:
    if choice.endswith(":N"):
        prefix = choice[:-1]
        return value.startswith(prefix) and value[len(prefix):].isdigit()
    return value == choice


def _item_template(template: list) -> Any:
    kinds = {_kind(v) for v in template}
    if not template:
        return None
    if kinds == {"int", "float"}:
        return 0.0
    return template[0] if len(kinds) == 1 else _MIXED


def _expected(template: Any, rule: str) -> str:
    """Plain words for what a key takes, e.g. 'an integer >= 1', 'a list of strings'."""
    kind = _kind(template)
    choices = _table_get(CHOICES, rule)
    interval = _interval(rule)
    nullable = " (or null)" if _table_get(NULLABLE, rule) else ""
    if kind == "list":
        item = _item_template(template)
        if item is _MIXED:
            return "[" + ", ".join(_noun(_kind(t)) for t in template) + "]" + nullable
        if item is None:
            return "a list" + nullable
        return f"a list of {_item_words(item, choices, interval, plural=True)}" + nullable
    if kind == "dict":
        mapping = mapping_type(rule)
        if mapping is not None:
            return f"a mapping of name: {_item_words(TEMPLATES[mapping], choices, interval, plural=False)}" + nullable
        return "a section" + nullable
    return _item_words(template, choices, interval, plural=False) + nullable


def _item_words(template: Any, choices, interval, plural: bool) -> str:
    if choices:
        return ("strings" if plural else "a string") + f", one of {' | '.join(choices)}"
    words = _noun(_kind(template), plural)
    return f"{words} {interval}" if interval and _kind(template) in ("int", "float") else words


def show(value: Any) -> str:
    if isinstance(value, str):
        return repr(value)
    text = yaml.safe_dump(value, default_flow_style=True, width=10**6).strip()
    return text.removesuffix("...").strip()


def _example(template: Any, rule: str, value: Any) -> str:
    """A value of the right shape for the fix text: the offending scalar wrapped in a list where a
    list of such scalars is wanted, a choice, else the base value."""
    choices = _table_get(CHOICES, rule)
    if isinstance(template, list) and not isinstance(value, (list, dict)) and value is not None:
        item = _item_template(template)
        if item is not None and item is not _MIXED and _kind(item) == _kind(value):
            return f"[{show(value).strip(chr(39))}]"
    if choices:
        return choices[0]
    return show(template) if template is not None else "..."


def _fix(ctx: Ctx, path: tuple, template: Any, rule: str, value: Any) -> str:
    key, override = dotted(path), ctx.where(path).startswith("-S")
    expected = _expected(template, rule)
    if isinstance(template, str) and _kind(value) in ("int", "float", "bool"):
        return (f"quote it for YAML: {_shell(key, chr(34) + show(value) + chr(34))}" if override
                else f'quote it for YAML: {key.rsplit(".", 1)[-1]}: "{show(value)}"')
    if isinstance(path[-1], int) or (len(path) > 1 and mapping_type(rule_key(path[:-1])) is not None):
        return f"make each item {expected}"
    choices = _table_get(CHOICES, rule)
    if choices and isinstance(template, str):
        return f"choose one, e.g. {_shell(key, choices[0])}" if override else "choose one of them"
    if override:
        return f"give {expected}, e.g. {_shell(key, _example(template, rule, value))}"
    like = f" like the base value {show(template)}" if template is not None and template != value else ""
    return f"give {expected}{like}"


def _shell(key: str, value: str) -> str:
    return "-S " + shlex.quote(f"{key}={value}")


def unknown_key(where: str, path: tuple, known: dict, is_override: bool) -> ConfigProblem:
    section = dotted(path[:-1]) or "the top level"
    names = [str(k) for k in known]
    close = difflib.get_close_matches(str(path[-1]), names, n=3, cutoff=0.6)
    hint = f"; did you mean {' or '.join(close)}?" if close else ""
    fix = (f"use {close[0]}" if close else f"use one of {', '.join(sorted(names))}") if is_override else \
        (f"rename it to {close[0]}" if close else f"remove it ({section} has {', '.join(sorted(names))})")
    return ConfigProblem(where, dotted(path), f"is not a key of {section}{hint}", fix)


def unique(problems: list[ConfigProblem]) -> list[ConfigProblem]:
    return list(dict.fromkeys(problems))

