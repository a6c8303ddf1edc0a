"""Floor 2: the market runtime.

Virtual-time kernel, bus, agents, auctioneer, platform, world, event log, run/resume/replay.
"""
