"""What one run (or resume) notes while Tune runs it, and how it reaches Tune's parts.

`RunState` is instance state: `run_worlds` makes one per run or resume (with what an interrupted run had
seen) and hands it to the schedulers, the stopper and the callbacks through their constructors. Tune
pickles those parts into its run folder (`tuner.pkl`) and `Tuner.restore` brings back the first run's:
`attach` then hands them this run's state, and the searcher the driver's scene (never pickled).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class RunState:
    pruned: set[int] = field(default_factory=set)  # worlds the scheduler stopped before their last step
    merged: dict[int, int] = field(default_factory=dict)  # world -> the world it was a duplicate of
    crashes: dict[int, int] = field(default_factory=dict)  # world -> times its process died (Tune restarted it)
    outage: str | None = None  # the first store outage a world reported (None: none)
    stop_everything: bool = False  # when Tune's interrupt handler is not there to end the loop

    @classmethod
    def before(cls, pruned=(), merged=None, crashes=None) -> RunState:
        """The state a resumed run starts from (run.json's `pruned`, `merged`, `restarts`)."""
        return cls(pruned={int(w) for w in pruned}, merged={int(k): int(v) for k, v in (merged or {}).items()},
                   crashes={int(k): int(v) for k, v in (crashes or {}).items()})


def parts_of(tuner) -> list:
    """Tune's scheduler, searcher, stopper and callbacks of `tuner` (new, or as `Tuner.restore` unpickled
    them). Tune offers no public accessor: its internal tuner holds them."""
    internal = tuner._local_tuner
    tc, rc = internal._tune_config, internal._run_config
    return [tc.scheduler, tc.search_alg, rc.stop, *(rc.callbacks or [])]


def attach(tuner, state: RunState, scene=None) -> None:
    """Hand `state` (and the driver's RadioScene, which the searcher checks reused worlds' starts against)
    to every part of `tuner` that takes them."""
    for part in parts_of(tuner):
        if hasattr(part, "attach"):
            part.attach(state, scene)
