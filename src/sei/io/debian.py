"""Files out of a Debian package (``.deb``) without dpkg, on any operating system.

A ``.deb`` is an ``ar`` archive of three members: ``debian-binary``, ``control.tar.*`` and ``data.tar.*`` (the
installed files, compressed with xz, gzip or bzip2; zstd is refused with a clear error because Python's
standard library cannot read it). :func:`open_deb_data` opens the data member as a streamed tar archive,
reading the package file from disk as it goes.
"""

from __future__ import annotations

import tarfile
from pathlib import Path
from typing import IO

from sei.core.errors import ResourceUnavailableError

__all__ = ["AR_HEADER_SIZE", "AR_MAGIC", "DATA_MEMBERS", "ar_members", "extract_deb_files", "open_deb_data"]

AR_MAGIC = b"!<arch>\n"
AR_HEADER_SIZE = 60  # name 16, mtime 12, owner 6, group 6, mode 8, size 10, end marker 2 ("`\n")
DATA_MEMBERS = {"data.tar.xz": "xz", "data.tar.gz": "gz", "data.tar.bz2": "bz2", "data.tar": ""}


class _Window:
    """A read-only view of ``size`` bytes of ``file`` from its current position (one ar member)."""

    def __init__(self, file: IO[bytes], size: int) -> None:
        self.file, self.left = file, size

    def read(self, size: int = -1) -> bytes:
        size = self.left if size is None or size < 0 else min(size, self.left)
        chunk = self.file.read(size)
        self.left -= len(chunk)
        return chunk


def ar_members(file: IO[bytes], source: str) -> list[tuple[str, int, int]]:
    """The members of an ``ar`` archive as ``(name, offset, size)``, offsets from the file's start.

    :raises ResourceUnavailableError: if ``file`` is not an ar archive or a header is damaged.
    """
    if file.read(len(AR_MAGIC)) != AR_MAGIC:
        raise ResourceUnavailableError(f"{source} is not a Debian package (no ar archive signature)")
    members, offset = [], len(AR_MAGIC)
    while True:
        header = file.read(AR_HEADER_SIZE)
        if not header:
            return members
        if len(header) < AR_HEADER_SIZE or header[58:60] != b"`\n":
            raise ResourceUnavailableError(f"{source} has a damaged ar header at byte {offset}")
        name = header[:16].decode("ascii", "replace").strip().rstrip("/")
        try:
            size = int(header[48:58].decode("ascii").strip())
        except ValueError as error:
            raise ResourceUnavailableError(f"{source} has a damaged ar header at byte {offset}") from error
        offset += AR_HEADER_SIZE
        members.append((name, offset, size))
        offset += size + size % 2  # members are padded to an even length
        file.seek(offset)


def open_deb_data(file: IO[bytes], source: str) -> tarfile.TarFile:
    """The installed files of the Debian package open in ``file``, as a streamed tar archive (read members in
    archive order with ``next()`` / iteration; ``file`` must stay open while it is read).

    :raises ResourceUnavailableError: if ``file`` is not a Debian package, or its data member is compressed with
        something the standard library cannot read.
    """
    members = ar_members(file, source)
    for name, offset, size in members:
        if name.startswith("data.tar"):
            if name not in DATA_MEMBERS:
                raise ResourceUnavailableError(f"{source} stores its files as {name}, which Python cannot read; "
                                               f"extract it with dpkg-deb -x instead")
            file.seek(offset)
            return tarfile.open(fileobj=_Window(file, size), mode=f"r|{DATA_MEMBERS[name]}")  # type: ignore[arg-type]
    raise ResourceUnavailableError(f"{source} is not a Debian package: it has no data.tar member "
                                   f"(members: {', '.join(name for name, _, _ in members) or 'none'})")


def _installed_path(name: str) -> str:
    return name[2:] if name.startswith("./") else name.lstrip("/")


def extract_deb_files(path: str | Path, members: tuple[str, ...], destination: str | Path) -> list[Path]:
    """Write the named installed files of the package at ``path`` under ``destination`` (keeping their paths,
    e.g. ``usr/share/backgrounds/a.jpg``), each through a ``.part`` file renamed when complete.

    :param members: paths as installed, without the leading ``/`` or ``./``; all of them must be regular files.
    :return: the written files, in the order of ``members``.
    :raises ResourceUnavailableError: if a member is missing, is not a regular file (a link: name its target
        instead), or the package cannot be read.
    """
    path, destination = Path(path), Path(destination).resolve()
    wanted = {_installed_path(member) for member in members}
    for member in wanted:
        if not (destination / member).resolve().is_relative_to(destination) or not member:
            raise ResourceUnavailableError(f"{member!r} is not a path inside a package")
    written: dict[str, Path] = {}
    try:
        with open(path, "rb") as file, open_deb_data(file, str(path)) as archive:
            for info in archive:
                name = _installed_path(info.name)
                if name not in wanted:
                    continue
                if not info.isfile():
                    raise ResourceUnavailableError(f"{path}: {name} is not a regular file (a link or folder); "
                                                   "name the file it points to")
                target = destination / name
                target.parent.mkdir(parents=True, exist_ok=True)
                partial = target.with_name(target.name + ".part")
                source = archive.extractfile(info)
                assert source is not None  # a regular file always has contents
                try:
                    with open(partial, "wb") as out:
                        while chunk := source.read(1 << 20):
                            out.write(chunk)
                except BaseException:  # a damaged payload or an interruption leaves no half-written file
                    partial.unlink(missing_ok=True)
                    raise
                partial.replace(target)
                written[name] = target
                if len(written) == len(wanted):  # the rest of the payload need not be decompressed
                    break
    except ResourceUnavailableError:
        raise
    except (tarfile.TarError, EOFError, OSError) as error:  # tarfile reports damaged compressed data as ReadError
        raise ResourceUnavailableError(f"cannot read the files of {path}: {error}") from error
    missing = sorted(wanted - written.keys())
    if missing:
        raise ResourceUnavailableError(f"{path} has no file {', '.join(missing)}; the package may be another "
                                       "version: delete it and download again")
    return [written[_installed_path(member)] for member in members]
