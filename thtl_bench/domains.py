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
)

DOMAINS: dict[str, Domain] = {d.name: d for d in _DOMAINS}
NAMES: list[str] = list(DOMAINS)
TARGET = "larynx"


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
