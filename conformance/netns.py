"""Network namespaces, in one place: loopback-only ones for IUTs and whole runs, and named ones for the emulator.

Theory of operation: a loopback-only namespace (``unshare -n``, with ``lo`` brought up) holds a program that must
reach nothing but loopback, such as a WebRTC stack that gathers on every interface. :func:`wrap` runs one program in
a new one (or joins one made by :func:`loopback`, so several programs share a loopback); ``run`` and ``interop``
re-run themselves inside one with :func:`wrap`, marking the child with :data:`ENV` (:func:`inside`). Named
namespaces (``ip netns add``) are the emulator's kernel mode (conformance/netem/namespace.py); :func:`named_unavailable`
says why this host cannot build them. Everything needs root; without it the shims restrict themselves to loopback.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import shutil
import subprocess
from collections.abc import Iterator

__all__ = ["ENV", "NetnsError", "available", "inside", "loopback", "named_unavailable", "wrap"]

logger = logging.getLogger(__name__)

#: Set to "1" in the environment of a command re-run inside its own loopback-only namespace.
ENV = "ICE_CONFORMANCE_INTEROP_NETNS"
_TIMEOUT = 10.0


class NetnsError(RuntimeError):
    """A namespace that should have been made could not be."""


def _root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


@functools.cache
def available() -> bool:
    """Whether ``unshare -n`` works here (root, and the kernel allows new network namespaces)."""
    if not _root():
        return False
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        return False
    try:
        proc = subprocess.run(["unshare", "-n", "true"], capture_output=True, timeout=_TIMEOUT, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return proc.returncode == 0


def wrap(argv: list[str], join: str | None = None) -> list[str]:
    """Run ``argv`` in a private network namespace holding only ``lo`` (brought up), when possible.

    Without ``join`` every call makes a NEW namespace, so the wrapped program can reach nothing outside it:
    not the harness's sockets, not another wrapped shim. To put several programs on one shared loopback,
    pass ``join``, the path of a namespace from :func:`loopback` (``nsenter --net=PATH``).
    Falls back to ``argv`` unchanged (and logs it) when not root or ``unshare -n`` fails; the shims
    then rely on their own loopback-only restrictions.
    """
    if join is not None:
        return ["nsenter", f"--net={join}", "--", *argv]
    if available():
        return ["unshare", "-n", "sh", "-c", 'ip link set lo up && exec "$0" "$@"', *argv]
    logger.info(
        "no private network namespace available (needs root and unshare -n); %s restricts itself to loopback",
        argv[-1] if argv else "the adapter",
    )
    return list(argv)


@contextlib.contextmanager
def loopback() -> Iterator[str | None]:
    """A private network namespace holding only ``lo`` (up), kept alive for the ``with`` block.

    Yields the path to pass as ``wrap(argv, join=path)`` so that several shims share one loopback,
    or None when namespaces are not available here. (The harness's own Python sockets stay outside it.)
    """
    if not available() or shutil.which("nsenter") is None:
        yield None
        return
    holder = subprocess.Popen(
        ["unshare", "-n", "sh", "-c", "ip link set lo up && echo ready && exec sleep 1000000"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert holder.stdout is not None
        if holder.stdout.readline().strip() != b"ready":
            raise NetnsError("could not create a loopback-only network namespace (unshare -n)")
        yield f"/proc/{holder.pid}/ns/net"
    finally:
        holder.kill()
        holder.wait()


def inside() -> bool:
    """Whether this process runs in the loopback-only namespace its command re-ran itself in (:data:`ENV`)."""
    return os.environ.get(ENV) == "1"


def named_unavailable() -> str | None:
    """None when this host can build named namespaces with nftables (the emulator's kernel mode), else why not."""
    if os.name != "posix" or not hasattr(os, "geteuid"):
        return "network namespaces need Linux"
    if not _root():
        return "network namespaces need root"
    for tool in ("ip", "nft"):
        if shutil.which(tool) is None:
            return f"the {tool!r} command is missing (apt-get install -y iproute2 nftables)"
    probe = f"icnprobe{os.getpid()}"
    try:
        made = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True, timeout=_TIMEOUT)
        if made.returncode != 0:
            return f"'ip netns add' failed: {made.stderr.strip()}"
        nft = subprocess.run(
            ["ip", "netns", "exec", probe, "nft", "add", "table", "ip", "probe"],
            capture_output=True,
            text=True,
            timeout=_TIMEOUT,
        )
        if nft.returncode != 0:
            return f"nftables does not work in a namespace: {nft.stderr.strip()}"
    except (OSError, subprocess.SubprocessError) as exc:
        return f"namespace probe failed: {exc}"
    finally:
        subprocess.run(["ip", "netns", "del", probe], capture_output=True, timeout=_TIMEOUT, check=False)
    return None
