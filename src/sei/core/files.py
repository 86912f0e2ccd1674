"""Files: atomic writes (a crash mid-write leaves the previous file intact, never a truncated one), and the one
reader of YAML mappings."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import torch

from sei.core.errors import ConfigError, StorageError

__all__ = ["atomic_torch_save", "atomic_write", "atomic_write_text", "describe_load_failure", "read_yaml_mapping"]

# Messages of the errors torch.save raises when the file it writes cannot grow (disk full, quota): its
# stream writer reports them as RuntimeError, with the OSError only as context.
_TORCH_WRITE_FAILURES = ("unexpected pos", "PytorchStreamWriter failed", "file write failed")


def _is_write_failure(error: BaseException) -> bool:
    if isinstance(error, OSError):
        return True
    return isinstance(error, RuntimeError) and (
        isinstance(error.__context__, OSError) or any(text in str(error) for text in _TORCH_WRITE_FAILURES))


def _umask() -> int:
    mask = os.umask(0o022)  # reading the umask means setting it: put it straight back
    os.umask(mask)
    return mask


def atomic_write(path: str | Path, write: Callable[[IO[bytes]], Any]) -> Path:
    """Call ``write(file)`` on a temporary file beside ``path``, then rename it over ``path``.

    The rename is atomic on POSIX and Windows file systems, so readers see the old or the new file.

    :raises StorageError: if the file cannot be written (disk full, no permission); ``path`` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with contextlib.suppress(OSError):  # mkstemp makes 0600 files; give the usual ones (if the FS lets us)
            os.chmod(temporary, 0o666 & ~_umask())
        with os.fdopen(handle, "wb") as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException as error:
        Path(temporary).unlink(missing_ok=True)
        if _is_write_failure(error):
            reason = error.__context__ if isinstance(error.__context__, OSError) else error
            kept = "the previous version is intact" if path.exists() else "nothing was written"
            raise StorageError(f"cannot write {path}: {reason}; {kept}") from error
        raise
    return path


def atomic_torch_save(obj: Any, path: str | Path) -> Path:
    """``torch.save`` that never leaves a partial file at ``path``."""
    return atomic_write(path, lambda file: torch.save(obj, file))


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write UTF-8 text atomically."""
    return atomic_write(path, lambda file: file.write(text.encode("utf-8")))


def describe_load_failure(path: str | Path, error: BaseException) -> str:
    """Why ``torch.load(path, weights_only=True)`` failed, in words a user can act on (torch's own message
    suggests ``weights_only=False``, i.e. running the file's code, which sei never does)."""
    path = Path(path)
    try:
        with open(path, "rb") as file:
            head = file.read(4)
        size = path.stat().st_size
    except OSError as os_error:
        return f"cannot open it ({os_error})"
    text = str(error)
    if size == 0:
        return "empty file"
    if "Weights only load failed" in text or "Unsupported global" in text or "WeightsUnpickler" in text:
        return "it holds Python objects other than tensors and plain values, which sei does not unpickle"
    if head[:2] != b"PK" and head[:1] != b"\x80":  # torch.save writes zip archives (legacy: a raw pickle)
        return "not a PyTorch file"
    if head[:2] == b"PK" and any(s in text for s in ("central directory", "unexpected pos", "failed finding",
                                                        "EOF", "truncated")):
        return "truncated file (incomplete zip archive)"
    first = text.strip().splitlines()[0] if text.strip() else ""
    return first or f"{type(error).__name__} (damaged file?)"


def read_yaml_mapping(path: str | Path, what: str = "file") -> dict[str, Any]:
    """The mapping a YAML file holds (``{}`` for an empty file): the one YAML reader of ``sei`` (configurations,
    run folders, ``degradation.yaml``, reports).

    :param what: what the file is, for the messages (``"configuration file"``).
    :raises ConfigError: for a missing or unreadable file, invalid YAML, or anything but a mapping at the top.
    """
    import yaml

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{what} not found: {path}")
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"{path} cannot be read: {error}") from error
    except yaml.YAMLError as error:
        raise ConfigError(f"{path} is not valid YAML: {error}") from error
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a mapping, got {type(data).__name__}")
    return data
