"""Stand-in model names for tests that substitute the engine's model builder (engine.case.build_model):
config validation checks model names against the real vocabulary (thtl_bench.catalog.model_known),
so such a test declares its names here."""

from __future__ import annotations

import pytest

from thtl_bench import catalog


def accept_model_names(mp: pytest.MonkeyPatch, *names: str) -> None:
    """Make config validation accept `names` (and still refuse every other unknown name)."""
    real = catalog.model_known
    mp.setattr(catalog, "model_known", lambda name: True if name.strip() in names else real(name))
