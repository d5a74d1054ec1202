"""Smoke tests of the browser shims (Chromium, Firefox ESR via puppeteer-core) and the libre C shim.

Cheap on purpose: per IUT one same-stack pair connecting through the stdio contract (the browsers inside one
loopback-only namespace, as `ice-conformance run` puts them), and the error a missing browser gives. The full
default tier of each runs through `ice-conformance run` (docs/results-*.md); the browser ones are opt-in here.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conformance import netns
from conformance.adapters import libre, node
from conformance.adapters.registry import get_iut
from conformance.adapters.stdio import StdioAdapter
from tests.test_node_shims import DEADLINE, connect_pair, is_data, is_state, run

BROWSERS = ["chromium", "firefox"]


def _browser_missing(name: str) -> str | None:
    spec = get_iut(name)
    binary = spec.node.binary if spec.node else None
    if not node.node_available():
        return "node (Node.js) is not installed"
    if binary is None or shutil.which(binary) is None:
        return f"{binary} is not installed (apt-get install {' '.join(spec.debian_packages)})"
    if not netns.available():
        return "the browsers run only inside a loopback-only namespace (needs root and unshare -n)"
    return None


@pytest.mark.parametrize("name", BROWSERS)
def test_missing_browser_is_an_error_naming_the_package(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(f"ICE_CONFORMANCE_{name.upper()}", "/nonexistent/browser")
    with pytest.raises(node.NodeShimMissing, match=rf"apt-get install {get_iut(name).debian_packages[0]}\b"):
        get_iut(name).make()


@pytest.mark.parametrize("name", BROWSERS)
def test_list_reads_the_version_from_the_browser(name: str) -> None:
    if _browser_missing(name):
        pytest.skip(str(_browser_missing(name)))
    text = get_iut(name).installed_version()
    assert text and any(ch.isdigit() for ch in text), text


@pytest.mark.parametrize("name", BROWSERS)
def test_browser_pair_connects_in_a_loopback_namespace(name: str) -> None:
    """Two pages of one browser each (one shim per side), offerer controlling: both report the pair, then closed."""
    reason = _browser_missing(name)
    if reason:
        pytest.skip(reason)
    argv, env = node.launch(name)  # npm ci happens here, outside the namespace

    async def main() -> None:
        with netns.loopback() as ns:
            assert ns is not None
            a = StdioAdapter(netns.wrap(argv, join=ns), env=env, name=name, request_timeout=DEADLINE)
            b = StdioAdapter(netns.wrap(argv, join=ns), env=env, name=name, request_timeout=DEADLINE)
            async with a, b:
                info = await a.initialize()
                await b.initialize()
                assert info.capabilities == node.capabilities(name)
                assert any(ch.isdigit() for ch in info.version), info.version
                agent_a, _agent_b, ea, _eb, took = await connect_pair(a, b, ["127.0.0.1"])
                print(f"{name} <-> {name}: connected in {took * 1000:.0f} ms")  # noqa: T201
                await a.close(agent_a)
                await ea.expect(is_state(agent_a, "closed"), "state closed")

    run(main)


def test_chromium_interop_cells_run_on_a_routable_side_address(tmp_path: Path) -> None:
    """Chromium never gathers on the emulator's loopback side addresses; inside the interop run's own namespace its
    side gets a routable one (docs/interop.md, "Namespaces"), so its cells connect instead of being UNSUPPORTED."""
    reason = _browser_missing("chromium")
    if reason:
        pytest.skip(reason)
    node.launch("chromium")  # npm ci outside the namespace
    argv = [sys.executable, "-m", "conformance.interop", "interop", "--iut", "chromium", "--iut", "aioice"]
    argv += ["--must-include", "chromium", "--topology", "direct", "-n", "2", "--out", str(tmp_path)]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    records = json.loads((tmp_path / "summary.json").read_text())["records"]
    assert len(records) == 3
    for r in records:
        assert r["verdict"] == "PASS" and r["connected"], r["message"]
        for side, iut in zip("ab", r["pair"], strict=True):
            if iut == "chromium":
                base = re.search(r" raddr (\S+)", r["selected"][side]["local_candidate"])
                address = base.group(1) if base else r["selected"][side]["local_candidate"].split()[4]
                assert address.startswith(f"10.{10 if side == 'a' else 20}."), r["selected"][side]


def test_libre_pair_connects_and_carries_data() -> None:
    """libre's icem on both sides: the pair is selected, and datagrams go both ways on it."""
    if libre.libre_version() is None or shutil.which("gcc") is None:
        pytest.skip(f"libre-dev is not installed ({libre.install_hint()})")
    argv = libre.argv()

    async def main() -> None:
        async with StdioAdapter(argv, name="libre") as a, StdioAdapter(argv, name="libre") as b:
            info = await a.initialize()
            await b.initialize()
            assert info.version == libre.libre_version()
            agent_a, agent_b, ea, eb, _took = await connect_pair(a, b, ["127.0.0.1"])
            await a.send(agent_a, 1, b"ping")
            await eb.expect(is_data(agent_b, b"ping"), "data ping")
            await b.send(agent_b, 1, b"pong")
            await ea.expect(is_data(agent_a, b"pong"), "data pong")

    run(main)


def test_libre_refuses_what_it_does_not_declare() -> None:
    """trickle and TURN are not wired: create_agent answers -32602 instead of silently ignoring them."""
    if libre.libre_version() is None:
        pytest.skip(f"libre-dev is not installed ({libre.install_hint()})")
    proc = subprocess.run(
        libre.argv(),
        input='{"jsonrpc":"2.0","id":1,"method":"create_agent","params":{"role":"controlling","trickle":true}}\n'
        '{"jsonrpc":"2.0","id":2,"method":"restart","params":{"agent":"a1"}}\n',
        capture_output=True,
        text=True,
        timeout=DEADLINE,
        check=False,
    )
    lines = proc.stdout.splitlines()
    assert '"code":-32602' in lines[0] and "trickle" in lines[0], lines
    assert '"code":-32601' in lines[1], lines
    assert Path(libre.argv()[0]).is_file()
