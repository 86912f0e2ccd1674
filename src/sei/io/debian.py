"""Files out of a Debian package (``.deb``) without dpkg, on any operating system.

A ``.deb`` is an ``ar`` archive of three members: ``debian-binary``, ``control.tar.*`` and ``data.tar.*`` (the
installed files, compressed with xz, gzip or bzip2; zstd is refused with a clear error because Python's
standard library cannot read it). :func:`open_deb_data` opens the data member as a streamed tar archive,
reading the package file from disk as it goes.

Extraction is safe against damaged or hostile archives: at most :data:`MAX_EXTRACTED_BYTES` are written, files are
written into a staging folder and moved under their final names only once all are complete
(:func:`staged_extraction`), and a damaged archive is reported as such (:func:`reading_archive`). These pieces are
shared with the zip and tar extraction of :mod:`sei.io.download`, which imports this module.
"""

from __future__ import annotations

import contextlib
import lzma
import os
import shutil
import tarfile
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from sei.core.errors import ResourceUnavailableError, SEIError, StorageError

__all__ = ["AR_HEADER_SIZE", "AR_MAGIC", "DATA_MEMBERS", "MAX_EXTRACTED_BYTES", "ar_members", "check_extracted_size",
           "copy_member", "extract_deb_files", "open_deb_data", "reading_archive", "staged_extraction"]

