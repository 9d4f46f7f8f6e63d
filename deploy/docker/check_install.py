"""Checks an installed ouroboros, as a worker would use it: in the SDK image (the Dockerfile runs this
at build time) and in a fresh venv holding the built wheel (tests/test_packaging.py).

With every connection off this host refused, it runs `ouroboros demo` (the whole pipeline on the
bundled corpus) and checks that the shipped models came from the installed package and scored the
documents: so a worker needs no download at start. Prints one JSON line; exits non-zero on failure.
"""

from __future__ import annotations

import argparse
import glob
import ipaddress
import json
import os
import socket
import sys


class NetworkBlocked(OSError):
    pass


def _local(host: object) -> bool:
    if not isinstance(host, str):
        return True  # a Unix socket path (bytes) or similar
    if host in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def block_network() -> None:
    """Refuses every connection and name lookup that would leave this host."""
    connect = socket.socket.connect
    getaddrinfo = socket.getaddrinfo

    def guarded_connect(sock, address):
        if sock.family in (socket.AF_INET, socket.AF_INET6) and not _local(address[0]):
            raise NetworkBlocked(f"network access attempted: {address}")
        return connect(sock, address)

    def guarded_getaddrinfo(host, *args, **kwargs):
        if not _local(host.decode() if isinstance(host, bytes) else host):
            raise NetworkBlocked(f"name lookup attempted: {host}")
        return getaddrinfo(host, *args, **kwargs)

    socket.socket.connect = guarded_connect
    socket.getaddrinfo = guarded_getaddrinfo


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--output", required=True, help="directory for the demo run's output")
    args = parser.parse_args()
    block_network()

    import fasttext
    import pyarrow.parquet as pq
    from ouroboros.pipeline.cli import main as ouroboros_main
    from ouroboros.transforms.synthetic.score import (
        DEFAULT_MODEL_DIR,
        SyntheticConfig,
        SyntheticScore,
    )

    import ouroboros

    package_dir = os.path.dirname(os.path.abspath(ouroboros.__file__))
    problems = []
    if not str(DEFAULT_MODEL_DIR).startswith(package_dir):
        problems.append(f"shipped synthetic model not inside the package: {DEFAULT_MODEL_DIR}")
    if not hasattr(fasttext, "train_supervised"):
        problems.append("fasttext-predict overwrote fasttext-numpy2-wheel (no train_supervised)")
    code = ouroboros_main(["demo", "--output", args.output])
    rows = [r for f in sorted(glob.glob(os.path.join(args.output, "curated", "*.parquet")))
            for r in pq.read_table(f).to_pylist()]
    stats_path = os.path.join(args.output, "stats.json")
    stats = {}
    if os.path.exists(stats_path):
        with open(stats_path, encoding="utf-8") as f:
            stats = json.load(f)
    shipped = SyntheticScore(SyntheticConfig()).model_name
    scored = sum(r["synthetic_score"] is not None for r in rows)
    if code != 0 or not rows:
        problems.append(f"demo run failed (exit {code}, {len(rows)} curated rows)")
    if not stats.get("accounting", {}).get("holds"):
        problems.append("accounting of input records does not hold")
    if {r["synthetic_model"] for r in rows} != {shipped} or not scored:
        problems.append(f"curated rows not scored by the shipped model {shipped}")
    if not all(r["language"] for r in rows):
        problems.append("language ID left rows without a language")
    print(json.dumps({"ouroboros": ouroboros.__version__, "package_dir": package_dir,
                      "python": sys.version.split()[0], "synthetic_model": shipped,
                      "curated": len(rows), "synthetic_scored": scored,
                      "input_records": stats.get("input_records"), "problems": problems}))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
