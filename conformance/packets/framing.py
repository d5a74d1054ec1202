"""RFC 4571 framing of STUN and ChannelData over TCP: a 16-bit length before each message."""

from __future__ import annotations

import struct

__all__ = ["Deframer", "frame"]


def frame(message: bytes) -> bytes:
    """Prefix one message with its 16-bit length (RFC 4571 §2)."""
    if len(message) > 0xFFFF:
        raise ValueError(f"a framed message holds at most 65535 bytes, got {len(message)}")
    return struct.pack("!H", len(message)) + message


class Deframer:
    """Incremental RFC 4571 deframer: feed bytes as they arrive, get whole messages back."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[bytes]:
        """Add received bytes; return every message completed by them, in order."""
        self._buffer += data
        out = []
        while len(self._buffer) >= 2:
            (length,) = struct.unpack_from("!H", self._buffer)
            if len(self._buffer) < 2 + length:
                break
            out.append(bytes(self._buffer[2 : 2 + length]))
            del self._buffer[: 2 + length]
        return out

    @property
    def pending(self) -> int:
        """Bytes held for a message not yet complete."""
        return len(self._buffer)
