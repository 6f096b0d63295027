"""Reflector kinds (`reflectors[].kind`, a registry: `optimizer.registry.REFLECTOR_KINDS`), like Sionna's
`register_antenna_pattern`. A kind is one object per plate that owns everything its shape decides:

* its frame (numpy and Dr.Jit), its mesh (the PLY the truth loads, its corners at a pose) and its specular
  points;
* its PO factor (the truth's `solver.plate_model: po`), its overlap test with another plate and the segments
  of its scene-cut test;
* its Dr.Jit single-bounce path power (the surrogate, `optimizer.physics.surrogate.PlateSurrogate`).

Built in: `flat_plate` (`optimizer.physics.reflectors.flat_plate`). A new kind subclasses `ReflectorKind` (or
`FlatPlate`) and registers itself:

    from optimizer.physics.reflectors import register_reflector_kind
    from optimizer.physics.reflectors.flat_plate import FlatPlate

    @register_reflector_kind
    class MyPlate(FlatPlate):
        name = "my_plate"
        def path_power_db(self, link, params, offsets, ...): ...
"""

from __future__ import annotations

from typing import ClassVar

from optimizer.registry import REFLECTOR_KINDS


class ReflectorKind:
    """Base class: one plate of a kind, of a size [m] (width, height) and thickness [m]."""

    name: ClassVar[str] = ""

    def __init__(self, size_m, thickness_m: float = 0.01):
        self.size = (float(size_m[0]), float(size_m[1]))
        self.thickness_m = float(thickness_m)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(size_m={list(self.size)}, thickness_m={self.thickness_m})"


def register_reflector_kind(cls: type[ReflectorKind]) -> type[ReflectorKind]:
    """Class decorator: make `cls` a value of `reflectors[].kind` under `cls.name`."""
    if not cls.name:
        raise ValueError(f"{cls.__name__}: a reflector kind needs a `name`")
    return REFLECTOR_KINDS.register(cls.name, cls)


def kind_of(reflector) -> ReflectorKind:
    """The kind object of one experiment plate (`Reflector`: its `kind`, size and thickness; a test's stand-in
    without kind or thickness: a flat plate of the default thickness)."""
    kind = REFLECTOR_KINDS.get(getattr(reflector, "kind", "flat_plate"))
    thickness = getattr(reflector, "thickness_m", None)
    return kind(reflector.size_m) if thickness is None else kind(reflector.size_m, thickness)


def kinds(exp) -> list[ReflectorKind]:
    """Every plate of the experiment as its kind object, in plate order."""
    return [kind_of(r) for r in exp.plates()]


def as_kind(plate) -> ReflectorKind:
    """A kind object as it is; a size [width, height] [m] as a `flat_plate` of that size (tests, callers with a
    size at hand)."""
    if isinstance(plate, ReflectorKind):
        return plate
    if len(plate) != 2:
        raise ValueError(f"plates: {plate!r} is neither a reflector kind nor a size [width, height] [m]")
    return REFLECTOR_KINDS.get("flat_plate")(plate)
