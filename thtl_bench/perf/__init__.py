"""The running side's performance tools: FLOP counts (flops), the benchmark helpers the pytest files
in benchmarks/ call (bench), and the benchmark session's figures (session)."""
