"""Files: atomic writes (a crash mid-write leaves the previous file intact, never a truncated one), and the one
reader of YAML mappings."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import torch

from sei.core.errors import ConfigError, RunInUseError, StorageError

__all__ = ["atomic_path", "atomic_torch_save", "atomic_write", "atomic_write_text", "describe_load_failure",
           "exclusive_lock", "read_yaml_mapping"]

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


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """A temporary file beside ``path`` for the block to write (by name); renamed over ``path`` when the block ends
    without an error, removed otherwise. The rename is atomic on POSIX and Windows file systems, so readers see the
    old or the new file, never a part of one.

    :raises StorageError: if the file cannot be written (disk full, no permission); ``path`` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(handle)
    temporary = Path(name)
    try:
        with contextlib.suppress(OSError):  # mkstemp makes 0600 files; give the usual ones (if the FS lets us)
            os.chmod(temporary, 0o666 & ~_umask())
        yield temporary
        descriptor = os.open(temporary, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
        os.replace(temporary, path)
    except BaseException as error:
        temporary.unlink(missing_ok=True)
        if _is_write_failure(error):
            reason = error.__context__ if isinstance(error.__context__, OSError) else error
            kept = "the previous version is intact" if path.exists() else "nothing was written"
            raise StorageError(f"cannot write {path}: {reason}; {kept}") from error
        raise


def atomic_write(path: str | Path, write: Callable[[IO[bytes]], Any]) -> Path:
    """Call ``write(file)`` on a temporary file beside ``path``, then rename it over ``path`` (see
    :func:`atomic_path`).

    :raises StorageError: if the file cannot be written (disk full, no permission); ``path`` is left as it was.
    """
    with atomic_path(path) as temporary, open(temporary, "wb") as file:
        write(file)
    return Path(path)


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


def _lock_holder(path: Path) -> tuple[int, str] | None:
    """``(process id, host)`` written in a lock file, or ``None`` when it is unreadable (a crash between creating and
    writing it)."""
    try:
        pid, _, host = path.read_text().strip().partition(" ")
        return int(pid), host
    except (OSError, ValueError):
        return None


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, under another user
        return True
    return True


@contextlib.contextmanager
def exclusive_lock(path: str | Path, what: str) -> Iterator[Path]:
    """Hold the lock file ``path`` (created exclusively, holding this process's id and host) for the block.

    A lock left by a process that no longer runs on this host (killed) is taken over; one held by a live process,
    or by a process on another host (which cannot be asked), is refused.

    :param what: what the lock guards, for the message (``the run folder runs/x``).
    :raises RunInUseError: naming the holder, and what to do.
    """
    import socket

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    host = socket.gethostname()
    for _ in range(2):  # a stale lock is removed once, then created like any other
        try:
            descriptor = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            break
        except FileExistsError:
            holder = _lock_holder(path)
            if holder is not None and (holder[1] != host or _process_alive(holder[0])):
                where = "" if holder[1] == host else f" on {holder[1]}"
                raise RunInUseError(f"{what} is in use by another process ({holder[0]}{where}); wait for it to end, "
                                    f"or choose another folder (if no process uses it, delete {path})") from None
            path.unlink(missing_ok=True)
    else:
        raise RunInUseError(f"{what} is being claimed by another process at this moment; try again")
    with os.fdopen(descriptor, "w") as file:
        file.write(f"{os.getpid()} {host}\n")
    try:
        yield path
    finally:
        if _lock_holder(path) == (os.getpid(), host):
            path.unlink(missing_ok=True)
