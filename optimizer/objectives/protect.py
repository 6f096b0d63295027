"""`objective.protect`: points and areas the plate must not take coverage from (a constraint on every kind).

The rule (truth), the collateral report's (`optimizer.report.collateral`) applied to protected points: a point
covered without the plate (baseline RSS b >= threshold) is *lost* when, with the plate, its RSS r falls below the
threshold and it loses more than `max_loss_db` L (default COLLATERAL_MARGIN_DB), i.e. when r < min(threshold,
b - L). A point uncovered without the plate is not constrained (there is nothing to take). Its margin is
r - min(threshold, b - L) [dB] (negative: lost by that much). The constraint holds when no point is lost, or with
`max_area_m2` when the lost area points' cells add up to at most that area (an explicit point stands for no
area and must never be lost).

The search's view (`ShadowPenalty`): the plate's shadow on the protected points, differentiable in the pose.
Per transmitter t and point i, the segment t -> i crosses the plate's plane at a point whose plate coordinates
give a soft indicator s (log-sigmoid edges of width one Fresnel radius there, at the band's centre frequency,
times "the point is behind the plane"); the point keeps 1 - sum_t s f_ti of its baseline power, f_ti the share of it that is t's line of sight
(free space, when the scene leaves that line clear). The predicted RSS r^ = b + 10 log10(max(that,
PROTECT_SHADOW_FLOOR)) gives each constrained point a violation x = min(threshold, b - L) - r^, and the penalty
is PROTECT_PENALTY_PER_DB * sum_i T softplus(x_i / T) [dB], T = softmin_temperature_db. Only the line of sight
is modelled (a plate that blocks a reflection or sends energy away is seen by the truth, not by the penalty).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from optimizer.constants import (
    EDGE_WIDTH_MIN_M,
    NO_PATH_FLOOR_DBM,
    PROTECT_BROKEN_RANK_DB,
    PROTECT_PENALTY_PER_DB,
    PROTECT_SHADOW_FLOOR,
)
from optimizer.objectives.base import Objective
from optimizer.physics.metrics import no_path_as_floor
from optimizer.records import RssStats


@dataclass(frozen=True)
class ProtectRule:
    """The rule over M protected points: baseline RSS [M] (dBm, -inf: no path), each point's cell [m^2] (0: an
    explicit point), the threshold [dBm], `max_loss_db` and `max_area_m2` (None: no point may be lost)."""

    baseline_dbm: np.ndarray
    cells_m2: np.ndarray
    threshold_dbm: float
    max_loss_db: float
    max_area_m2: float | None = None

    @property
    def constrained(self) -> np.ndarray:
        """[M] the points covered without the plate (the others cannot be lost)."""
        b = no_path_as_floor(self.baseline_dbm)
        return (b > NO_PATH_FLOOR_DBM) & (b >= self.threshold_dbm)

    @property
    def floor_dbm(self) -> np.ndarray:
        """[M] below this a constrained point is lost: min(threshold, baseline - max_loss_db) (-inf: unconstrained)."""
        b = no_path_as_floor(self.baseline_dbm)
        return np.where(self.constrained, np.minimum(self.threshold_dbm, b - self.max_loss_db), -np.inf)

    def margins_db(self, rss_dbm) -> np.ndarray:
        """[..., M] r - floor per point [dB] (+inf: unconstrained; negative: lost)."""
        return no_path_as_floor(rss_dbm) - self.floor_dbm

    def check(self, rss_dbm) -> dict:
        """{held, margin_db (the smallest point margin; None: no constrained point), lost (points), lost_area_m2,
        area_margin_m2 (max_area_m2 - lost area; None without max_area_m2)} for one pose's RSS [M]."""
        m = self.margins_db(np.asarray(rss_dbm, float).reshape(-1))
        lost = m < 0
        area = float(np.sum(self.cells_m2[lost]))
        held = self._held(lost[None, :])[0]
        finite = m[np.isfinite(m)]
        return {"held": bool(held), "margin_db": float(finite.min()) if finite.size else None,
                "lost": int(lost.sum()), "lost_area_m2": area,
                "area_margin_m2": None if self.max_area_m2 is None else float(self.max_area_m2 - area)}

    def held_each(self, rss_dbm) -> np.ndarray:
        """[P] whether each row of [P, M] RSS keeps the constraint."""
        r = np.asarray(rss_dbm, float)
        return self._held(self.margins_db(r.reshape(len(r), -1)) < 0)

    def _held(self, lost: np.ndarray) -> np.ndarray:
        if self.max_area_m2 is None:
            return ~lost.any(axis=1)
        explicit = self.cells_m2 <= 0
        return ~(lost & explicit).any(axis=1) & (lost @ self.cells_m2 <= self.max_area_m2 + 1e-9)

    def params(self) -> dict:
        return {"points": int(self.cells_m2.size), "constrained": int(self.constrained.sum()),
                "max_loss_db": self.max_loss_db, "max_area_m2": self.max_area_m2}


