"""The in-repo reference ICE peer with switchable faults, for the harness's self-tests (design.md, "tests").

``python -m conformance.reference [--fault NAME ...]`` serves it as a stdio shim; ``--list-faults`` prints the
fault catalogue.
"""

from __future__ import annotations

from .adapter import CAPABILITIES, NAME, ReferenceAdapter
from .agent import AgentSettings, IceAgent
from .checklist import CandidatePair, LocalCandidate, NoPairError, PairState, RemoteCandidate
from .faults import FAULTS, Fault, UnknownFault, check_faults

__all__ = [
    "CAPABILITIES",
    "FAULTS",
    "NAME",
    "AgentSettings",
    "CandidatePair",
    "Fault",
    "IceAgent",
    "LocalCandidate",
    "NoPairError",
    "PairState",
    "ReferenceAdapter",
    "RemoteCandidate",
    "UnknownFault",
    "check_faults",
]
