"""Training engine: fit and evaluate one case (model x arm x seed) into a self-describing record.

Modules: `identity` (case config, id, paths), `lock` (one process per case), `case` (running a
case: resume, stages, selection), `record` (the record's content), `loop` (the one training loop),
`feeder` (images or cached frozen-prefix features), `inputs` (domain tensors), `augment`,
`checkpoint` (atomic saves), `runtime` (device, precision, seeding, determinism), `env` (machine
facts), `grid` (the cases of a profile, shards), `load` (a case's trained model).
"""

from thtl_bench.engine.case import has_best, run_case
from thtl_bench.engine.identity import case_config, case_id, checkpoint_dir
from thtl_bench.engine.loop import KILL_ENV, SimulatedKill

__all__ = ["run_case", "has_best", "case_config", "case_id", "checkpoint_dir", "KILL_ENV", "SimulatedKill"]
