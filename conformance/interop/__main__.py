"""``python -m conformance.interop interop --iut A --iut B ...``: the interop matrix (RFC 8445 §2)."""

from __future__ import annotations

import logging
import sys

from conformance.interop.commands import main

if __name__ == "__main__":
    _handler = logging.StreamHandler()
    _handler.setLevel(logging.WARNING)
    _handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    logging.getLogger().addHandler(_handler)
    sys.exit(main())
