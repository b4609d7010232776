"""The data layer: real layouts and phantoms in, decoded uint8 tensors with leak-free splits out.

What the rest of the suite uses:
    load_domain(cfg, domain) -> DomainTensors   images, labels, ids, groups, split, fingerprint
    read_source(cfg, domain) -> Listing          samples + every problem found (data check)
    listing_or_raise(cfg, domain) -> Listing     the same, refusing a folder with errors
Modules: sources (layout readers), phantoms (synthetic data), splits, cache (decode + tensor
cache), check (data check, DVC verification), tortuosity (vessel indices), errors.
"""

from thtl_bench.data.cache import DomainTensors, listing_or_raise, load_domain
from thtl_bench.data.errors import DataError, Problem
from thtl_bench.data.sources import Listing, Sample, read_source

__all__ = ["DomainTensors", "load_domain", "listing_or_raise", "read_source", "Listing", "Sample",
           "DataError", "Problem"]
