"""Fault injection on downloaded archives: damaged ``ar`` headers in a Debian package, truncated ``.tar.gz`` and zip
files, archives that expand past the size cap, and a disk that fills during extraction (sei.io.debian,
sei.io.download).

Each case checks the error (its class, that it names the archive and what to do) and that nothing partly written
is left under a final name.
"""

from __future__ import annotations

import errno
import io
import os
import tarfile
import zipfile
from pathlib import Path
from typing import Self

import numpy as np
import pytest

from sei.core.errors import ResourceUnavailableError, StorageError
from sei.io import debian
from sei.io.debian import ar_members, extract_deb_files
from sei.io.download import _extract


def ar_bytes(members: list[tuple[str, bytes, str | None]]) -> bytes:
    """An ``ar`` archive of ``(name, data, size field)``; a size field of None writes the data's true length."""
    out = bytearray(debian.AR_MAGIC)
    for name, data, size in members:
        size = str(len(data)) if size is None else size
        out += f"{name:<16}{0:<12}{0:<6}{0:<6}{100644:<8}{size:<10}`\n".encode()
        out += data + (b"\n" if len(data) % 2 else b"")
    return bytes(out)


def tar_gz_bytes(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def make_archive(path: Path, files: dict[str, bytes]) -> Path:
    """A zip, ``.tar.gz`` or Debian package (by ``path``'s suffix) holding ``files``."""
    if path.suffix == ".zip":
        with zipfile.ZipFile(path, "w") as archive:
            for name, data in files.items():
                archive.writestr(name, data)
    elif path.suffix == ".deb":
        payload = tar_gz_bytes({f"./{name}": data for name, data in files.items()})
        path.write_bytes(ar_bytes([("debian-binary", b"2.0\n", None), ("data.tar.gz", payload, None)]))
    else:
        path.write_bytes(tar_gz_bytes(files))
    return path


def extract(archive: Path, destination: Path, files: dict[str, bytes], **kwargs) -> None:
    """Extract ``archive`` as sei.io.download does (a Debian package: the named ``files``)."""
    _extract(archive, destination, tuple(files) if archive.suffix == ".deb" else (), **kwargs)


def files_under(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


RANDOM = np.random.default_rng(0)
FILES = {"set/a.bin": RANDOM.bytes(1_500_000), "set/b.bin": RANDOM.bytes(1_500_000)}  # incompressible, > 1 chunk


class LoopGuard(io.BytesIO):
    """A file that fails the test once read more often than any sane parse of it needs (instead of hanging)."""

    def __init__(self, data: bytes, reads: int = 100) -> None:
        super().__init__(data)
        self.reads = reads

    def read(self, size: int | None = -1) -> bytes:
        self.reads -= 1
        assert self.reads > 0, "ar_members keeps reading: it loops over the same header"
        return super().read(size)


class TestArHeaders:
    @pytest.mark.parametrize("size", ["-60", "-7", "1_0", "12a", ""])
    def test_a_size_that_is_not_a_byte_count_is_refused(self, size):
        content = ar_bytes([("debian-binary", b"2.0\n", None), ("data.tar.gz", b"x" * 12, size)])
        with pytest.raises(ResourceUnavailableError, match=r"pkg\.deb has a damaged ar header .*'data\.tar\.gz'"):
            ar_members(LoopGuard(content), "pkg.deb")

    def test_a_size_past_the_end_of_the_file_is_refused(self, tmp_path):
        content = ar_bytes([("debian-binary", b"2.0\n", None), ("data.tar.gz", b"x" * 12, "4000")])
        with pytest.raises(ResourceUnavailableError, match=r"pkg\.deb is damaged or truncated .*'data\.tar\.gz'"):
            ar_members(LoopGuard(content), "pkg.deb")
        deb = tmp_path / "pkg.deb"
        deb.write_bytes(content)
        with pytest.raises(ResourceUnavailableError, match="download again"):
            extract_deb_files(deb, ("a",), tmp_path / "out")


class TestTruncatedArchives:
    @pytest.mark.parametrize("suffix, cut", [(".tar.gz", 2_000_000), (".tar.gz", -4), (".zip", 2_000_000)],
                             ids=["tar.gz-in-a-file", "tar.gz-in-the-checksum", "zip-in-a-file"])
    def test_a_truncated_archive_is_reported_as_damaged(self, tmp_path, suffix, cut):
        archive = make_archive(tmp_path / f"data{suffix}", FILES)
        archive.write_bytes(archive.read_bytes()[:cut])  # inside the second file, or only the gzip trailer
        destination = tmp_path / "out"
        destination.mkdir()
        with pytest.raises(ResourceUnavailableError) as info:
            _extract(archive, destination)
        message = str(info.value)
        assert f"{archive} is damaged or truncated (" in message and "delete it and download again" in message
        assert "\n" not in message
        assert not list(destination.iterdir())  # not even the complete first file


class TestSizeCap:
    @pytest.mark.parametrize("suffix", [".tar.gz", ".zip", ".deb"])
    def test_an_archive_declaring_more_than_the_cap_is_not_extracted(self, tmp_path, suffix):
        archive = make_archive(tmp_path / f"data{suffix}", FILES)
        destination = tmp_path / "out"
        destination.mkdir()
        with pytest.raises(ResourceUnavailableError, match=f"{archive.name} expands to more than 2,000,000 bytes"):
            extract(archive, destination, FILES, limit=2_000_000)
        assert not list(destination.iterdir())
        extract(archive, destination, FILES, limit=3_000_000)  # the cap is on the total: this one fits
        assert files_under(destination) == sorted(FILES)

    def test_the_cap_holds_while_copying_when_headers_understate_sizes(self, tmp_path):
        from sei.io.debian import copy_member

        with pytest.raises(ResourceUnavailableError, match="expands to more than 1,000 bytes"):
            copy_member(io.BytesIO(bytes(5000)), tmp_path / "member", tmp_path / "bomb.zip", 1000)

    def test_the_default_cap_is_well_above_the_largest_dataset(self):
        from sei.io.debian import MAX_EXTRACTED_BYTES

        assert MAX_EXTRACTED_BYTES >= 4 * 3_500_000_000  # DIV2K_train_HR.zip holds about 3.5 GB of PNG files


class FillingDisk:
    """``open`` whose files opened for writing take ``room`` bytes in all, then fail as on a full disk (after
    writing the part that fitted, as a real write does)."""

    def __init__(self, room: int) -> None:
        self.room = room

    def __call__(self, file, mode="r", *args, **kwargs):
        opened = open(file, mode, *args, **kwargs)  # noqa: SIM115 (closed by the caller, as open's files are)
        return FillingFile(opened, self) if "w" in mode else opened


class FillingFile:
    """A file written through :class:`FillingDisk` (built-in file objects do not let ``write`` be replaced)."""

    def __init__(self, file, disk: FillingDisk) -> None:
        self.file, self.disk = file, disk

    def write(self, data: bytes) -> int:
        if len(data) > self.disk.room:
            self.file.write(data[:self.disk.room])
            self.disk.room = 0
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self.disk.room -= len(data)
        return self.file.write(data)

    def __getattr__(self, name: str):
        return getattr(self.file, name)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exception) -> None:
        self.file.close()


class TestFullDisk:
    @pytest.mark.parametrize("suffix", [".tar.gz", ".zip", ".deb"])
    def test_a_full_disk_leaves_no_partial_file(self, tmp_path, suffix, monkeypatch):
        archive = make_archive(tmp_path / f"data{suffix}", FILES)
        destination = tmp_path / "out"
        (destination / "set").mkdir(parents=True)
        (destination / "set" / "kept.txt").write_text("a file of the user's")
        monkeypatch.setattr(debian, "open", FillingDisk(2_000_000), raising=False)  # fills in the second file
        with pytest.raises(StorageError) as info:
            extract(archive, destination, FILES)
        message = str(info.value)
        assert str(archive) in message and "No space left on device" in message and "\n" not in message
        assert files_under(destination) == ["set/kept.txt"]  # no file extracted, no temporary one left
        monkeypatch.undo()
        extract(archive, destination, FILES)  # with room again, it extracts completely
        assert files_under(destination) == sorted([*FILES, "set/kept.txt"])
        assert all((destination / name).read_bytes() == data for name, data in FILES.items())
