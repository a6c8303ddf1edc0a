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

In the ad market (scenario ``ads``) PPO trains advertiser 0 of every query on the ad env
(``market.lab.rl.ads.AdsGymEnv``: its own rewards' summary on the candidates, round / horizon, last shown reward
and payment; a report factor 4 ** a), and the exported policy plays as the ad strategy ``ad-policy``.
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
from market.runtime.config import ConfigError

DEFAULT_STEPS = 50_000
N_ENVS = 4  # DummyVecEnv copies: one process (2 shared cores), 512 steps each per update
VECTOR_ENVS = 32  # markets of the vectorised env (MarketSB3VecEnv), 64 steps each per update: 2,048 as above
SEES = "own cost, query context, round / horizon, own last outcome (won) and payment"
AD_LOG_STD_INIT = -1.0
AD_SEES = "own true rewards on the candidates (mean, std, min, max, median), round / horizon, last shown reward " \
    "and payment"


def _require() -> None:
    try:
        import gymnasium  # noqa: F401
        import stable_baselines3  # noqa: F401
        import torch  # noqa: F401
    except ImportError as err:
        raise ImportError(f"attack --method ppo needs the [rl] extra ({err.name} missing): "
                          "pip install 'llm-market-sim[rl]'") from None


def train_policy(spec: AttackSpec, progress: Progress, *, steps: int, seed: int = 0, n_envs: int | None = None,
                 action: str = "markup", log_std_init: float = -1.5, learning_rate: float = 1e-3,
                 vectorised: bool = True) -> tuple[Any, dict[str, Any]]:
    """Train PPO on the fast env of ``spec`` for ``steps`` steps; (the NumPy policy, training figures).

    ``vectorised`` (default): the ``n_envs`` markets (``VECTOR_ENVS``) are one ``MarketSB3VecEnv``, stepped at once;
    else ``n_envs`` (``N_ENVS``) ``MarketGymEnv`` copies in a ``DummyVecEnv``. Both give each market its own episode
    seeds among the training seeds, drawn as the other would draw them. The ad env has no vectorised form: in the
    ad market ``n_envs`` ``AdsGymEnv`` copies always train in a ``DummyVecEnv``."""
    _require()
    import gymnasium
    import torch
    from stable_baselines3 import PPO
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.vec_env import DummyVecEnv

    from market.lab.search import is_ads

    torch.set_num_threads(1)
    horizon = spec.rounds
    raw: Any
    ads = is_ads(spec.scenario, spec.overrides)
    vectorised = vectorised and not ads
    if ads:
        from agents.ad_reportfuncs import ad_normalisation
        from agents.policy import AD_ACTION
        from market.lab.rl.ads import AdsGymEnv

        def raw() -> gymnasium.Env:
            return AdsGymEnv(spec.deviator, rounds=spec.rounds, overrides=spec.overrides, seeds=spec.train_seeds)

        mean, scale = ad_normalisation()
        action, horizon = AD_ACTION, raw().engine.horizon
    else:
        from market.lab.rl.gym import MarketGymEnv

        def raw() -> gymnasium.Env:
            return MarketGymEnv(spec.scenario, spec.deviator, rounds=spec.rounds, overrides=spec.overrides,
                                seeds=spec.train_seeds, action=action)

        probe = raw()
        mean, scale = default_normalisation(probe.engine.floor, probe.engine.cap, probe.engine.dim)
    normalised = gymnasium.spaces.Box(-np.inf, np.inf, mean.shape, dtype=np.float32)

    def make() -> gymnasium.Env:
        return gymnasium.wrappers.TransformObservation(raw(), lambda o: ((o - mean) / scale).astype(np.float32),
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
    model = PPO("MlpPolicy", venv, n_steps=per_env, batch_size=256, n_epochs=5, learning_rate=learning_rate, gamma=0.9,
                gae_lambda=0.9, ent_coef=0.0, seed=seed, device="cpu", verbose=0,
                policy_kwargs={"net_arch": [32, 32], "activation_fn": torch.nn.Tanh, "log_std_init": log_std_init})

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
    policy = from_sb3(model, mean, scale, action, horizon)
    return policy, {"steps": int(model.num_timesteps), "seconds": round(seconds, 2), "n_envs": n_envs,
                    "env": "vectorised" if vectorised else "dummy",
                    "n_steps": per_env, "net_arch": [32, 32], "gamma": 0.9, "seed": seed, "action": action,
                    "log_std_init": log_std_init, "learning_rate": learning_rate}


def ppo_attacker(spec: AttackSpec, progress: Progress) -> Attacker:
    """The ``ppo`` attack method (``market.lab.attackers`` contract): train, export the policy, measure its gain
    on the training seeds, and return the --set items that make ``spec.deviator`` bid with it."""
    from market.lab.search import is_ads

    ads = is_ads(spec.scenario, spec.overrides)
    if ads and spec.deviator != "advertiser-0":
        raise ConfigError(f"--deviator: got {spec.deviator!r}; in the ad market advertiser-0 (of every query) "
                          "deviates")
    steps = spec.budget or DEFAULT_STEPS
    # The ad env's actions are log-factors. PPO's deterministic actor is the mean of the Gaussian it optimised, and
    # around a truthful optimum that mean drifts with the std (the utility is not symmetric in log-factor). At 20,480
    # auctions on 8 seeds (held-out gain per auction, no payments / MOSAIC): std 0.22 gave +1.78 / -0.006, 0.37
    # gave +1.97 / -0.029, 0.61 gave +2.02 / -0.091; 0.37 finds nearly all that pays and strays little.
    policy, details = train_policy(spec, progress, steps=steps, log_std_init=AD_LOG_STD_INIT if ads else -1.5)
    out = Path(spec.out_dir) if spec.out_dir is not None else Path(tempfile.mkdtemp(prefix="ppo-policy-"))
    out.mkdir(parents=True, exist_ok=True)
    path = policy.save(out / "policy.npz").resolve()
    if ads:
        return _ad_attacker(spec, path, details)
    gains = policy_gains(policy.act, spec.scenario, spec.train_seeds, deviator=spec.deviator,
                         overrides=spec.overrides, rounds=spec.rounds)
    return Attacker(
        method="ppo", strategy="policy",
        overrides=(f"strategies.overrides.{spec.deviator}=policy", f"strategies.params.policy.path={path}"),
        sees=SEES, train_gain=float(np.mean(gains)), train_seeds=tuple(spec.train_seeds),
        details={**details, "policy": str(path), "train_gains": [round(float(g), 6) for g in gains]},
    )


def _ad_attacker(spec: AttackSpec, path: Path, details: dict[str, Any]) -> Attacker:
    """The ad market's PPO attacker: the saved policy as the ad strategy ``ad-policy``, its train gain measured by
    playing that strategy (loaded from the file, as the bus loads it) against the truthful twin on the training
    seeds' auctions (``AdsEngine.play``: ``play_ads``'s utilities)."""
    from agents.ad_reportfuncs import AdPolicy
    from agents.ad_strategies import Truthful
    from market.lab.rl.ad_engine import AdsEngine

    engine = AdsEngine(overrides=spec.overrides, rounds=spec.rounds)
    gains = []
    for seed in spec.train_seeds:
        attacked, rounds = engine.play(AdPolicy(str(path)), seed)
        truthful, _ = engine.play(Truthful(), seed)
        gains.append((attacked - truthful) / rounds)
    return Attacker(
        method="ppo", strategy="ad-policy", overrides=(f"strategies.params.ad-policy.path={path}",),
        sees=AD_SEES, train_gain=float(np.mean(gains)), train_seeds=tuple(spec.train_seeds),
        details={**details, "policy": str(path), "train_gains": [round(float(g), 6) for g in gains]},
    )
