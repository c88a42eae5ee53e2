"""``sdpg sandbox build-image [--tag TAG] [--docker-host URL]``: build the docker sandbox image offline."""

from __future__ import annotations

import argparse
import sys


def configure(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    build = sub.add_parser("build-image", help="docker import a minimal rootfs with the host's Python (no registry)")
    build.add_argument("--tag", default="sdpg-sandbox:latest", help="image tag (default: %(default)s)")
    build.add_argument("--docker-host", default=None, help="engine URL (default: DOCKER_HOST or the local socket)")


def run(args: argparse.Namespace) -> int:
    from sandboxes.image import build_image

    try:
        image_id = build_image(args.tag, base_url=args.docker_host)
    except RuntimeError as exc:
        print(f"sdpg sandbox: {exc}", file=sys.stderr)
        return 1
    print(f"built {args.tag} ({image_id})")
    return 0
