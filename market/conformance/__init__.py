"""The conformance kit: checks users run on their own mechanisms, strategies and agents."""
