"""Exception types of echo-napari.

Every error a user can meet is an :class:`EchoNapariError`; its message names the file or
layer, what was expected, what was found and, where possible, the fix.
"""

from __future__ import annotations

from pathlib import Path


class EchoNapariError(Exception):
    """Root of all echo-napari errors."""


class EchoIOError(EchoNapariError):
    """A file could not be read or written.

    Parameters
    ----------
    path : str or Path
        The offending file or folder.
    reason : str
        What was expected and what was found, e.g. ``"not an AVI file (first bytes b'PK')"``.
    """

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{Path(path).name}: {reason}")


class SequenceError(EchoNapariError):
    """An :class:`~echo_napari.sequence.EchoSequence` is inconsistent (shapes, indices)."""


class RegistrationError(EchoNapariError):
    """Registration or propagation was given inputs it cannot work with."""


class ModelError(EchoNapariError):
    """A model file or model card is missing, corrupt or incompatible."""
