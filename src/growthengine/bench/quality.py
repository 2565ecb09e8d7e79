"""``growth bench quality``: the optimizers measured against simulated ground truth (fixed seeds).

* **Send time.** Users with known routines (:func:`~growthengine.optimize.truth.make_send_time_truth`) and 8 weeks of
  engagement history. For one campaign a day for a week (window: the whole local day, push quiet hours 22:00-08:00),
  the expected open rate of the model's choice (exploration included), of a fixed 09:00 blast and of an oracle that
  knows each user's true best allowed hour. Figure: the share of the oracle's lift over the blast that the model
  captures, on users with 20+ past opens (target >= 90 %); thinner histories are shown for information. Beside it,
  the best any policy could reach from the same histories: a Bayes policy that knows how the simulated routines are
  generated (:func:`~growthengine.optimize.truth.bayes_profiles`) sends at each user's posterior best hour.
* **Experiments.** Two variants with known rates through the real :func:`~growthengine.optimize.experiments.decide`
  (audience in batches, 10 % exploring; and the Thompson mode): how often the truly better variant is rolled out and
  how often a worse one; A/A tests (any winner is a false one); A/B/C with one better variant; a guardrail case
  where the better converter unsubscribes four times as often (rolling it out counts as harm). Target: a worse
  variant in < 5 % of runs.
* **Uplift.** Campaigns with a 10 % holdout and a known true uplift; how often the 95 % Newcombe interval covers it
  (target: 93-97 %).
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np
from rich.markup import escape
from rich.table import Table

from growthengine.optimize.experiments import ExperimentConfig
from growthengine.optimize.proportions import uplift
from growthengine.optimize.send_time import SendTimeModel, hour_of_week, resolve_zone
from growthengine.optimize.send_time_population import PopulationSendTime
from growthengine.optimize.truth import (
    ArmTruth,
    bayes_profiles,
    draw_uplift,
    make_send_time_truth,
    simulate_experiment,
)

Progress = Callable[[str, int], Callable[[int], None]]
TARGET_LIFT_CAPTURED = 0.90
TARGET_WORSE_ROLLOUT = 0.05
TARGET_COVERAGE = (0.93, 0.97)
HISTORY_END = dt.datetime(2026, 3, 1, 17, 0, tzinfo=dt.UTC)  # Sunday evening; campaigns run Monday..Sunday after
RICH_HISTORY = 20
ALLOWED_HOURS = range(8, 22)  # push outside 22:00-08:00
BLAST_HOUR = 9


@dataclass(frozen=True)
class QualitySize:
    send_time_users: int = 3_000
    bayes_draws_per_user: int = 20  # routines drawn for the Bayes policy (the Monte Carlo error only lowers it)
    experiment_runs: int = 400  # per scenario and mode
    experiment_audience: int = 200_000
    uplift_runs: int = 10_000
    seed: int = 20260105


@dataclass(frozen=True)
class Figure:
    study: str
    case: str
    measure: str
    value: str
    target: str = ""
    ok: bool | None = None  # None: for information


@dataclass(frozen=True)
class SendTimeGroup:
    users: int
    model: float
    blast: float
    oracle: float
    bayes: float = float("nan")  # the best policy given the histories (knows the generator)

    def share(self, rate: float) -> float:
        lift = self.oracle - self.blast
        return (rate - self.blast) / lift if lift > 0 else float("nan")

    @property
    def captured(self) -> float:
        return self.share(self.model)

    @property
    def ceiling(self) -> float:
        return self.share(self.bayes)


@dataclass(frozen=True)
class ScenarioResult:
    name: str
    mode: str
    runs: int
    better: int
    worse: int
    undecided: int
    mean_audience: float

    @property
    def worse_share(self) -> float:
        return self.worse / self.runs if self.runs else 0.0


@dataclass
class QualityReport:
    size: QualitySize
    send_time: dict[str, SendTimeGroup] = field(default_factory=dict)
    scenarios: list[ScenarioResult] = field(default_factory=list)
    coverage: float = float("nan")
    uplift_runs: int = 0
    seconds: dict[str, float] = field(default_factory=dict)

    def figures(self) -> list[Figure]:
        rows: list[Figure] = []
        for name, g in self.send_time.items():
            rich = name == f"{RICH_HISTORY}+ opens"
            case = f"{name}, {g.users:,} users"
            rows.append(Figure("send time", case, "share of the oracle's lift over a 09:00 blast", f"{g.captured:.1%}",
                               f">= {TARGET_LIFT_CAPTURED:.0%}" if rich else "",
                               g.captured >= TARGET_LIFT_CAPTURED if rich else None))
            rows.append(Figure("send time", case, "best any policy could reach from these histories (Bayes, "
                               "knowing the generator)", f"{g.ceiling:.1%}"))
            rows.append(Figure("send time", case, "open rate: model / 09:00 blast / Bayes / oracle",
                               f"{g.model:.2%} / {g.blast:.2%} / {g.bayes:.2%} / {g.oracle:.2%}"))
        for s in self.scenarios:
            case = f"{s.name}, {s.mode}, {s.runs} runs"
            if s.name != "A/A":
                rows.append(Figure("experiments", case, "better variant rolled out", f"{s.better / s.runs:.1%}"))
            worse = {"A/A": "false winner", "guardrail": "harmful variant"}.get(s.name, "worse variant")
            rows.append(Figure("experiments", case, f"{worse} rolled out", f"{s.worse_share:.1%}",
                               f"< {TARGET_WORSE_ROLLOUT:.0%}", s.worse_share < TARGET_WORSE_ROLLOUT))
            rows.append(Figure("experiments", case, f"no verdict within {self.size.experiment_audience:,} users; "
                               "mean audience used", f"{s.undecided / s.runs:.1%}; {s.mean_audience:,.0f}"))
        low, high = TARGET_COVERAGE
        rows.append(Figure("uplift", f"{self.uplift_runs:,} campaigns, 10 % holdout",
                           "95 % Newcombe interval covers the true uplift", f"{self.coverage:.1%}",
                           f"{low:.0%}-{high:.0%}", low <= self.coverage <= high))
        return rows

    @property
    def ok(self) -> bool:
        return all(f.ok is not False for f in self.figures())


def run_send_time(users: int, seed: int, progress: Callable[[int], None] | None = None, *,
                  bayes_draws: int | None = None) -> dict[str, SendTimeGroup]:
    """Expected open rates of model, blast, Bayes policy and oracle, per history size."""
    truth = make_send_time_truth(users, seed=seed, now=HISTORY_END)
    models = [SendTimeModel.fit(h, now=HISTORY_END, tz=truth.tz) for h in truth.histories]
    population = PopulationSendTime.from_models(models)
    bayes = bayes_profiles(truth, draws=bayes_draws if bayes_draws is not None else 20 * users, seed=seed + 1)
    zone, _ = resolve_zone(truth.tz)
    first_day = HISTORY_END.astimezone(zone).date() + dt.timedelta(days=1)
    sums: dict[str, np.ndarray] = {}
    counts: dict[str, int] = {}
    for u, model in enumerate(models):
        group = (f"{RICH_HISTORY}+ opens" if model.events >= RICH_HISTORY
                 else "1-19 opens" if model.events > 0 else "no history")
        counts[group] = counts.get(group, 0) + 1
        total = sums.setdefault(group, np.zeros(4))
        for d in range(7):
            day = first_day + dt.timedelta(days=d)
            start = dt.datetime.combine(day, dt.time(0), tzinfo=zone)
            choice = model.best_time(start, dt.timedelta(hours=23, minutes=59), truth.tz, (22, 8),
                                     population=population, explore_key=f"{truth.user_ids[u]}:{day.isoformat()}")
            chosen = hour_of_week(choice.send_at.astimezone(zone))
            weekday = day.weekday()
            oracle = truth.best_allowed_hour(u, weekday, ALLOWED_HOURS)
            allowed = [weekday * 24 + h for h in ALLOWED_HOURS]
            best_guess = allowed[int(np.argmax(bayes[u, allowed]))]
            total += truth.open_prob[u, [chosen, weekday * 24 + BLAST_HOUR, oracle, best_guess]]
        if progress is not None:
            progress(1)
    order = [f"{RICH_HISTORY}+ opens", "1-19 opens", "no history"]
    groups = {}
    for g in order:
        if g in sums:
            model_rate, blast, oracle_rate, bayes_rate = (float(x) for x in sums[g] / (7 * counts[g]))
            groups[g] = SendTimeGroup(counts[g], model_rate, blast, oracle_rate, bayes_rate)
    return groups


def _scenarios(rng: np.random.Generator) -> dict[str, tuple[list[ArmTruth], set[str]]]:
    """One draw of each scenario: the arms and the variants whose rollout counts as worse (A/A: any)."""
    base = rng.uniform(0.04, 0.20)
    lift = rng.uniform(0.15, 0.40)
    better_first = rng.random() < 0.5
    high, low = base * (1 + lift), base
    ab = [ArmTruth("A", high if better_first else low), ArmTruth("B", low if better_first else high)]
    best = int(rng.integers(3))
    abc = [ArmTruth(n, high if i == best else low) for i, n in enumerate("ABC")]
    return {
        "A/B": (ab, {"B" if better_first else "A"}),
        "A/A": ([ArmTruth("A", base), ArmTruth("B", base)], {"A", "B"}),
        "A/B/C": (abc, {n for i, n in enumerate("ABC") if i != best}),
        # the better converter unsubscribes four times as often: rolling it out is the harm
        "guardrail": ([ArmTruth("A", base, 0.003), ArmTruth("B", base * 1.2, 0.012)], {"B"}),
    }


def run_experiments(runs: int, audience: int, seed: int,
                    progress: Callable[[int], None] | None = None) -> list[ScenarioResult]:
    results: list[ScenarioResult] = []
    for mode in ("explore", "thompson"):
        config = ExperimentConfig(mode="explore" if mode == "explore" else "thompson")
        rng = np.random.default_rng([seed, 0 if mode == "explore" else 1])
        tallies: dict[str, list[float]] = {}
        for _ in range(runs):
            for name, (arms, worse) in _scenarios(rng).items():
                run = simulate_experiment(arms, config, rng, audience=audience, batch=2_000)
                tally = tallies.setdefault(name, [0, 0, 0, 0.0])
                winner = run.verdict.winner if run.verdict.status == "winner" else None
                if winner is None:
                    tally[2] += 1
                elif winner in worse:
                    tally[1] += 1
                else:
                    tally[0] += 1
                tally[3] += run.audience
            if progress is not None:
                progress(1)
        for name, (better, worse_n, undecided, used) in tallies.items():
            results.append(ScenarioResult(name, mode, runs, int(better), int(worse_n), int(undecided), used / runs))
    return results


def run_uplift(runs: int, seed: int, progress: Callable[[int], None] | None = None) -> float:
    """Coverage of the 95 % interval over campaigns of many sizes, rates and true uplifts (10 % holdout)."""
    rng = np.random.default_rng(seed)
    covered = 0
    for _ in range(runs):
        control_rate = float(rng.uniform(0.01, 0.25))
        true_uplift = float(rng.uniform(-0.5, 1.0) * control_rate)
        treated_n = int(rng.integers(500, 20_000))
        draw = draw_uplift(rng, control_rate=control_rate, uplift=true_uplift, treated_n=treated_n,
                           control_n=max(20, treated_n // 9))
        result = uplift(draw.treated_conversions, draw.treated_n, draw.control_conversions, draw.control_n)
        covered += int(result.low <= draw.true_uplift <= result.high)
        if progress is not None:
            progress(1)
    return covered / runs if runs else float("nan")


def run_quality_bench(size: QualitySize | None = None, progress: Progress | None = None) -> QualityReport:
    size = size or QualitySize()
    report = QualityReport(size)
    started = time.perf_counter()
    report.send_time = run_send_time(size.send_time_users, size.seed,
                                     progress("send time", size.send_time_users) if progress else None,
                                     bayes_draws=size.bayes_draws_per_user * size.send_time_users)
    report.seconds["send time"] = time.perf_counter() - started
    started = time.perf_counter()
    report.scenarios = run_experiments(size.experiment_runs, size.experiment_audience, size.seed,
                                       progress("experiments", 2 * size.experiment_runs) if progress else None)
    report.seconds["experiments"] = time.perf_counter() - started
    started = time.perf_counter()
    report.coverage = run_uplift(size.uplift_runs, size.seed,
                                 progress("uplift", size.uplift_runs) if progress else None)
    report.uplift_runs = size.uplift_runs
    report.seconds["uplift"] = time.perf_counter() - started
    return report


def quality_table(report: QualityReport) -> Table:
    """The figures as a Rich table with PASS/MISS."""
    table = Table(title=f"Optimization quality on simulated ground truth (seed {report.size.seed})")
    for column in ("study", "case", "measure", "value", "target", "result"):
        table.add_column(column, justify="right" if column == "value" else "left")
    for f in report.figures():
        verdict = "" if f.ok is None else ("[green]PASS[/]" if f.ok else "[red]MISS[/]")
        table.add_row(f.study, escape(f.case), escape(f.measure), f.value, f.target, verdict)
    return table


def scaled(size: QualitySize, factor: float) -> QualitySize:
    """A bigger (or smaller) run: every count times ``factor``."""
    return replace(size, send_time_users=max(50, int(size.send_time_users * factor)),
                   experiment_runs=max(10, int(size.experiment_runs * factor)),
                   uplift_runs=max(100, int(size.uplift_runs * factor)))
