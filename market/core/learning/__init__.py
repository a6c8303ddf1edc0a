"""Floor 1 learners: LinUCB (shared by TRCM-UCB and users), C2MAB-V and its baselines, TI-UCB and the
rising-bandit baselines, with the environments that replay the papers' data."""

from market.core.registry import RegistryError


class LearningError(ValueError):
    """A learner or environment that cannot be built or fed: names the parameter, the value and what was
    expected."""


class LearningRegistryError(RegistryError, LearningError):
    """An unknown selector name, or parameters its factory does not take."""
