"""Opt-in, checksum-verified downloads into a local datasets directory.

Nothing is fetched unless ``download=True``. A file that is missing offline raises an error naming the file,
its checksum, where it comes from and where to put it, so it can be fetched by hand. Downloads go to a
``.part`` file that is renamed only after its MD5 matches, so an interrupted or corrupted download never
passes for a good one. Archives are extracted once; small marker files record verification and extraction.
"""

from __future__ import annotations

import hashlib
import tarfile
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

from sei.errors import ResourceUnavailableError

_CHUNK = 1 << 20


@dataclass(frozen=True)
class RemoteFile:
    """A file that can be downloaded: its name on disk, where it comes from and its MD5 checksum."""

    filename: str
    url: str
    md5: str
    extract: bool = False


def file_md5(path: str | Path) -> str:
    """MD5 hex digest of a file, read in chunks."""
    digest = hashlib.md5()
    with open(path, "rb") as file:
        for chunk in iter(lambda: file.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _marker(path: Path, what: str) -> Path:
    return path.with_name(f".{path.name}.{what}")


def _stamp(path: Path) -> str:
    stat = path.stat()
    return f"{stat.st_size} {stat.st_mtime_ns}"


def _missing_message(remote: RemoteFile, path: Path, reason: str) -> str:
    return (f"{remote.filename} {reason}. Run again with --download to fetch it from {remote.url}, or download it "
            f"yourself and place it at {path} (MD5 {remote.md5}).")


def _download(remote: RemoteFile, path: Path, progress: bool) -> None:
    from tqdm.auto import tqdm

    partial = path.with_name(path.name + ".part")
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
        raise ResourceUnavailableError(_missing_message(remote, path, f"could not be downloaded ({error})")) from error
    checksum = file_md5(partial)
    if checksum != remote.md5:
        partial.unlink(missing_ok=True)
        raise ResourceUnavailableError(
            f"{remote.filename} downloaded from {remote.url} has MD5 {checksum}, expected {remote.md5}; "
            "the file was discarded. The server may be serving another version: fetch it by hand and check it."
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
            f"{path} has MD5 {checksum}, expected {remote.md5}: the file is incomplete or another version. "
            f"Delete it and run again with --download, or fetch {remote.url} by hand."
        )
    marker.write_text(_stamp(path))


def _extract(path: Path, destination: Path) -> None:
    destination = destination.resolve()
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            for member in archive.namelist():
                if not (destination / member).resolve().is_relative_to(destination):
                    raise ResourceUnavailableError(f"{path} holds a path outside the archive: {member}")
            archive.extractall(destination)
    elif tarfile.is_tarfile(path):
        with tarfile.open(path) as archive:
            for member in archive.getmembers():
                if not (destination / member.name).resolve().is_relative_to(destination) or member.issym() \
                        or member.islnk():
                    raise ResourceUnavailableError(f"{path} holds an unsafe member: {member.name}")
            archive.extractall(destination)
    else:
        raise ResourceUnavailableError(f"{path} is neither a zip nor a tar archive")


def fetch(remote: RemoteFile, directory: str | Path, download: bool = False, progress: bool = True) -> Path:
    """Make ``remote`` available in ``directory`` (verified, and extracted there if it is an archive).

    :param download: allow fetching from the network when the file is missing.
    :return: the local file's path.
    :raises ResourceUnavailableError: if the file is missing and ``download`` is False, cannot be
        downloaded, or fails its checksum.
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
        _extract(path, directory)
        extracted.write_text(_stamp(path))
    return path
