"""Test-suite settings. Under CI (``CI`` set) hypothesis draws a fixed sequence of examples, so a
run on a clean machine checks exactly what a developer's run with ``CI=1`` checked."""

import os

from hypothesis import settings

settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")
