"""The methods the online benchmarks compare, each asked for settings, told the user's stars
and asked for its recommendation: ours (one shared `OnlineModel`), its two ablations, a TPE
study shared per context, and one optimiser per user as peers.

Every method rewards a rating as `engine.online.quality_reward`, (stars - 3) / 2 (TPE ranks
and skopt's GP normalises its targets, so the affine map changes neither).
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import optuna

from benchmarks.harness import ROOT
from engine.online import Feedback, OnlineModel, Priors, Rater, UserHistory, quality_reward
from engine.spec import load_spec
from objectives.users import PROVIDERS

GENAI_SPEC = ROOT / "configs" / "genai.yaml"
GENAI = load_spec(GENAI_SPEC).search_space()  # objectives.users.SPACE, as the engine reads it
CONTEXT = "portrait"
SPACE_FLOATS = ("init_strength", "guidance_scale", "controlnet_weight")  # skopt's order after provider

# method -> what its recommendation is called in the reports; a method may report two
LABELS = {
    "ours": "ours",
    "ours-no-user-gp": "ours without user GP",
    "population": "population only",
    "shared-tpe": "shared TPE per context (user's best-rated)",
    "shared-tpe-study": "shared TPE per context (study's best)",
    "optuna-tpe": "per-user TPE",
    "skopt-gp": "per-user GP-EI",
    "random": "random",
}
METHODS = ("ours", "ours-no-user-gp", "population", "shared-tpe", "optuna-tpe", "skopt-gp", "random")
ABLATIONS = ("ours-no-user-gp", "population")
BASELINES = ("shared-tpe", "shared-tpe-study", "optuna-tpe", "skopt-gp", "random")

optuna.logging.set_verbosity(optuna.logging.WARNING)

Params = dict[str, Any]


class Method(Protocol):
    def ask(self, user: int, context: str) -> Params: ...

    def tell(self, user: int, context: str, params: Params, stars: int) -> None: ...

    def recommend(self, user: int, context: str) -> dict[str, Params]:
        """Label (a key of LABELS) -> the settings recommended to this user in this context."""
        ...


def reward(stars: int) -> float:
    return quality_reward(Feedback(rating=stars)) or 0.0  # (stars - 3) / 2; never None here


def stream(*keys: int | str) -> int:
    """A 32-bit seed from seeds, user numbers and context names (stable across runs)."""
    ints = [k % 2**32 if isinstance(k, int) else zlib.crc32(k.encode()) for k in keys]
    return int(np.random.SeedSequence(ints).generate_state(1)[0])


# -- ours and its ablations -------------------------------------------------------------------


class Ours:
    """One shared OnlineModel; a Rater per user and a UserHistory per (user, context)."""

    label = "ours"

    def __init__(self, seed: int, priors: Priors | None = None) -> None:
        self.model = OnlineModel(GENAI, seed=seed, priors=priors)
        self.rng = np.random.default_rng(seed)
        self.raters: dict[int, Rater] = {}
        self.histories: dict[tuple[int, str], UserHistory] = {}

    def state(self, user: int, context: str) -> tuple[Rater, UserHistory]:
        rater = self.raters.setdefault(user, Rater())
        return rater, self.histories.setdefault((user, context), UserHistory())

    def ask(self, user: int, context: str) -> Params:
        return self.model.suggest(*self.state(user, context), context, self.rng)

    def tell(self, user: int, context: str, params: Params, stars: int) -> None:
        self.model.observe(*self.state(user, context), context, params, reward(stars))

    def recommend(self, user: int, context: str) -> dict[str, Params]:
        return {self.label: self.model.recommend(*self.state(user, context), context)[0]}


class OursNoUserGP(Ours):
    """Ours without the user level's GP: every user's UserHistory stays empty, so suggestions
    (UCB at the population's candidates, Thompson between providers) and recommendations
    come from the context model (plus the user's Rater bias, which moves no argmax); the
    population still learns every rating through `OnlineModel.learn`, calibrated by the
    user's Rater."""

    label = "ours-no-user-gp"

    def state(self, user: int, context: str) -> tuple[Rater, UserHistory]:
        return self.raters.setdefault(user, Rater()), UserHistory()  # never fed

    def tell(self, user: int, context: str, params: Params, stars: int) -> None:
        self.model.learn(self.state(user, context)[0], context, params, reward(stars))


class PopulationOnly(OursNoUserGP):
    """No per-user state at all: a fresh Rater and an empty UserHistory on every call, so
    ratings reach the context model uncalibrated and every user of a context is recommended
    the context model's best."""

    label = "population"

    def state(self, user: int, context: str) -> tuple[Rater, UserHistory]:
        return Rater(), UserHistory()


# -- peers ------------------------------------------------------------------------------------


@dataclass
class BestRated:
    """The best-rated settings per (user, context), latest on ties: the peers' recommendation.

    A context the user never rated falls back to their best-rated settings anywhere, then to
    the centre of the space (a peer knows nothing else).
    """

    best: dict[tuple[int, str], tuple[int, Params]] = field(default_factory=dict)
    anywhere: dict[int, tuple[int, Params]] = field(default_factory=dict)

    def add(self, user: int, context: str, params: Params, stars: int) -> None:
        if stars >= self.best.get((user, context), (0, {}))[0]:
            self.best[(user, context)] = (stars, params)
        if stars >= self.anywhere.get(user, (0, {}))[0]:
            self.anywhere[user] = (stars, params)

    def pick(self, user: int, context: str) -> Params:
        found = self.best.get((user, context)) or self.anywhere.get(user)
        return found[1] if found else GENAI.from_unit(np.full(len(GENAI.free), 0.5))


class Peer:
    """A peer: `ask` and `learn` are its own; it recommends each user's best-rated settings."""

    label = ""

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self.best = BestRated()

    def ask(self, user: int, context: str) -> Params:
        raise NotImplementedError

    def learn(self, user: int, context: str, params: Params, stars: int) -> None:
        raise NotImplementedError

    def tell(self, user: int, context: str, params: Params, stars: int) -> None:
        self.learn(user, context, params, stars)
        self.best.add(user, context, params, stars)

    def recommend(self, user: int, context: str) -> dict[str, Params]:
        return {self.label: self.best.pick(user, context)}


def tpe_study(seed: int) -> optuna.Study:
    sampler = optuna.samplers.TPESampler(seed=seed, multivariate=True)
    return optuna.create_study(direction="maximize", sampler=sampler)


class OptunaPeer(Peer):
    """Optuna multivariate TPE, one study per (user, context)."""

    label = "optuna-tpe"

    def __init__(self, seed: int) -> None:
        super().__init__(seed)
        self.studies: dict[tuple[int, str], optuna.Study] = {}
        self.trials: dict[tuple[int, str], optuna.Trial] = {}
        self.distributions = GENAI.optuna_distributions()

    def key(self, user: int, context: str) -> tuple[int, str]:
        """Whose study: this user's in this context."""
        return user, context

    def study(self, user: int, context: str) -> optuna.Study:
        key = self.key(user, context)
        if key not in self.studies:
            self.studies[key] = tpe_study(stream(self.seed, *key))
        return self.studies[key]

    def ask(self, user: int, context: str) -> Params:
        trial = self.study(user, context).ask(self.distributions)
        self.trials[(user, context)] = trial
        return dict(trial.params)

    def learn(self, user: int, context: str, params: Params, stars: int) -> None:
        self.study(user, context).tell(self.trials.pop((user, context)), reward(stars))


class SharedTPE(OptunaPeer):
    """One Optuna multivariate TPE study per context, shared by all its users: each request
    asks it, each rating tells it that user's reward. Two recommendations from the same run:
    the user's best-rated settings among those the study suggested to them (the peers' rule),
    and the study's best trial (`best_params`: highest reward told by anyone, first on ties)."""

    label = "shared-tpe"

    def key(self, user: int, context: str) -> tuple[int, str]:
        return -1, context  # every user's

    def recommend(self, user: int, context: str) -> dict[str, Params]:
        return {**super().recommend(user, context), "shared-tpe-study": self.study(user, context).best_params}


class SkoptPeer(Peer):
    """scikit-optimize GP-EI, one Optimizer per (user, context); it minimises -reward.

    No numpy-2 shim is needed: scikit-optimize 0.10.2 runs as is on numpy 2.4.
    """

    label = "skopt-gp"

    def __init__(self, seed: int) -> None:
        from skopt import Optimizer
        from skopt.space import Categorical, Real

        super().__init__(seed)
        self.make = lambda state: Optimizer(
            [Categorical(list(PROVIDERS)), Real(0.1, 0.5), Real(5.0, 12.0), Real(0.7, 0.99)],
            base_estimator="GP",
            acq_func="EI",
            n_initial_points=5,
            random_state=state,
        )
        self.optimizers: dict[tuple[int, str], Any] = {}

    def optimizer(self, user: int, context: str) -> Any:
        key = (user, context)
        if key not in self.optimizers:
            self.optimizers[key] = self.make(stream(self.seed, user, context))
        return self.optimizers[key]

    def ask(self, user: int, context: str) -> Params:
        x = self.optimizer(user, context).ask()
        return {"provider": str(x[0]), **{n: float(v) for n, v in zip(SPACE_FLOATS, x[1:], strict=True)}}

    def learn(self, user: int, context: str, params: Params, stars: int) -> None:
        x = [params["provider"], *(params[n] for n in SPACE_FLOATS)]
        self.optimizer(user, context).tell(x, -reward(stars))


class RandomPeer(Peer):
    """Uniform settings, independent per (user, context)."""

    label = "random"

    def __init__(self, seed: int) -> None:
        super().__init__(seed)
        self.rngs: dict[tuple[int, str], np.random.Generator] = {}

    def ask(self, user: int, context: str) -> Params:
        key = (user, context)
        rng = self.rngs.setdefault(key, np.random.default_rng(stream(self.seed, user, context)))
        return GENAI.from_unit(rng.uniform(size=len(GENAI.free)))

    def learn(self, user: int, context: str, params: Params, stars: int) -> None:
        pass


MAKERS: dict[str, Callable[[int], Method]] = {
    "ours": Ours,
    "ours-no-user-gp": OursNoUserGP,
    "population": PopulationOnly,
    "shared-tpe": SharedTPE,
    "optuna-tpe": OptunaPeer,
    "skopt-gp": SkoptPeer,
    "random": RandomPeer,
}


def make_method(method: str, seed: int, priors: Priors | None = None) -> Method:
    """`method` (a key of MAKERS) with model seed `seed`: its model's and its rngs' seed;
    `priors` replace ours' (and its ablations') defaults."""
    if priors is not None:
        if method not in ("ours", *ABLATIONS):
            raise ValueError(f"{method} has no online-model priors")
        return OURS[method](seed, priors)
    return MAKERS[method](seed)


OURS: dict[str, type[Ours]] = {"ours": Ours, "ours-no-user-gp": OursNoUserGP, "population": PopulationOnly}
