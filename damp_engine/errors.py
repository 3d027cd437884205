"""Exceptions that cross the engine's public API."""


class DampInputError(ValueError):
    """Bad input (file, raster, parameter, model) that the user can fix; the message says how."""


class DampCancelled(RuntimeError):
    """The caller cancelled a long run; nothing was written."""
