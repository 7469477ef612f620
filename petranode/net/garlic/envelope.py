"""Which service of a destination a garlic payload is for (SPEC §4.4: "an API for the other
layers").

A destination is one anonymous endpoint, but several layers of a node talk through it: the
operator's ``dest.*`` RPC, the ledger (transactions submitted to validators) and the market
(requests to the DSO and its answers). Every DATA clove's payload is therefore an envelope,
the canonical msgpack array ``[version, protocol, data]``; the garlic service hands ``data``
and the authenticated sender's destination hash to the handler registered for ``protocol``.
The envelope is inside the end-to-end encryption, so no hop and no observer sees the protocol.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Final, final

from petranode.net.garlic.clove import MAX_CLOVE_PAYLOAD
from petranode.net.garlic.errors import GarlicError, GarlicFault
from petranode.wire import codec
from petranode.wire.errors import DecodeError

ENVELOPE_VERSION: Final = 1
#: Longest protocol name accepted on decoding.
MAX_PROTOCOL_NAME: Final = 16


class Protocol(enum.Enum):
    """The services behind a destination; the value is the name on the wire."""

    #: Bytes for the operator: ``dest.send`` and ``dest.recv``.
    APP = "app"
    #: Transactions a prosumer submits to a validator (SPEC §4.6).
    LEDGER = "ledger"
    #: Requests to the DSO and its answers (SPEC §4.7).
    MARKET = "market"


#: The envelope's bytes around ``data``: array header, version, protocol name, binary header.
ENVELOPE_OVERHEAD: Final = 1 + 1 + 1 + max(len(p.value) for p in Protocol) + 5
#: The largest ``data`` that fits one clove.
MAX_DATA_BYTES: Final = MAX_CLOVE_PAYLOAD - ENVELOPE_OVERHEAD


@final
@dataclass(frozen=True, slots=True)
class Envelope:
    protocol: Protocol
    data: bytes

    def __post_init__(self) -> None:
        if len(self.data) > MAX_DATA_BYTES:
            raise ValueError(f"envelope data longer than {MAX_DATA_BYTES} bytes")

    def encode(self) -> bytes:
        return codec.encode([ENVELOPE_VERSION, self.protocol.value, self.data])

    @classmethod
    def decode(cls, payload: bytes) -> Envelope:
        """The envelope of ``payload``; anything else raises ``GarlicError(MALFORMED)``."""
        try:
            fields = codec.expect_list(
                codec.decode_canonical(payload, max_size=MAX_CLOVE_PAYLOAD), 3, what="envelope")
            version = codec.expect_int(fields[0], 0, 255, what="envelope version")
            if version != ENVELOPE_VERSION:
                raise GarlicError(GarlicFault.MALFORMED, f"envelope version {version}")
            protocol = Protocol(
                codec.expect_str(fields[1], max_len=MAX_PROTOCOL_NAME, what="protocol"))
            data = codec.expect_bytes(fields[2], max_size=MAX_DATA_BYTES, what="envelope data")
        except (DecodeError, ValueError) as exc:
            raise GarlicError(GarlicFault.MALFORMED, f"envelope: {exc}") from exc
        return cls(protocol, data)