class Protected(Objective):
    """An objective kind (`inner`) over the first `n` entries of every RSS / power array (the targets), with
    `objective.protect`'s rule over the rest (the protected points, which the scene appends as receivers)."""

    def __init__(self, inner: Objective, n_targets: int, rule: ProtectRule):
        self.inner, self.n, self.rule = inner, int(n_targets), rule
        self.cfg, self.kind = inner.cfg, inner.kind
        self.threshold_dbm, self.temperature_db = inner.threshold_dbm, inner.temperature_db

    def wanted(self, rss_dbm):
        return np.asarray(rss_dbm, float)[..., : self.n]

    def focus(self, focus, size: int) -> np.ndarray:
        """The focus over all `size` receivers with the protected points left out (all targets if none)."""
        f = np.ones(size, bool) if focus is None else np.asarray(focus, bool).copy()
        f[self.n:] = False
        if not f[: self.n].any():
            f[: self.n] = True
        return f

    def stats(self, rss_dbm) -> RssStats:
        r = np.asarray(rss_dbm, float).reshape(-1)
        c = self.rule.check(r[self.n:])
        return self.inner.stats(r[: self.n]).model_copy(update={
            "protect_held": c["held"], "protect_margin_db": c["margin_db"], "protect_lost": c["lost"],
            "protect_lost_area_m2": c["lost_area_m2"]})

    def truth(self, rss_dbm):
        return self.inner.truth(self.wanted(np.asarray(rss_dbm, float).reshape(-1)))

    def params(self) -> dict:
        return {**self.inner.params(), "protect": self.rule.params()}

    def model(self, values_db, focus=None) -> float:
        v = np.asarray(values_db, float)
        return self.inner.model(v, self.focus(focus, v.size))

    def model_grad(self, values_db, focus=None):
        v = np.asarray(values_db, float)
        return self.inner.model_grad(v, self.focus(focus, v.size))

    def model_dr(self, values, values_np, focus):
        return self.inner.model_dr(values, values_np, self.focus(focus, np.asarray(values_np).size))

    def model_dr_many(self, values, values_np, focus):
        return self.inner.model_dr_many(values, values_np, self.focus(focus, np.asarray(values_np).shape[-1]))

    def holds(self, rss_dbm) -> bool:
        r = np.asarray(rss_dbm, float).reshape(-1)
        return bool(self.inner.holds(r[: self.n]) and self.rule.held_each(r[None, self.n:])[0])

    def holds_each(self, rss_dbm) -> np.ndarray:
        r = np.asarray(rss_dbm, float)
        r = r.reshape(len(r), -1)
        return self.inner.holds_each(r[:, : self.n]) & self.rule.held_each(r[:, self.n:])

    def met(self, stats: RssStats) -> bool:
        return self.inner.met(stats) and stats.protect_held is not False

    def covered(self, r):
        return self.inner.covered(r)

    def score(self, stats: RssStats) -> float:
        """The kind's score, PROTECT_BROKEN_RANK_DB lower when the result breaks the constraint."""
        return self.inner.score(stats) - (PROTECT_BROKEN_RANK_DB if stats.protect_held is False else 0.0)


# --- the search's penalty ----------------------------------------------------------------------------------------
def _sigmoid_dr(dr, x):
    return 1.0 / (1.0 + dr.exp(-x))


