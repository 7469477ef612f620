"""The metering and billing service: simulated smart meters and the DSO's side (SPEC §4.8)."""
