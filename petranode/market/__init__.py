"""The PETra market: registration, intervals, offers, settlement, reputation (SPEC §4.7)."""
