"""A prosumer's offers, accepts and trade outcomes on the ledger's market (SPEC §4.7)."""
