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
from typing import TYPE_CHECKING

from sei.core.errors import ResourceUnavailableError, UnknownNameError, WeightsError
from sei.losses.registry import method_entry

if TYPE_CHECKING:  # imported where a spec is made: `sei weights list` reads names without torch or deepinv
    from sei.physics.spec import PhysicsSpec

__all__ = ["HUB_REPO", "KNOWN_NAMES", "cache_folder", "cached_names", "fetch_weights", "parse_name",
           "PublishedWeights", "remote_names", "resolve_weights"]

HUB_REPO = "jscanvic/scale-equivariant-imaging"
# Names confirmed by the reference implementation's documentation; `sei weights list --remote` shows all files.
KNOWN_NAMES = (
    "Div2K-Train_Deblurring_Gaussian_R2_Noise5_SEI",
    "Deblurring_Gaussian_R2_Noise5_Proposed",
)
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

    @property
    def spec(self) -> PhysicsSpec:
        """The physics spec the name describes."""
        from sei.physics.spec import PhysicsSpec, resolve_spec

        return resolve_spec(PhysicsSpec(task=self.task, kernel=self.kernel, sr_factor=self.sr_factor,
                                        noise_level=self.noise_level))

    def describe(self) -> str:
        task = f"{self.kernel} deblurring" if self.task == "deblurring" else f"x{self.sr_factor} super-resolution"
        trained = f", trained on {self.dataset}" if self.dataset else ""
        return f"{task}, noise level {self.noise_level:g}, {self.method}{trained}"


def parse_name(name: str) -> PublishedWeights | None:
    """The settings encoded in a published weights name, or None if it is not of that form."""
    match = _NAME.match(Path(str(name)).name.removesuffix(".pt"))
    if match is None:
        return None
    try:
        method = method_entry(match["method"]).name
    except UnknownNameError:
        method = match["method"].lower()
    if match["deblur"]:
        return PublishedWeights(match.string, "deblurring", match["kernel"], None, float(match["noise"]), method,
                                match["dataset"])
    return PublishedWeights(match.string, "sr", None, int(match["factor"]), float(match["noise"]), method,
                            match["dataset"])


def _hub():
    """``huggingface_hub``, imported on first use (``import sei`` stays light)."""
    import huggingface_hub
    import huggingface_hub.errors  # noqa: F401 - the submodule is not loaded by the package itself

    return huggingface_hub


def cache_folder(cache_dir: str | Path | None = None) -> Path:
    """Where published weights are cached: ``cache_dir``, else Hugging Face's hub cache (``HF_HUB_CACHE``, else
    ``HF_HOME/hub``, else ``~/.cache/huggingface/hub``, as huggingface_hub reads them)."""
    if cache_dir is not None:
        return Path(cache_dir)
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


def cached_names(cache_dir: str | Path | None = None) -> list[str]:
    """Published weights already in the local Hugging Face cache (:func:`cache_folder`)."""
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


def _endpoint() -> str:
    """The hub's address (``HF_ENDPOINT`` when set, as huggingface_hub reads it)."""
    from huggingface_hub import constants

    return str(constants.ENDPOINT)


def _offline_reason() -> str | None:
    """Why the hub cannot be reached now (``HF_HUB_OFFLINE``, no name server, no connection), or None.

    Checked before asking huggingface_hub, whose retries take tens of seconds on a machine with no network.
    """
    from sei.io.download import unreachable

    return unreachable(_endpoint())


def remote_names() -> list[str]:
    """Every ``.pt`` file of the hub repository (needs the network).

    :raises ResourceUnavailableError: within seconds when the hub cannot be reached.
    """
    hub = _hub()
    reason = _offline_reason()
    if reason is not None:
        raise ResourceUnavailableError(f"cannot list {HUB_REPO} on the Hugging Face hub: {reason}")
    try:
        files = hub.list_repo_files(HUB_REPO)
    except Exception as error:  # offline, proxy, hub errors: all mean "cannot list now"
        raise ResourceUnavailableError(f"cannot list {HUB_REPO} on the Hugging Face hub: {error}") from error
    return sorted(Path(f).stem for f in files if f.endswith(".pt"))


