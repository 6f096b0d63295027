"""The run specification: the experiment as one run resolves it, built once by the driver (`RunSpec.of`).

A `RunSpec` is frozen. It holds the run's `Experiment` (itself frozen) with what the run decided about it
(a GPU share the cluster cannot give is 0), and answers what the worlds, the schedulers, the searcher, the
tolerance check, the polish, the winner and the report read: the plates at a size option with their
tolerance boxes (`sized`), the targets, the transmitters with their antennas, the objective, the solver
and search settings.

Tune's trial config carries it as JSON (a trial is another process): `trial_config` writes it and
`of_trial` reads it back, sized and with the trial's own step count, here and nowhere else.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from optimizer.experiment import Experiment
    from optimizer.experiment.catalogue import Option

TRIAL_EXPERIMENT_KEY = "experiment"  # the trial config's key holding the experiment's JSON


@dataclass(frozen=True, eq=False)
class RunSpec:
    exp: Experiment  # at `size` (None: the run's own plates, a catalogue at its smallest sizes)
    size: int | None = None  # the size option the plates are at (index into the run's `options`)
    size_rank: tuple[int, int] | None = None  # (area rank of `size`, distinct areas) under the run's catalogue
    _sized: dict = field(default_factory=dict, repr=False, compare=False)  # option -> RunSpec, built once

    def __reduce__(self):  # pickled (Ray, Tune's saved searcher) without what it built
        return RunSpec, (self.exp, self.size, self.size_rank)

    @classmethod
    def of(cls, exp: Experiment) -> RunSpec:
        return cls(exp)

    # --- what the run reads ------------------------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self.exp.name

    @property
    def plates(self) -> list:
        """The plates (`Reflector`s) at this spec's sizes, each with its tolerance box."""
        return self.exp.plates()

    @property
    def tolerances(self) -> list:
        return [r.tolerance for r in self.plates]

    @property
    def tolerance_on(self) -> bool:
        return any(t.active for t in self.tolerances)

    @property
    def transmitters(self) -> list:
        return list(self.exp.transmitters)

    @property
    def solver(self):
        return self.exp.solver

    @property
    def search(self):
        return self.exp.search

    @property
    def resources(self):
        return self.exp.resources

    @cached_property
    def target_points(self) -> list[list[float]]:
        """[m] every target as asked for (the scene drops area points inside buildings)."""
        return self.exp.target_points()

    @cached_property
    def objective(self):
        """The objective (`optimizer.objectives`): truth, model value, whether a pose holds, ranking."""
        from optimizer import objectives

        return objectives.of(self.exp)

    # --- plate sizes (`sizes_m`, optimizer.experiment.catalogue) -----------------------------------------------
    @cached_property
    def options(self) -> list[Option] | None:
        """Every size option of the run, smallest total area first (None without a catalogue)."""
        from optimizer.experiment import catalogue

        return catalogue.options(self.exp) if catalogue.has_catalogue(self.exp) else None

    @cached_property
    def area_ranks(self) -> list[int] | None:
        from optimizer.experiment import catalogue

        return catalogue.area_ranks(self.options) if self.options else None

    def sized(self, size: int | None) -> RunSpec:
        """The spec with every plate at size option `size` (None: this spec); built once per option."""
        if size is None:
            return self
        size = int(size)
        if size not in self._sized:
            from optimizer.experiment import catalogue

            ranks = self.area_ranks
            self._sized[size] = RunSpec(catalogue.sized(self.exp, self.options[size]), size,
                                        (ranks[size], max(ranks) + 1))
        return self._sized[size]

    def at_option(self, option: Option) -> RunSpec:
        return self.sized(self.options.index(option))

    # --- Tune's trial config (the one conversion) --------------------------------------------------------------
    @cached_property
    def _data(self) -> dict:
        return self.exp.model_dump(mode="json")

    def trial_config(self, world: int, initial_pose, start_kind: str, baseline_rss: list[float],
                     size: int | None = None, **reused) -> dict:
        """A world's trial config: the run's experiment (JSON), the world, its start and its size option;
        `reused` (steps, parent, freed_by, scale): a world started in freed budget."""
        from optimizer.records import JointPose

        cfg = {TRIAL_EXPERIMENT_KEY: self._data, "world": int(world),
               "initial_pose": JointPose.of(initial_pose).model_dump(mode="json"), "start_kind": start_kind,
               "baseline_rss": list(baseline_rss)}
        if size is not None:
            cfg["size"] = int(size)
        cfg.update(reused)
        return cfg

    @classmethod
    def of_trial(cls, config: dict) -> RunSpec:
        """The spec a trial runs: the run's, at the trial's size option, with its own step count (a reused
        world runs fewer)."""
        from optimizer.experiment import parse_experiment

        spec = cls(parse_experiment(config[TRIAL_EXPERIMENT_KEY], "experiment")).sized(config.get("size"))
        if config.get("steps"):
            exp = spec.exp
            exp = exp.model_copy(update={"search": exp.search.model_copy(update={"steps": int(config["steps"])})})
            spec = RunSpec(exp, spec.size, spec.size_rank)
        return spec
