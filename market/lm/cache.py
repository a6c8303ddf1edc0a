"""Log-prob cache keyed by (model name, prompt token ids, reply token ids).

A real model is the slow part of an ad auction, and MOSAIC scores the same candidates under several prompts
(and the platform's counterfactual proposals repeat prompts across queries' roles), so a reply's log-prob is
computed once per (model, prompt). The key holds the prompt's ids, not its text: the chat template is part of
the conditioning. The model name carries the dtype (``<model>@float32``), so values of different precisions
never mix. Bounded: past ``max_entries`` the oldest entries go first (insertion order).

Sampling seeds the cache (``seed``) with the log-prob it recorded for each reply it drew, so the proposal that
drew the candidates is never scored again: the recorded value is the sum of the very float32 log-probs whose
CDF the draw inverted, the exact law the candidates came from.
"""

from __future__ import annotations

from collections import OrderedDict

Key = tuple[str, tuple[int, ...], tuple[int, ...]]


class LogprobCache:
    """(model name, prompt ids, reply ids) -> log-prob; hits return the stored float unchanged."""

    def __init__(self, max_entries: int = 1_000_000) -> None:
        if not isinstance(max_entries, int) or max_entries < 1:
            raise ValueError(f"max_entries must be an integer >= 1, got {max_entries!r}")
        self.max_entries = max_entries
        self._data: OrderedDict[Key, float] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._data)

    def get(self, model: str, prompt_ids: tuple[int, ...], reply: tuple[int, ...]) -> float | None:
        """The stored log-prob, or None (counted as a miss)."""
        value = self._data.get((model, prompt_ids, reply))
        if value is None:
            self.misses += 1
        else:
            self.hits += 1
        return value

    def seed(self, model: str, prompt_ids: tuple[int, ...], reply: tuple[int, ...], value: float) -> bool:
        """Store ``value`` unless the key holds one already (then the stored float stays: the first value a run
        computed for a key is the one every later lookup returns); True if stored. Counts neither hit nor miss."""
        if (model, prompt_ids, reply) in self._data:
            return False
        self.put(model, prompt_ids, reply, value)
        return True

    def put(self, model: str, prompt_ids: tuple[int, ...], reply: tuple[int, ...], value: float) -> None:
        """Store ``value``; evicts the oldest entry when full."""
        self._data[(model, prompt_ids, reply)] = float(value)
        if len(self._data) > self.max_entries:
            self._data.popitem(last=False)

    def clear(self) -> None:
        self._data.clear()
        self.hits = self.misses = 0
