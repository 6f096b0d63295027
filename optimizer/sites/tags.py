"""What a building's tags say about its height and its material (OSM tagging; a GeoJSON feature's properties
are read the same way).

Heights: the top is `height`, else `building:levels` x the level height, else the default height (the
source is recorded: "height", "levels", "default"). The bottom is `min_height`, else `building:min_level` x
the level height, else 0 (the ground). Lengths may carry a unit: "12", "12 m", "12.5m", "40 ft", "40'"; a
value that is not a length is ignored (the next rule applies).

Materials: `building:facade:material`, else `building:material`, mapped by MATERIALS to an ITU material
of Sionna RT; any other value (or none) is DEFAULT_MATERIAL.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

LEVEL_HEIGHT_M = 3.0  # [m] per building:levels / building:min_level (--level-height)
DEFAULT_HEIGHT_M = 9.0  # [m] a building with neither height nor levels (--default-height): three levels
DEFAULT_MATERIAL = "concrete"
GROUND_MATERIAL = "medium_dry_ground"  # ITU ground; Sionna defines it for 1-10 GHz (--ground)
FEET_M = 0.3048

# OSM building:material / building:facade:material value -> ITU material (the one table)
MATERIALS = {
    "brick": "brick",
    "concrete": "concrete",
    "reinforced_concrete": "concrete",
    "cement_block": "concrete",
    "masonry": "concrete",
    "plaster": "concrete",
    "stone": "concrete",
    "sandstone": "concrete",
    "limestone": "concrete",
    "granite": "concrete",
    "glass": "glass",
    "mirror": "glass",
    "wood": "wood",
    "timber_framing": "wood",
    "timber": "wood",
    "log": "wood",
    "metal": "metal",
    "steel": "metal",
    "aluminium": "metal",
    "metal_plates": "metal",
}
MATERIAL_KEYS = ("building:facade:material", "building:material")

_LENGTH = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*(m|meters?|metres?|ft|feet|')?\s*$", re.IGNORECASE)


def length_m(value) -> float | None:
    """A tag value as metres, or None when it is not a (finite, non-negative) length."""
    if value is None:
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        v = float(value)
        return v if math.isfinite(v) and v >= 0 else None
    m = _LENGTH.match(str(value).replace(",", "."))
    if not m:
        return None
    v = float(m.group(1))
    unit = (m.group(2) or "m").lower()
    return v * FEET_M if unit in ("ft", "feet", "'") else v


@dataclass(frozen=True)
class Heights:
    bottom_m: float
    top_m: float
    source: str  # "height" | "levels" | "default"


def heights(tags: dict, level_height_m: float = LEVEL_HEIGHT_M,
            default_height_m: float = DEFAULT_HEIGHT_M) -> Heights:
    top, source = length_m(tags.get("height")), "height"
    if not top:
        levels = length_m(tags.get("building:levels"))
        top, source = (levels * level_height_m, "levels") if levels else (default_height_m, "default")
    bottom = length_m(tags.get("min_height"))
    if bottom is None:
        min_level = length_m(tags.get("building:min_level"))
        bottom = min_level * level_height_m if min_level is not None else 0.0
    if source != "height" and top <= bottom:  # a part raised off the ground with no height of its own
        top = bottom + (length_m(tags.get("roof:height")) or level_height_m)
    return Heights(bottom, top, source)


def material(tags: dict) -> str:
    for key in MATERIAL_KEYS:
        value = str(tags.get(key) or "").strip().lower()
        if value in MATERIALS:
            return MATERIALS[value]
    return DEFAULT_MATERIAL
