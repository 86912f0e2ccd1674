"""The ``photos`` dataset: the ``sample`` photographs plus free-licensed photographs from Debian's wallpaper
packages, for a network that restores photographs it was never trained on; and ``photos-test``, photographs of
two other packages that no training set of ``sei`` uses, to measure that.

The packages come from Debian's archive (``deb.debian.org``; the versions of Debian 13, the stable release in
2026), checksum-verified against the MD5 that Debian's package index records, and only the photographs are
extracted (graphics and illustrations are left out). Every photograph's author and licence, as the package's
copyright file gives them, is in :data:`PHOTO_PACKAGES`.
Training on them instead of on the 13 sample photographs alone raised held-out PSNR (README, "Is it worth
training?"): the number was set by the amount of natural training data. The 10 photographs of
``plasma-workspace-wallpapers`` (94 MB more, mostly bokeh and heavily processed) were tried and left out: they
gained nothing (held-out PSNR 0.05 dB lower at 1200 steps, 0.01 dB lower at the 600 s budget).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sei.io.download import RemoteFile

__all__ = ["DEBIAN_POOL", "HELD_OUT_PACKAGES", "PHOTO_PACKAGES", "debian_package", "PackagedPhoto", "PhotoPackage"]

DEBIAN_POOL = "https://deb.debian.org/debian/pool/main"


@dataclass(frozen=True)
class PackagedPhoto:
    """One photograph inside a package: its name in the dataset, its installed path and its credit."""

    name: str
    member: str
    credit: str  # author and licence, from the package's copyright file


@dataclass(frozen=True)
class PhotoPackage:
    """A Debian package and the photographs taken from it."""

    remote: RemoteFile
    photos: tuple[PackagedPhoto, ...]

    @property
    def folder(self) -> str:
        """Where the package is stored and extracted, under the dataset's folder: its name without version."""
        return self.remote.filename.split("_", 1)[0]


def debian_package(pool_path: str, md5: str, photos: list[tuple[str, str, str]]) -> PhotoPackage:
    """A :class:`PhotoPackage` from its path in Debian's pool, its MD5 and ``(name, installed path, credit)``."""
    packaged = tuple(PackagedPhoto(*photo) for photo in photos)
    remote = RemoteFile(Path(pool_path).name, f"{DEBIAN_POOL}/{pool_path}", md5, extract=True,
                        members=tuple(photo.member for photo in packaged))
    return PhotoPackage(remote, packaged)


_LOMIRI = "usr/share/backgrounds"
_MATE = "usr/share/backgrounds/mate/nature"
_GPL = "GPL-2+"
_MATE_CREDITS = {
    "Aqua": "Charles Barbin", "Blinds": "Lennart Poettering, Andrea Cimitan", "Dune": "Marco Cogoni, Hylke Bons",
    "FreshFlower": "Jens Ansorg", "Garden": "Charles Barbin", "GreenMeadow": "Timothy Schellhase, Lapo Calamandrei",
    "LadyBird": "Charles Barbin", "RainDrops": "blackcombwhistler07", "Storm": "Sergey Nazarov",
    "TwoWings": "Charles Barbin, Hylke Bons", "Wood": "Jean-François Fortin Tam", "YellowFlower": "Charles Barbin",
}

PHOTO_PACKAGES: tuple[PhotoPackage, ...] = (
    debian_package("l/lomiri-wallpapers/lomiri-wallpapers-16.04_20.04.0-4_all.deb",
                   "51a8275bf9ead1647755e3eb3ff793b6", [
        ("bridge", f"{_LOMIRI}/Bridge_by_Sander_Klootwijk.jpg", "Sander Klootwijk, CC BY-SA 4.0"),
        ("dragonfly", f"{_LOMIRI}/Dragonfly_by_Bolly.jpg", "Bolly, CC BY-SA 4.0"),
        ("fig", f"{_LOMIRI}/Picture_0B_by_freespace.jpg", "Trevor 'Freespace', CC BY 4.0"),
        ("brushes", f"{_LOMIRI}/Picture_1A_by_freespace.jpg", "Trevor 'Freespace', CC BY 4.0"),
        ("wine", f"{_LOMIRI}/Wine_by_Jakkub_Mede.jpg", "Jakub Mede, CC BY 4.0"),
        ("aitzgorri", f"{_LOMIRI}/aitzgorri_by_Aitzol_Berasategi.jpg", "Aitzol Berasategi, CC BY 4.0"),
        ("free", f"{_LOMIRI}/free_by_Peter_Nerlich.jpg", "Peter Nerlich, CC BY-SA 4.0"),
        ("friends", f"{_LOMIRI}/friends_by_Aitzol_Berasategi.jpg", "Aitzol Berasategi, CC BY 4.0"),
        ("greentock", f"{_LOMIRI}/greentock_by_Peter_Nerlich.jpg", "Peter Nerlich, CC BY-SA 4.0"),
        ("life", f"{_LOMIRI}/life_by_Aitzol_Berasategi.jpg", "Aitzol Berasategi, CC BY 4.0"),
        ("picos_de_europa", f"{_LOMIRI}/picosdeeuropa_by_Aitzol_Berasategi.jpg", "Aitzol Berasategi, CC BY 4.0"),
        ("seeding", f"{_LOMIRI}/seeding_by_Clements_Engelhardt.jpg", "Clemens Engelhardt, CC0 1.0"),
        ("sunset", f"{_LOMIRI}/sunset_by_Aitzol_Berasategi.jpg", "Aitzol Berasategi, CC BY 4.0"),
    ]),
    debian_package("m/mate-backgrounds/mate-backgrounds_1.26.0-1_all.deb", "ef71d29fbd8637a0c1ba3c372fd955bc", [
        (name.lower(), f"{_MATE}/{name}.jpg", f"{author}, {_GPL}") for name, author in _MATE_CREDITS.items()
    ]),
)

_PLASMA = "usr/share/wallpapers"
_PLASMA_CREDITS = {  # author as each wallpaper's metadata.json names them; licence below
    "BytheWater": "Maciej Wiklo", "ColdRipple": "Risto Saukonpää", "ColorfulCups": "Dmitri Popov",
    "DarkestHour": "Risto Saukonpää", "EveningGlow": "Ian Hex", "FallenLeaf": "Martin Klapetek", "Grey": "Sigi Sagi",
    "Kite": "Risto Saukonpää", "OneStandsOut": "Risto Saukonpää", "Path": "Risto Saukonpää",
    "summer_1am": "Risto Saukonpää",
}
_PLASMA_LICENCE = "LGPL-3 (the wallpaper's metadata.json; the package's copyright file: GPL-2+)"

# Photographs for evaluation only: no training set of sei uses these packages. Every photograph was looked at
# (landscapes, objects, close-ups); the packages' illustrations and renders are left out.
HELD_OUT_PACKAGES: tuple[PhotoPackage, ...] = (
    debian_package("p/plasma-workspace-wallpapers/plasma-workspace-wallpapers_6.3.4-1_all.deb",
                   "252edea9b43659ad413bb3447c8f8b65", [
        (name.lower(), f"{_PLASMA}/{name}/contents/images/2560x1600.jpg", f"{author}, {_PLASMA_LICENCE}")
        for name, author in _PLASMA_CREDITS.items()
    ]),
    debian_package("l/lomiri-wallpapers/lomiri-wallpapers-20.04_20.04.0-4_all.deb", "2aeb741b7c5930ec620d266678606ea0", [
        ("kleiber", f"{_LOMIRI}/Kleiber_by_Lukas_Baubkus.jpg", "Lukas Baubkus, CC BY-SA 3.0"),
    ]),
)
