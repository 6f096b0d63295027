"""Plate sizes from a catalogue (`sizes_m`): the size options a run tries and the rule that picks one.

A plate with `sizes_m` may be mounted in any of its catalogue's sizes; with several plates an *option* is one
size per plate (the product of their catalogues; a plate with `size_m` has one). Options are ordered by total
plate area, smallest first (ties: by the sizes themselves). A run spreads its starting worlds over the options
in turn (`assign`), so each size is searched by informed and uniform starts alike; a world keeps its size.

The rule (issue "Several reflectors"): the answer is the option with the smallest total area whose result
covers every target over the mounting tolerance; among options of equal area, the best worst-case min RSS.
Where no option holds, the best worst case of any. `area_ranks` is what the pruner and the winner's ranking
use: during the search a world whose best truth covers every target ranks above every world that does not,
and among those that do, smaller areas first (`optimizer.objectives.Objective.sized_score`).
"""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING

from optimizer.experiment.model import MAX_PLATE_SIDE_M

if TYPE_CHECKING:
    from optimizer.experiment import Experiment

Option = tuple[tuple[float, float], ...]  # one (width, height) [m] per plate


def has_catalogue(exp: Experiment) -> bool:
    return any(r.sizes_m is not None for r in exp.plates())


def options(exp: Experiment) -> list[Option]:
    """Every size option, smallest total area first (one option without a catalogue)."""
    per_plate = [[tuple(s) for s in (r.sizes_m or [r.size_m])] for r in exp.plates()]
    combos = [tuple((float(w), float(h)) for w, h in c) for c in itertools.product(*per_plate)]
    return sorted(combos, key=lambda c: (total_area(c), c))


def as_option(sizes) -> Option:
    """An option from one [width, height] per plate (a record's `size_m` lists, a plate list's sizes)."""
    return tuple((float(w), float(h)) for w, h in sizes)


def of_plates(exp: Experiment) -> Option:
    """The option an experiment's plates are at (`size_m` of each; a catalogue's smallest)."""
    return as_option(r.size_m for r in exp.plates())


def total_area(option: Option) -> float:
    """[m^2] the plates' area together."""
    return float(sum(w * h for w, h in option))


def area_ranks(opts: list[Option]) -> list[int]:
    """Per option, the rank of its total area among the distinct areas (0: the smallest)."""
    areas = sorted({round(total_area(o), 9) for o in opts})
    return [areas.index(round(total_area(o), 9)) for o in opts]


def assign(n_worlds: int, n_options: int) -> list[int]:
    """The option of each starting world: in turn, smallest first."""
    return [i % max(1, n_options) for i in range(n_worlds)]


def sized(exp: Experiment, option: Option) -> Experiment:
    """The experiment with each plate at its size in `option` (no catalogue left)."""
    from optimizer.experiment.loading import parse_experiment

    data = exp.model_dump(mode="json")
    key = "reflectors" if exp.reflectors is not None else "reflector"
    plates = data[key] if key == "reflectors" else [data[key]]
    for plate, (w, h) in zip(plates, option):
        plate.pop("sizes_m", None)
        plate["size_m"] = [w, h]
    return parse_experiment(data, "experiment")


def label(option: Option) -> str:
    """'1 × 1 m' per plate, ' + ' between plates."""
    return " + ".join(f"{w:g} × {h:g} m" for w, h in option)


def cli_value(option: Option) -> str:
    """The `--size=` value of an option: WxH per plate, ';' between plates."""
    return ";".join(f"{w!r}x{h!r}" for w, h in option)


def parse_cli(text: str, n_plates: int) -> Option:
    """An option from `--size=WxH[;WxH...]`; ValueError naming what is wrong."""
    parts = [p.strip() for p in str(text).split(";")]
    if len(parts) != n_plates:
        raise ValueError(f"{len(parts)} size(s) given, the experiment has {n_plates} plate(s); separate plates "
                         "with ';'")
    out = []
    for p in parts:
        try:
            w, h = (float(v) for v in p.lower().split("x"))
        except ValueError:
            raise ValueError(f"{p!r} is not WIDTHxHEIGHT in metres, e.g. 1x0.5") from None
        if not (0 < w <= MAX_PLATE_SIDE_M and 0 < h <= MAX_PLATE_SIDE_M):
            raise ValueError(f"{p!r}: width and height must be positive metres up to {MAX_PLATE_SIDE_M:g}")
        out.append((w, h))
    return tuple(out)
