"""Simulated language models with exact sequence log-probabilities (MOSAIC, arXiv 2405.05905 section 5).

A finite reply catalogue (closed form everywhere) and a token-level bigram LM, both behind one interface.
"""

from market.core.lm.base import FiniteLanguageModel, LanguageModel, Prompt, Reply, missing_mass
from market.core.lm.catalogue import CatalogueLM
from market.core.lm.ngram import NGramLM

__all__ = [
    "CatalogueLM",
    "FiniteLanguageModel",
    "LanguageModel",
    "NGramLM",
    "Prompt",
    "Reply",
    "missing_mass",
]
