"""Training engine: fit and evaluate one case (model x arm x seed) into a self-describing record.

Modules: `case` (identity, orchestration, records), `loop` (the one training loop), `feeder`
(images or cached frozen-prefix features), `inputs` (domain tensors), `checkpoint` (atomic
saves), `runtime` (device, precision, seeding, determinism).
"""

from thtl_bench.engine.case import case_config, case_id, checkpoint_dir, run_case
from thtl_bench.engine.loop import KILL_ENV, SimulatedKill

__all__ = ["run_case", "case_config", "case_id", "checkpoint_dir", "KILL_ENV", "SimulatedKill"]
