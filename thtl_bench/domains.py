"""Domains (torch-free): the target and the intermediate domains THTL can go through.

Each entry says what a domain is for and how its data comes about: real data through the
layout and root of its `data.<name>` section in params.yaml (classes too), or a phantom recipe
(thtl_bench.data.phantoms generates it). The intermediate domain is an axis of the grid
(`grid.domains`): THTL step 1 and its children run once per intermediate domain, while the
target-only arms (scratch, one-step) are shared by all of them. Adding a domain is one entry
here, its `data.<name>` section and (for phantoms) its generator.

The canonical order of `DOMAINS` is the column order of every table.
"""

from __future__ import annotations

from dataclasses import dataclass

from thtl_bench.errors import UserError

ROLES = ("target", "intermediate")
# Layouts the readers (thtl_bench.data.sources) understand, per role.
LAYOUTS = {"intermediate": ("aptos", "eyepacs", "idrid", "folders"), "target": ("cenbi", "folders", "manifest")}


@dataclass(frozen=True)
class Domain:
    name: str
    role: str  # target | intermediate
    task: str  # what a model learns on it (step 1's task for an intermediate domain)
    phantom: str | None = None  # generator key in thtl_bench.data.phantoms, None: real data only
    control_of: str | None = None  # the domain this one is a controlled variant of
    varies: str = ""  # the one property that differs from `control_of`
    factors: tuple[tuple[str, str], ...] = ()  # its cell of the mechanism factorial (FACTORS), if any

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise ValueError(f"domain {self.name}: role {self.role!r} not in {ROLES}")


_DOMAINS = (
    Domain("larynx", "target", "benign vs malignant laryngeal vessels (NBI / contact endoscopy)", "larynx"),
    Domain("fundus", "intermediate", "diabetic-retinopathy grade (ICDR 0-4) of colour fundus photographs",
           "fundus"),
    Domain("fundus_tortuous", "intermediate", "the same DR grading, on fundus images with tortuous vessel trees",
           "fundus_tortuous", control_of="fundus",
           varies="vessel trees twisted and tangled with the malignant larynx's tortuosity instead of radial"),
    Domain("angio", "intermediate", "coronary stenosis grade of grey-scale angiograms", "angio",
           varies="another imaging modality: dark tortuous coronary trees on a bright background"),
    # The mechanism as a 2 x 2 factorial (C6): one set of fundus images, each carrying a lesion
    # level and an independent vessel-sign level, in two versions (radial trees, tortuous twins),
    # each labelled by two rules. The two domains of a version hold the same image files.
    Domain("fundus_lesion", "intermediate",
           "lesion grade 0-4 (coloured DR lesions; the image's vessel signs are independent of it)",
           "fundus_lesion", factors=(("pattern", "radial"), ("label", "lesion"))),
    Domain("fundus_lesion_tortuous", "intermediate", "the same lesion grading, on the tortuous twins",
           "fundus_lesion_tortuous", control_of="fundus_lesion",
           varies="vessel trees twisted to the malignant larynx's tortuosity instead of radial",
           factors=(("pattern", "tortuous"), ("label", "lesion"))),
    Domain("fundus_vessel", "intermediate",
           "vessel-sign grade 0-4 (venous beading, IRMA, new vessels) of the fundus_lesion images",
           "fundus_vessel", control_of="fundus_lesion",
           varies="the label: vessel-sign level (read from vessel geometry) instead of lesion level",
           factors=(("pattern", "radial"), ("label", "vessel"))),
    Domain("fundus_vessel_tortuous", "intermediate", "the same vessel-sign grading, on the tortuous twins",
           "fundus_vessel_tortuous", control_of="fundus_vessel",
           varies="vessel trees twisted to the malignant larynx's tortuosity instead of radial",
           factors=(("pattern", "tortuous"), ("label", "vessel"))),
)

DOMAINS: dict[str, Domain] = {d.name: d for d in _DOMAINS}
NAMES: list[str] = list(DOMAINS)
TARGET = "larynx"
# The factorial's factors, each level in order (the first level is the reference): the pattern
# step 1 sees, and what its label makes it learn.
FACTORS = {"pattern": ("radial", "tortuous"), "label": ("lesion", "vessel")}


def factorial() -> dict[tuple[str, str], str]:
    """{(pattern, label): domain name} of the mechanism factorial, e.g. ("tortuous", "vessel")."""
    out = {}
    for d in _DOMAINS:
        if d.factors:
            f = dict(d.factors)
            out[(f["pattern"], f["label"])] = d.name
    return out


def get(name: str) -> Domain:
    try:
        return DOMAINS[name]
    except KeyError:
        raise UserError(f"unknown domain {name!r}; known domains: {', '.join(NAMES)}") from None


def intermediate(name: str) -> Domain:
    d = get(name)
    if d.role != "intermediate":
        raise UserError(f"domain {name!r} is a {d.role} domain; grid.domains lists intermediate domains "
                        f"({', '.join(n for n, x in DOMAINS.items() if x.role == 'intermediate')})")
    return d
