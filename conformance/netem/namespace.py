"""Optional kernel mode: network namespaces, veth pairs and nftables masquerade (RFC 4787 §4.1, §5 as Linux allows).

Theory of operation: each side gets a host namespace; a NATed side also gets a router namespace whose ``wan0`` faces
the public namespace and masquerades (nftables ``masquerade``); the public namespace bridges the routers (and the
hosts of public sides) with a server address where the runner starts its STUN and TURN servers. Addresses are
private to these namespaces (10.10.0.0/24, 10.20.0.0/24, 203.0.113.0/24), so nothing touches the host's interfaces
or routes; :meth:`NamespaceNetwork.close` deletes every namespace (and with it every veth). The runner starts each IUT
under :meth:`NamespaceNetwork.exec_prefix`. Linux conntrack maps endpoint-independently with port preservation
unless ports collide (``masquerade``) or per destination (IP, port) (``masquerade random``), and filters
address-and-port-dependently; other behaviours, hairpinning, rebinding and seeded loss are the userspace
emulator's. :func:`namespace_support` says why a topology cannot run here;
:func:`conformance.netns.named_unavailable` why this host cannot.
"""

from __future__ import annotations

import logging
import os
import subprocess
from dataclasses import dataclass, field
from itertools import count

from conformance.netem.behavior import Filtering, MappingBehavior, NatBehavior
from conformance.netem.topology import SIDES, Side, Topology
from conformance.netem.topology import topology as _topology
from conformance.netns import named_unavailable
from conformance.verdict import HarnessError

__all__ = [
    "NamespaceNetwork",
    "NamespacePlan",
    "masquerade_options",
    "namespace_support",
    "plan_namespaces",
]

logger = logging.getLogger(__name__)

PUBLIC_NET = "203.0.113"
SERVER_IP = f"{PUBLIC_NET}.100"
_PRIVATE = {"a": "10.10.0", "b": "10.20.0"}
_WAN = {"a": f"{PUBLIC_NET}.1", "b": f"{PUBLIC_NET}.2"}
_DIRECT = {"a": f"{PUBLIC_NET}.11", "b": f"{PUBLIC_NET}.12"}
_TIMEOUT = 10.0
_serial = count()


def masquerade_options(nat: NatBehavior) -> str:
    """The nftables masquerade flags closest to ``nat`` (RFC 4787 §4.1, §5); raises ValueError when none is."""
    if nat.filtering is not Filtering.ADDRESS_AND_PORT_DEPENDENT:
        raise ValueError(f"conntrack filters address-and-port-dependently only, not {nat.filtering.value} (§5)")
    if nat.hairpinning:
        raise ValueError("masquerade does not hairpin (RFC 4787 §6)")
    if nat.mapping is MappingBehavior.ENDPOINT_INDEPENDENT:
        return ""  # conntrack keeps the source port unless it collides: endpoint-independent in practice
    if nat.mapping is MappingBehavior.ADDRESS_AND_PORT_DEPENDENT:
        return " random"  # a random port per conntrack entry, i.e. per destination (IP, port)
    raise ValueError("masquerade has no address-dependent mapping (RFC 4787 §4.1)")


def namespace_support(topology: Topology | str) -> str | None:
    """None when the namespace mode can build ``topology``, else why not."""
    topo = _topology(topology)
    if not topo.peer_to_peer:
        return "a public network that carries only server traffic is userspace-only"
    for side in SIDES:
        spec = topo.side(side)
        if spec.rebind_at is not None:
            return "rebinding is userspace-only"
        if spec.delay:
            return "delay needs tc netem (sch_netem), which the namespace mode does not require"
        if spec.nat is not None:
            try:
                masquerade_options(spec.nat)
            except ValueError as exc:
                return f"side {side}: {exc}"
    return None


@dataclass(frozen=True)
class NamespacePlan:
    """The namespaces and the commands that build and remove them (pure: nothing runs here)."""

    prefix: str
    namespaces: tuple[str, ...]
    setup: tuple[tuple[str, ...], ...]
    hosts: dict[Side, str] = field(default_factory=dict)
    public_ips: dict[Side, str] = field(default_factory=dict)

    def ns(self, role: str) -> str:
        """The namespace name of a role: "a", "b", "nat-a", "nat-b" or "public"."""
        return f"{self.prefix}-{role}"


