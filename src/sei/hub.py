"""The authors' published weights on the Hugging Face hub, by name.

Files live in the repository ``jscanvic/scale-equivariant-imaging`` as ``<name>.pt`` (a SwinIR ``state_dict``,
sometimes under ``params``). They are fetched with ``huggingface_hub`` into its standard cache, and used offline
once cached; nothing is downloaded unless asked. A name tells what the weights are for, e.g.
``Div2K-Train_Deblurring_Gaussian_R2_Noise5_SEI`` or ``Deblurring_Gaussian_R2_Noise5_Proposed``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from sei.errors import OptionalDependencyError, ResourceUnavailableError, WeightsError

HUB_REPO = "jscanvic/scale-equivariant-imaging"
# Names confirmed by the reference implementation's documentation; `sei weights list --remote` shows all files.
KNOWN_NAMES = (
    "Div2K-Train_Deblurring_Gaussian_R2_Noise5_SEI",
    "Deblurring_Gaussian_R2_Noise5_Proposed",
)
_METHOD_WORDS = {"sei": "sei", "proposed": "sei", "supervised": "supervised", "sup": "supervised", "css": "css",
                 "ei-shift": "ei-shift", "eishift": "ei-shift", "ei-rotate": "ei-rotate", "eirotate": "ei-rotate",
                 "sure": "sure"}
_NAME = re.compile(
    r"^(?:(?P<dataset>[A-Za-z0-9]+)-Train_)?"
    r"(?:(?P<deblur>Deblurring)_(?P<kernel>(?:Gaussian|Box)_R\d+)|(?P<sr>SR|SuperResolution|Super-Resolution)_[xX]?(?P<factor>\d+))"
    r"_Noise(?P<noise>\d+(?:\.\d+)?)_(?P<method>[A-Za-z-]+)$")


@dataclass(frozen=True)
class PublishedWeights:
    """What a published weights name says about the network it holds (always the paper's SwinIR)."""

    name: str
    task: str
    kernel: str | None
    sr_factor: int | None
    noise_level: float
    method: str
    dataset: str | None
    backbone: str = "swinir"

    @property
    def upscale(self) -> int:
        return self.sr_factor or 1

    def describe(self) -> str:
        task = f"{self.kernel} deblurring" if self.task == "deblurring" else f"x{self.sr_factor} super-resolution"
        trained = f", trained on {self.dataset}" if self.dataset else ""
        return f"{task}, noise level {self.noise_level:g}, {self.method}{trained}"


def parse_name(name: str) -> PublishedWeights | None:
    """The settings encoded in a published weights name, or None if it is not of that form."""
    match = _NAME.match(Path(str(name)).name.removesuffix(".pt"))
    if match is None:
        return None
    method = _METHOD_WORDS.get(match["method"].lower(), match["method"].lower())
    if match["deblur"]:
        return PublishedWeights(match.string, "deblurring", match["kernel"], None, float(match["noise"]), method,
                                match["dataset"])
    return PublishedWeights(match.string, "sr", None, int(match["factor"]), float(match["noise"]), method,
                            match["dataset"])


def _hub():
    try:
        import huggingface_hub
        import huggingface_hub.errors  # noqa: F401 - the submodule is not loaded by the package itself
    except ImportError as error:
        raise OptionalDependencyError("published weights need huggingface_hub: pip install huggingface_hub") from error
    return huggingface_hub


def cached_names(cache_dir: str | Path | None = None) -> list[str]:
    """Published weights already in the local Hugging Face cache."""
    hub = _hub()
    try:
        info = hub.scan_cache_dir(cache_dir)
    except hub.errors.CacheNotFound:
        return []
    names = set()
    for repo in info.repos:
        if repo.repo_id == HUB_REPO:
            for revision in repo.revisions:
                names.update(Path(f.file_name).stem for f in revision.files if f.file_name.endswith(".pt"))
    return sorted(names)


def remote_names() -> list[str]:
    """Every ``.pt`` file of the hub repository (needs the network)."""
    hub = _hub()
    try:
        files = hub.list_repo_files(HUB_REPO)
    except Exception as error:  # offline, proxy, hub errors: all mean "cannot list now"
        raise ResourceUnavailableError(f"cannot list {HUB_REPO} on the Hugging Face hub: {error}") from error
    return sorted(Path(f).stem for f in files if f.endswith(".pt"))


def fetch_weights(name: str, download: bool = False, cache_dir: str | Path | None = None) -> Path:
    """The local path of published weights ``name``, downloading them only if ``download`` is True.

    :raises ResourceUnavailableError: if they are not cached and cannot or may not be downloaded.
    :raises WeightsError: if the hub has no file of that name.
    """
    hub = _hub()
    filename = f"{Path(name).name.removesuffix('.pt')}.pt"
    try:
        return Path(hub.hf_hub_download(HUB_REPO, filename, cache_dir=cache_dir, local_files_only=not download))
    except hub.errors.LocalEntryNotFoundError as error:  # before its parent class, EntryNotFoundError
        how = ("the download failed (no network?)" if download else
               "they are not in the local Hugging Face cache; run `sei weights fetch "
               f"{filename[:-3]}` (or pass --download) where the network is available")
        raise ResourceUnavailableError(f"published weights {filename[:-3]} are unavailable: {how}") from error
    except hub.errors.EntryNotFoundError as error:
        raise WeightsError(f"{HUB_REPO} has no file {filename}; `sei weights list --remote` shows what exists") from error
    except Exception as error:  # connection and HTTP errors from the hub client
        raise ResourceUnavailableError(f"cannot fetch {filename} from {HUB_REPO}: {error}") from error


def looks_published(source: str) -> bool:
    """Whether ``source`` names published weights rather than a local file."""
    return not Path(source).exists() and (source in KNOWN_NAMES or parse_name(source) is not None)


def resolve_weights(source: str | Path, download: bool = False, cache_dir: str | Path | None = None
                    ) -> tuple[Path, PublishedWeights | None]:
    """A local weights path for ``source`` (a file, or a published name), and what a published name says.

    :raises WeightsError: if ``source`` is neither an existing file nor a published weights name.
    """
    path = Path(source)
    if path.exists():
        return path, None
    text = str(source)
    info = parse_name(text)
    if info is None and text not in KNOWN_NAMES:
        raise WeightsError(f"weights {text!r}: no such file, and not a published weights name "
                           f"(e.g. {KNOWN_NAMES[0]}; `sei weights list` shows the known names)")
    return fetch_weights(text, download=download, cache_dir=cache_dir), info
