"""``ice-conformance fuzz``: a seeded campaign of mutated valid messages against one IUT, with sanity probes.

Theory of operation: the campaign opens the same harness a case uses (adapter, capture, endpoints), sets up one
valid exchange (an ICE session with a scripted peer, or a TURN server with a challenged client) and captures the
real messages of that exchange. Each input is then either a valid message with one attribute (or the header)
replaced by Scapy's ``fuzz()`` of its layer, or a captured datagram with byte-level mutations (bit flips,
interesting values, lying 16-bit lengths, insertions, deletions, truncation, splices). The inputs go from an
attacker endpoint; every ``probe_every`` inputs a valid request must still be answered (the probe of
:mod:`conformance.robustness.probe`) and the process must be alive.

The campaign stops at the first crash or loss of function, or when the budget is spent. On a finding it writes a
reproducer: the pcap of the last batch, and a minimal input found by bisecting that batch against a fresh IUT
(each half replayed after a restart; a single datagram when one suffices). A Jinja2 page (``report.html``) and
``summary.json`` describe the campaign. Replayed inputs keep their original bytes: credentials of the fresh IUT
differ, so a finding that needs a valid MESSAGE-INTEGRITY may not reproduce (the page says whether it did).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as _dt
import json
import random
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from scapy.packet import fuzz as scapy_fuzz

from conformance import __version__
from conformance.adapters.base import Adapter, IutCrashed, describe_exit, iut_death
from conformance.packets import ALLOCATE, CHANNEL_BIND, REQUEST, STUN, attr
from conformance.packets.attributes import StunAttribute
from conformance.tester.capture import Capture, Datagram, write_pcap
from conformance.tester.endpoint import Address, Endpoint, Received
from conformance.tester.harness import Harness
from conformance.tester.turn_client import TurnClient
from conformance.tester.turn_steps import start_turn_server
from conformance.verdict import Findings, HarnessError, UnsupportedFeature

__all__ = ["Campaign", "FuzzResult", "Mutator", "exit_code", "run_campaign"]

PROBE_TIMEOUT = 3.0
_INTERESTING16 = (0, 1, 3, 4, 0x7F, 0x80, 0xFF, 0x100, 0x200, 0x201, 0x7FFF, 0x8000, 0xFFFC, 0xFFFF)


@dataclass
class FuzzResult:
    """What a campaign did and found; written as ``summary.json`` and rendered as ``report.html``."""

    iut: str
    target: str
    seed: int
    budget: float
    probe_every: int
    started: str = ""
    iut_version: str = ""
    inputs: int = 0
    probes: int = 0
    seconds: float = 0.0
    found: str | None = None
    kind: str | None = None  # "crash", "exit" or "deaf"
    last_batch: list[str] = field(default_factory=list)  # hex of the inputs since the last good probe
    minimal: list[str] = field(default_factory=list)  # hex of the minimal reproducing input(s)
    reproduced: bool | None = None
    files: dict[str, str] = field(default_factory=dict)
    mutators: dict[str, int] = field(default_factory=dict)
    seeds: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def rate(self) -> float:
        """Inputs per second over the campaign."""
        return self.inputs / self.seconds if self.seconds > 0 else 0.0


class Mutator:
    """Seeded mutations: Scapy ``fuzz()`` of one layer of a valid message, or byte-level edits of captured bytes."""

    def __init__(self, seed: int, messages: list[STUN], captured: list[bytes]) -> None:
        self.rng = random.Random(seed)
        self.messages = messages
        self.captured = captured
        self.counts: dict[str, int] = {}

    def __call__(self) -> bytes:
        """One mutated datagram."""
        pick = self.rng.random()
        if pick < 0.4 and self.messages:
            data, names = self._scapy()
        else:
            data, names = self._bytes()
        for name in names:
            self.counts[name] = self.counts.get(name, 0) + 1
        return data

    def _scapy(self) -> tuple[bytes, list[str]]:
        base = self.rng.choice(self.messages)
        random.seed(self.rng.getrandbits(64))  # Scapy's random field values draw from the module's generator
        msg = base.copy()
        msg.transaction_id = self.rng.randbytes(12)
        attrs: list[StunAttribute] = list(msg.attributes)
        if not attrs or self.rng.random() < 0.1:
            fuzzed = scapy_fuzz(STUN(attributes=attrs, key=msg.key, transaction_id=msg.transaction_id))
            return self._build(fuzzed, base), ["scapy-fuzz header"]
        i = self.rng.randrange(len(attrs))
        layer = type(attrs[i])
        keep_type = self.rng.random() < 0.8
        fresh = layer(type=attrs[i].type) if keep_type else layer()
        attrs[i] = scapy_fuzz(fresh)
        for a in attrs:
            if isinstance(a, attr.MessageIntegrity):
                a.hmac = None
            elif isinstance(a, attr.Fingerprint):
                a.crc = None
        msg.attributes = attrs
        msg.length = None
        return self._build(msg, base), [f"scapy-fuzz {layer.__name__}"]

    def _build(self, msg: STUN, original: STUN) -> bytes:
        try:
            return bytes(msg)
        except Exception:  # a fuzzed value the layer cannot encode (e.g. MI of a fuzzed length): mutate bytes
            return self._flip(bytes(original))

    def _flip(self, data: bytes) -> bytes:
        buf = bytearray(data)
        if buf:
            i = self.rng.randrange(len(buf))
            buf[i] ^= 1 << self.rng.randrange(8)
        return bytes(buf)

    def _bytes(self) -> tuple[bytes, list[str]]:
        base = self.rng.choice(self.captured) if self.captured else bytes(self.rng.choice(self.messages))
        buf = bytearray(base)
        ops = self.rng.randint(1, 4)
        names = []
        for _ in range(ops):
            op = self.rng.randrange(7)
            n = len(buf)
            if op == 0 and n:
                i = self.rng.randrange(n)
                buf[i] ^= 1 << self.rng.randrange(8)
                names.append("bitflip")
            elif op == 1 and n:
                buf[self.rng.randrange(n)] = self.rng.choice((0, 0xFF, 0x7F, 0x80, 0x01))
                names.append("byte")
            elif op == 2 and n >= 4:
                # A 16-bit length at a 4-aligned offset: the header's length or an attribute's.
                i = self.rng.randrange(0, n - 3, 4) + 2
                buf[i : i + 2] = self.rng.choice(_INTERESTING16).to_bytes(2, "big")
                names.append("length")
            elif op == 3:
                i = self.rng.randrange(n + 1)
                buf[i:i] = self.rng.randbytes(self.rng.choice((1, 2, 4, 8, 64)))
                names.append("insert")
            elif op == 4 and n:
                i = self.rng.randrange(n)
                del buf[i : i + self.rng.choice((1, 4, 8))]
                names.append("delete")
            elif op == 5 and n:
                del buf[self.rng.randrange(n) :]
                names.append("truncate")
            elif op == 6 and n >= 8:
                i = self.rng.randrange(20, n) if n > 20 else 0
                j = min(n, i + self.rng.choice((4, 8, 16, 32)))
                buf[j:j] = buf[i:j] * self.rng.randint(1, 8)
                names.append("splice")
        return bytes(buf[:65507]), [f"bytes {n}" for n in names] or ["bytes unchanged"]


@dataclass
class _Setup:
    """One live exchange: where to send, how to probe, what is valid."""

    attacker: Endpoint
    target: Address
    probe: Callable[[str], Any]
    messages: list[STUN]
    captured: Callable[[], list[bytes]]


async def _setup(h: Harness, target: str, options: dict[str, Any]) -> _Setup:
    if target == "ice":
        role = "controlled" if "controlled" in h.info.capabilities else "controlling"
        session = await h.session(role, options=dict(options))
        peer = session.peer
        where = session.iut_address
        first = await peer.transact(peer.check(), where, timeout=PROBE_TIMEOUT, note="sanity probe")
        if first is None:
            raise HarnessError(f"the IUT did not answer a valid check to {where[0]}:{where[1]} before the campaign")

        async def probe(when: str) -> Received | None:
            return await peer.transact(peer.check(), where, timeout=PROBE_TIMEOUT, note=f"probe {when}")

        attacker = await h.endpoint("attacker")
        messages = [peer.check(), peer.check(use_candidate=True), peer.success(first)]

        def captured() -> list[bytes]:
            # Real messages of the exchange: the IUT's checks and responses as received, and the peer's own.
            return [r.data for r in peer.endpoint.history[:64] if r.is_stun] + [bytes(m) for m in messages]

        return _Setup(attacker, where, probe, messages, captured)
    if target == "turn-server":
        srv = await start_turn_server(h, options=dict(options))
        client = await TurnClient.open(h, srv, label="valid client")
        first = await client.allocate()
        if first is None:
            raise HarnessError("the TURN server did not answer a valid Allocate before the campaign")
        prober = await TurnClient.open(h, srv, label="probe client")

        async def probe_turn(when: str) -> Received | None:
            request = prober.build(ALLOCATE, REQUEST, [attr.RequestedTransport()], auth=False)
            return await prober.transact(request, PROBE_TIMEOUT, note=f"probe {when}")

        attacker_client = await TurnClient.open(h, srv, label="attacker")
        await attacker_client.challenge()
        xpeer = attr.XorPeerAddress(family=1, address="127.0.0.1", port=9)
        messages = [
            attacker_client.build(ALLOCATE, REQUEST, [attr.RequestedTransport()]),
            attacker_client.build(0x004, REQUEST, [attr.Lifetime(lifetime=600)]),
            attacker_client.build(0x008, REQUEST, [xpeer]),
            attacker_client.build(CHANNEL_BIND, REQUEST, [attr.ChannelNumber(channel=0x4000), xpeer]),
            attacker_client.build(0x006, 1, [xpeer, attr.Data(data=b"fuzz")]),
        ]

        def captured_turn() -> list[bytes]:
            got = [r.data for r in client.endpoint.history[:32]] + [
                r.data for r in attacker_client.endpoint.history[:8]
            ]
            return got + [bytes(m) for m in messages] + [b"\x40\x00\x00\x04data"]

        return _Setup(attacker_client.endpoint, srv.address, probe_turn, messages, captured_turn)
    raise HarnessError(f"unknown target {target!r}: ice or turn-server")


class _Progress:
    """A one-line progress report on stderr: inputs, inputs per second, probes, time left."""

    def __init__(self, label: str, budget: float, enabled: bool) -> None:
        self.label = label
        self.budget = budget
        self.enabled = enabled
        self.start = time.monotonic()
        self.last = 0.0

    def update(self, inputs: int, probes: int, force: bool = False) -> None:
        now = time.monotonic()
        if not self.enabled or (now - self.last < 0.5 and not force):
            return
        self.last = now
        spent = now - self.start
        rate = inputs / spent if spent > 0 else 0.0
        left = max(0.0, self.budget - spent)
        sys.stderr.write(f"\r{self.label}: {inputs} inputs, {rate:.0f} inputs/s, {probes} probes, {left:.0f} s left ")
        sys.stderr.flush()

    def done(self) -> None:
        if self.enabled:
            sys.stderr.write("\n")


@dataclass
class Campaign:
    """The parameters of one campaign."""

    iut: str
    seed: int
    budget: float
    target: str = "ice"
    probe_every: int = 50
    out: Path = Path("reports/fuzz")
    options: dict[str, Any] = field(default_factory=dict)
    progress: bool = True
    make: Callable[[], Adapter] | None = None


async def _open(c: Campaign) -> tuple[Adapter, Harness]:
    from conformance.adapters.registry import make_adapter

    adapter = c.make() if c.make is not None else make_adapter(c.iut)
    try:
        info = await asyncio.wait_for(adapter.initialize(), 30)
    except BaseException:
        await adapter.shutdown()
        raise
    return adapter, Harness(adapter, info, Findings(), Capture(), "127.0.0.1")


async def _close(adapter: Adapter, h: Harness) -> None:
    try:
        await asyncio.wait_for(h.aclose(), 15)
    except Exception as exc:  # a hung or dead IUT: its clean-up fails, the campaign's result stands
        h.findings.info(f"clean-up: {exc}")
    with contextlib.suppress(Exception):
        await asyncio.wait_for(adapter.shutdown(), 15)


def _dead(h: Harness) -> IutCrashed | None:
    death = iut_death(h.iut)
    return death if death is not None and (death.is_crash or death.signal is None) else None


async def _replay(c: Campaign, batch: list[bytes]) -> bool:
    """Whether sending ``batch`` to a fresh IUT kills it or makes it deaf (one bisection step)."""
    adapter, h = await _open(c)
    try:
        s = await _setup(h, c.target, c.options)
        for data in batch:
            s.attacker.send(data, s.target, note="replay")
        reply = await s.probe("after the replay")
        return _dead(h) is not None or reply is None
    finally:
        await _close(adapter, h)


async def _bisect(c: Campaign, batch: list[bytes], notes: list[str]) -> tuple[list[bytes], bool]:
    """The smallest failing part of ``batch`` found by halving (a single input when one suffices)."""
    if not await _replay(c, batch):
        notes.append(f"the last batch of {len(batch)} inputs did not reproduce the finding on a fresh IUT")
        return batch, False
    current = batch
    while len(current) > 1:
        half = len(current) // 2
        first, second = current[:half], current[half:]
        if await _replay(c, second):
            current = second
        elif await _replay(c, first):
            current = first
        else:
            notes.append(f"no half of {len(current)} inputs fails alone: the finding needs inputs of both halves")
            break
    return current, True


def _datagrams(inputs: list[bytes], src: Address, dst: Address) -> list[Datagram]:
    now = time.time()
    return [Datagram(now + i * 1e-6, src, dst, data, "out", note="minimal input") for i, data in enumerate(inputs)]


def _render(result: FuzzResult, out: Path) -> Path:
    env = Environment(
        loader=PackageLoader("conformance.robustness", "templates"),
        autoescape=select_autoescape(["html", "j2"], default=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    page = env.get_template("fuzz.html.j2").render(r=result, version=__version__)
    path = out / "report.html"
    path.write_text(page, encoding="utf-8")
    return path


async def run_campaign(c: Campaign) -> FuzzResult:
    """Run the campaign; raises AdapterError, HarnessError or UnsupportedFeature when it cannot start."""
    out = c.out
    out.mkdir(parents=True, exist_ok=True)
    result = FuzzResult(c.iut, c.target, c.seed, c.budget, c.probe_every)
    result.started = _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    adapter, h = await _open(c)
    result.iut_version = h.info.version
    if c.target == "turn-server" and "turn_server" not in h.info.capabilities:
        await _close(adapter, h)
        raise UnsupportedFeature(f"{h.info.name} does not declare turn_server")
    if c.target == "ice" and not {"controlling", "controlled"} & h.info.capabilities:
        await _close(adapter, h)
        raise UnsupportedFeature(f"{h.info.name} is not an ICE agent")
    progress = _Progress(f"fuzz {c.iut}", c.budget, c.progress)
    batch_src: Address = ("127.0.0.1", 0)
    try:
        s = await _setup(h, c.target, c.options)
        batch_src = s.attacker.address
        captured = s.captured()
        mutate = Mutator(c.seed, s.messages, captured)
        result.seeds = len(s.messages) + len(captured)
        loop = asyncio.get_running_loop()
        start = loop.time()
        batch: list[bytes] = []
        batch_start = time.time()
        while loop.time() - start < c.budget:
            data = mutate()
            s.attacker.send(data, s.target, note="fuzz")
            batch.append(data)
            result.inputs += 1
            if len(batch) < c.probe_every:
                if result.inputs % 16 == 0:
                    await asyncio.sleep(0)  # let the loop deliver the IUT's answers (not a wait: no delay)
                continue
            reply = await s.probe(f"after input {result.inputs}")
            result.probes += 1
            death = _dead(h)
            if death is not None or reply is None:
                result.kind = "deaf" if death is None else ("crash" if death.is_crash else "exit")
                what = (
                    f"the IUT process {describe_exit(death.returncode)}"
                    if death is not None
                    else f"the IUT stopped answering valid requests ({PROBE_TIMEOUT:g} s with retransmissions)"
                )
                result.found = f"{what} within inputs {result.inputs - len(batch) + 1}-{result.inputs}"
                break
            s.attacker.history.clear()
            h.capture.discard_before(batch_start)
            batch = []
            batch_start = time.time()
            progress.update(result.inputs, result.probes)
        result.seconds = loop.time() - start
    finally:
        progress.update(result.inputs, result.probes, force=True)
        progress.done()
        diagnostics = adapter.diagnostics()
        await _close(adapter, h)
    result.mutators = dict(sorted(mutate.counts.items()))
    if result.found is not None:
        result.last_batch = [d.hex() for d in batch]
        pcap = write_pcap([d for d in h.capture.datagrams if d.time >= batch_start - 1], out / "last-batch.pcap")
        result.files["last_batch_pcap"] = pcap.name
        (out / "iut-diagnostics.txt").write_text(diagnostics[-200_000:], encoding="utf-8")
        result.files["diagnostics"] = "iut-diagnostics.txt"
        minimal, result.reproduced = await _bisect(c, batch, result.notes)
        result.minimal = [d.hex() for d in minimal]
        write_pcap(_datagrams(minimal, batch_src, ("127.0.0.1", 9)), out / "minimal.pcap")
        (out / "minimal.hex").write_text("\n".join(result.minimal) + "\n", encoding="utf-8")
        result.files.update(minimal_pcap="minimal.pcap", minimal_hex="minimal.hex")
    result.files["summary"] = "summary.json"
    result.files["report"] = "report.html"
    (out / "summary.json").write_text(
        json.dumps({**asdict(result), "inputs_per_second": round(result.rate, 1)}, indent=2), encoding="utf-8"
    )
    _render(result, out)
    return result


def exit_code(result: FuzzResult) -> int:
    """1 when the campaign found something, 0 when the budget ran out clean."""
    return 1 if result.found is not None else 0
