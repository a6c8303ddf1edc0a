"""The ``policy`` strategy: bids with a saved policy, the one a reinforcement learner trained on the market env.

A policy maps the provider's observation vector (``observation``) to an action a in [-1, 1], which
``action_to_bid`` turns into a bid. The market env (``market.lab.rl``) builds its observations with the same
function and turns its actions into bids with the same mapping, so a policy bids through the bus exactly as it
bid in the env that trained it.

Two files load: a plain NumPy MLP (``.npz``, written by ``NumpyPolicy.save``: layer weights, activation, the
observation normalisation, the action mapping and the horizon; bidding needs NumPy only) and a
Stable-Baselines3 PPO zip (needs the [rl] extra; its actor network is copied into a ``NumpyPolicy`` when loaded,
so bidding is the same NumPy code either way).

The observation, (d + 4,): own cost, the query's context (d), round / horizon, own last outcome (1 won, 0 lost
or none yet) and own last payment. The action mappings:
- ``markup`` (default): bid = cost + a (cost_cap - cost_floor). a = 0 is truthful, and from any cost every bid
  in the range is reachable; a learner whose policy starts near 0 starts near the truthful twin.
- ``bid``: bid = cost_floor + (a + 1) / 2 (cost_cap - cost_floor), an absolute bid, blind to the cost.
Both are clipped into [cost_floor, cost_cap], the range every mechanism takes. A policy file of action ``factor``
(``AD_ACTION``) is an advertiser's report policy, trained on the ad env: it plays as the ad strategy ``ad-policy``
(``agents.ad_reportfuncs``), never as a bidding policy.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .strategies import BidderFacts, BidFeedback, Observation, Strategy

ACTIONS = ("markup", "bid")
AD_ACTION = "factor"  # an advertiser's report factor (agents.ad_reportfuncs.action_to_factor), not a bid
ACTIVATIONS = ("tanh", "relu")
OBS_EXTRA = 4  # cost, round / horizon, last won, last payment: the observation is these plus the context


def observation(cost: float, context: np.ndarray, round_index: int, horizon: int, won: bool, payment: float,
                out: np.ndarray | None = None) -> np.ndarray:
    """The observation vector (d + 4,) float32 of one round, written into ``out`` when given (no allocation)."""
    d = context.shape[0]
    if out is None:
        out = np.empty(d + OBS_EXTRA, dtype=np.float32)
    out[0] = cost
    out[1:d + 1] = context
    out[d + 1] = round_index / horizon
    out[d + 2] = 1.0 if won else 0.0
    out[d + 3] = payment
    return out


def action_to_bid(action: float, cost: float, floor: float, cap: float, mode: str = "markup") -> float:
    """The bid of action ``action`` (clipped into [-1, 1]) for a provider of cost ``cost``, in [floor, cap]."""
    a = min(max(float(action), -1.0), 1.0)
    if mode == "markup":
        bid = cost + a * (cap - floor)
    elif mode == "bid":
        bid = floor + 0.5 * (a + 1.0) * (cap - floor)
    else:
        raise ValueError(f"action mode = {mode!r}: expected one of {ACTIONS}")
    return min(max(bid, floor), cap)


def default_normalisation(floor: float, cap: float, dim: int) -> tuple[np.ndarray, np.ndarray]:
    """(mean, scale) that take each observation entry to about [-1, 1]: cost over the bid range, the context from
    [0, 1], round fraction and last outcome from [0, 1], the payment in units of the bid range."""
    width = cap - floor
    mean = np.concatenate([[0.5 * (floor + cap)], np.full(dim, 0.5), [0.5, 0.5, 0.0]]).astype(np.float32)
    scale = np.concatenate([[0.5 * width], np.full(dim, 0.5), [0.5, 0.5, width]]).astype(np.float32)
    return mean, scale


class NumpyPolicy:
    """A deterministic MLP policy in NumPy: a = clip(W_k act(... act(W_1 (obs - mean) / scale + b_1)) + b_k).

    weights, biases: per layer, (out, in) and (out,); activation: between layers (``tanh`` or ``relu``);
    obs_mean, obs_scale: the normalisation applied first; action: the mapping to a bid (``ACTIONS``);
    horizon: the rounds of the runs it was trained on (the observation's round / horizon).
    """

    def __init__(self, weights: Sequence[np.ndarray], biases: Sequence[np.ndarray], activation: str,
                 obs_mean: np.ndarray, obs_scale: np.ndarray, action: str = "markup", horizon: int = 400) -> None:
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation = {activation!r}: expected one of {ACTIVATIONS}")
        if action not in (*ACTIONS, AD_ACTION):
            raise ValueError(f"action = {action!r}: expected one of {(*ACTIONS, AD_ACTION)}")
        if not (isinstance(horizon, (int, np.integer)) and horizon >= 1):
            raise ValueError(f"horizon = {horizon!r}: expected a whole number of rounds >= 1")
        if len(weights) != len(biases) or not weights:
            raise ValueError(f"weights, biases: {len(weights)} and {len(biases)} layers; expected as many, at least 1")
        self.weights = [np.asarray(w, dtype=np.float64) for w in weights]
        self.biases = [np.asarray(b, dtype=np.float64) for b in biases]
        self.obs_mean = np.asarray(obs_mean, dtype=np.float32)
        self.obs_scale = np.asarray(obs_scale, dtype=np.float32)
        n_in = self.weights[0].shape[1]
        if self.obs_mean.shape != (n_in,) or self.obs_scale.shape != (n_in,) or not np.all(self.obs_scale > 0):
            raise ValueError(f"obs_mean, obs_scale: shapes {self.obs_mean.shape}, {self.obs_scale.shape}; expected "
                             f"({n_in},) each (the first layer's inputs), scale > 0")
        for k, (w, b) in enumerate(zip(self.weights, self.biases)):
            prev = self.weights[k - 1].shape[0] if k else n_in
            if w.ndim != 2 or w.shape[1] != prev or b.shape != (w.shape[0],):
                raise ValueError(f"layer {k}: weight {w.shape}, bias {b.shape}; expected ({b.shape[0]}, {prev}) and "
                                 "(out,)")
        if self.weights[-1].shape[0] != 1:
            raise ValueError(f"last layer: {self.weights[-1].shape[0]} outputs; expected 1 (the action)")
        self.activation = activation
        self.action = action
        self.horizon = int(horizon)
        self._act = np.tanh if activation == "tanh" else (lambda z: np.maximum(z, 0.0))

    @property
    def obs_dim(self) -> int:
        return int(self.weights[0].shape[1])

    def act(self, obs: np.ndarray) -> float:
        """The action in [-1, 1] for one observation (float32, as the env gives it)."""
        z = ((np.asarray(obs, dtype=np.float32) - self.obs_mean) / self.obs_scale).astype(np.float64)
        last = len(self.weights) - 1
        for k, (w, b) in enumerate(zip(self.weights, self.biases)):
            z = w @ z + b
            if k < last:
                z = self._act(z)
        return float(min(max(z[0], -1.0), 1.0))

    def save(self, path: str | Path) -> Path:
        """Write the policy as ``.npz`` (no pickles: arrays and short strings)."""
        path = Path(path)
        arrays: dict[str, Any] = {f"W{k}": w for k, w in enumerate(self.weights)}
        arrays.update({f"b{k}": b for k, b in enumerate(self.biases)})
        np.savez(path, layers=np.array(len(self.weights)), activation=np.array(self.activation),
                 obs_mean=self.obs_mean, obs_scale=self.obs_scale, action=np.array(self.action),
                 horizon=np.array(self.horizon), **arrays)
        return path

    @classmethod
    def load(cls, path: str | Path) -> NumpyPolicy:
        """Read a policy ``save`` wrote; a missing key or a bad array is refused naming the file and the key."""
        try:
            with np.load(path, allow_pickle=False) as f:
                layers = int(f["layers"])
                return cls([f[f"W{k}"] for k in range(layers)], [f[f"b{k}"] for k in range(layers)],
                           str(f["activation"]), f["obs_mean"], f["obs_scale"], str(f["action"]), int(f["horizon"]))
        except KeyError as err:
            raise ValueError(f"policy file {str(path)!r}: missing array {err}; expected a file NumpyPolicy.save "
                             "wrote") from None


def from_sb3(model: Any, obs_mean: np.ndarray, obs_scale: np.ndarray, action: str = "markup",
             horizon: int = 400) -> NumpyPolicy:
    """The deterministic actor of a Stable-Baselines3 PPO ``model`` (MlpPolicy, a Box action of one entry) as a
    ``NumpyPolicy``: the policy network's linear layers, then the action head (the Gaussian's mean).
    ``obs_mean``/``obs_scale``: the normalisation its env applied before the network saw the observation."""
    import torch

    policy = model.policy
    layers = [m for m in policy.mlp_extractor.policy_net if isinstance(m, torch.nn.Linear)]
    acts = {type(m).__name__ for m in policy.mlp_extractor.policy_net if not isinstance(m, torch.nn.Linear)}
    activation = {"Tanh": "tanh", "ReLU": "relu"}.get(next(iter(acts), "Tanh"))
    if activation is None or len(acts) > 1:
        raise ValueError(f"policy network activations {sorted(acts)}: expected Tanh or ReLU")
    layers.append(policy.action_net)
    weights = [m.weight.detach().cpu().numpy() for m in layers]
    biases = [m.bias.detach().cpu().numpy() for m in layers]
    return NumpyPolicy(weights, biases, activation, obs_mean, obs_scale, action, horizon)


def load_policy(path: str | Path, action: str | None = None, horizon: int | None = None) -> NumpyPolicy:
    """The policy in ``path``: a ``.npz`` (NumPy MLP) or a ``.zip`` (Stable-Baselines3 PPO, needs the [rl]
    extra). ``action``/``horizon`` override the file's (a zip holds neither: markup and 400 by default)."""
    p = Path(path)
    if not p.is_file():
        raise ValueError(f"strategies.params.policy.path = {str(path)!r}: no such file; expected a .npz or .zip policy")
    if p.suffix == ".zip":
        try:
            from stable_baselines3 import PPO
        except ImportError:
            raise ValueError("a Stable-Baselines3 policy (.zip) needs the [rl] extra: "
                             "pip install 'llm-market-sim[rl]' (or save it as .npz)") from None
        model = PPO.load(p, device="cpu")
        dim = int(model.observation_space.shape[0])
        policy = from_sb3(model, np.zeros(dim, np.float32), np.ones(dim, np.float32), action or "markup",
                          horizon or 400)
    else:
        policy = NumpyPolicy.load(p)
    if action is not None:
        policy.action = action if action in ACTIONS else _bad("action", action, f"one of {ACTIONS}")
    if horizon is not None:
        policy.horizon = int(horizon) if int(horizon) >= 1 else _bad("horizon", horizon, "at least 1")
    return policy


