"""`python -m thtl_bench.cli ...`: the `thtl-bench` command from a checkout (same entry point)."""

import sys

from thtl_bench.cli import main

sys.exit(main())
