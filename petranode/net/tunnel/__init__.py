"""Unidirectional tunnels (SPEC §4.4): build records, layered encryption, fragmentation.

Pure modules only: :mod:`build` (build request records and replies), :mod:`layer` (the
fixed-size tunnel message and its per-hop layers), :mod:`fragment` (payloads cut into tunnel
payloads and put back together), :mod:`replay` (bounded replay windows) and :mod:`cipher`
(the unauthenticated ChaCha20 transform). None of them reads the clock or does I/O.
"""
