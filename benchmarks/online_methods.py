"""The methods the online benchmarks compare: ours (one shared `OnlineModel`) and one
optimiser per user as peers, each asked for settings and told the user's stars."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import optuna

from benchmarks.harness import ROOT
from engine.online import Feedback, OnlineModel, Rater, UserHistory, quality_reward
from engine.spec import load_spec
from objectives.users import CONTEXTS, PROVIDERS

GENAI_SPEC = ROOT / "configs" / "genai.yaml"
GENAI = load_spec(GENAI_SPEC).search_space()  # objectives.users.SPACE, as the engine reads it
CONTEXT = "portrait"
PEERS = ("skopt-gp", "optuna-tpe", "random")
SPACE_FLOATS = ("init_strength", "guidance_scale", "controlnet_weight")  # skopt's order after provider

optuna.logging.set_verbosity(optuna.logging.WARNING)


class Learner(Protocol):
    def ask(self, user: int, context: str) -> dict[str, Any]: ...

    def tell(self, user: int, context: str, params: dict[str, Any], stars: int) -> None: ...


class Ours:
    """One shared OnlineModel; a Rater per user and a UserHistory per (user, context)."""

    def __init__(self, seed: int) -> None:
        self.model = OnlineModel(GENAI, seed=seed)
        self.rng = np.random.default_rng(seed)
        self.raters: dict[int, Rater] = {}
        self.histories: dict[tuple[int, str], UserHistory] = {}

    def state(self, user: int, context: str) -> tuple[Rater, UserHistory]:
        rater = self.raters.setdefault(user, Rater())
        return rater, self.histories.setdefault((user, context), UserHistory())

    def ask(self, user: int, context: str) -> dict[str, Any]:
        return self.model.suggest(*self.state(user, context), context, self.rng)

    def tell(self, user: int, context: str, params: dict[str, Any], stars: int) -> None:
        reward = quality_reward(Feedback(rating=stars)) or 0.0  # (stars - 3) / 2; never None here
        self.model.observe(*self.state(user, context), context, params, reward)

    def recommend(self, user: int, context: str) -> dict[str, Any]:
        return self.model.recommend(*self.state(user, context), context)[0]


def peer_seed(seed: int, user: int, context: str) -> int:
    """seed*1000+user for the portrait context; other contexts offset by 100 000."""
    return seed * 1000 + user + 100_000 * CONTEXTS.index(context)


class SkoptPeer:
    """scikit-optimize GP-EI, one Optimizer per (user, context); it minimises -stars.

    No numpy-2 shim is needed: scikit-optimize 0.10.2 runs as is on numpy 2.4.
    """

    def __init__(self, seed: int) -> None:
        from skopt import Optimizer
        from skopt.space import Categorical, Real

        self.make = lambda state: Optimizer(
            [Categorical(list(PROVIDERS)), Real(0.1, 0.5), Real(5.0, 12.0), Real(0.7, 0.99)],
            base_estimator="GP",
            acq_func="EI",
            n_initial_points=5,
            random_state=state,
        )
        self.seed = seed
        self.optimizers: dict[tuple[int, str], Any] = {}

    def optimizer(self, user: int, context: str) -> Any:
        key = (user, context)
        if key not in self.optimizers:
            self.optimizers[key] = self.make(peer_seed(self.seed, user, context))
        return self.optimizers[key]

    def ask(self, user: int, context: str) -> dict[str, Any]:
        x = self.optimizer(user, context).ask()
        return {"provider": str(x[0]), **{n: float(v) for n, v in zip(SPACE_FLOATS, x[1:], strict=True)}}

    def tell(self, user: int, context: str, params: dict[str, Any], stars: int) -> None:
        x = [params["provider"], *(params[n] for n in SPACE_FLOATS)]
        self.optimizer(user, context).tell(x, -float(stars))


class OptunaPeer:
    """Optuna multivariate TPE, one study per (user, context), maximising stars."""

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self.studies: dict[tuple[int, str], optuna.Study] = {}
        self.trials: dict[tuple[int, str], optuna.Trial] = {}
        self.distributions = GENAI.optuna_distributions()

    def study(self, user: int, context: str) -> optuna.Study:
        key = (user, context)
        if key not in self.studies:
            sampler = optuna.samplers.TPESampler(seed=peer_seed(self.seed, user, context), multivariate=True)
            self.studies[key] = optuna.create_study(direction="maximize", sampler=sampler)
        return self.studies[key]

    def ask(self, user: int, context: str) -> dict[str, Any]:
        trial = self.study(user, context).ask(self.distributions)
        self.trials[(user, context)] = trial
        return dict(trial.params)

    def tell(self, user: int, context: str, params: dict[str, Any], stars: int) -> None:
        self.study(user, context).tell(self.trials.pop((user, context)), float(stars))


class RandomPeer:
    """Uniform settings, independent per (user, context)."""

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self.rngs: dict[tuple[int, str], np.random.Generator] = {}

    def ask(self, user: int, context: str) -> dict[str, Any]:
        key = (user, context)
        rng = self.rngs.setdefault(key, np.random.default_rng([self.seed, user, CONTEXTS.index(context)]))
        return GENAI.from_unit(rng.uniform(size=len(GENAI.free)))

    def tell(self, user: int, context: str, params: dict[str, Any], stars: int) -> None:
        pass


def make_learner(method: str, seed: int) -> Learner:
    makers: dict[str, Callable[[int], Learner]] = {
        "ours": Ours,
        "skopt-gp": SkoptPeer,
        "optuna-tpe": OptunaPeer,
        "random": RandomPeer,
    }
    return makers[method](seed)


@dataclass
class BestRated:
    """The best-rated settings per (user, context), latest on ties: every method's fair fallback.

    A context the user never rated falls back to their best-rated settings anywhere, then to
    the centre of the space (a peer knows nothing else).
    """

    best: dict[tuple[int, str], tuple[int, dict[str, Any]]] = field(default_factory=dict)
    anywhere: dict[int, tuple[int, dict[str, Any]]] = field(default_factory=dict)

    def add(self, user: int, context: str, params: dict[str, Any], stars: int) -> None:
        if stars >= self.best.get((user, context), (0, {}))[0]:
            self.best[(user, context)] = (stars, params)
        if stars >= self.anywhere.get(user, (0, {}))[0]:
            self.anywhere[user] = (stars, params)

    def pick(self, user: int, context: str) -> dict[str, Any]:
        found = self.best.get((user, context)) or self.anywhere.get(user)
        return found[1] if found else GENAI.from_unit(np.full(len(GENAI.free), 0.5))
