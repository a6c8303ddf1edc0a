"""Reinforcement learning against the market: envs over a fast loop or the real runtime, and the PPO attack.

``engines`` (no extra needed): the two engines behind the envs. ``pz`` (PettingZoo ParallelEnv) and ``gym``
(Gymnasium single-deviator view) need the [rl] extra, as does ``ppo`` (the ``ppo`` attack method).
"""
