"""Exceptions the command line turns into one-line messages."""


class DeepfillError(Exception):
    """Base class for errors caused by the user's input rather than by a bug."""


class InputError(DeepfillError, ValueError):
    """An image or mask that cannot be used: missing, corrupt, too large, mismatched."""


class WeightsError(DeepfillError):
    """A weights file that is missing, corrupt, or of another architecture."""
