"""A scripted STUN Binding server on a harness endpoint, for IUTs that gather through ``stun_servers`` (RFC 8489 §6.3).

By default it answers every Binding request with a success carrying XOR-MAPPED-ADDRESS (the request's source) and
FINGERPRINT, as a plain STUN server does (RFC 8489 §6.3.1.1). A case replaces the answer with :attr:`responder`
(request -> bytes, or None for silence), e.g. a 300 Try Alternate with ALTERNATE-SERVER (RFC 8489 §10). Every
request received is kept in :attr:`requests`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from conformance.packets import STUN, ErrorCode, attr
from conformance.tester.capture import Capture
from conformance.tester.endpoint import Address, Endpoint, Received

__all__ = ["StunServer"]

BINDING = 0x001
REQUEST = 0


class StunServer:
    """A Binding server on one endpoint; the answer is scriptable per request."""

    def __init__(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint
        self.requests: list[Received] = []
        #: Overrides the answer: a function (request) -> bytes to send, or None for silence.
        self.responder: Callable[[Received], bytes | None] | None = None
        self._unhook = endpoint.on_datagram(self._on_datagram)

    @classmethod
    async def open(cls, capture: Capture, host: str = "127.0.0.1", label: str = "STUN server") -> StunServer:
        """A server on a new endpoint."""
        return cls(await Endpoint.open(capture, host, 0, label))

    @property
    def address(self) -> Address:
        """Where the server listens."""
        return self.endpoint.address

    @property
    def spec(self) -> str:
        """The ``host:port`` form of ``stun_servers`` (docs/adapter-contract.md)."""
        host, port = self.address
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    @staticmethod
    def success(request: Received) -> bytes:
        """A Binding success with XOR-MAPPED-ADDRESS = the request's source (RFC 8489 §6.3.1.1)."""
        host, port = request.src
        return bytes(
            STUN(
                type=0x0101,
                transaction_id=request.transaction_id,
                attributes=[
                    attr.XorMappedAddress(family=2 if ":" in host else 1, address=host, port=port),
                    attr.Fingerprint(),
                ],
            )
        )

    @staticmethod
    def try_alternate(request: Received, alternate: Address) -> bytes:
        """A 300 Try Alternate error with ALTERNATE-SERVER (RFC 8489 §10, §14.15)."""
        host, port = alternate
        attributes: list[Any] = [
            ErrorCode(300),
            attr.AlternateServer(family=2 if ":" in host else 1, address=host, port=port),
            attr.Fingerprint(),
        ]
        return bytes(STUN(type=0x0111, transaction_id=request.transaction_id, attributes=attributes))

    def _on_datagram(self, rec: Received) -> None:
        if not rec.is_type(BINDING, REQUEST):
            return
        self.requests.append(rec)
        answer = self.responder(rec) if self.responder is not None else self.success(rec)
        if answer is not None:
            self.endpoint.send(answer, rec.src)

    def close(self) -> None:
        """Stop answering and close the endpoint."""
        self._unhook()
        self.endpoint.close()
