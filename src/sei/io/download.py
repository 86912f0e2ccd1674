"""Opt-in, checksum-verified downloads into a local datasets directory.

Nothing is fetched unless ``download=True``. A file that is missing offline raises an error naming the file,
its checksum, where it comes from and where to put it, so it can be fetched by hand. Downloads go to a
``.part`` file that is renamed only after its MD5 matches, so an interrupted or corrupted download never
passes for a good one. Archives (zip, tar, Debian packages) are extracted once; small marker files record
verification and extraction.
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

from sei.io.debian import AR_MAGIC, extract_deb_files
from sei.core.errors import ResourceUnavailableError

__all__ = ["PROBE_TIMEOUT", "fetch", "file_md5", "offline_requested", "RemoteFile", "unreachable", "verify"]

_CHUNK = 1 << 20
# How long to wait for a server to be found and to answer a connection before calling the network unreachable:
# without it, a machine with no network waits for DNS and connection retries (tens of seconds).
PROBE_TIMEOUT = 2.0
_TRUTHY = ("1", "true", "yes", "on")


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


def _is_deb(path: Path) -> bool:
    with open(path, "rb") as file:
        return file.read(len(AR_MAGIC)) == AR_MAGIC


def _extract(path: Path, destination: Path, members: tuple[str, ...] = ()) -> None:
    destination = destination.resolve()
    if _is_deb(path):
        if not members:
            raise ResourceUnavailableError(f"{path} is a Debian package: name the installed files to extract")
        extract_deb_files(path, members, destination)
    elif zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            for member in archive.namelist():
                if not (destination / member).resolve().is_relative_to(destination):
                    raise ResourceUnavailableError(f"{path} holds a path outside the archive: {member}")
            archive.extractall(destination)
    elif tarfile.is_tarfile(path):
        with tarfile.open(path) as archive:
            # Checked up front, so that nothing is extracted from an unsafe archive.
            for member in archive.getmembers():
                if not (destination / member.name).resolve().is_relative_to(destination) or member.issym() \
                        or member.islnk() or not (member.isfile() or member.isdir()):
                    raise ResourceUnavailableError(f"{path} holds an unsafe member: {member.name} (a path outside "
                                                   "the archive, a link, or a device/special file); not extracted")
            if hasattr(tarfile, "data_filter"):  # Python >= 3.10.12 / 3.11.4: also drops setuid bits and owners
                try:
                    archive.extractall(destination, filter="data")
                except tarfile.FilterError as error:
                    raise ResourceUnavailableError(f"{path} holds an unsafe member: {error}") from error
            else:
                for member in archive.getmembers():
                    member.mode &= 0o755  # no setuid, setgid, sticky or world-writable bits
                    member.uid, member.gid, member.uname, member.gname = os.getuid(), os.getgid(), "", ""
                archive.extractall(destination)
    else:
        raise ResourceUnavailableError(f"{path} is neither a zip or tar archive nor a Debian package")


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
        _extract(path, directory, remote.members)
        extracted.write_text(_stamp(path))
    return path
