"""Registries for the extension points (like Sionna's `register_antenna_pattern`): a name -> class table per
point, filled by `register`, with the built-in entries imported on first use. The experiment model takes
its allowed values from here, so it needs no import of the code that implements them.

    GRADIENT_MODES: how a world moves its pose (`search.gradient`), see `optimizer.search.modes`.
    PLATE_MODELS: the plate's reflection in the truth (`solver.plate_model`), see
        `optimizer.physics.plate_model`.
    OBJECTIVES: what a pose is worth and when it holds (`objective.kind`), see `optimizer.objectives`.
    REFLECTOR_KINDS: what a plate is (`reflectors[].kind`): its frame, mesh, specular points, PO factor,
        overlap and scene-cut tests and surrogate path power, see `optimizer.physics.reflectors`.
"""

from __future__ import annotations

import importlib


class Registry:
    def __init__(self, key: str, noun: str, builtin_modules: tuple[str, ...]):
        self.key = key  # the experiment key whose values this registry holds
        self.noun = noun  # what an entry is, in messages ("gradient mode")
        self._builtin_modules = builtin_modules
        self._entries: dict[str, type] = {}
        self._loaded = False

    def register(self, name: str, cls: type) -> type:
        if not name or not isinstance(name, str):
            raise ValueError(f"{self.key}: an entry needs a name")
        self._load()  # the built-ins first (they list first in messages)
        self._entries[name] = cls
        return cls

    def _load(self) -> None:
        if not self._loaded:
            self._loaded = True
            for mod in self._builtin_modules:
                importlib.import_module(mod)

    def names(self) -> list[str]:
        """The registered names: the built-ins in `builtin_modules`' order (whatever order their modules were
        imported in), then the others as registered."""
        self._load()
        mods = self._builtin_modules
        rank = {n: mods.index(c.__module__) if c.__module__ in mods else len(mods) for n, c in self._entries.items()}
        return sorted(self._entries, key=rank.__getitem__)

    def validate(self, name: str) -> str:
        """`name` if registered, else ValueError naming the allowed values (the experiment's field check)."""
        names = self.names()
        if name not in names:
            raise ValueError(f"unknown {self.noun} {name!r}; one of {', '.join(names)}")
        return name

    def get(self, name: str) -> type:
        self._load()
        try:
            return self._entries[name]
        except KeyError:
            raise ValueError(f"{self.key}: unknown value {name!r}; one of {', '.join(self.names())}") from None


GRADIENT_MODES = Registry("search.gradient", "gradient mode", (
    "optimizer.search.modes.surrogate", "optimizer.search.modes.sionna_ad", "optimizer.search.modes.spsa",
    "optimizer.search.modes.random_search"))

PLATE_MODELS = Registry("solver.plate_model", "plate model", ("optimizer.physics.plate_model",))

OBJECTIVES = Registry("objective.kind", "objective", (
    "optimizer.objectives.min", "optimizer.objectives.percentile", "optimizer.objectives.coverage"))

REFLECTOR_KINDS = Registry("reflectors[].kind", "reflector kind", ("optimizer.physics.reflectors.flat_plate",))