def _check_published(stem: str, cache_dir: str | Path | None) -> None:
    """Refuse, without asking the network, a name that is neither of the published form nor known nor cached.

    :raises UnknownNameError: listing the known and cached names.
    """
    if parse_name(stem) is None and stem not in KNOWN_NAMES:
        raise UnknownNameError("published weights name", stem, {*KNOWN_NAMES, *cached_names(cache_dir)},
                               hint="`sei weights list --remote` shows every file of the hub")


def fetch_weights(name: str, download: bool = False, cache_dir: str | Path | None = None) -> Path:
    """The local path of published weights ``name``, downloading them only if ``download`` is True.

    A cached file is used without asking the network (published files do not change). A name that is not of the
    published form (:func:`parse_name`) nor known is refused without asking it either. Without a network the
    download fails within a few seconds (``HF_HUB_OFFLINE`` set, or the hub unreachable).

    :raises UnknownNameError: for a name that is not a published weights name, or that the hub does not have.
    :raises ResourceUnavailableError: if they are not cached and cannot or may not be downloaded.
    """
    hub = _hub()
    stem = Path(name).name.removesuffix(".pt")
    filename = f"{stem}.pt"
    # The cache is read directly: even with local_files_only, huggingface_hub may ask the network for its own
    # purposes (building request headers), which stalls on a machine without one.
    cached = hub.try_to_load_from_cache(HUB_REPO, filename, cache_dir=cache_dir)
    if isinstance(cached, str) and Path(cached).is_file():
        return Path(cached)
    _check_published(stem, cache_dir)
    if not download:
        raise ResourceUnavailableError(
            f"published weights {stem} are unavailable: they are not in the local Hugging Face cache; run "
            f"`sei weights fetch {stem}` (or pass --download) where the network is available")
    failed = f"published weights {stem} are unavailable: the download failed"
    reason = _offline_reason()
    if reason is not None:
        raise ResourceUnavailableError(f"{failed} ({reason})")
    try:
        return Path(hub.hf_hub_download(HUB_REPO, filename, cache_dir=cache_dir))
    except (hub.errors.LocalEntryNotFoundError, hub.errors.OfflineModeIsEnabled) as error:
        raise ResourceUnavailableError(f"{failed} (no network?)") from error
    except hub.errors.EntryNotFoundError as error:
        raise UnknownNameError("published weights name", stem, {*KNOWN_NAMES, *cached_names(cache_dir)},
                               hint=f"{HUB_REPO} has no file {filename}; `sei weights list --remote` shows every "
                                    "file it has") from error
    except Exception as error:  # connection and HTTP errors from the hub client
        raise ResourceUnavailableError(f"cannot fetch {filename} from {HUB_REPO}: {error}") from error


def resolve_weights(source: str | Path, download: bool = False, cache_dir: str | Path | None = None
                    ) -> tuple[Path, PublishedWeights | None]:
    """A local weights path for ``source`` (a file, a shipped network ``pretrained:NAME``, or a published name),
    and what a published name says.

    :raises WeightsError: if ``source`` is neither an existing file, a shipped network nor a published weights name.
    """
    from sei.models.pretrained import is_pretrained, pretrained_path

    path = Path(source)
    if path.exists():
        return path, None
    if is_pretrained(source):
        return pretrained_path(str(source)), None
    text = str(source)
    info = parse_name(text)
    if info is None and text not in KNOWN_NAMES:
        raise WeightsError(f"weights {text!r}: no such file, and not a published weights name "
                           f"(e.g. {KNOWN_NAMES[0]}, or pretrained:NAME for a network that ships with sei; `sei weights list` "
                           "shows the names)")
    return fetch_weights(text, download=download, cache_dir=cache_dir), info
