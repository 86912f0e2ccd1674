"""Opt-in, checksum-verified downloads into a local datasets directory.

Nothing is fetched unless ``download=True``. A file that is missing offline raises an error naming the file,
its checksum, where it comes from and where to put it, so it can be fetched by hand. Downloads go to a
``.part`` file that is renamed only after its MD5 matches, so an interrupted or corrupted download never
passes for a good one. Archives (zip, tar, Debian packages) are extracted once, all files or none, up to
:data:`~sei.io.debian.MAX_EXTRACTED_BYTES`; small marker files record verification and extraction.
"""

from __future__ import annotations

import hashlib
import os
import socket
import tarfile
import threading
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

from sei.core.errors import ResourceUnavailableError
from sei.io.debian import (
    AR_MAGIC,
    MAX_EXTRACTED_BYTES,
    check_extracted_size,
    copy_member,
    extract_deb_files,
    reading_archive,
    staged_extraction,
)

__all__ = ["PROBE_TIMEOUT", "RemoteFile", "fetch", "file_digest", "file_md5", "offline_requested", "unreachable", "verify"]

_CHUNK = 1 << 20
# How long to wait for a server to be found and to answer a connection before calling the network unreachable:
# without it, a machine with no network waits for DNS and connection retries (tens of seconds).
PROBE_TIMEOUT = 2.0
_TRUTHY = ("1", "true", "yes", "on")
# The first bytes of each kind of archive (tar: compressed with gzip, bzip2 or xz), so that a truncated one is still
# recognised, and reported as damaged rather than as no archive at all.
_SIGNATURES = ((AR_MAGIC, "deb"), (b"PK\x03\x04", "zip"), (b"PK\x05\x06", "zip"), (b"\x1f\x8b", "tar"),
               (b"BZh", "tar"), (b"\xfd7zXZ\x00", "tar"))


@dataclass(frozen=True)
class RemoteFile:
    """A file that can be downloaded: its name on disk, where it comes from and its MD5 checksum."""

    filename: str
    url: str
    md5: str
    extract: bool = False
    checksum_verified: bool = True  # False: the MD5 comes from one source and was not confirmed independently
    members: tuple[str, ...] = ()  # a Debian package (.deb) extracts only these installed files (sei.io.debian)


def file_md5(path: str | Path) -> str:
    """MD5 hex digest of a file, read in chunks."""
    return file_digest(path, "md5")


