"""`auto`: a portfolio of Optuna's and pymoo's searchers on one shared history.

No single searcher wins at every budget (benchmarks/results/pareto.md): Optuna's GP is far
ahead at 100 evaluations and too slow beyond a few hundred, NSGA-II needs a population
before it pays, TPE sits between. `auto` runs, by trials told so far:

1. `startup` trials to start from: random points (Optuna's RandomSampler, as Optuna's GP
   starts by default) before GP, scrambled Sobol points (Optuna's QMCSampler) before TPE.
   Measured on 5 seeds (2026-12-07): before GP, Sobol points left it at ZDT2's corner (HV
   0.11) at 100 trials on 4 of 5 seeds, random ones on 2 (median HV@100 0.46 against
   0.11); on ZDT1 and ZDT3 Sobol led at 100 (median gap 0.026 against 0.047, 0.032 against
   0.105), on DTLZ2, DTLZ4 and WFG2 random did; by 200 the two were within 10% but for ZDT2
   (random ahead) and WFG2 (Sobol ahead). Before TPE on vectorize (15 seeds), random points
   let TPE stall as it does alone (median gap 4.4x NSGA-II's at 200 against 1.5x after
   Sobol points), and on codec Sobol led at 100 and 200 too;
2. a model until `model_until` trials are told (200): Optuna's GPSampler, fitted on every
   trial so far, on spaces without categorical parameters; on mixed spaces Optuna's TPE
   (multivariate, as the `tpe` searcher), since there each GP ask took seconds, 100 trials
   10 minutes, for a front no better than NSGA-II's (as Optuna's own AutoSampler). On codec
   TPE's median gap was a quarter of NSGA-II's at every budget; Sobol then NSGA-II alone
   (auto until 2026-12-07) was 5-8x TPE's there. On vectorize TPE alone stalls on some seeds
   (HV 0.57 where NSGA-II reaches 0.83), and auto with TPE as its model keeps 1.1-2.0x
   NSGA-II's median gap (15 seeds, 2026-12-07; the same code read 1.5x and 2.5x at 200 in
   two runs: vectorize's time is noisy). With two objectives GP's
   acquisition is expected hypervolume improvement (EHVI). With three or more, where EHVI
   costs ~10x more per ask, each ask fits GP to one random augmented Chebyshev
   scalarisation of the whole history instead (ParEGO, Knowles 2006): single-objective,
   0.43 s an ask at 200 trials against EHVI's 6.1 s. On 3 seeds (2026-12-01) it lifted
   DTLZ4 (HV@200 0.41 vs 0.23 with EHVI to 100) and DTLZ2 (0.64 vs 0.61), and lost
   WFG2@100 (42.9 vs 48.1); EHVI and ParEGO taking turns until 100 kept WFG2 (54.2) but
   lost DTLZ2@100 (0.49).
   While the model stalls, it and NSGA-II take turns: GP can stall in a corner (on ZDT2 it
   spent 40 trials at x0 = 0, the front's one end), NSGA-II's offspring of the whole
   history pull it out. Stalled: once some point beats the reference, the last `patience`
   trials raised the hypervolume by less than a tenth of its mean rise per `patience`
   trials since then. Until 2026-12-07 stalled meant no rise at all in `patience` trials,
   which a measured metric (vectorize's time) defeats: every few trials noise raised the
   hypervolume a little and ended the turns, and TPE stayed stuck (HV@200 0.62-0.67 on 3 of
   15 seeds, NSGA-II's 0.82-0.83 there); with the relative test the worst of the 15 was 0.77;
3. pymoo's NSGA-II after, whose first population is everything told before: its first
   parents are chosen from all of it, and its survival keeps the best `population_size`.

pymoo's NSGA-II rather than Optuna's in the last phase: on DTLZ4 and WFG2 it went twice as
far (benchmarks/results/pareto.md), and warm-starting it by telling it the history is
pymoo's own ask/tell. The first two phases are Optuna studies holding every trial told so
far (failed and infeasible ones included), so no phase starts cold; a trial asked in one
phase and told in the next is told to its own searcher, then to the current one. Phases
and turns depend only on what was told, in order, never on time, so a replayed journal
(resume) makes the same choices. The algorithms are Optuna's and pymoo's, untouched: ours are
the schedule, the shared history and ParEGO's scalarisation (a few lines of numpy; neither
Optuna nor pymoo has ParEGO, and pymoo's Tchebicheff decomposition does not normalise).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import optuna
from optuna.trial import FrozenTrial, TrialState

from engine.offline.pareto import HypervolumeTracker
from engine.offline.searchers.base import Searcher, Trial
from engine.offline.searchers.optuna_searchers import optuna_sampler, tell_optuna
from engine.offline.searchers.pymoo_searchers import PymooNSGA2Searcher
from engine.spec import CategoricalParam, MetricSpec, Space

__all__ = ["AUTO_DEFAULTS", "AutoSearcher"]

AUTO_DEFAULTS: dict[str, int] = {"startup": 10, "model_until": 200, "population_size": 20, "patience": 5}
# ParEGO's augmentation weight (Knowles 2006): keeps weakly dominated points from scoring
# as well as the points that dominate them
CHEBYSHEV_RHO = 0.05


class AutoSearcher(Searcher):
    name = "auto"

    def __init__(
        self,
        space: Space,
        metrics: Sequence[MetricSpec],
        seed: int = 0,
        options: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(space, metrics, seed)
        opts = {**AUTO_DEFAULTS, **(options or {})}
        unknown = sorted(set(opts) - set(AUTO_DEFAULTS))
        if unknown:
            raise ValueError(
                f"searcher.options for 'auto': unknown {unknown}; known: {sorted(AUTO_DEFAULTS)}"
            )
        lowest = {"startup": 0, "model_until": 0, "population_size": 2, "patience": 0}
        bad = {
            k: v for k, v in opts.items() if isinstance(v, bool) or not isinstance(v, int) or v < lowest[k]
        }
        if bad:
            raise ValueError(f"searcher.options for 'auto': {bad} must be whole numbers of at least {lowest}")
        self.startup, self.model_until = opts["startup"], opts["model_until"]
        self.population_size, self.patience = opts["population_size"], opts["patience"]
        self.uses_gp = not any(isinstance(p, CategoricalParam) for p in space.params.values())
        # GP's expected hypervolume improvement costs ~10x more per ask with three objectives
        # (6.1 s vs 0.65 s at 200 trials, benchmarks/results/gp-ask-time.md): there GP models
        # one random scalarisation per ask instead (ParEGO), 0.43 s an ask at 200
        self.scalarised = self.uses_gp and len(self.metrics) > 2
        self._chebyshev_gp = self._sampler("model") if self.scalarised else None
        self._chebyshev_asks = 0
        self._dists = space.optuna_distributions()
        self._directions = [
            optuna.study.StudyDirection.MINIMIZE
            if m.direction == "min"
            else optuna.study.StudyDirection.MAXIMIZE
            for m in self.metrics
        ]
        self._told: list[FrozenTrial] = []  # the shared history, in the order told, until NSGA-II
        self._n_told = 0
        self._phase = ""
        self._study: optuna.Study | None = self._new_study(self._phase_now())
        self._pymoo: PymooNSGA2Searcher | None = None
        # our trial id -> the Optuna study and trial, or pymoo's trial id, that asked it
        self._running: dict[str, tuple[optuna.Study, optuna.trial.Trial] | str] = {}
        self._counter = 0
        self._hypervolume = HypervolumeTracker(self.metrics)
        self._hypervolumes: list[float] = []  # after each trial told
        self._model_last = False  # whether the model asked the model phase's last trial

    def _phase_now(self) -> str:
        told = self._n_told
        if told < self.startup:
            return "start"
        return "model" if told < self.model_until else "nsga2"

    def _sampler(self, phase: str) -> optuna.samplers.BaseSampler:
        seed = self.seed + {"start": 0, "model": 1}[phase]  # each phase its own stream
        if phase == "start":
            return optuna_sampler("random" if self.uses_gp else "qmc", seed, {})
        if self.uses_gp:
            return optuna_sampler("gp", seed, {"n_startup_trials": 0})
        return optuna_sampler("tpe", seed, {})

    def _new_study(self, phase: str) -> optuna.Study:
        """The phase's study, holding every trial told so far."""
        self._phase = phase
        study = optuna.create_study(sampler=self._sampler(phase), directions=self._directions)
        for past in self._told:
            study.add_trial(_copy(past))
        return study

    def _nsga2(self) -> PymooNSGA2Searcher:
        """pymoo's NSGA-II, made on first use; its first population is every trial told so far."""
        if self._pymoo is None:
            options = {"pop_size": self.population_size}
            self._pymoo = PymooNSGA2Searcher(self.space, self.metrics, self.seed + 2, options)
            for past in self._told:
                self._pymoo.learn(past.params, self._values(past))
        return self._pymoo

    def _values(self, trial: FrozenTrial) -> dict[str, float] | None:
        if trial.state != TrialState.COMPLETE:
            return None
        return {m.name: v for m, v in zip(self.metrics, trial.values, strict=True)}

    def _chebyshev_study(self) -> optuna.Study:
        """A one-ask study of the history scored by an augmented Chebyshev scalarisation with
        fresh random weights (ParEGO, Knowles 2006; the GP is Optuna's): each metric scaled
        from the best value seen (0) to its reference (1), or to the worst seen while nothing
        beats the reference. Weights depend only on the seed and the asks so far."""
        rng = np.random.default_rng([self.seed, self._chebyshev_asks])
        self._chebyshev_asks += 1
        weights = rng.dirichlet(np.ones(len(self.metrics)))
        done = [t for t in self._told if t.state == TrialState.COMPLETE]
        scores: list[float] = []
        if done:
            sign = np.array([m.sign() for m in self.metrics])
            f = np.array([t.values for t in done]) * sign
            ideal, reference = f.min(axis=0), np.array([m.reference for m in self.metrics]) * sign
            span = np.where(reference > ideal, reference - ideal, f.max(axis=0) - ideal)
            scaled = weights * (f - ideal) / np.maximum(span, 1e-12)
            scores = (scaled.max(axis=1) + CHEBYSHEV_RHO * scaled.sum(axis=1)).tolist()
        score = iter(scores)
        assert self._chebyshev_gp is not None
        study = optuna.create_study(sampler=self._chebyshev_gp)
        study.add_trials(
            [_copy(t, [next(score)]) if t.state == TrialState.COMPLETE else _copy(t) for t in self._told]
        )
        return study

    def _nsga2_turn(self, phase: str) -> bool:
        """NSGA-II's phase, or every other trial of the model phase while it is stalled, so
        NSGA-II's offspring pull the model out of a corner (on ZDT2 GP spent 40 trials at
        x0 = 0)."""
        if phase == "nsga2":
            return True
        return phase == "model" and self._model_last and stalled(self._hypervolumes, self.patience)

    def ask(self, n: int = 1) -> list[Trial]:
        out: list[Trial] = []
        source: tuple[optuna.Study, optuna.trial.Trial] | str
        while len(out) < n:
            phase = self._phase_now()
            asked = self._nsga2().ask(1) if self._nsga2_turn(phase) else []
            if phase == "nsga2":
                self._phase, self._study = "nsga2", None
                if not asked:  # waiting for its generation to be told
                    break
            if asked:
                params, source = asked[0].params, asked[0].trial_id
            else:
                if phase != self._phase:
                    self._study = self._new_study(phase)
                assert self._study is not None
                study = self._chebyshev_study() if phase == "model" and self.scalarised else self._study
                trial = study.ask(self._dists)
                params, source = {**self.space.fixed, **trial.params}, (study, trial)
            if phase == "model":
                self._model_last = not asked
            trial_id = str(self._counter)
            self._counter += 1
            self._running[trial_id] = source
            out.append(Trial(trial_id, params))
        return out

    def tell(self, trial_id: str, values: Mapping[str, float] | None) -> None:
        source = self._running.get(trial_id)
        if source is None:
            raise KeyError(f"trial {trial_id!r} is not pending in this searcher")
        ordered = None if values is None else self._check_values(trial_id, values)
        del self._running[trial_id]
        self._n_told += 1
        self._track_progress(values)
        if isinstance(source, str):
            assert self._pymoo is not None
            pending = {t.trial_id: t.params for t in self._pymoo.pending()}
            self._pymoo.tell(source, values)
            if self._study is not None:  # the model's turn again next: its study learns it
                frozen = self._frozen(pending[source], values, ordered)
                self._told.append(frozen)
                self._study.add_trial(frozen)
            return
        study, trial = source
        if study.sampler is self._chebyshev_gp:  # a one-ask study: the history keeps the trial
            frozen = self._frozen(trial.params, values, ordered)
        else:
            tell_optuna(study, trial, self.metrics, values, ordered)
            frozen = study._storage.get_trial(trial._trial_id)  # as told, constraints included
        if self._pymoo is not None:
            self._pymoo.learn(frozen.params, values)
        if self._study is None:
            return
        self._told.append(frozen)
        if study is not self._study:  # asked in an earlier phase
            self._study.add_trial(_copy(frozen))

    def _track_progress(self, values: Mapping[str, float] | None) -> None:
        if values is not None and not any(self._violations(values)):
            self._hypervolume.add(values)
        self._hypervolumes.append(self._hypervolume.value)

    def _frozen(
        self, params: Mapping[str, Any], values: Mapping[str, float] | None, ordered: list[float] | None
    ) -> FrozenTrial:
        """A trial NSGA-II asked, as Optuna's studies hold it (constraints included)."""
        free = {k: v for k, v in params.items() if k in self._dists}
        if values is None or ordered is None:
            return optuna.trial.create_trial(state=TrialState.FAIL, params=free, distributions=self._dists)
        violations = {m.name: m.constraint.violation(values[m.name]) for m in self.metrics if m.constraint}
        return optuna.trial.create_trial(
            params=free, distributions=self._dists, values=ordered, constraints=violations or None
        )

    def pending(self) -> list[Trial]:
        out = []
        pymoo_pending = {t.trial_id: t.params for t in self._pymoo.pending()} if self._pymoo else {}
        for tid, source in self._running.items():
            if isinstance(source, str):
                out.append(Trial(tid, pymoo_pending[source]))
            else:
                out.append(Trial(tid, {**self.space.fixed, **source[1].params}))
        return out

    @property
    def phase(self) -> str:
        """The searcher the next trial comes from: start, model (GP, or TPE on a space with
        categorical parameters) or nsga2."""
        return self._phase_now()


STALL_SHARE = 0.1  # of the mean rise per `patience` trials, below which the model stalls


def stalled(hypervolumes: Sequence[float], patience: int) -> bool:
    """Whether the last `patience` trials raised the hypervolume by less than STALL_SHARE of
    its mean rise per `patience` trials since the first point beat the reference. Relative,
    so a noisy metric's small rises do not count as progress; before any point beats the
    reference there is no progress to measure (ZDT1's first trials)."""
    first = next((i for i, v in enumerate(hypervolumes) if v > 0), None)
    told = len(hypervolumes)
    if patience == 0 or first is None or told - 1 - first < patience:
        return False
    recent = hypervolumes[-1] - hypervolumes[-1 - patience]
    mean = (hypervolumes[-1] - hypervolumes[first]) * patience / (told - 1 - first)
    return recent <= STALL_SHARE * mean


def _copy(trial: FrozenTrial, values: list[float] | None = None) -> FrozenTrial:
    """A told trial for another study, with its values or these: its constraints travel in
    its system attributes."""
    return optuna.trial.create_trial(
        state=trial.state,
        params=trial.params,
        distributions=trial.distributions,
        values=(values or trial.values) if trial.state == TrialState.COMPLETE else None,
        system_attrs=trial.system_attrs,
    )
