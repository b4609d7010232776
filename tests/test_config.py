"""config.load validation: types from the base params.yaml, CHOICES, RANGES, profiles, duplicates."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from thtl_bench import config, config_rules

ROOT = Path(__file__).resolve().parents[1]
PARAMS = ROOT / "params.yaml"
PROFILES = sorted(yaml.safe_load(PARAMS.read_text())["profiles"])


def load(*overrides: str, path: Path = PARAMS, profile: str = "smoke") -> dict:
    return config.load(path, profile, list(overrides))


def refused(*overrides: str, path: Path = PARAMS, profile: str = "smoke") -> config.ConfigError:
    with pytest.raises(config.ConfigError) as info:
        load(*overrides, path=path, profile=profile)
    return info.value


def edited(tmp_path: Path, old: str, new: str, count: int = 1) -> Path:
    """A copy of the committed params.yaml with one text edit (which must apply)."""
    text = PARAMS.read_text()
    assert text.count(old) >= count, old
    out = tmp_path / "params.yaml"
    out.write_text(text.replace(old, new, count))
    return out


def line_of(path: Path, text: str, nth: int = 1) -> int:
    hits = [i for i, line in enumerate(path.read_text().splitlines(), 1) if text in line]
    return hits[nth - 1]


# ------------------------------------------------------------------ the committed file is valid


@pytest.mark.parametrize("profile", PROFILES)
def test_committed_params_and_every_profile_validate(profile):
    cfg = config.load(PARAMS, profile)
    assert cfg["profile"] == profile and "profiles" not in cfg
    assert cfg["_params_file"] == str(PARAMS)


def test_committed_profiles_include_smoke_and_paper():
    assert {"smoke", "paper"} <= set(PROFILES)


def test_valid_overrides_come_through_unchanged():
    cfg = load("train.max_epochs=2", "grid.records_dir=/tmp/r", "synth.larynx.patients={benign: 7, malignant: 7}",
               "grid.models=[resnet18]", "train.device=cuda:1", "train.max_grad_norm=null")
    assert cfg["train"]["max_epochs"] == 2 and cfg["grid"]["records_dir"] == "/tmp/r"
    assert cfg["synth"]["larynx"]["patients"] == {"benign": 7, "malignant": 7}
    assert cfg["grid"]["models"] == ["resnet18"] and cfg["train"]["device"] == "cuda:1"
    assert cfg["train"]["max_grad_norm"] is None


def test_an_integer_is_a_number_and_is_stored_as_a_float():
    cfg = load("train.lr_head=1", "grid.target_fractions=[1]")
    assert cfg["train"]["lr_head"] == 1.0 and isinstance(cfg["train"]["lr_head"], float)
    assert config.digest(cfg["grid"]) == config.digest(load("grid.target_fractions=[1.0]")["grid"])


def test_exponent_without_a_dot_or_sign_is_a_float():
    # YAML 1.1 (PyYAML) reads 1e-3 and 1.0e4 as strings; the loader reads them as YAML 1.2 does.
    cfg = load("train.lr_head=1e-3")
    assert cfg["train"]["lr_head"] == 1e-3
    assert cfg["train"]["divergence_loss"] == 1.0e4 and isinstance(cfg["train"]["divergence_loss"], float)


# ------------------------------------------------------------------------ 1: types and ranges


def test_a_string_for_an_integer_is_refused_naming_the_override_and_the_type():
    msg = str(refused("train.max_epochs=abc"))
    assert "-S train.max_epochs=abc" in msg and "train.max_epochs" in msg
    assert "expected an integer >= 1" in msg and "-S train.max_epochs=30" in msg


def test_a_scalar_for_a_list_is_refused_with_the_list_spelled_out():
    msg = str(refused("grid.models=resnet18"))
    assert "grid.models is 'resnet18' (a string); expected a list of strings" in msg
    assert "grid.models=[resnet18]" in msg


@pytest.mark.parametrize("override, expected", [
    ("train.batch_size=0", "an integer >= 1"),
    ("train.batch_size=-4", "an integer >= 1"),
    ("train.lr_head=-1e-3", "a number > 0"),
    ("train.lr_backbone=0", "a number > 0"),
    ("grid.target_fractions=[1.5]", "a number in (0, 1]"),
    ("split.val=0", "a number in (0, 1)"),
    ("stats.alpha=1", "a number in (0, 1)"),
    ("synth.difficulty.noise=.nan", "a number in [0, 1]"),
    ("grid.replicates=[[0, -1]]", "an integer >= 0"),
    ("synth.seed=-3", "an integer >= 0"),
    ("synth.larynx.patients={benign: 0, malignant: 3}", "an integer >= 1"),
])
def test_out_of_range_values_are_refused(override, expected):
    msg = str(refused(override))
    assert f"-S {override}" in msg and f"expected {expected}" in msg


@pytest.mark.parametrize("override, expected", [
    ("train.augment.hflip=1", "expected true/false"),
    ("train.max_epochs=true", "expected an integer"),
    ("train.max_epochs=2.5", "expected an integer"),
    ("train.lr_head=yes", "expected a number"),
    ("report.dir=2024", "expected a string"),
    ("grid.replicates=[[0, a]]", "expected an integer"),
    ("train.augment=5", "expected a section"),
    ("bench.session_case=[a, b]", "expected [a string, a string, an integer]"),
    ("bench.session_case=[a, b, c]", "expected an integer"),
    ("weights.files={resnet18: 5}", "expected a string"),
    ("train.patience=null", "is null; expected an integer"),
    ("train.patience=", "is null; expected an integer"),
])
def test_wrong_types_are_refused(override, expected):
    assert expected in str(refused(override))


def test_a_number_where_a_string_is_wanted_is_told_to_quote_it():
    assert "-S 'report.dir=\"2024\"'" in str(refused("report.dir=2024"))
    assert load('report.dir="2024"')["report"]["dir"] == "2024"


def test_null_only_where_documented():
    for key in config.NULLABLE:
        key = key.replace("*", "fundus")  # a pattern: one of the keys it stands for
        node = load(f"{key}=null")
        for part in key.split("."):
            node = node[part]
        # a null path is filled: roots with <data.root>/<domain>, the profile's folders with <kind>/<profile>
        derived = {"split.dir": "splits/smoke", "grid.records_dir": "records/smoke",
                   "grid.checkpoints_dir": "checkpoints/smoke", "cam.out_dir": "report/figures"}
        assert node is None or key.endswith(".root") or node == derived[key], key
    assert "is null" in str(refused("train.max_epochs=null"))


def test_a_bad_value_in_the_file_names_the_file_and_line(tmp_path):
    p = edited(tmp_path, "  batch_size: 16 ", "  batch_size: sixteen ")
    msg = str(refused(path=p))
    assert f"{p}:{line_of(p, 'batch_size: sixteen')}: train.batch_size is 'sixteen'" in msg


def test_a_ranged_key_whose_base_value_is_not_a_number_is_refused(tmp_path):
    # the base defines the types, so only the range can tell that the base value itself is wrong
    p = edited(tmp_path, "  max_epochs: 30 ", "  max_epochs: six ")
    assert "train.max_epochs is 'six'; expected a number >= 1" in str(refused(path=p))


def test_relations_between_keys():
    assert "leaves no training split" in str(refused("split.val=0.5", "split.test=0.5"))
    assert "inclusive range" in str(refused("synth.larynx.images_per_patient=[6, 3]"))
    assert "inclusive range" in str(refused("synth.larynx.images_per_patient=[2, 3, 4]"))
    assert "not one of data.larynx.classes" in str(refused("data.larynx.positive=cancer"))
    assert "maps to 'tumour'" in str(refused("data.larynx.folder_map={T: tumour}"))
    assert "not a profile" in str(refused("report.projection.profile=papr"))
    assert "repeats [1, 1]" in str(refused("grid.replicates=[[0, 0], [1, 1], [1, 1]]"))


# -------------------------------------------------------------------------- 2: unknown keys


def test_an_unknown_key_in_a_profile_is_refused_with_file_line_and_close_match(tmp_path):
    p = edited(tmp_path, "      max_epochs: 30\n", "      max_epoch: 30\n")
    msg = str(refused(path=p, profile="paper"))
    assert f"{p}:{line_of(p, 'max_epoch: 30')} (profile paper): train.max_epoch is not a key of train" in msg
    assert "did you mean max_epochs" in msg and "rename it to max_epochs" in msg


def test_every_profile_is_checked_not_only_the_chosen_one(tmp_path):
    p = edited(tmp_path, "      max_epochs: 30\n", "      max_epochs: thirty\n")
    assert "(profile paper): train.max_epochs is 'thirty'" in str(refused(path=p, profile="smoke"))


def test_an_unknown_section_in_a_profile_is_refused(tmp_path):
    p = edited(tmp_path, "  paper:\n", "  paper:\n    trian:\n      max_epochs: 3\n")
    msg = str(refused(path=p, profile="paper"))
    assert "trian is not a key of the top level; did you mean train?" in msg


def test_a_profile_may_not_set_the_profile(tmp_path):
    p = edited(tmp_path, "  paper:\n", "  paper:\n    profile: smoke\n")
    assert "profiles.paper.profile cannot be set inside a profile" in str(refused(path=p, profile="paper"))


def test_unknown_override_keys_get_close_matches():
    msg = str(refused("train.max_epoch=3"))
    assert "train.max_epoch is not a key of train; did you mean max_epochs" in msg
    assert "did you mean train?" in str(refused("trian.max_epochs=3"))
    assert "is not a key of train.augment; did you mean vflip" in str(refused("train.augment={hflip: true, flip: 1}"))


def test_override_of_profile_is_refused_not_ignored():
    assert "does not switch the profile" in str(refused("profile=paper"))


def test_a_section_override_merges_and_a_mapping_override_replaces():
    cfg = load("train.augment={hflip: false}", "weights.files.resnet18=/ckpt/r18.pth")
    assert cfg["train"]["augment"]["hflip"] is False and cfg["train"]["augment"]["vflip"] is True
    assert cfg["weights"]["files"] == {"resnet18": "/ckpt/r18.pth"}
    cfg = load("data.larynx.folder_map={T: malignant}")
    assert cfg["data"]["larynx"]["folder_map"] == {"T": "malignant"}


# ------------------------------------------------------------------------------- 3: choices


def _a_choice(choice: str) -> str:
    return choice.replace(":N", ":0")


@pytest.mark.parametrize("key, choice", [(k, c) for k, cs in config.CHOICES.items() for c in cs])
def test_every_listed_choice_is_accepted(key, choice):
    section, *rest = key.split(".")
    node = load(f"{key}={_a_choice(choice)}")[section]
    for part in rest:
        node = node[part]
    assert node == _a_choice(choice)


@pytest.mark.parametrize("key", sorted(config.CHOICES))
def test_an_unlisted_choice_is_refused_with_the_choices(key):
    msg = str(refused(f"{key}=nonesuch"))
    assert f"{key} is 'nonesuch', which is not implemented; choose one of " + " | ".join(config.CHOICES[key]) in msg


@pytest.mark.parametrize("device", ["cuda:", "cuda:x", "cuda:-1", "cuda0", "gpu"])
def test_malformed_devices_are_refused(device):
    assert "train.device" in str(refused(f"train.device={device}"))


def test_resize_choices_agree_with_the_data_layer():
    from thtl_bench.data import cache

    assert tuple(cache.RESIZE_MODES) == config.RESIZE_MODES == config.CHOICES["data.resize"]


def test_layout_choices_agree_with_the_data_layer():
    from thtl_bench import domains
    from thtl_bench.data import sources

    assert {d: tuple(sources.LAYOUTS[x.role]) for d, x in domains.DOMAINS.items()} == config.LAYOUTS
    for domain, layouts in config.LAYOUTS.items():
        assert config.CHOICES[f"data.{domain}.layout"] == layouts


def test_precision_choices_agree_with_the_engine():
    from thtl_bench.engine import runtime

    assert set(runtime.PRECISIONS) == set(config.CHOICES["train.precision"])


# ----------------------------------------------------------------------------------- 4: YAML


def test_a_duplicated_key_names_both_lines(tmp_path):
    p = edited(tmp_path, "  patience: 4 ", "  patience: 4\n  max_epochs: 9 ")
    first, second = line_of(p, "max_epochs: 30"), line_of(p, "max_epochs: 9")
    msg = str(refused(path=p))
    assert f"{p}:{second}: train.max_epochs is given twice (lines {first} and {second})" in msg


def test_a_duplicated_key_in_a_profile_is_found(tmp_path):
    p = edited(tmp_path, "      max_epochs: 30\n", "      max_epochs: 30\n      max_epochs: 40\n")
    assert "profiles.paper.train.max_epochs is given twice" in str(refused(path=p, profile="smoke"))


def test_a_duplicated_key_in_an_override_value_is_found():
    assert "is given twice" in str(refused("synth.larynx.patients={benign: 3, benign: 4, malignant: 3}"))


def test_a_yaml_syntax_error_names_the_line(tmp_path):
    p = edited(tmp_path, "  image_size: 64                 # every", "  image_size: [64                # every")
    err = refused(path=p)
    assert re.search(rf"{re.escape(str(p))}:\d+: is not valid YAML", str(err))
    assert "line " in str(err)


def test_an_override_value_that_is_not_yaml_is_reported():
    assert "-S grid.models=[a,: has a value that is not valid YAML" in str(refused("grid.models=[a,"))


# ------------------------------------------------------------------ 5: generic over new keys


def test_new_keys_are_validated_from_their_base_value_without_code(tmp_path):
    p = edited(tmp_path, "  patience: 4 ", "  new_count: 1\n  new_share: 0.5\n  patience: 4 ")
    p.write_text(p.read_text().replace("\nprofiles:\n", "\nsurvey:\n  fundus: {kind: photo, classes: [a, b]}\n"
                                       "  larynx:\n    kind: nbi\n    weight: 1.0\n\nprofiles:\n"))
    cfg = config.load(p, "smoke", ["train.new_count=2", "survey.larynx.weight=2"])
    assert cfg["train"]["new_count"] == 2 and cfg["survey"]["larynx"]["weight"] == 2.0
    msg = str(refused("train.new_count=abc", "train.new_share=[1]", "survey.larynx.kind=3",
                      "survey.fundus.classes=a", "survey.larynx.wieght=1", path=p))
    for text in ["train.new_count is 'abc' (a string); expected an integer",
                 "train.new_share is [1] (a list); expected a number",
                 "survey.larynx.kind is 3 (an integer); expected a string",
                 "survey.fundus.classes is 'a' (a string); expected a list of strings",
                 "did you mean weight?"]:
        assert text in msg


# ---------------------------------------------------------------------- 6: all problems at once


def test_every_problem_is_listed_in_one_error(tmp_path):
    p = edited(tmp_path, "      max_epochs: 30\n", "      max_epoch: 30\n")
    err = refused("train.max_epochs=abc", "grid.models=resnet18", "train.batch_size=0", "train.optimizer=adam",
                  "nokey", path=p)
    msg = str(err)
    assert msg.startswith(f"{p}: 6 configuration problem(s):")
    assert len(err.problems) == 6 and all(isinstance(x, config.ConfigProblem) for x in err.problems)
    for text in ["-S train.max_epochs=abc", "-S grid.models=resnet18", "-S train.batch_size=0",
                 "-S train.optimizer=adam", "-S nokey: is not KEY=VALUE", "(profile paper): train.max_epoch"]:
        assert text in msg
    assert all("(fix: " in line for line in msg.splitlines()[1:])


def test_config_error_is_a_user_error_and_a_value_error():
    from thtl_bench.errors import UserError

    err = refused("train.max_epochs=abc")
    assert isinstance(err, UserError) and isinstance(err, ValueError)
    assert str(config.ConfigError("plain text")) == "plain text"


def test_unknown_profile_is_refused_with_the_known_ones():
    msg = str(refused(profile="papr"))
    assert "has no profile 'papr'" in msg and "'paper'" in msg


# ----------------------------------------------------------------------- apply_overrides alone


def test_apply_overrides_checks_against_the_value_it_replaces():
    cfg = load()
    out = config.apply_overrides(cfg, ["train.feature_cache=false", "train.lr_head=1"])
    assert out["train"]["feature_cache"] is False and out["train"]["lr_head"] == 1.0
    assert cfg["train"]["feature_cache"] is True  # the input is not modified
    with pytest.raises(config.ConfigError, match=r"-S train.max_epochs=abc: train.max_epochs is 'abc'"):
        config.apply_overrides(cfg, ["train.max_epochs=abc"])
    with pytest.raises(config.ConfigError, match="did you mean max_epochs"):
        config.apply_overrides(cfg, ["train.max_epoch=1"])


# ------------------------------------------------------------------------- the tables stay true


def _base_keys() -> set[str]:
    raw = yaml.load(PARAMS.read_text(), Loader=config._Loader)
    raw.pop("profiles")
    keys: set[str] = set()

    def walk(node: dict, prefix: str) -> None:
        for k, v in node.items():
            keys.add(prefix + str(k))
            if isinstance(v, dict):
                walk(v, f"{prefix}{k}.")

    walk(raw, "")
    return keys


@pytest.mark.parametrize("table", ["CHOICES", "RANGES", "NULLABLE", "MAPPINGS", "UNIQUE"])
def test_every_table_entry_names_a_key_of_params_yaml(table):
    keys = _base_keys()
    for entry in getattr(config_rules, table):
        assert any(config_rules._matches(entry, k) for k in keys), f"config_rules.{table}[{entry!r}] matches no key"


def test_every_model_key_finds_a_model_name_in_the_committed_params():
    cfg = load()
    for pattern in config_rules.MODEL_KEYS:
        # empty in the committed smoke params: free mappings of model -> file / count, no exclusions
        if pattern not in ("weights.files.*", "grid.model_replicates.*", "grid.exclude.*.0"):
            found = config_rules._model_names(cfg, pattern)
            assert found and all(isinstance(v, str) for _, v in found), pattern


def test_ranges_parse_and_read_as_words():
    assert str(config_rules._Interval.parse("[1, inf)")) == ">= 1"
    assert str(config_rules._Interval.parse("(0, inf)")) == "> 0"
    assert str(config_rules._Interval.parse("(0, 1]")) == "in (0, 1]"
    assert 1 in config_rules._Interval.parse("(0, 1]") and 0 not in config_rules._Interval.parse("(0, 1]")
    with pytest.raises(ValueError):
        config_rules._Interval.parse("0..1")


# ------------------------------------------------------------------------- model names


def test_unknown_model_names_fail_at_load_in_one_problem_listing_them_and_the_known_ones():
    err = refused("grid.models=[resnet18, efficientnet_lit0, resnt18]")
    assert len(err.problems) == 1
    msg = str(err)
    assert "-S grid.models=[resnet18, efficientnet_lit0, resnt18]: grid.models names unknown model(s)" in msg
    assert "'efficientnet_lit0' (did you mean efficientnet_lite0" in msg and "'resnt18' (did you mean resnet18" in msg
    assert "'resnet18'" not in msg.split("known:")[0]  # the valid name is not blamed
    assert "known: the registered models alexnet, vgg16" in msg and "tv:NAME / timm:NAME" in msg


@pytest.mark.parametrize("override, key", [
    ("cam.model=efficientnet_lit0", "cam.model"),
    ("grid.exclude=[[resnet81, scratch]]", "grid.exclude"),
    ("stats.primary_models=[resnet18, resnet05]", "stats.primary_models"),
    ("bench.scaling_model=resnet1", "bench.scaling_model"),
    ("bench.session_case=[lite0, onestep_last, 0]", "bench.session_case[0]"),
    ("weights.files={resnet81: /x.pth}", "weights.files"),
])
def test_every_key_that_names_a_model_is_checked(override, key):
    err = refused(override)
    assert len(err.problems) == 1 and f"{key} names unknown model(s)" in str(err), str(err)


def test_library_model_names_pass_and_typos_in_a_profile_are_found(tmp_path):
    cfg = load("grid.models=[resnet18, tv:resnet34, timm:resnet10t, resnet10t, timm:resnet10t.c3_in1k, "
               "mobilenet_v3_small]")
    assert cfg["grid"]["models"][1] == "tv:resnet34"
    path = edited(tmp_path, "      models: [efficientnet_lite0, efficientnet_lite1, efficientnet_lite2]",
                  "      models: [efficientnet_lit0, efficientnet_lite1, efficientnet_lite2]")
    err = refused(path=path, profile="smoke")  # every profile is checked, not only the chosen one
    assert f"{path}:{line_of(path, 'models: [efficientnet_lit0,')} (profile domains): grid.models names" in str(err)
