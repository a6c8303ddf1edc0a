"""Random streams: every stream of a run is derived from (root seed, stable name), never from creation order.

``SeedSequence([seed, blake2b(name)])`` gives a generator per agent, per mechanism and per instance, so adding
a participant changes no other stream's draws.
"""

from __future__ import annotations

import hashlib

import numpy as np


def stream_key(name: str) -> int:
    """A stable 64-bit key for a name (``hash`` is salted per process, so never use it here)."""
    return int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "little")


def derive_rng(seed: int, name: str | int, *index: int) -> np.random.Generator:
    """The generator for ``name`` in a run with root ``seed``: independent of creation order.

    name: the stream's name, or an integer key used as it is; integer keys are the streams made before
    streams had names, kept so that earlier logs and figures reproduce. index: further integers for a
    family of streams under one name (one per query, per round), ``SeedSequence([seed, key, *index])``.
    """
    key = stream_key(name) if isinstance(name, str) else int(name)
    return np.random.default_rng(np.random.SeedSequence([seed, key, *index]))


def generator_state(rng: np.random.Generator | None) -> dict | None:
    """The position of ``rng`` as plain values (None for no generator yet), for a learner's ``get_state``."""
    return None if rng is None else dict(rng.bit_generator.state)


def generator_from_state(state: dict | None) -> np.random.Generator | None:
    """A generator at the position ``generator_state`` returned (None stays None)."""
    if state is None:
        return None
    rng = np.random.Generator(getattr(np.random, state["bit_generator"])())
    rng.bit_generator.state = state
    return rng
