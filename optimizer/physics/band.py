"""A band (`frequency_hz` a list): the surrogate's model value, the worst over the listed frequencies.

The truth (`RadioScene.rss_dbm`) solves at every frequency and takes each target's worst; the model follows it:
one surrogate per frequency (its own wavelength: Fresnel radius, free-space loss, PO level), each target's
power the soft-min over the frequencies (log-sum-exp, the objective's temperature), then the objective's own
model of those powers. With `min` that is the soft-min over every (frequency, target) pair, i.e. the soft-min
over the frequencies of each frequency's model value (log-sum-exp composes), the worst over the band.

The surrogates are evaluated by their own `evaluate` / `evaluate_many` (nothing inside them knows about the
band); the gradient is the chain rule through the soft-min: a second, linear pass per frequency whose
objective is the band model's first-order term (`_Linear`), summed over the frequencies.
One frequency: `band_surrogate` returns the surrogate itself (today's arithmetic, bit for bit).
"""

from __future__ import annotations

import numpy as np

from optimizer import objectives
from optimizer.errors import NumericsError
from optimizer.physics.geometry import wavelength_m


def band_softmin(powers_db, temperature_db: float) -> tuple[np.ndarray, np.ndarray]:
    """Over axis 0 (the frequencies) of `powers_db` [F, ...]: (the soft-min -T log(mean_f exp(-P/T)) [...],
    its weights dsoftmin/dP [F, ...], summing to 1 over F)."""
    p = np.asarray(powers_db, float)
    lo = p.min(axis=0)
    e = np.exp(-(p - lo) / float(temperature_db))
    return lo - temperature_db * np.log(e.mean(axis=0)), e / e.sum(axis=0)


def _listed(pose) -> list:
    """A pose vector, or one per plate, as plain lists (for messages)."""
    if len(pose) and np.ndim(pose[0]) > 0:
        return [np.asarray(v, float).tolist() for v in pose]
    return np.asarray(pose, float).tolist()


class _Linear:
    """An objective whose model is linear in the per-target powers (`Objective.model_dr`'s interface): the
    band model's first-order term for one frequency, so that surrogate's backward pass gives its share of the
    band model's gradient."""

    def __init__(self, weights: np.ndarray):
        self.weights = np.asarray(weights, float)

    def model_dr(self, values, values_np, focus):
        import drjit as dr

        from optimizer.physics.backend import to_float

        return dr.sum(to_float(self.weights) * (values - to_float(values_np)))


class BandSurrogate:
    """Surrogates of one plate set, one per frequency of a band, with the interface of one (`evaluate`,
    `evaluate_many`, the geometry of `specular_points`, which no frequency changes)."""

    def __init__(self, models: list, temperature_db: float):
        self.models = list(models)
        self.temperature_db = float(temperature_db)

    def __getattr__(self, name):  # geometry (tx, targets, path_names, specular_points): the same at every frequency
        if name.startswith("_") or name == "models":
            raise AttributeError(name)
        return getattr(self.models[0], name)

    def _temperature(self, objective, temperature_db: float) -> float:
        return float(objectives.or_default(objective, temperature_db).temperature_db)

    def evaluate(self, pose, edge_factor: float, focus=None, temperature_db: float = 1.0, grad: bool = True,
                 bias_db=None, objective=None, **kw) -> dict:
        """As the surrogates' `evaluate`: `power_dbm` each target's band soft-min, `objective` the objective's
        model of it (plus `bias_db`), `grad` its gradient (the surrogates' shape); `paths_dbm` (several
        plates) each path's band soft-min."""
        t_band = self._temperature(objective, temperature_db)
        runs = [m.evaluate(pose, edge_factor, focus=focus, temperature_db=temperature_db, grad=False,
                           objective=objective, **kw) for m in self.models]
        power, weights = band_softmin(np.stack([r["power_dbm"] for r in runs]), t_band)
        shift = 0.0 if bias_db is None else np.asarray(bias_db, float).reshape(-1)
        value, g = objectives.or_default(objective, temperature_db).model_grad(power + shift, focus)
        out = {"power_dbm": power, "objective": float(value)}
        if "paths_dbm" in runs[0]:
            out["paths_dbm"] = band_softmin(np.stack([r["paths_dbm"] for r in runs]), t_band)[0]
        if grad:
            out["grad"] = sum(m.evaluate(pose, edge_factor, grad=True, objective=_Linear(g * w), **kw)["grad"]
                              for m, w in zip(self.models, weights))
            if not np.isfinite(out["grad"]).all():
                raise NumericsError(f"band surrogate at pose {_listed(pose)}: the gradient is not finite; stopped")
        else:
            out["grad"] = np.zeros_like(runs[0]["grad"])
        if not np.isfinite(out["objective"]):
            raise NumericsError(f"band surrogate at pose {_listed(pose)}: the objective is not finite; stopped")
        return out

    def evaluate_many(self, poses, edge_factor: float, focus=None, temperature_db: float = 1.0, objective=None,
                      **kw) -> dict:
        """As the surrogates' `evaluate_many` (no gradient): `objective` [P] and `power_dbm` [P, N] (and
        `paths_dbm` [P, paths, N] with several plates) by the band soft-min."""
        t_band = self._temperature(objective, temperature_db)
        runs = [m.evaluate_many(poses, edge_factor, focus=focus, temperature_db=temperature_db, objective=objective,
                                **kw) for m in self.models]
        power = band_softmin(np.stack([r["power_dbm"] for r in runs]), t_band)[0]  # [P, N]
        obj = objectives.or_default(objective, temperature_db)
        value = np.array([obj.model(row, focus) for row in power], float)
        bad = np.flatnonzero(~np.isfinite(value))
        if bad.size:
            raise NumericsError(f"band surrogate at pose {_listed(poses[bad[0]])}: the objective is not finite; "
                                "stopped")
        out = {"power_dbm": power, "objective": value}
        if "paths_dbm" in runs[0]:
            out["paths_dbm"] = band_softmin(np.stack([r["paths_dbm"] for r in runs]), t_band)[0]
        return out


def band_surrogate(make, exp, objective=None):
    """`make(wavelength_m, frequency_hz)` -> a surrogate at that frequency: for one frequency that surrogate
    itself (today's), for a band a `BandSurrogate` of one per frequency, reduced with the temperature of
    `objective` (default `objective.softmin_temperature_db`)."""
    freqs = exp.frequencies_hz()
    if len(freqs) == 1:
        return make(wavelength_m(freqs[0]), freqs[0])
    t = objective.temperature_db if objective is not None else exp.objective.softmin_temperature_db
    return BandSurrogate([make(wavelength_m(f), f) for f in freqs], t)
