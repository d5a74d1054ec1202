"""The robustness loop: hostile inputs, each followed by a sanity probe, with crash and discard attribution.

Theory of operation (after tlsfuzzer's sanity conversations and Autobahn's fuzzing cases): the case first makes
sure the IUT answers a valid request (its absence is ERROR: nothing can be judged). Then every input of a family
is sent, and after each (or every ``probe_every``) a quick probe must be answered within the usual STUN time. The
first input after which the probe goes unanswered is the culprit; the verdicts, all under the harness's rows
of suites/catalog.toml:

- the process died (a fault signal, or an exit of its own): ROB-CRASH-01;
- it lives but stopped answering: ROB-LIVE-01;
- it answered a malformed input (``HostileInput.malformed``) with a success: ROB-DISC-01.

Every FAIL message carries the input as hex; the case's pcap carries the datagrams.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from conformance.adapters.base import describe_exit, iut_death
from conformance.robustness.inputs import HostileInput
from conformance.tester.endpoint import Address, Endpoint, Received
from conformance.tester.harness import Harness

__all__ = ["Probe", "check_survived", "run_family"]

#: A quick probe: sends one valid request and returns its answer, or None when none came in time.
Probe = Callable[[str], Awaitable[Received | None]]


def check_survived(h: Harness, after: str) -> None:
    """FAIL under ROB-CRASH-01 when the IUT process died (fault signal or exit); ERROR when killed from outside."""
    death = iut_death(h.iut)
    if death is None:
        return
    if death.is_crash or death.signal is None:
        tail = f"; last stderr lines:\n{death.tail}" if death.tail else ""
        h.findings.violation("ROB-CRASH-01", f"the IUT process {describe_exit(death.returncode)} after {after}{tail}")
    raise death  # SIGKILL, SIGTERM: from outside (the OOM killer, an operator), the environment's ERROR


def _successes(ep: Endpoint, sent: HostileInput, since: float) -> list[Received]:
    txid = sent.data[8:20]
    return ep.find(
        lambda r: r.is_stun and r.transaction_id == txid and r.index is not None and r.index.msg_class == 2, since
    )


async def run_family(
    h: Harness,
    inputs: Sequence[HostileInput],
    attacker: Endpoint,
    target: Address,
    probe: Probe,
    *,
    probe_every: int = 1,
) -> int:
    """Send every input from ``attacker`` to ``target``, probing after each ``probe_every``; returns the count sent.

    Raises a :class:`~conformance.verdict.Violation` at the first input that killed the IUT, made it deaf, or
    (when malformed) was answered with a success.
    """
    batch: list[HostileInput] = []
    start = since = attacker.now()
    for n, item in enumerate(inputs, 1):
        if not batch:
            since = attacker.now()
        attacker.send(item.data, target, note=f"hostile {item.family}: {item.label}")
        batch.append(item)
        if n % probe_every and n != len(inputs):
            continue
        reply = await probe(f"after {item.family}/{item.label}")
        culprit = batch[-1] if len(batch) == 1 else None
        where = culprit.describe() if culprit else f"one of the last {len(batch)} inputs, the last: {item.describe()}"
        check_survived(h, f"the input {where}")
        if reply is None:
            h.findings.violation(
                "ROB-LIVE-01", f"a valid request went unanswered (3 s, with retransmissions) after the input {where}"
            )
        for sent in batch:
            if sent.malformed and len(sent.data) >= 20 and _successes(attacker, sent, since):
                answer = _successes(attacker, sent, since)[0]
                h.findings.violation(
                    "ROB-DISC-01",
                    f"the malformed input {sent.describe()} was answered as valid: {answer.describe()}",
                )
        batch = []
    late = [i for i in inputs if i.malformed and len(i.data) >= 20 and _successes(attacker, i, start)]
    if late:
        answer = _successes(attacker, late[0], start)[0]
        h.findings.violation(
            "ROB-DISC-01", f"the malformed input {late[0].describe()} was answered as valid: {answer.describe()}"
        )
    return len(inputs)
