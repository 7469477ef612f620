"""petranode: the node daemon of a private transactive microgrid (SPEC §1)."""

__version__ = "0.1.0"
