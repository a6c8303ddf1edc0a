"""Named random streams: derive_rng(seed, name, *index) is SeedSequence([seed, key, *index])."""

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from market.core.seeding import derive_rng, stream_key

seeds = st.integers(0, 2**32 - 1)


def _draws(rng: np.random.Generator) -> list[float]:
    return rng.random(4).tolist()


@given(seeds, st.text(min_size=1, max_size=12))
def test_a_named_stream_is_keyed_by_the_hash_of_its_name(seed, name):
    expected = np.random.default_rng(np.random.SeedSequence([seed, stream_key(name)]))
    assert _draws(derive_rng(seed, name)) == _draws(expected)


@given(seeds, st.integers(0, 2**63 - 1), st.lists(st.integers(0, 2**32 - 1), max_size=3))
def test_an_integer_key_and_an_index_reproduce_the_streams_made_by_hand(seed, key, index):
    expected = np.random.default_rng(np.random.SeedSequence([seed, key, *index]))
    assert _draws(derive_rng(seed, key, *index)) == _draws(expected)


def test_streams_differ_by_name_and_by_index_and_not_by_creation_order():
    a, b = derive_rng(0, "provider-0"), derive_rng(0, "provider-1")
    assert _draws(a) != _draws(b)
    assert _draws(derive_rng(0, "ads-instance", 0)) != _draws(derive_rng(0, "ads-instance", 1))
    derive_rng(0, "provider-1")
    assert _draws(derive_rng(0, "provider-0")) == _draws(derive_rng(0, "provider-0"))
