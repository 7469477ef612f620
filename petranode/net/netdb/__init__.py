"""The netDb: a Kademlia DHT of signed RouterInfos and LeaseSets (SPEC §2, §4.3).

Pure modules — :mod:`.routerinfo`, :mod:`.leaseset`, :mod:`.records` (validation tiers and the
newest-wins rule), :mod:`.table` (the validated local cache), :mod:`.datagram` (the DHT's
datagram format, parsed strictly) — and the I/O edge: :mod:`.service` (the only importer of the
``kademlia`` package) and :mod:`.store` (persistence in the node's database).
"""