def file_digest(path: str | Path, algorithm: str = "sha256") -> str:
    """Hex digest of a file by a :mod:`hashlib` algorithm, read in chunks."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as file:
        for chunk in iter(lambda: file.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _marker(path: Path, what: str) -> Path:
    return path.with_name(f".{path.name}.{what}")


def _stamp(path: Path) -> str:
    stat = path.stat()
    return f"{stat.st_size} {stat.st_mtime_ns}"


def _checksum_text(remote: RemoteFile) -> str:
    if remote.checksum_verified:
        return f"MD5 {remote.md5}"
    return f"MD5 {remote.md5}, unverified: taken from the reference code, not confirmed from a second source"


def _missing_message(remote: RemoteFile, path: Path, reason: str, download: bool = False) -> str:
    fetch_it = (f"Check the connection and run again, or download {remote.url} yourself" if download else
                f"Run again with --download to fetch it from {remote.url}, or download it yourself")
    return f"{remote.filename} {reason}. {fetch_it} and place it at {path} ({_checksum_text(remote)})."


def offline_requested(url: str = "") -> bool:
    """Whether the environment says not to use the network (``HF_HUB_OFFLINE`` for Hugging Face addresses)."""
    host = urllib.parse.urlsplit(url).hostname or ""
    hub = not url or host.endswith("huggingface.co") or host == urllib.parse.urlsplit(
        os.environ.get("HF_ENDPOINT", "https://huggingface.co")).hostname
    return hub and os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in _TRUTHY


def unreachable(url: str, timeout: float = PROBE_TIMEOUT) -> str | None:
    """Why ``url``'s server cannot be reached within ``timeout`` seconds (name lookup and connection), or None.

    The name lookup runs in a helper thread: the system resolver has no timeout of its own.
    """
    if offline_requested(url):
        return "HF_HUB_OFFLINE is set"
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https", "ftp"):
        return None  # a local file (file://): no network involved
    if not parts.hostname:
        return f"{url} names no server"
    port = parts.port or (443 if parts.scheme == "https" else 80)
    result: dict[str, object] = {}

    def lookup() -> None:
        try:
            result["addresses"] = socket.getaddrinfo(parts.hostname, port, type=socket.SOCK_STREAM)
        except OSError as error:
            result["error"] = error

    thread = threading.Thread(target=lookup, daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        return f"no answer from the name server for {parts.hostname} within {timeout:g} s (no network?)"
    if "error" in result:
        return f"cannot resolve {parts.hostname} (no network?): {result['error']}"
    last: OSError | None = None
    for family, kind, protocol, _, address in result["addresses"]:  # type: ignore[union-attr]
        try:
            with socket.socket(family, kind, protocol) as connection:
                connection.settimeout(timeout)
                connection.connect(address)
            return None
        except OSError as error:
            last = error
    return f"cannot connect to {parts.hostname}:{port} (no network?): {last}"


def _download(remote: RemoteFile, path: Path, progress: bool) -> None:
    from tqdm.auto import tqdm

    partial = path.with_name(path.name + ".part")
    reason = unreachable(remote.url)
    if reason is not None:
        raise ResourceUnavailableError(_missing_message(remote, path, f"could not be downloaded ({reason})", True))
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with urllib.request.urlopen(remote.url, timeout=60) as response, open(partial, "wb") as file:
            total = int(response.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, desc=remote.filename, disable=not progress) as bar:
                for chunk in iter(lambda: response.read(_CHUNK), b""):
                    file.write(chunk)
                    bar.update(len(chunk))
    except (urllib.error.URLError, OSError, ValueError) as error:
        partial.unlink(missing_ok=True)
        raise ResourceUnavailableError(
            _missing_message(remote, path, f"could not be downloaded ({error})", True)) from error
    checksum = file_md5(partial)
    if checksum != remote.md5:
        partial.unlink(missing_ok=True)
        raise ResourceUnavailableError(
            f"{remote.filename} downloaded from {remote.url} has MD5 {checksum}, expected {remote.md5}"
            f"{'' if remote.checksum_verified else ' (an unverified checksum)'}; the file was discarded. The "
            "server may be serving another version: fetch it by hand and check it."
        )
    partial.replace(path)
    _marker(path, "verified").write_text(_stamp(path))


def verify(remote: RemoteFile, path: Path) -> None:
    """Check ``path`` against the remote file's MD5 (skipped if already verified and unchanged)."""
    marker = _marker(path, "verified")
    if marker.is_file() and marker.read_text() == _stamp(path):
        return
    checksum = file_md5(path)
    if checksum != remote.md5:
        raise ResourceUnavailableError(
            f"{path} has MD5 {checksum}, expected {remote.md5}"
            f"{'' if remote.checksum_verified else ' (an unverified checksum)'}: the file is incomplete or another "
            "version. "
            f"Delete it and run again with --download, or fetch {remote.url} by hand."
        )
    marker.write_text(_stamp(path))


def _archive_kind(path: Path) -> str | None:
    """``"deb"``, ``"zip"`` or ``"tar"``: what kind of archive ``path`` is, or None if none of them."""
    with open(path, "rb") as file:
        head = file.read(512)
    kind = next((kind for signature, kind in _SIGNATURES if head.startswith(signature)), None)
    if kind is None and head[257:262] == b"ustar":  # an uncompressed tar archive
        kind = "tar"
    if kind is None and zipfile.is_zipfile(path):  # a zip archive after other data (self-extracting)
        kind = "zip"
    if kind is None and tarfile.is_tarfile(path):  # an old tar archive, with no signature
        kind = "tar"
    return kind


def _unsafe_tar_member(member: tarfile.TarInfo, destination: Path) -> bool:
    return not (destination / member.name).resolve().is_relative_to(destination) or member.issym() \
        or member.islnk() or not (member.isfile() or member.isdir())


