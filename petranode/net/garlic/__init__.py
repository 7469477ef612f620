"""Garlic messages: end-to-end encrypted bundles of cloves between destinations (SPEC §2, §4.4).

``clove`` holds the plaintext records, ``session`` the ECIES-X25519 session and acknowledgement
machine, ``settings`` its ``[garlic]`` knobs; ``errors`` the typed refusals.
"""
