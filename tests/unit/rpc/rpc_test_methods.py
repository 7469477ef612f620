"""Small test methods, one per behaviour the RPC layer must handle, and their table."""

import asyncio
import enum
from dataclasses import dataclass, field

from petranode.errors import PetranodeError
from petranode.rpc.errors import RpcError
from petranode.rpc.protocol import MethodTable
from petranode.store.errors import StorageError

ORDER_LATE_CODE = -32010
CUSTOM_CODE = -32050
SECRET = "secret-internals-d41d8cd9"


class Refused(PetranodeError):
    """A petranode error with no registration of its own: reported as −32000."""


class LateReason(enum.Enum):
    AFTER_GATE_CLOSURE = "after_gate_closure"


class OrderLate(PetranodeError):
    """A registered petranode error carrying an enum reason."""

    def __init__(self) -> None:
        super().__init__("order after gate closure")
        self.reason = LateReason.AFTER_GATE_CLOSURE


@dataclass(frozen=True)
class EchoParams:
    text: str
    times: int = 1

    def __post_init__(self) -> None:
        if self.times < 1:
            raise ValueError("times must be at least 1")


@dataclass(frozen=True)
class NoteParams:
    text: str


@dataclass
class Recorder:
    """What the test methods saw; ``meet`` lets N concurrent calls find each other."""

    notes: list[str] = field(default_factory=list)
    arrived: int = 0
    together: int = 2
    everyone_here: asyncio.Event | None = None


def make_table(recorder: Recorder, table: MethodTable | None = None) -> MethodTable:
    """Register the test methods in ``table`` (a fresh MethodTable by default)."""
    table = MethodTable() if table is None else table
    table.errors.register(OrderLate, ORDER_LATE_CODE)

    async def echo(text: str, times: int) -> str:
        return text * times

    async def note(text: str) -> None:
        recorder.notes.append(text)

    async def refuse() -> None:
        raise Refused("no such offer")

    async def late() -> None:
        raise OrderLate()

    async def crash() -> None:
        raise RuntimeError(SECRET)

    async def storage() -> None:
        raise StorageError(f"no such table: {SECRET}")

    async def custom() -> None:
        raise RpcError(CUSTOM_CODE, "custom failure", {"hint": "retry"})

    async def unencodable() -> object:
        return object()

    async def meet() -> int:
        # Returns only once `together` calls are inside at the same time: proves concurrency.
        if recorder.everyone_here is None:
            recorder.everyone_here = asyncio.Event()
        recorder.arrived += 1
        if recorder.arrived >= recorder.together:
            recorder.everyone_here.set()
        async with asyncio.timeout(5):
            await recorder.everyone_here.wait()
        return recorder.arrived

    table.register("test.echo", echo, EchoParams)
    table.register("test.note", note, NoteParams)
    table.register("test.refuse", refuse)
    table.register("test.late", late)
    table.register("test.crash", crash)
    table.register("test.storage", storage)
    table.register("test.custom", custom)
    table.register("test.unencodable", unencodable)  # type: ignore[arg-type]
    table.register("test.meet", meet)
    return table
