"""Name -> object registries (data sets, models, augmenters, losses, grid kinds, ...), filled by a
decorator or from a dict, whose lookups of an unknown name fail with one clear line. Imports nothing.

Example::

    LOSSES = Registry("attack loss")

    @LOSSES.register("ce")
    def ce_loss(logits, y): ...

    LOSSES.lookup("ce")        # the function
    LOSSES.lookup("dlr")       # ValueError: unknown attack loss 'dlr': choose one of ce
"""
from __future__ import annotations

from typing import Callable, TypeVar

T = TypeVar("T")


class Registry(dict):
    """A dict of named entries; ``what`` names the kind of entry in error messages, ``error`` is the
    exception an unknown name raises (``ValueError`` unless a package has its own user-facing error)."""

    def __init__(self, what: str, entries: dict | None = None, *, error: type[Exception] = ValueError):
        super().__init__(entries or {})
        self.what, self.error = what, error

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator: ``@REG.register("name")`` adds the decorated object under ``name``."""
        def deco(obj: T) -> T:
            self[name] = obj
            return obj
        return deco

    def lookup(self, name: str):
        """The entry registered as ``name``; raises ``self.error`` naming the choices otherwise."""
        if name not in self:
            raise self.error(f"unknown {self.what} {name!r}: choose one of {', '.join(self)}")
        return self[name]

    def names(self) -> list[str]:
        return list(self)