def _extract_tar(path: Path, destination: Path, limit: int) -> None:
    # Only regular files are written, with the permissions of new files: no link, device, owner or setuid bit.
    with reading_archive(path), tarfile.open(path) as archive:
        members = archive.getmembers()
        # Checked up front, so that nothing is extracted from an unsafe or oversized archive.
        for member in members:
            if _unsafe_tar_member(member, destination):
                raise ResourceUnavailableError(f"{path} holds an unsafe member: {member.name} (a path outside "
                                               "the archive, a link, or a device/special file); not extracted")
        check_extracted_size(path, sum(member.size for member in members), limit)
        with staged_extraction(path, destination) as staging:
            extracted = 0
            for member in members:
                source = archive.extractfile(member) if member.isfile() else None
                if source is not None:  # folders are made for the files they hold
                    extracted = copy_member(source, staging / member.name, path, limit, extracted)
            # tarfile stops at the end-of-archive marker: read on to the end of the compressed stream, so that its
            # checksum is checked and a cut or corrupted end is reported too.
            while archive.fileobj is not None and archive.fileobj.read(_CHUNK):
                pass


def _extract_zip(path: Path, destination: Path, limit: int) -> None:
    with reading_archive(path), zipfile.ZipFile(path) as archive:
        members = archive.infolist()
        for member in members:  # checked up front, so that nothing is extracted from an unsafe archive
            if not (destination / member.filename).resolve().is_relative_to(destination):
                raise ResourceUnavailableError(f"{path} holds a path outside the archive: {member.filename}")
        check_extracted_size(path, sum(member.file_size for member in members), limit)
        with staged_extraction(path, destination) as staging:
            extracted = 0
            for member in members:
                if not member.is_dir():  # folders are made for the files they hold
                    with archive.open(member) as source:
                        extracted = copy_member(source, staging / member.filename, path, limit, extracted)


def _extract(path: Path, destination: Path, members: tuple[str, ...] = (), limit: int = MAX_EXTRACTED_BYTES) -> None:
    """Extract the archive ``path`` under ``destination``: all its files or, for a Debian package, the installed
    files ``members``; all of them or none.

    :param limit: the most bytes extracted in all (:data:`~sei.io.debian.MAX_EXTRACTED_BYTES`), checked against the
        headers before anything is written and again while copying.
    :raises ResourceUnavailableError: if ``path`` is no archive, is damaged or truncated, holds an unsafe member (a
        path outside ``destination``, a link, a device) or more than ``limit`` bytes.
    :raises StorageError: if the files cannot be written (disk full, no permission); none of them is left.
    """
    destination = destination.resolve()
    kind = _archive_kind(path)
    if kind == "deb":
        if not members:
            raise ResourceUnavailableError(f"{path} is a Debian package: name the installed files to extract")
        extract_deb_files(path, members, destination, limit)
    elif kind == "zip":
        _extract_zip(path, destination, limit)
    elif kind == "tar":
        _extract_tar(path, destination, limit)
    else:
        raise ResourceUnavailableError(f"{path} is neither a zip or tar archive nor a Debian package")


def fetch(remote: RemoteFile, directory: str | Path, download: bool = False, progress: bool = True) -> Path:
    """Make ``remote`` available in ``directory`` (verified, and extracted there if it is an archive).

    :param download: allow fetching from the network when the file is missing.
    :return: the local file's path.
    :raises ResourceUnavailableError: if the file is missing and ``download`` is False, cannot be
        downloaded, fails its checksum, or is an archive that cannot be extracted (damaged, unsafe, too large).
    :raises StorageError: if the archive's files cannot be written (disk full, no permission); none of them is left.
    """
    directory = Path(directory)
    path = directory / remote.filename
    extracted = _marker(path, "extracted")
    if remote.extract and extracted.is_file():
        return path
    if not path.is_file():
        if not download:
            raise ResourceUnavailableError(_missing_message(remote, path, f"is not in {directory}"))
        _download(remote, path, progress)
    verify(remote, path)
    if remote.extract:
        _extract(path, directory, remote.members)
        extracted.write_text(_stamp(path))
    return path
