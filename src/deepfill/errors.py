"""Exceptions the command line turns into one-line messages."""


class DeepfillError(Exception):
    """Base class for errors caused by the user's input rather than by a bug."""


class InputError(DeepfillError, ValueError):
    """An image or mask that cannot be used: missing, corrupt, too large, mismatched."""


class WeightsError(DeepfillError):
    """A weights file that is missing, corrupt, or of another architecture."""


class NotAnImageError(InputError):
    """A file that no image decoder recognises."""


class TooLargeError(InputError):
    """An image with more pixels than the configured limit (a decompression-bomb guard)."""


class SizeMismatchError(InputError):
    """A mask whose size differs from its image's."""
