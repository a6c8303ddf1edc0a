"""The ``ppo`` attack method: Stable-Baselines3 PPO trains a provider's bidding policy on the fast market env.

The deviator observes its own cost, the query's context, round / horizon and its own last outcome and payment
(``agents.policy.observation``) and chooses a markup over its cost (``agents.policy.action_to_bid``). PPO trains
a small MLP (CPU, seeded) on 32 markets of the vectorised fast env (``market.lab.rl.sb3vec.MarketSB3VecEnv``,
stepped at once; ``vectorised=False``: single-deviator ``market.lab.rl.gym.MarketGymEnv`` copies in a
``DummyVecEnv``) over the training seeds for ``spec.budget`` steps (50,000 by default). The actor is exported as a
NumPy ``.npz`` (``agents.policy.NumpyPolicy``): the ``policy`` strategy bids with it through the real bus, with no
torch.
The attacker's ``train_gain`` is measured on the training seeds by the fast env against the truthful twin;
judging it on held-out seeds is the deviation experiment's job.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from agents.policy import default_normalisation, from_sb3
from market.lab.attackers import Attacker, AttackSpec, Progress
from market.lab.rl.engines import policy_gains

DEFAULT_STEPS = 50_000
N_ENVS = 4  # DummyVecEnv copies: one process (2 shared cores), 512 steps each per update
VECTOR_ENVS = 32  # markets of the vectorised env (MarketSB3VecEnv), 64 steps each per update: 2,048 as above
SEES = "own cost, query context, round / horizon, own last outcome (won) and payment"


def _require() -> None:
    try:
        import gymnasium  # noqa: F401
        import stable_baselines3  # noqa: F401
        import torch  # noqa: F401
    except ImportError as err:
        raise ImportError(f"attack --method ppo needs the [rl] extra ({err.name} missing): "
                          "pip install 'llm-market-sim[rl]'") from None


def train_policy(spec: AttackSpec, progress: Progress, *, steps: int, seed: int = 0, n_envs: int | None = None,
                 action: str = "markup", vectorised: bool = True) -> tuple[Any, dict[str, Any]]:
    """Train PPO on the fast env of ``spec`` for ``steps`` steps; (the NumPy policy, training figures).

    ``vectorised`` (default): the ``n_envs`` markets (``VECTOR_ENVS``) are one ``MarketSB3VecEnv``, stepped at once;
    else ``n_envs`` (``N_ENVS``) ``MarketGymEnv`` copies in a ``DummyVecEnv``. Both give each market its own episode
    seeds among the training seeds, drawn as the other would draw them."""
    _require()
    import gymnasium
    import torch
    from stable_baselines3 import PPO
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.vec_env import DummyVecEnv

    from market.lab.rl.gym import MarketGymEnv

    torch.set_num_threads(1)
    probe = MarketGymEnv(spec.scenario, spec.deviator, rounds=spec.rounds, overrides=spec.overrides,
                         seeds=spec.train_seeds, action=action)
    mean, scale = default_normalisation(probe.engine.floor, probe.engine.cap, probe.engine.dim)
    normalised = gymnasium.spaces.Box(-np.inf, np.inf, mean.shape, dtype=np.float32)

    def make() -> gymnasium.Env:
        env = MarketGymEnv(spec.scenario, spec.deviator, rounds=spec.rounds, overrides=spec.overrides,
                           seeds=spec.train_seeds, action=action)
        return gymnasium.wrappers.TransformObservation(env, lambda o: ((o - mean) / scale).astype(np.float32),
                                                       normalised)

    if n_envs is None:
        n_envs = VECTOR_ENVS if vectorised else N_ENVS
    if vectorised:
        from market.lab.rl.sb3vec import MarketSB3VecEnv

        venv: Any = MarketSB3VecEnv(spec.scenario, spec.deviator, n_envs=n_envs, rounds=spec.rounds,
                                    overrides=spec.overrides, seeds=spec.train_seeds, action=action,
                                    normalise=(mean, scale))
    else:
        venv = DummyVecEnv([make] * n_envs)
    per_env = max(2048 // n_envs, 64)
    model = PPO("MlpPolicy", venv, n_steps=per_env, batch_size=256, n_epochs=5, learning_rate=1e-3, gamma=0.9,
                gae_lambda=0.9, ent_coef=0.0, seed=seed, device="cpu", verbose=0,
                policy_kwargs={"net_arch": [32, 32], "activation_fn": torch.nn.Tanh, "log_std_init": -1.5})

    class Report(BaseCallback):
        """Calls ``progress`` after each rollout (2,048 steps)."""

        def _on_rollout_end(self) -> None:
            progress("ppo steps", min(self.num_timesteps, steps), steps)

        def _on_step(self) -> bool:
            return True

    t0 = time.perf_counter()
    model.learn(total_timesteps=steps, callback=Report())
    seconds = time.perf_counter() - t0
    venv.close()
    policy = from_sb3(model, mean, scale, action, spec.rounds)
    return policy, {"steps": int(model.num_timesteps), "seconds": round(seconds, 2), "n_envs": n_envs,
                    "env": "vectorised" if vectorised else "dummy",
                    "n_steps": per_env, "net_arch": [32, 32], "gamma": 0.9, "seed": seed, "action": action}


def ppo_attacker(spec: AttackSpec, progress: Progress) -> Attacker:
    """The ``ppo`` attack method (``market.lab.attackers`` contract): train, export the policy, measure its gain
    on the training seeds, and return the --set items that make ``spec.deviator`` bid with it."""
    steps = spec.budget or DEFAULT_STEPS
    policy, details = train_policy(spec, progress, steps=steps)
    out = Path(spec.out_dir) if spec.out_dir is not None else Path(tempfile.mkdtemp(prefix="ppo-policy-"))
    out.mkdir(parents=True, exist_ok=True)
    path = policy.save(out / "policy.npz").resolve()
    gains = policy_gains(policy.act, spec.scenario, spec.train_seeds, deviator=spec.deviator,
                         overrides=spec.overrides, rounds=spec.rounds)
    return Attacker(
        method="ppo", strategy="policy",
        overrides=(f"strategies.overrides.{spec.deviator}=policy", f"strategies.params.policy.path={path}"),
        sees=SEES, train_gain=float(np.mean(gains)), train_seeds=tuple(spec.train_seeds),
        details={**details, "policy": str(path), "train_gains": [round(float(g), 6) for g in gains]},
    )
