"""The data layer: real layouts and phantoms in, decoded uint8 tensors with leak-free splits out.

What the rest of the suite uses:
    load_domain(cfg, domain, split_seed=, fraction=) -> DomainTensors   images, labels, ids,
        groups, split (of that split seed; a nested share of train), fingerprint
    load_images(cfg, domain), with_split(cfg, tensors, split_seed, fraction)   the two halves
    read_source(cfg, domain) -> Listing          samples + every problem found (data check)
    listing_or_raise(cfg, domain) -> Listing     the same, refusing a folder with errors
Modules: sources (layout readers), phantoms (synthetic data), splits, cache (decode + tensor
cache), check (data check, DVC verification), tortuosity (vessel indices), references (reference
points, `thtl-bench references`), errors.
"""

from thtl_bench.data.cache import DomainTensors, listing_or_raise, load_domain, load_images, with_split
from thtl_bench.data.errors import DataError, Problem
from thtl_bench.data.sources import Listing, Sample, read_source

__all__ = ["DomainTensors", "load_domain", "load_images", "with_split", "listing_or_raise", "read_source", "Listing", "Sample",
           "DataError", "Problem"]
