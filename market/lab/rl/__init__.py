"""Reinforcement learning against the market: envs over a fast loop or the real runtime, and the PPO attack.

``engines`` (no extra needed): the two engines behind the envs. ``batched`` (no extra needed): B fast markets
stepped at once (the batched TRCM-UCB mechanism). ``pz`` (PettingZoo ParallelEnv), ``gym`` (Gymnasium
single-deviator view) and ``vector`` (Gymnasium vector env over ``batched``) need the [rl] extra, as do ``sb3vec``
(Stable-Baselines3 VecEnv over ``batched``) and ``ppo`` (the ``ppo`` attack method).
"""
