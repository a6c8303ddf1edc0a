"""Floor 5: studies and tools that ask questions of markets.

Deviation, curve, egta, sweep, report, bench, the papers' reproductions and the CLI.
"""