AR_MAGIC = b"!<arch>\n"
AR_HEADER_SIZE = 60  # name 16, mtime 12, owner 6, group 6, mode 8, size 10, end marker 2 ("`\n")
DATA_MEMBERS = {"data.tar.xz": "xz", "data.tar.gz": "gz", "data.tar.bz2": "bz2", "data.tar": ""}
# The most bytes one archive may expand to. The largest archive sei downloads, DIV2K_train_HR.zip, holds about 3.5 GB
# of PNG files (the other datasets and the Debian packages are far smaller); 16 GiB is over four times that, and stops
# a damaged or hostile archive (a "zip bomb") long before it fills a disk.
MAX_EXTRACTED_BYTES = 16 << 30
_CHUNK = 1 << 20
# What reading a damaged or truncated archive raises: tarfile and zipfile pass on the decompressors' errors (gzip:
# EOFError, or OSError for a bad CRC; bz2: OSError), and reading the file itself may fail.
_READ_ERRORS = (tarfile.TarError, zipfile.BadZipFile, EOFError, zlib.error, lzma.LZMAError, OSError)


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

    :raises ResourceUnavailableError: if ``file`` is not an ar archive, a header is damaged (a size that is not a
        byte count) or a member runs past the end of the file.
    """
    if file.read(len(AR_MAGIC)) != AR_MAGIC:
        raise ResourceUnavailableError(f"{source} is not a Debian package (no ar archive signature)")
    members, offset = [], len(AR_MAGIC)
    end = file.seek(0, os.SEEK_END)
    file.seek(offset)
    while True:
        header = file.read(AR_HEADER_SIZE)
        if not header:
            return members
        if len(header) < AR_HEADER_SIZE or header[58:60] != b"`\n":
            raise ResourceUnavailableError(f"{source} has a damaged ar header at byte {offset}")
        name = header[:16].decode("ascii", "replace").strip().rstrip("/")
        field = header[48:58].decode("ascii", "replace").strip()
        # Decimal digits only: int() would also take "-60" (which loops back onto this header forever) or "1_0".
        if not (field.isascii() and field.isdigit()):
            raise ResourceUnavailableError(f"{source} has a damaged ar header at byte {offset}: member {name!r} has "
                                           f"size {field!r}, not a byte count; delete it and download again")
        size = int(field)
        offset += AR_HEADER_SIZE
        if offset + size > end:
            raise ResourceUnavailableError(f"{source} is damaged or truncated (ar member {name!r} at byte {offset} "
                                           f"declares {size} bytes, past the end of the file at byte {end}): "
                                           "cannot read the files in it; delete it and download again")
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


def check_extracted_size(archive: str | Path, size: int, limit: int = MAX_EXTRACTED_BYTES) -> None:
    """Refuse to extract ``size`` bytes (declared by the headers, or copied so far) from ``archive``.

    :raises ResourceUnavailableError: if ``size`` is over ``limit``.
    """
    if size > limit:
        raise ResourceUnavailableError(f"{archive} expands to more than {limit:,} bytes, the most sei extracts from "
                                       "one archive; nothing was extracted: it is damaged or not the expected file, "
                                       "delete it and download again")


@contextlib.contextmanager
def reading_archive(archive: str | Path) -> Iterator[None]:
    """Report a failure to read ``archive`` in the block as a damaged archive (sei's own errors pass unchanged).

    :raises ResourceUnavailableError: if the block fails to read the archive (damaged or truncated).
    """
    try:
        yield
    except SEIError:
        raise
    except _READ_ERRORS as error:
        reason = " ".join(str(error).split()) or type(error).__name__  # one line (tarfile lists what it tried)
        raise ResourceUnavailableError(f"{archive} is damaged or truncated ({reason}): cannot read the files in it; "
                                       "delete it and download again") from error


@contextlib.contextmanager
def _writing(archive: str | Path) -> Iterator[None]:
    """Report a failure to write in the block (disk full, no permission) as a :class:`StorageError`."""
    try:
        yield
    except SEIError:
        raise
    except OSError as error:
        raise StorageError(f"cannot extract {archive}: {error}; no partly written file was left") from error


def copy_member(source: IO[bytes], target: Path, archive: str | Path, limit: int = MAX_EXTRACTED_BYTES,
                extracted: int = 0) -> int:
    """Copy one member of ``archive``, open as ``source``, to the new file ``target`` (in a staging folder: see
    :func:`staged_extraction`), counting the bytes against ``limit`` as they come, in case a header understates them.

    :param extracted: the bytes already extracted from ``archive``.
    :return: the bytes extracted from ``archive`` with this member.
    :raises ResourceUnavailableError: if ``source`` cannot be read (a damaged archive) or the bytes extracted pass
        ``limit``.
    :raises StorageError: if ``target`` cannot be written (disk full, no permission).
    """
    with _writing(archive):
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(target, "wb") as out:
            while True:
                with reading_archive(archive):
                    chunk = source.read(_CHUNK)
                if not chunk:
                    break
                extracted += len(chunk)
                check_extracted_size(archive, extracted, limit)
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())  # on disk before it is moved under its final name
    return extracted


def _move_files(staging: Path, destination: Path) -> None:
    for folder, _, names in os.walk(staging):
        for name in names:
            target = destination / Path(folder, name).relative_to(staging)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(Path(folder, name), target)


@contextlib.contextmanager
def staged_extraction(archive: str | Path, destination: Path) -> Iterator[Path]:
    """A new folder in ``destination`` for the block to extract ``archive`` into. When the block ends without an
    error, its files are moved to the same places under ``destination``, each by an atomic rename (so none appears
    there partly written); the folder is then removed, so a failure in the block leaves nothing.

    :raises StorageError: if the folder cannot be made or its files moved (disk full, no permission).
    """
    staging = destination / f".{Path(archive).name}.extracting"
    shutil.rmtree(staging, ignore_errors=True)  # left by an interrupted run
    try:
        with _writing(archive):
            staging.mkdir(parents=True)
        yield staging
        with _writing(archive):
            _move_files(staging, destination)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _installed_path(name: str) -> str:
    return name[2:] if name.startswith("./") else name.lstrip("/")


def extract_deb_files(path: str | Path, members: tuple[str, ...], destination: str | Path,
                      limit: int = MAX_EXTRACTED_BYTES) -> list[Path]:
    """Write the named installed files of the package at ``path`` under ``destination`` (keeping their paths,
    e.g. ``usr/share/backgrounds/a.jpg``), all of them or none (see :func:`staged_extraction`).

    :param members: paths as installed, without the leading ``/`` or ``./``; all of them must be regular files.
    :param limit: the most bytes written in all (:data:`MAX_EXTRACTED_BYTES`).
    :return: the written files, in the order of ``members``.
    :raises ResourceUnavailableError: if a member is missing, is not a regular file (a link: name its target
        instead), the files would take over ``limit`` bytes, or the package cannot be read (damaged or truncated).
    :raises StorageError: if the files cannot be written (disk full, no permission); none of them is left.
    """
    path, destination = Path(path), Path(destination).resolve()
    wanted = {_installed_path(member) for member in members}
    for member in wanted:
        if not (destination / member).resolve().is_relative_to(destination) or not member:
            raise ResourceUnavailableError(f"{member!r} is not a path inside a package")
    found: set[str] = set()
    # Reads only in the block: copy_member and staged_extraction report write failures as StorageError themselves.
    with reading_archive(path), open(path, "rb") as file, open_deb_data(file, str(path)) as archive, \
            staged_extraction(path, destination) as staging:
        extracted = 0
        for info in archive:
            name = _installed_path(info.name)
            if name not in wanted:
                continue
            if not info.isfile():
                raise ResourceUnavailableError(f"{path}: {name} is not a regular file (a link or folder); "
                                               "name the file it points to")
            check_extracted_size(path, extracted + info.size, limit)  # from the header, before writing anything
            source = archive.extractfile(info)
            assert source is not None  # a regular file always has contents
            extracted = copy_member(source, staging / name, path, limit, extracted)
            found.add(name)
            if found == wanted:  # the rest of the payload need not be decompressed
                break
        missing = sorted(wanted - found)
        if missing:  # raised in the block: nothing is extracted from the wrong package
            raise ResourceUnavailableError(f"{path} has no file {', '.join(missing)}; the package may be another "
                                           "version: delete it and download again")
    return [destination / _installed_path(member) for member in members]
