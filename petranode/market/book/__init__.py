"""The offer book the market keeps on the ledger (SPEC §4.7)."""
