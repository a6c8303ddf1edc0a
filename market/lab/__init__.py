"""Floor 5: studies and tools that ask questions of markets (deviation, curve, egta, sweep, report, bench, reproductions, the CLI)."""