class ShadowPenalty:
    """The penalty [dB] the search subtracts from the surrogate's objective (see the module's text), for one
    plate or several (their shadows add up), with its gradient w.r.t. each plate's (x, y, z, yaw, pitch)."""

    def __init__(self, rule: ProtectRule, points, tx_positions, tx_power_dbm, los_clear, wavelength_m: float,
                 temperature_db: float, weight: float = PROTECT_PENALTY_PER_DB):
        """points [M, 3] [m]; los_clear [T, M] whether the scene (plates away) leaves each line of sight clear."""
        keep = rule.constrained
        self.points = np.asarray(points, float).reshape(-1, 3)[keep]
        self.tx = np.asarray(tx_positions, float).reshape(-1, 3)
        self.wavelength, self.temperature, self.weight = float(wavelength_m), float(temperature_db), float(weight)
        b = no_path_as_floor(rule.baseline_dbm)[keep]
        self.baseline_dbm, self.floor_dbm = b, rule.floor_dbm[keep]
        d = np.linalg.norm(self.points[None, :, :] - self.tx[:, None, :], axis=-1)  # [T, M]
        los_dbm = (np.asarray(tx_power_dbm, float)[:, None]
                   + 20.0 * np.log10(self.wavelength / (4.0 * math.pi * np.maximum(d, 1e-3))))
        share = np.where(np.asarray(los_clear, bool)[:, keep], 10.0 ** ((los_dbm - b[None, :]) / 10.0), 0.0)
        self.share = np.minimum(share, 1.0)  # [T, M]

    @classmethod
    def of(cls, objective, rs, exp) -> ShadowPenalty | None:
        """The penalty of a `Protected` objective on scene `rs` (None: no constraint, or no point to guard)."""
        if not isinstance(objective, Protected) or not objective.rule.constrained.any():
            return None
        from optimizer.physics.geometry import wavelength_m

        pts = np.asarray(rs.targets, float)[objective.n:]
        tx = rs.tx_positions
        clear = rs.visible(np.repeat(tx, len(pts), axis=0), np.tile(pts, (len(tx), 1))).reshape(len(tx), len(pts))
        return cls(objective.rule, pts, tx, rs.tx_power_dbm, clear, wavelength_m(exp.centre_frequency_hz()),
                   objective.temperature_db)

    def evaluate(self, plate_vecs, sizes_m, grad: bool = True) -> tuple[float, list[np.ndarray]]:
        """(penalty [dB], per plate its gradient [5] w.r.t. x, y, z [m], yaw, pitch [deg]) for one pose given as
        each plate's vector (x, y, z, yaw_deg[, pitch_deg]) and size [w, h] [m]."""
        import drjit as dr
        import mitsuba as mi

        from optimizer.physics.backend import to_float

        n_t, n_m = self.tx.shape[0], self.points.shape[0]
        lanes = n_t * n_m
        params = []
        for vec in plate_vecs:
            v = np.asarray(vec, float).reshape(-1)
            v = np.append(v, 0.0) if v.size == 4 else v[:5]
            ps = [dr.opaque(mi.Float, float(c)) for c in v]
            if grad:
                for p in ps:
                    dr.enable_grad(p)
            params.append(ps)
        tx = [to_float(np.repeat(self.tx[:, c], n_m)) for c in range(3)]
        pt = [to_float(np.tile(self.points[:, c], n_t)) for c in range(3)]
        blocked = dr.zeros(mi.Float, lanes)
        for ps, size in zip(params, sizes_m):
            blocked = blocked + self._shadow(dr, mi, ps, size, tx, pt)
        loss = blocked * to_float(self.share.reshape(-1))  # lanes transmitter-major: t * M + m
        per_point = dr.zeros(mi.Float, n_m)
        for t in range(n_t):
            per_point = per_point + dr.gather(mi.Float, loss, dr.arange(mi.UInt32, n_m) + t * n_m)
        rest = dr.maximum(1.0 - per_point, PROTECT_SHADOW_FLOOR)
        pred = to_float(self.baseline_dbm) + 10.0 * dr.log(rest) / math.log(10.0)
        x = (to_float(self.floor_dbm) - pred) / self.temperature
        soft = dr.maximum(x, 0.0) + dr.log(1.0 + dr.exp(-dr.abs(x)))  # softplus, stable
        total = self.weight * self.temperature * dr.sum(soft)
        value = float(np.array(dr.detach(total)).reshape(-1)[0])
        grads = [np.zeros(5) for _ in params]
        if grad:
            dr.backward(total)
            grads = [np.array([float(np.array(dr.grad(p)).reshape(-1)[0]) for p in ps]) for ps in params]
        return value, grads

    def _shadow(self, dr, mi, params, size, tx, pt):
        """Per (transmitter, point) lane, the soft indicator that one plate blocks the line of sight."""
        x, y, z, yaw_deg, pitch_deg = params
        a, b = yaw_deg * (math.pi / 180.0), pitch_deg * (math.pi / 180.0)
        sa, ca, sb, cb = dr.sin(a), dr.cos(a), dr.sin(b), dr.cos(b)
        u = (ca, sa, mi.Float(0.0))
        v = (sa * sb, -ca * sb, cb)
        n = (-sa * cb, ca * cb, sb)
        c = (x, y, z)

        def dot(p, q):
            return p[0] * q[0] + p[1] * q[1] + p[2] * q[2]

        rel_t = tuple(tx[k] - c[k] for k in range(3))
        rel_p = tuple(pt[k] - c[k] for k in range(3))
        st, sp = dot(rel_t, n), dot(rel_p, n)
        side = dr.select(dr.detach(st) >= 0, 1.0, -1.0)
        st_s, sp_s = st * side, sp * side
        lam = st_s / dr.maximum(st_s - sp_s, 1e-6)
        lam = dr.clip(lam, 0.0, 1.0)
        q = tuple(rel_t[k] + lam * (rel_p[k] - rel_t[k]) for k in range(3))  # the crossing, from the centre
        aq, bq = dot(q, u), dot(q, v)
        seg = dr.sqrt(dot(tuple(pt[k] - tx[k] for k in range(3)), tuple(pt[k] - tx[k] for k in range(3))))
        lam_d, seg_d = dr.detach(lam), dr.detach(seg)
        w = dr.maximum(dr.sqrt(self.wavelength * seg_d * lam_d * (1.0 - lam_d)), EDGE_WIDTH_MIN_M)  # Fresnel radius
        hw, hh = 0.5 * float(size[0]), 0.5 * float(size[1])
        s = (_sigmoid_dr(dr, (hw - aq) / w) * _sigmoid_dr(dr, (hw + aq) / w) * _sigmoid_dr(dr, (hh - bq) / w)
             * _sigmoid_dr(dr, (hh + bq) / w) * _sigmoid_dr(dr, -sp_s / w) * _sigmoid_dr(dr, st_s / w))
        return s
