"""The `thtl-bench` shell: one example per subcommand that parses, choices in --help, --version,
and the guards that stop a command before it creates anything (unknown model names, cases
outside the profile's grid)."""

from __future__ import annotations

import argparse
import shlex
import shutil
from pathlib import Path

import pytest

from thtl_bench import arms
from thtl_bench.cli import build_parser, main, version

ROOT = Path(__file__).resolve().parents[2]
PARAMS = str(ROOT / "params.yaml")


def _leaves(parser: argparse.ArgumentParser, path: tuple = ()) -> list[tuple[tuple, argparse.ArgumentParser]]:
    """(command path, parser) of every parser under the top level, groups and leaves alike."""
    out = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                out.append((path + (name,), sub))
                out += _leaves(sub, path + (name,))
    return out


PARSERS = _leaves(build_parser())


def test_every_command_is_covered():
    names = {" ".join(p) for p, _ in PARSERS}
    assert {"synth", "data check", "data split", "data verify", "weights list", "weights fetch", "weights import",
            "run", "grid", "index", "references", "transfer", "aggregate", "report", "compare", "cam",
            "flops"} <= names


@pytest.mark.parametrize("path, parser", PARSERS, ids=[" ".join(p) for p, _ in PARSERS])
def test_help_ends_with_one_example_of_that_command_which_parses(path, parser):
    epilog = parser.epilog or ""
    assert epilog.startswith("example:\n  thtl-bench "), f"thtl-bench {' '.join(path)} --help has no example"
    argv = shlex.split(epilog.split("\n")[1])[1:]
    assert tuple(argv[:len(path)]) == path, f"the example runs {argv[:len(path)]}, not {path}"
    args = build_parser().parse_args(argv)  # a bad example exits here
    assert callable(args.func)
    assert "example:" in parser.format_help()  # shown as written (raw formatter)


def test_help_shows_the_choices_and_the_vocabulary():
    text = dict(PARSERS)[("run",)].format_help()
    from thtl_bench import domains

    inter = [n for n, d in domains.DOMAINS.items() if d.role == "intermediate"]
    assert "{" + ",".join(arms.NAMES) + "}" in text and "{" + ",".join(inter) + "}" in text
    assert "--off-grid" in text and "tv:NAME" in text
    assert "smoke, domains, paper" in " ".join(dict(PARSERS)[("grid",)].format_help().split())
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(["run", "--model", "resnet18", "--arm", "onestep", "--seed", "0"])
    assert exc.value.code == 2


def test_version(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.strip() == f"thtl-bench {version()}" and version()[0].isdigit()


@pytest.fixture
def runs(monkeypatch):
    """run_case replaced by a recorder: these tests are about what reaches the engine."""
    from thtl_bench import engine

    calls = []

    def fake(cfg, case, **kw):
        calls.append(case)
        return {"slug": case.slug, "case_id": "x", "status": "not_run", "reason": "test"}

    monkeypatch.setattr(engine, "run_case", fake)
    return calls


def test_run_refuses_a_case_outside_the_grid_unless_told(runs, capsys):
    base = ["run", "--params", PARAMS, "--profile", "smoke", "--model", "efficientnet_lite0", "--arm", "onestep_last"]
    assert main([*base, "--seed", "1"]) == 2 and runs == []
    err = capsys.readouterr().err
    assert "efficientnet_lite0__onestep_last__s1__k0 is not a case of profile 'smoke''s grid" in err
    assert "replicate (seed 1, split 0) is not in grid.replicates 0/0, 1/1, 2/2" in err
    assert "did you mean --seed 1 --split 1?" in err and "--off-grid" in err
    assert main([*base, "--seed", "1", "--split", "1"]) == 0 and runs[-1].slug.endswith("__s1__k1")
    assert main([*base, "--seed", "1", "--off-grid"]) == 0 and runs[-1].slug.endswith("__s1__k0")
    assert main([*base[:-4], "--model", "resnet50", "--arm", "onestep_last", "--seed", "0"]) == 2
    assert "model resnet50 is not in grid.models" in capsys.readouterr().err and len(runs) == 2


def test_run_refuses_an_unknown_model_before_anything(runs, capsys):
    argv = ["run", "--params", PARAMS, "--model", "efficientnet_lit0", "--arm", "onestep_last", "--seed", "0",
            "--off-grid"]
    assert main(argv) == 2 and runs == []
    assert "did you mean efficientnet_lite0" in capsys.readouterr().err


def test_grid_with_an_unknown_model_prints_one_error_and_creates_nothing(tmp_path, monkeypatch, capsys):
    shutil.copy(PARAMS, tmp_path / "params.yaml")
    monkeypatch.chdir(tmp_path)
    assert main(["grid", "--models", "efficientnet_lit0", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("efficientnet_lit0") == 2 and err.count("error:") == 1  # the -S text and the message, once
    assert "(did you mean efficientnet_lite0" in err and "known: the registered models" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["params.yaml"]  # no checkpoints, records, splits


def test_an_unknown_profile_names_the_known_ones(capsys):
    assert main(["aggregate", "--params", PARAMS, "--profile", "domain"]) == 2
    assert "has no profile 'domain' (fix: use one of ['domains', 'paper', 'smoke'])" in capsys.readouterr().err
