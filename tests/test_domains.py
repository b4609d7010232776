"""The domain registry: every intermediate domain has its generator and data section, and the
mechanism factorial is a complete 2 x 2 that the domains profile runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from thtl_bench import config, domains
from thtl_bench.data import phantoms
from thtl_bench.errors import UserError

ROOT = Path(__file__).resolve().parents[1]


def test_every_phantom_domain_has_a_generator_and_a_data_section():
    cfg = config.load(ROOT / "params.yaml")
    for name, d in domains.DOMAINS.items():
        assert d.phantom in phantoms.DOMAINS, name
        section = cfg["data"][name]
        assert section["classes"] == list(phantoms.DOMAINS[d.phantom][0]), name
        assert section["layout"] == phantoms.DOMAINS[d.phantom][1], name
        if d.control_of:
            assert d.control_of in domains.DOMAINS and d.varies, name


def test_the_factorial_is_a_complete_two_by_two():
    cells = domains.factorial()
    want = {(p, lab) for p in domains.FACTORS["pattern"] for lab in domains.FACTORS["label"]}
    assert set(cells) == want and len(set(cells.values())) == 4
    assert cells[("radial", "lesion")] == "fundus_lesion" and cells[("tortuous", "vessel")] == "fundus_vessel_tortuous"
    for (pattern, label), name in cells.items():
        # the registry's factors and the generator's recipe say the same thing
        assert phantoms.FACTORIAL[name] == (label, pattern == "tortuous")
        assert domains.intermediate(name).role == "intermediate"
    assert not [n for n, d in domains.DOMAINS.items() if d.factors and n not in cells.values()]


def test_the_domains_profile_runs_the_factorial_and_explains_it():
    cfg = config.load(ROOT / "params.yaml", "domains")
    assert sorted(cfg["grid"]["domains"]) == sorted(domains.factorial().values())
    assert cfg["cam"]["domains"] == cfg["grid"]["domains"]
    assert "angio" not in cfg["grid"]["domains"]  # not learned at 64 px (docs/phantoms.md)
    assert cfg["synth"]["fundus_signs"]["per_cell"] >= 1


def test_unknown_and_target_names_are_refused():
    with pytest.raises(UserError, match="unknown domain 'retina'"):
        domains.get("retina")
    with pytest.raises(UserError, match="target domain"):
        domains.intermediate("larynx")
