"""Errors of the JSON-RPC control interface and the one table mapping errors to codes (SPEC §4.9).

JSON-RPC 2.0 (https://www.jsonrpc.org/specification §5.1) fixes five codes and reserves
−32000…−32099 for implementation-defined server errors; petranode's application errors live there.
An :class:`ErrorTable` maps each :class:`~petranode.errors.PetranodeError` subclass to a code by
walking the exception's MRO, so a subclass inherits its parent's code unless it registers its own.
Each layer's ``rpc/methods/<layer>.py`` registers its error classes next to its methods.
"""

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TypeAlias, final

from petranode.errors import PetranodeError
from petranode.store.errors import StorageError

JsonValue: TypeAlias = (
    None | bool | int | float | str | Sequence["JsonValue"] | Mapping[str, "JsonValue"]
)


class ErrorCode(enum.IntEnum):
    """JSON-RPC 2.0 error codes: the five standard ones and petranode's application codes."""

    PARSE_ERROR = -32700
    INVALID_REQUEST = -32600
    METHOD_NOT_FOUND = -32601
    INVALID_PARAMS = -32602
    INTERNAL_ERROR = -32603
    # Application range −32000…−32099. −32000 is the fallback for any PetranodeError without a
    # more specific registration.
    PETRANODE_ERROR = -32000
    STORAGE_ERROR = -32001


APPLICATION_CODES = range(-32099, -32000 + 1)


class RpcError(PetranodeError):
    """A JSON-RPC error object: raised by handlers to answer with it, and by the client on receipt."""

    def __init__(self, code: int, message: str, data: JsonValue = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.data = data


class RpcUnavailable(PetranodeError, ConnectionError):
    """The client could not reach a server on the socket, or it did not answer in time.

    Also a ConnectionError, so callers that poll a starting node can treat it like any other
    failed connection.
    """


class MalformedResponse(PetranodeError):
    """The server answered with something that is not a JSON-RPC 2.0 response to our call."""


class ServerSocketError(PetranodeError):
    """The server could not create its listening socket."""


class SocketInUse(ServerSocketError):
    """The RPC socket path is held by a live server or by a file that is not a socket."""


@final
@dataclass(frozen=True, slots=True)
class ErrorMapping:
    """How one error class is reported: its code, and whether its message is safe to show.

    ``expose_message=False`` answers with ``public_message`` instead of ``str(exc)``; use it for
    errors whose text may carry internals (SQL, paths) rather than a caller-facing reason. Such
    errors are our fault, so the dispatcher logs them at ERROR with the traceback.
    """

    code: int
    expose_message: bool = True
    public_message: str = ""


class ErrorTable:
    """The one mapping from PetranodeError subclasses to JSON-RPC error codes.

    Lookup walks ``type(exc).__mro__`` so the most specific registration wins. Later layers
    extend it with :meth:`register`.
    """

    def __init__(self) -> None:
        self._mappings: dict[type[PetranodeError], ErrorMapping] = {}

    def register(
        self,
        error_type: type[PetranodeError],
        code: int,
        *,
        expose_message: bool = True,
        public_message: str = "",
    ) -> None:
        """Report ``error_type`` (and subclasses without their own entry) with ``code``."""
        if code not in APPLICATION_CODES:
            raise ValueError(f"code {code} is outside the application range −32099…−32000")
        if error_type in self._mappings:
            raise ValueError(f"{error_type.__name__} is already registered")
        if not expose_message and not public_message:
            raise ValueError("a hidden message needs a public_message to show instead")
        self._mappings[error_type] = ErrorMapping(code, expose_message, public_message)

    def to_rpc_error(self, exc: PetranodeError) -> RpcError:
        """The error object to send for ``exc``; an RpcError is sent as it is."""
        if isinstance(exc, RpcError):
            return exc
        mapping = self.lookup(type(exc))
        message = str(exc) if mapping.expose_message else mapping.public_message
        return RpcError(mapping.code, message or type(exc).__name__, _error_data(exc))

    def lookup(self, error_type: type[PetranodeError]) -> ErrorMapping:
        """The mapping of the nearest registered class in ``error_type``'s MRO."""
        for klass in error_type.__mro__:
            mapping = self._mappings.get(klass)
            if mapping is not None:
                return mapping
        raise AssertionError("PetranodeError is always registered")


def _error_data(exc: PetranodeError) -> dict[str, JsonValue]:
    """Machine-readable detail: the error class and, per STYLE, its enum ``reason`` if it has one."""
    data: dict[str, JsonValue] = {"error": type(exc).__name__}
    reason = getattr(exc, "reason", None)
    if isinstance(reason, enum.Enum):
        data["reason"] = reason.name
    return data


def default_error_table() -> ErrorTable:
    """A fresh table knowing the errors of the layers below RPC that every node has."""
    table = ErrorTable()
    table.register(PetranodeError, ErrorCode.PETRANODE_ERROR)
    # sqlite's messages name tables and columns; the operator reads them in the log instead.
    table.register(
        StorageError,
        ErrorCode.STORAGE_ERROR,
        expose_message=False,
        public_message="storage failure",
    )
    return table
