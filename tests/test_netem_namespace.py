"""Self-tests of the optional namespace mode (veth + nftables masquerade); skipped with the reason where unavailable."""

from __future__ import annotations

import json
import logging
import select
import subprocess
import sys

import pytest

from conformance.netem import TOPOLOGIES, Filtering, MappingBehavior, NatBehavior
from conformance.netem.namespace import (
    SERVER_IP,
    NamespaceNetwork,
    masquerade_options,
    namespace_support,
    plan_namespaces,
)
from conformance.netns import named_unavailable

logger = logging.getLogger(__name__)

SERVER = """
import socket, select, sys
socks = []
for port in (4001, 4002):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind((sys.argv[1], port)); socks.append(s)
print("ready", flush=True)
for _ in range(2):
    ready, _, _ = select.select(socks, [], [], 10)
    for s in ready:
        data, src = s.recvfrom(2048)
        s.sendto(f"{src[0]}:{src[1]}".encode(), src)
"""

CLIENT = """
import json, socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(5); s.bind((sys.argv[2], 0))
seen = []
for port in (4001, 4002):
    s.sendto(b"probe", (sys.argv[1], port))
    seen.append(s.recvfrom(2048)[0].decode())
print(json.dumps({"local": s.getsockname()[1], "seen": seen}))
"""


def test_namespace_masquerade_options_follow_rfc4787() -> None:
    apdf = Filtering.ADDRESS_AND_PORT_DEPENDENT
    assert masquerade_options(NatBehavior(filtering=apdf)) == ""
    symmetric = NatBehavior(mapping=MappingBehavior.ADDRESS_AND_PORT_DEPENDENT, filtering=apdf)
    assert masquerade_options(symmetric) == " random"
    with pytest.raises(ValueError, match="§5"):
        masquerade_options(NatBehavior())
    supported = {name for name in TOPOLOGIES if namespace_support(name) is None}
    assert {"direct", "nat-eim-apdf-one", "symmetric-both"} <= supported
    assert namespace_support("nat-eim-eif-one") is not None and namespace_support("rebinding") is not None


def test_namespace_plan_is_pure_and_names_every_namespace() -> None:
    plan = plan_namespaces("nat-eim-apdf-one", "icnt")
    assert plan.namespaces == ("icnt-public", "icnt-a", "icnt-nat-a", "icnt-b")
    assert all(argv[0] == "ip" for argv in plan.setup)
    assert any("masquerade" in " ".join(argv) for argv in plan.setup)
    assert plan.hosts["a"].startswith("10.10.") and plan.public_ips["b"] == plan.hosts["b"]


def _probe(net: NamespaceNetwork, side: str) -> dict[str, object]:
    server = subprocess.Popen(
        [*net.exec_prefix("public"), sys.executable, "-c", SERVER, SERVER_IP],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        ready, _, _ = select.select([server.stdout], [], [], 10)
        assert ready and server.stdout.readline().strip() == "ready"
        done = subprocess.run(
            [*net.exec_prefix(side), sys.executable, "-c", CLIENT, SERVER_IP, net.interface(side)],  # type: ignore[arg-type]
            capture_output=True,
            text=True,
            timeout=15,
        )
        assert done.returncode == 0, done.stderr
        result: dict[str, object] = json.loads(done.stdout)
        return result
    finally:
        server.kill()
        server.wait(timeout=5)


@pytest.mark.parametrize(("name", "distinct"), [("nat-eim-apdf-one", 1), ("symmetric-one", 2)])
def test_namespace_mode_maps_like_rfc4787(name: str, distinct: int) -> None:
    reason = named_unavailable()
    if reason is not None:
        logger.warning("netem namespace mode skipped: %s", reason)
        pytest.skip(f"namespace mode unavailable: {reason}")
    with NamespaceNetwork.create(name) as net:
        made = net.plan.namespaces
        result = _probe(net, "a")
        seen = result["seen"]
        assert isinstance(seen, list)
        assert {s.split(":")[0] for s in seen} == {net.public_ip("a")}  # the NAT's address, not the private one
        assert len(set(seen)) == distinct
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    assert not any(ns in listed.split() for ns in made), "namespaces must be removed"
