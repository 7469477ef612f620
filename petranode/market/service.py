"""The market's I/O edge: the DSO's registry and asset issuance, and a prosumer's requests
for assets (SPEC §2 PETra workflow, §4.7). The only module of ``petranode.market`` that
touches asyncio, the clock or the store; the rules live in :mod:`.registry` and
:mod:`.intervals`, the formats in :mod:`.messages`.

Theory of operation:

* **Registration (off-chain, DSO).** The DSO operator registers a prosumer with
  ``dso.register``: its meter key and reputation credential key (``market.identity`` on the
  prosumer's node prints both), maximum generation and consumption and feeder. The DSO signs a
  :class:`~.registry.Registration`; the book and the database hold it. Feeder limits are
  posted with ``dso.feeder_limit``.
* **Requests (garlic).** A prosumer's ``market.request`` signs an
  :class:`~.registry.AssetRequest` with its meter key, naming its wallet address, and sends
  it to the DSO's destination (genesis ``[dso] destination``) through its tunnels. The DSO
  checks it against the book — registered, signature, not a replay, gate open, capacity and
  feeder limits —, records and stores the grant, then builds an issuance paying the assets to
  one-time keys of that address and submits it to the ledger; if the ledger refuses, the
  grant is released. In this order a crash can leave a grant without an issuance, never an
  issuance without a grant: the book may refuse too much, never too little. The answer goes
  back to the sender's destination; the prosumer's call returns it, or times out.
* **Concurrency.** Garlic handlers must not block: each message is queued and one worker
  task (in the service's task group) handles them in order, so the book has one writer.

Logging: request ids and reasons, never addresses, keys or amounts per prosumer.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from types import TracebackType
from typing import Any, Final, Protocol, final

from petranode.clock import Clock
from petranode.crypto.group import Scalar, hash_to_scalar
from petranode.crypto.keys import PublicAddress
from petranode.errors import PetranodeError
from petranode.genesis import Genesis
from petranode.ledger.assets import AssetKind
from petranode.ledger.tx import encode_tx
from petranode.ledger.tx_errors import TxRejected
from petranode.ledger.wallet import Payment, build_issuance
from petranode.market.errors import MarketRecordInvalid, RequestRefused
from petranode.market.intervals import MarketClock, to_ms
from petranode.market.messages import (
    AnswerMessage,
    RequestMessage,
    decode_message,
)
from petranode.market.notices import Notice, NoticeTopic
from petranode.market.registry import AssetRequest, CapacityBook, FeederLimit, Registration
from petranode.market.reputation import Credential
from petranode.market.store import (
    delete_grant,
    load_book,
    save_feeder_limit,
    save_grant,
    save_registration,
)
from petranode.net.garlic.envelope import Protocol as GarlicProtocol
from petranode.net.signing import Signer
from petranode.store.store import Store

log = logging.getLogger(__name__)

#: Seconds a prosumer waits for the DSO's answer (garlic retries included).
REQUEST_TIMEOUT_S: Final = 30.0
#: Market messages queued for the worker; beyond this they are dropped (garlic is lossy and
#: prosumers retry), so a flood cannot grow memory.
MAX_QUEUED: Final = 1024
#: The reason of a refusal when the issuance could not be submitted to the ledger.
LEDGER_REFUSED: Final = "ledger"
#: Domain of the credential secret derived from the wallet's spend secret.
CREDENTIAL_DOMAIN: Final = b"petranode/market/credential/v1"


class MarketUnavailable(PetranodeError):
    """The request cannot be made here: no DSO destination, not the DSO, or no answer."""


class GarlicPort(Protocol):
    def subscribe(self, protocol: GarlicProtocol, handler: Any) -> None: ...

    def send(self, to: bytes, data: bytes, protocol: GarlicProtocol = ...) -> Awaitable[bytes]: ...


class LedgerPort(Protocol):
    def submit(self, data: bytes, key_images: tuple[bytes, ...] = ()) -> Awaitable[bytes]: ...


def credential_from_spend(spend_secret: Scalar) -> Credential:
    """The prosumer's reputation credential, derived so that no extra key file is needed."""
    return Credential(hash_to_scalar(CREDENTIAL_DOMAIN, spend_secret.raw))


