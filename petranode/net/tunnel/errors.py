"""Errors of the tunnel layer (SPEC §4.4, §5): a typed error with an enum reason, never prose.

:class:`TunnelBuildRejected` covers building (our refusal to create a tunnel, a hop's refusal
to process a request, a creator's failure to read replies); :class:`TunnelMessageInvalid`
covers tunnel messages and fragments. Both mean "drop this input": a hop never answers a bad
tunnel message, so an attacker learns nothing from probing.
"""

from __future__ import annotations

import enum

from petranode.errors import PetranodeError


class BuildFault(enum.Enum):
    """Why a tunnel build was refused or could not be read."""

    #: The creator asked for more hops than a request has slots for (local misuse).
    TOO_MANY_HOPS = "too_many_hops"
    #: The same router appears twice in the hop list (local misuse; SPEC §4.4).
    HOP_REPEATED = "hop_repeated"
    #: The creator listed itself as a hop (local misuse).
    SELF_AS_HOP = "self_as_hop"
    #: A hop's static key is unusable (low order): it cannot receive a record.
    BAD_HOP_KEY = "bad_hop_key"
    #: The request or reply is not the fixed size.
    WRONG_SIZE = "wrong_size"
    #: No slot starts with our truncated router hash.
    NO_RECORD_FOR_US = "no_record_for_us"
    #: Our slot did not authenticate under the key agreed with its ephemeral key.
    RECORD_UNREADABLE = "record_unreadable"
    #: The record decrypted but its fields are not a valid hop configuration.
    RECORD_MALFORMED = "record_malformed"
    #: The record's tunnel has already expired.
    EXPIRED = "expired"
    #: The record's expiry is further ahead than a tunnel may live.
    EXPIRY_TOO_FAR = "expiry_too_far"
    #: This record (its ephemeral key) was seen before: a replayed build request.
    DUPLICATE = "duplicate"
    #: A hop's reply did not authenticate (a later hop garbled it, or the wrong request).
    REPLY_UNREADABLE = "reply_unreadable"


class TunnelBuildRejected(PetranodeError):
    """A tunnel build was refused; ``hop_index`` names the hop when the fault is one hop's."""

    def __init__(self, reason: BuildFault, hop_index: int | None = None) -> None:
        detail = reason.value if hop_index is None else f"{reason.value} (hop {hop_index})"
        super().__init__(detail)
        self.reason = reason
        self.hop_index = hop_index


class MessageFault(enum.Enum):
    """Why a tunnel message or fragment was dropped."""

    #: Not exactly the fixed tunnel message (or payload) size.
    WRONG_SIZE = "wrong_size"
    #: The tunnel id is not the one this hop receives on.
    WRONG_TUNNEL = "wrong_tunnel"
    #: The tunnel has expired.
    EXPIRED = "expired"
    #: The nonce pair was seen before on this tunnel.
    REPLAY = "replay"
    #: The replay window is full of unexpired nonces; refusing keeps replays out.
    REPLAY_WINDOW_FULL = "replay_window_full"
    #: The innermost AEAD layer did not authenticate at the endpoint (tampered).
    AUTH_FAILED = "auth_failed"
    #: A fragment's header, delivery instruction or padding is malformed.
    BAD_FRAGMENT = "bad_fragment"
    #: Fragments of one message disagree (two last fragments, a fragment past the last).
    FRAGMENT_CONFLICT = "fragment_conflict"
    #: A reassembled message would exceed the size bound.
    MESSAGE_TOO_LARGE = "message_too_large"


class TunnelMessageInvalid(PetranodeError):
    """A tunnel message or fragment was dropped for ``reason``."""

    def __init__(self, reason: MessageFault) -> None:
        super().__init__(reason.value)
        self.reason = reason