def plan_namespaces(topology: Topology | str, prefix: str) -> NamespacePlan:
    """Every command to build ``topology`` in namespaces named ``<prefix>-...`` (RFC 4787 §4.1, §5)."""
    topo = _topology(topology)
    reason = namespace_support(topo)
    if reason is not None:
        raise ValueError(f"{topo.name}: {reason}")
    if len(prefix) > 8:
        raise ValueError("the prefix must be at most 8 characters (interface names are limited to 15)")
    pub = f"{prefix}-public"
    cmds: list[tuple[str, ...]] = []
    names = [pub]

    def ex(ns: str, *argv: str) -> None:
        cmds.append(("ip", "netns", "exec", ns, *argv))

    cmds.append(("ip", "netns", "add", pub))
    ex(pub, "ip", "link", "add", "br0", "type", "bridge")
    ex(pub, "ip", "addr", "add", f"{SERVER_IP}/24", "dev", "br0")
    ex(pub, "ip", "link", "set", "br0", "up")
    ex(pub, "ip", "link", "set", "lo", "up")
    hosts: dict[Side, str] = {}
    public_ips: dict[Side, str] = {}
    for side in SIDES:
        spec = topo.side(side)
        host = f"{prefix}-{side}"
        names.append(host)
        cmds.append(("ip", "netns", "add", host))
        ex(host, "ip", "link", "set", "lo", "up")
        port = f"p{side}0"
        if spec.nat is None:
            ip = _DIRECT[side]
            ex(host, "ip", "link", "add", "eth0", "type", "veth", "peer", "name", port, "netns", pub)
            ex(host, "ip", "addr", "add", f"{ip}/24", "dev", "eth0")
            ex(host, "ip", "link", "set", "eth0", "up")
            hosts[side], public_ips[side] = ip, ip
        else:
            router = f"{prefix}-nat-{side}"
            names.append(router)
            lan, ip = _PRIVATE[side], f"{_PRIVATE[side]}.2"
            cmds.append(("ip", "netns", "add", router))
            ex(router, "ip", "link", "set", "lo", "up")
            ex(router, "sysctl", "-qw", "net.ipv4.ip_forward=1")
            ex(host, "ip", "link", "add", "eth0", "type", "veth", "peer", "name", "lan0", "netns", router)
            ex(host, "ip", "addr", "add", f"{ip}/24", "dev", "eth0")
            ex(host, "ip", "link", "set", "eth0", "up")
            ex(host, "ip", "route", "add", "default", "via", f"{lan}.1")
            ex(router, "ip", "addr", "add", f"{lan}.1/24", "dev", "lan0")
            ex(router, "ip", "link", "set", "lan0", "up")
            ex(router, "ip", "link", "add", "wan0", "type", "veth", "peer", "name", port, "netns", pub)
            ex(router, "ip", "addr", "add", f"{_WAN[side]}/24", "dev", "wan0")
            ex(router, "ip", "link", "set", "wan0", "up")
            nft = ("nft", "add")
            ex(router, *nft, "table", "ip", "netem")
            ex(router, *nft, "chain", "ip", "netem", "post", "{ type nat hook postrouting priority srcnat ; }")
            ex(router, *nft, "rule", "ip", "netem", "post", "oifname", "wan0", "masquerade", *masq(spec.nat))
            if spec.loss:
                ex(router, *nft, "chain", "ip", "netem", "loss", "{ type filter hook forward priority 0 ; }")
                ex(router, *nft, "rule", "ip", "netem", "loss", *_loss_rule(spec.loss))
            hosts[side], public_ips[side] = ip, _WAN[side]
        if spec.nat is None and spec.loss:
            ex(host, "nft", "add", "table", "ip", "netem")
            for chain, hook in (("out", "output"), ("in", "input")):
                ex(host, "nft", "add", "chain", "ip", "netem", chain, f"{{ type filter hook {hook} priority 0 ; }}")
                ex(host, "nft", "add", "rule", "ip", "netem", chain, *_loss_rule(spec.loss))
        ex(pub, "ip", "link", "set", port, "master", "br0")
        ex(pub, "ip", "link", "set", port, "up")
    return NamespacePlan(prefix, tuple(names), tuple(cmds), hosts, public_ips)


def masq(nat: NatBehavior) -> tuple[str, ...]:
    """:func:`masquerade_options` as argv words."""
    return tuple(masquerade_options(nat).split())


def _loss_rule(loss: float) -> tuple[str, ...]:
    """Kernel-random loss (not seeded: the namespace mode's loss is not reproducible)."""
    return ("numgen", "random", "mod", "100", "lt", str(round(loss * 100)), "drop")


class NamespaceNetwork:
    """A topology built in network namespaces; the runner starts IUTs and servers under :meth:`exec_prefix`."""

    def __init__(self, plan: NamespacePlan) -> None:
        self.plan = plan
        self._made: list[str] = []

    @classmethod
    def create(cls, topology: Topology | str, prefix: str | None = None) -> NamespaceNetwork:
        """Build the namespaces; raises HarnessError with the reason when this host or topology cannot."""
        reason = named_unavailable()
        if reason is not None:
            raise HarnessError(f"netem namespace mode unavailable: {reason}")
        plan = plan_namespaces(topology, prefix or f"icn{os.getpid() % 10000}{next(_serial) % 10}")
        net = cls(plan)
        try:
            for argv in plan.setup:
                if argv[:3] == ("ip", "netns", "add"):
                    net._made.append(argv[3])
                done = subprocess.run(list(argv), capture_output=True, text=True, timeout=_TIMEOUT)
                if done.returncode != 0:
                    raise HarnessError(f"netem namespace setup failed at {' '.join(argv)!r}: {done.stderr.strip()}")
        except BaseException:
            net.close()
            raise
        logger.info("netem: namespaces %s built", ", ".join(plan.namespaces))
        return net

    def exec_prefix(self, role: str) -> list[str]:
        """The argv prefix that runs a program in a namespace: role "a", "b" (the IUTs) or "public" (servers)."""
        return ["ip", "netns", "exec", self.plan.ns(role)]

    def interface(self, side: Side) -> str:
        """The address the IUT of ``side`` binds on (private behind a NAT, public otherwise)."""
        return self.plan.hosts[side]

    def public_ip(self, side: Side) -> str:
        """The address ``side`` appears from on the public network (RFC 4787 §4.1)."""
        return self.plan.public_ips[side]

    @property
    def server_ip(self) -> str:
        """Where the runner starts the STUN and TURN servers (in the "public" namespace)."""
        return SERVER_IP

    def close(self) -> None:
        """Delete every namespace this network made (their veths go with them)."""
        for name in reversed(self._made):
            done = subprocess.run(["ip", "netns", "del", name], capture_output=True, text=True, timeout=_TIMEOUT)
            if done.returncode != 0:
                logger.warning("netem: could not delete namespace %s: %s", name, done.stderr.strip())
        self._made.clear()

    def __enter__(self) -> NamespaceNetwork:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
