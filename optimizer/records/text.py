"""How record values read in tables (CLI, progress, report): one place, so "no path" reads the same."""

from __future__ import annotations

import math

NO_PATH = "no path"


def _finite(v) -> bool:
    try:
        return v is not None and math.isfinite(float(v))
    except (TypeError, ValueError):
        return False


def fmt_dbm(v, digits: int = 1) -> str:
    """A power [dBm]; null (no path) reads "no path"."""
    return f"{float(v):.{digits}f}" if _finite(v) else NO_PATH


def fmt_power(v, digits: int = 1) -> str:
    """A power with its unit, "-53.2 dBm", or "no path"."""
    return f"{float(v):.{digits}f} dBm" if _finite(v) else NO_PATH


def fmt_db(v, digits: int = 1) -> str:
    """A signed difference [dB]; "-" where there is none (no path on a side)."""
    return f"{float(v):+.{digits}f}" if _finite(v) else "-"


def fmt_pct(v) -> str:
    return f"{100.0 * float(v):.1f} %" if _finite(v) else "-"


def fmt_s(v) -> str:
    return f"{float(v):.1f} s" if _finite(v) else "-"


def fmt_plate(p) -> str:
    """One plate pose to 1 mm and 0.01 deg."""
    if p is None:
        return "-"
    return (f"x {p.x:.3f} m, y {p.y:.3f} m, z {p.z:.3f} m, yaw {p.yaw_deg:.2f}°, pitch {p.pitch_deg:.2f}°")


def fmt_pose(pose) -> str:
    """A joint pose (or one plate) to 1 mm and 0.01 deg; plates separated by '; '."""
    if pose is None:
        return "-"
    plates = getattr(pose, "plates", None)
    if plates is None:
        return fmt_plate(pose)
    return "; ".join(fmt_plate(p) for p in plates)


def fmt_cm(v) -> str:
    """A length [m] to the centimetre, "3.52 m"; "-" where there is none."""
    return f"{float(v):.2f} m" if _finite(v) else "-"


def fmt_half_deg(v) -> str:
    """An angle [deg] to the half degree, "44.5°"; "-" where there is none."""
    return f"{round(2.0 * float(v)) / 2.0:.1f}°" if _finite(v) else "-"