def _bad(key: str, value: Any, allowed: str) -> Any:
    raise ValueError(f"{key} = {value!r}: expected {allowed}")


class PolicyStrategy(Strategy):
    """Bids with a saved policy (``load_policy``) on the observation the market env gives: its cost, the context,
    round / horizon and its own last outcome and payment (kept from ``learn``)."""

    name = "policy"

    def __init__(self, facts: BidderFacts = BidderFacts(), path: str = "", action: str | None = None,
                 horizon: int | None = None) -> None:
        super().__init__(facts)
        if not path:
            raise ValueError("path = '': expected a policy file (strategies.params.policy.path = FILE.npz or .zip)")
        if not np.isfinite(facts.cost_cap):
            raise ValueError(f"cost_cap = {facts.cost_cap}: the policy strategy needs a finite bid range")
        self.policy = load_policy(path, action, horizon)
        if self.policy.action not in ACTIONS:
            raise ValueError(f"policy {str(path)!r}: action {self.policy.action!r}; expected one of {ACTIONS} (a "
                             "bidding policy; an advertiser's report policy plays as the ad strategy 'ad-policy')")
        self.path = str(path)
        self.won, self.payment = False, 0.0
        self._obs: np.ndarray | None = None

    def bid(self, obs: Observation) -> float:
        context = np.asarray(obs.context, dtype=float)
        if context.shape[0] + OBS_EXTRA != self.policy.obs_dim:
            raise ValueError(f"policy {self.path!r}: takes {self.policy.obs_dim} inputs, the market's context has "
                             f"{context.shape[0]} entries; expected {self.policy.obs_dim - OBS_EXTRA}")
        self._obs = observation(obs.cost, context, obs.round, self.policy.horizon, self.won, self.payment, self._obs)
        a = self.policy.act(self._obs)
        return action_to_bid(a, obs.cost, self.facts.cost_floor, self.facts.cost_cap, self.policy.action)

    def learn(self, feedback: BidFeedback) -> None:
        self.won, self.payment = bool(feedback.won), float(feedback.payment)

    def get_state(self) -> dict[str, Any]:
        return {"won": self.won, "payment": self.payment}

    def set_state(self, state: dict[str, Any]) -> None:
        self.won, self.payment = bool(state["won"]), float(state["payment"])
