"""Typed errors raised by ``sei``.

Every error a user can trigger with bad input derives from :class:`SEIError`, so a command line or a
notebook can catch them all at once, and each also derives from the matching built-in exception so
generic ``except ValueError`` code keeps working.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["CheckpointError", "ConfigError", "DivergenceError", "ImageError", "ImageTooSmallError",
           "InsufficientMemoryError", "IntensityError", "KernelError", "MissingGroundTruthError",
           "OptionalDependencyError", "OutputExistsError", "ResourceUnavailableError", "RunFinishedError", "RunInUseError",
           "SEIError", "SEIWarning", "ShapeError", "StorageError", "UnknownNameError", "USER_ERRORS", "WeightsError",
           "is_note", "one_line"]


class SEIError(Exception):
    """Base class of all errors raised by ``sei`` for bad input or a missing resource."""


class ConfigError(SEIError, ValueError):
    """A setting is invalid or inconsistent with the others (task, factor, method, option)."""


class UnknownNameError(ConfigError, KeyError):
    """A name (kernel, method, backbone, dataset) is not one of the known names."""

    def __init__(self, kind: str, name: object, valid: Iterable[str], hint: str = "") -> None:
        self.kind = kind
        self.name = name
        self.valid = sorted(valid)
        message = f"unknown {kind} {name!r}; valid {kind}s: {', '.join(self.valid)}"
        if hint:
            message += f". {hint}"
        super().__init__(message)

    def __str__(self) -> str:  # KeyError would otherwise quote the whole message
        return str(self.args[0])


class KernelError(SEIError, ValueError):
    """A blur kernel (tensor or file) is malformed."""


class ImageError(SEIError, ValueError):
    """An image file cannot be read or has an unsupported layout."""


class IntensityError(ImageError):
    """Image data cannot be mapped to the network's intensities (a float image with no range, a bad map record)."""


class ShapeError(SEIError, ValueError):
    """A tensor has the wrong number of dimensions, channels or a size the operation cannot handle."""


class ImageTooSmallError(ShapeError):
    """An image is smaller than what the operation needs (a kernel, a crop, a window)."""


class MissingGroundTruthError(SEIError, ValueError):
    """A method that needs clean images was called without them."""


class WeightsError(SEIError, ValueError):
    """A weights file does not fit the network it is loaded into, or cannot be read."""


class ResourceUnavailableError(SEIError, FileNotFoundError):
    """A file that must be downloaded (dataset, weights) is not available offline."""


class OptionalDependencyError(SEIError, ImportError):
    """An optional extra is needed for this feature and is not installed."""


class DivergenceError(SEIError, RuntimeError):
    """Training produced a non-finite loss, gradient or weight; nothing non-finite was written."""


class CheckpointError(SEIError, ValueError):
    """A training checkpoint is damaged (empty, truncated, not a checkpoint) or cannot be resumed from."""


class StorageError(SEIError, OSError):
    """A file could not be written (disk full, no permission); the previous version of the file is intact."""


class OutputExistsError(SEIError, FileExistsError):
    """An output would replace a file that is already there, and replacing was not asked for (``--overwrite``)."""


class RunFinishedError(SEIError):
    """A finished run was asked to resume: nothing to do (the command line exits with status 0)."""

    exit_code = 0


class RunInUseError(ConfigError):
    """Another process is training in the run folder (it holds the folder's lock)."""


class InsufficientMemoryError(SEIError, MemoryError):
    """A training step would not fit in the memory available, in any memory mode; the message says what would."""


class SEIWarning(UserWarning):
    """A setting or an input that is allowed but probably not meant (a noise level of 1e30, a loss that grew by
    orders of magnitude); the command line prints it as one line and goes on."""


# What a user's input can cause (sei's own errors, and file system errors such as a missing permission): shown as one
# line by the command line and the napari plugin; any other exception is a bug and keeps its traceback.
USER_ERRORS: tuple[type[BaseException], ...] = (SEIError, OSError)


def one_line(error: BaseException) -> str:
    """An error's (or a warning's) message on one line, its type's name when it has none.

    >>> one_line(ConfigError("a crop of 8 px\\n  is too small"))
    'a crop of 8 px is too small'
    """
    return " ".join(str(error).split()) or type(error).__name__


def is_note(error: BaseException) -> bool:
    """Whether the error only says there is nothing to do (a finished run asked to resume): the command line exits
    with status 0 and prints it as a note, not an error."""
    return getattr(error, "exit_code", 2) == 0
