"""Settlement of intervals from delivery reports, reputation and tier lists (SPEC §4.7)."""
