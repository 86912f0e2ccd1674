"""``sei weights``: list the networks that ship with sei, and list and fetch the authors' published weights
(Hugging Face hub).

Shipped networks are used as ``--weights pretrained:NAME``; published weights are cached in Hugging Face's
standard cache and then work offline, anywhere ``--weights`` is accepted.
"""

from __future__ import annotations

import argparse

__all__ = ["add_parser", "run_fetch", "run_list", "shipped_table", "weights_table"]


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("weights", help="list or fetch published weights", description=__doc__)
    commands = parser.add_subparsers(dest="weights_command", metavar="{list,fetch}", required=True)
    listing = commands.add_parser("list", help="the shipped networks, and the known and cached published weights")
    listing.add_argument("--remote", action="store_true", help="ask the hub for every file (needs the network)")
    listing.set_defaults(run=run_list)
    fetch = commands.add_parser("fetch", help="download published weights into the local cache")
    fetch.add_argument("names", nargs="+", help="published weights names, e.g. Div2K-Train_Deblurring_Gaussian_R2_Noise5_SEI")
    fetch.set_defaults(run=run_fetch)


def weights_table(names: list[str], cached: set[str]) -> list[str]:
    """The lines of ``sei weights list``: each name, whether it is in the local cache (``cached``: yes or no) and
    the settings the name encodes."""
    from sei.models.hub import parse_name

    width = max([len("name"), *map(len, names)])
    lines = [f"  {'name':<{width}}  cached  settings"]
    for name in names:
        info = parse_name(name)
        what = info.describe() if info else "(settings not encoded in the name)"
        lines.append(f"  {name:<{width}}  {'yes' if name in cached else 'no':<6}  {what}")
    return lines


def shipped_table() -> list[str]:
    """The lines of ``sei weights list`` for the networks that ship with sei."""
    from sei.models.pretrained import pretrained_networks

    networks = list(pretrained_networks().values())
    width = max([len("name"), *(len(n.weights_name) for n in networks)])
    lines = [f"  {'name':<{width}}  sample PSNR  what"]
    for network in networks:
        lines.append(f"  {network.weights_name:<{width}}  {network.val_psnr:8.2f} dB  {network.description}")
    return lines


def run_list(args: argparse.Namespace) -> int:
    from sei.models.hub import HUB_REPO, KNOWN_NAMES, cache_folder, cached_names, remote_names

    print("networks that ship with sei (--weights pretrained:NAME; no download):")
    for line in shipped_table():
        print(line)
    cached = set(cached_names())
    names = remote_names() if args.remote else sorted(set(KNOWN_NAMES) | cached)
    print(f"published weights in {HUB_REPO} ({'hub listing' if args.remote else 'known or cached'}; "
          f"cache: {cache_folder()}):")
    for line in weights_table(names, cached):
        print(line)
    if not args.remote:
        print("`sei weights list --remote` asks the hub for every file; `sei weights fetch NAME` caches one.")
    return 0


def run_fetch(args: argparse.Namespace) -> int:
    from sei.models.hub import fetch_weights

    for name in args.names:
        path = fetch_weights(name, download=True)
        print(f"{name}: {path}")
    return 0