@final
class MarketService:
    """Registry and issuance on the DSO's node; asset requests on a prosumer's."""

    def __init__(self, *, genesis: Genesis, garlic: GarlicPort, ledger: LedgerPort | None,
                 store: Store, clock: Clock, meter: Signer, credential: Credential,
                 address: PublicAddress, dso: Signer | None) -> None:
        self._genesis = genesis
        self._network_id = genesis.network_id
        self._garlic = garlic
        self._ledger = ledger
        self._store = store
        self._clock = clock
        self._meter = meter
        self._credential = credential
        self._address = address
        self._dso = dso
        self.market_clock = MarketClock.from_genesis(genesis)
        self.book = CapacityBook()
        self._queue: asyncio.Queue[tuple[bytes, bytes]] = asyncio.Queue(MAX_QUEUED)
        self._waiting: dict[bytes, asyncio.Future[AnswerMessage]] = {}
        self._group = asyncio.TaskGroup()
        self._worker: asyncio.Task[None] | None = None
        self.counters: dict[str, int] = {}

    async def __aenter__(self) -> MarketService:
        if self._dso is not None:
            self.book = await load_book(self._store)
        self._garlic.subscribe(GarlicProtocol.MARKET, self._on_message)
        await self._group.__aenter__()
        self._worker = self._group.create_task(self._work(), name="market-worker")
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        for future in self._waiting.values():
            future.cancel()
        if self._worker is not None:
            self._worker.cancel()
        await self._group.__aexit__(exc_type, exc, tb)

    # -- prosumer API ---------------------------------------------------------------------------

    def identity(self) -> dict[str, str]:
        """What the DSO needs to register this prosumer."""
        return {"meter_key": self._meter.signing_key.hex(),
                "credential_key": self._credential.public.raw.hex()}

    async def request(self, kind: AssetKind, amount: int, first_interval: int | None,
                      last_interval: int | None) -> dict[str, Any]:
        """Ask the DSO for assets; returns its answer (granted with the issuance hash, or the
        reason of a refusal). Raises :class:`MarketUnavailable` without an answer."""
        dso = self._genesis.dso.destination
        if not dso:
            raise MarketUnavailable("the genesis names no DSO destination")
        now_ms = to_ms(self._clock.time())
        expires = max(self.market_clock.first_open_interval(now_ms),
                      first_interval if first_interval is not None else 0)
        request = AssetRequest.create(
            self._meter, self._network_id, kind=kind, amount=amount, expires=expires,
            address=self._address, first_interval=first_interval, last_interval=last_interval)
        future: asyncio.Future[AnswerMessage] = asyncio.get_running_loop().create_future()
        self._waiting[request.request_id] = future
        try:
            await self._garlic.send(dso, RequestMessage(request.encode()).encode(),
                                    GarlicProtocol.MARKET)
            async with asyncio.timeout(REQUEST_TIMEOUT_S):
                answer = await future
        except TimeoutError:
            raise MarketUnavailable("no answer from the DSO") from None
        finally:
            self._waiting.pop(request.request_id, None)
        return {"request_id": request.request_id.hex(), "granted": answer.granted,
                "tx": answer.tx_hash.hex() or None, "reason": answer.reason or None}

    # -- DSO API --------------------------------------------------------------------------------

    async def register(self, *, meter_key: bytes, credential_key: bytes, max_generation_w: int,
                       max_consumption_w: int, feeder: str) -> dict[str, Any]:
        dso = self._require_dso()
        registration = Registration.issue(
            dso, self._network_id, meter_key=meter_key, credential_key=credential_key,
            max_generation_w=max_generation_w, max_consumption_w=max_consumption_w,
            feeder=feeder)
        self.book.register(registration)
        await save_registration(self._store, registration)
        log.info("market.registered feeder=%s", feeder)
        return {"registration_id": registration.registration_id.hex()}

    async def set_feeder_limit(self, feeder: str, max_production_w: int,
                               max_consumption_w: int) -> None:
        self._require_dso()
        limit = FeederLimit(feeder, max_production_w, max_consumption_w)
        self.book.set_feeder_limit(limit)
        await save_feeder_limit(self._store, limit)
        await self.post_notice(NoticeTopic.FEEDER_LIMIT, limit.encode())

    async def post_notice(self, topic: NoticeTopic, body: bytes) -> bytes | None:
        """Publish a DSO record on the ledger (DSO only); the notice's hash once pooled, or
        None if there is no ledger or it refused (counted, logged)."""
        dso = self._require_dso()
        if self._ledger is None:
            return None
        notice = Notice.issue(dso, self._network_id, topic, body, to_ms(self._clock.time()))
        try:
            digest = await self._ledger.submit(encode_tx(notice))
        except TxRejected as exc:
            self._count(f"notice_refused_{exc.reason.value}")
            log.warning("market.notice.refused topic=%s reason=%s", topic.value,
                        exc.reason.value)
            return None
        self._count(f"notices_{topic.value}")
        log.info("market.notice.posted topic=%s key=%s tx=%s", topic.value, notice.key,
                 digest.hex()[:16])
        return digest

    def stats(self) -> dict[str, Any]:
        rows = self.book.to_rows()
        return {"registrations": len(rows.registrations), "feeders": len(rows.feeder_limits),
                "grants": len(rows.grants), "first_open_interval":
                    self.market_clock.first_open_interval(to_ms(self._clock.time())),
                **dict(sorted(self.counters.items()))}

    # -- messages -------------------------------------------------------------------------------

    def _on_message(self, sender: bytes, data: bytes) -> None:
        try:
            self._queue.put_nowait((sender, data))
        except asyncio.QueueFull:
            self._count("dropped_queue_full")

    async def _work(self) -> None:
        while True:
            sender, data = await self._queue.get()
            try:
                message = decode_message(data)
            except MarketRecordInvalid:
                self._count("bad_message")
                continue
            if isinstance(message, AnswerMessage):
                self._answered(message)
            elif self._dso is not None:
                await self._serve(sender, message)
            else:
                self._count("request_not_dso")

    def _answered(self, answer: AnswerMessage) -> None:
        future = self._waiting.get(answer.request_id)
        if future is None or future.done():
            self._count("answer_unexpected")
            return
        future.set_result(answer)

    async def _serve(self, sender: bytes, message: RequestMessage) -> None:
        try:
            request = AssetRequest.decode(message.request)
        except MarketRecordInvalid:
            self._count("bad_request")
            return
        answer = await self._decide(request)
        self._count("granted" if answer.granted else f"refused_{answer.reason}")
        try:
            await self._garlic.send(sender, answer.encode(), GarlicProtocol.MARKET)
        except PetranodeError as exc:  # the requester's LeaseSet is gone: it will retry
            log.info("market.answer_undelivered id=%s error=%s",
                     request.request_id.hex()[:16], type(exc).__name__)

    async def _decide(self, request: AssetRequest) -> AnswerMessage:
        now_ms = to_ms(self._clock.time())
        first_open = self.market_clock.first_open_interval(now_ms)
        try:
            self.book.check(request, network_id=self._network_id,
                            first_open_interval=first_open)
        except RequestRefused as exc:
            return AnswerMessage(request.request_id, False, reason=exc.reason.value)
        if self._ledger is None:
            return AnswerMessage(request.request_id, False, reason=LEDGER_REFUSED)
        grant = self.book.admit(request, network_id=self._network_id,
                                first_open_interval=first_open)
        await save_grant(self._store, grant)
        issuance = build_issuance(
            self._require_dso(), [Payment(request.address, request.asset.asset_id,
                                          request.amount)], network_id=self._network_id)
        try:
            tx_hash = await self._ledger.submit(encode_tx(issuance))
        except PetranodeError as exc:  # refused by our own pool: grant nothing
            log.warning("market.issuance_refused id=%s error=%s",
                        request.request_id.hex()[:16], exc)
            self.book.release(request.request_id)
            await delete_grant(self._store, request.request_id)
            return AnswerMessage(request.request_id, False, reason=LEDGER_REFUSED)
        log.info("market.granted id=%s kind=%s tx=%s", request.request_id.hex()[:16],
                 request.kind.value, tx_hash.hex()[:16])
        return AnswerMessage(request.request_id, True, tx_hash=tx_hash)

    def _require_dso(self) -> Signer:
        if self._dso is None:
            raise MarketUnavailable("only the DSO's node registers and issues")
        return self._dso

    def _count(self, what: str) -> None:
        self.counters[what] = self.counters.get(what, 0) + 1
