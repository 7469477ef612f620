"""The root of every error petranode raises on purpose (STYLE: errors).

Each layer defines its own subclasses in its own ``errors.py``; callers that only need to
know "petranode refused this" catch :class:`PetranodeError`.
"""


class PetranodeError(Exception):
    """Base class of all petranode errors."""
