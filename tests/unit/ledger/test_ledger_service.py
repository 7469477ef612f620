"""The ledger service: validators and followers in one event loop over an in-memory hub
(``service_harness``), real stores in a temporary folder, conditions awaited with deadlines.

Covers issue 6's fault list at the service level: finality with one validator down, none with
two down and resumption after, restart from disk with sync, double spends (in one block and
across blocks), invalid CLSAG and range proofs, and equivocation kept as evidence.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import random
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from service_harness import FAST, Hub, Member, network, running

from petranode.crypto.clsag import Clsag
from petranode.crypto.group import ONE
from petranode.crypto.keys import PublicAddress
from petranode.genesis import Genesis
from petranode.ledger.assets import MONEY
from petranode.ledger.block import Block
from petranode.ledger.gossip import (
    Have,
    Item,
    ItemKind,
    Want,
    decode_message,
    encode_message,
    item_hash,
)
from petranode.ledger.service import LedgerService, _Decoys
from petranode.ledger.settings import LedgerConfig
from petranode.ledger.tx import BASE_REGISTRY, Transfer, encode_tx
from petranode.ledger.tx_errors import TxReject, TxRejected
from petranode.ledger.vote import Vote, VoteType
from petranode.ledger.wallet import build_transfer
from petranode.wire.codec import Value

POLL_S = 0.02


async def wait_for(what: str, condition: Callable[[], bool], timeout: float = 15.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(POLL_S)


async def hashes(service: LedgerService, up_to: int) -> list[str]:
    out = []
    for h in range(1, up_to + 1):
        block = await service.block(h)
        assert block is not None
        out.append(block["hash"])
    return out


class Net:
    """Members of one network, each started and stopped on demand."""

    def __init__(self, genesis: Genesis, members: list[Member], folder: Path,
                 dso_config: LedgerConfig, config: LedgerConfig = FAST) -> None:
        self.genesis, self.members, self.folder = genesis, members, folder
        self.dso_config, self.config = dso_config, config
        self.hub = Hub()
        self.services: dict[str, LedgerService] = {}
        self._stacks: dict[str, contextlib.AsyncExitStack] = {}

    async def start(self, name: str) -> LedgerService:
        member = next(m for m in self.members if m.name == name)
        stack = contextlib.AsyncExitStack()
        config = self.dso_config if member.is_dso else self.config
        service = await stack.enter_async_context(
            running(member, self.genesis, self.hub, self.folder / name, config))
        self._stacks[name], self.services[name] = stack, service
        return service

    async def stop(self, name: str) -> None:
        await self._stacks.pop(name).aclose()
        del self.services[name]

    async def close(self) -> None:
        for name in list(self._stacks):
            await self.stop(name)

    def heights(self, names: list[str] | None = None) -> list[int]:
        return [self.services[n].status()["height"] for n in (names or list(self.services))]


@contextlib.asynccontextmanager
async def started(tmp_path: Path, names: list[str] | None = None,
                  followers: int = 2) -> AsyncIterator[Net]:
    genesis, members = network(4, followers)
    prosumers = [m for m in members if m.name.startswith("prosumer")]
    dso_config = dataclasses.replace(
        FAST, genesis_issuance=tuple(m.wallet.address.encode() for m in prosumers))
    net = Net(genesis, members, tmp_path, dso_config)
    try:
        for member in members:
            if names is None or member.name in names:
                await net.start(member.name)
        yield net
    finally:
        await net.close()


async def test_validators_finalize_and_a_transfer_lands_everywhere(tmp_path: Path) -> None:
    async with started(tmp_path) as net:
        p1, p2 = net.services["prosumer1"], net.services["prosumer2"]
        await wait_for("the first issuance", lambda: p1.wallet_balance()["money"] > 0
                       and p2.wallet_balance()["money"] > 0)
        before1, before2 = p1.wallet_balance()["money"], p2.wallet_balance()["money"]
        digest = await p1.wallet_transfer(_address(p2), 1234, MONEY)
        for service in net.services.values():
            await _wait_tx_final(service, digest)
        await wait_for("both balances", lambda: p2.wallet_balance()["money"] == before2 + 1234
                       and p1.wallet_balance()["money"] == before1 - 1234)
        history = p1.wallet_history()
        assert any(e["direction"] == "out" and e["tx"] == digest.hex() for e in history)

        # Across blocks: the same transaction, or its key images with another fee, again.
        data = bytes.fromhex((await p1.tx(digest) or {})["data"])
        spent = BASE_REGISTRY.decode(data)
        assert isinstance(spent, Transfer)
        again = encode_tx(dataclasses.replace(spent, fee=spent.fee + 1))
        for name, payload in (("validator2", data), ("validator1", again), ("prosumer2", again)):
            with pytest.raises(TxRejected) as refused:
                await net.services[name].submit(payload)
            assert refused.value.reason in (TxReject.ALREADY_ON_LEDGER, TxReject.KEY_IMAGE_SPENT)

        # Every node has the same block at every height.
        common = min(net.heights())
        reference = await hashes(net.services["dso"], common)
        for service in net.services.values():
            assert await hashes(service, common) == reference
        status = p1.status()
        assert status["validators"] == ["dso", "validator1", "validator2", "validator3"]
        assert status["validator"] is False and net.services["dso"].status()["validator"]


async def test_double_spend_in_one_block_and_invalid_proofs_are_refused(tmp_path: Path) -> None:
    async with started(tmp_path, followers=1) as net:
        p1 = net.services["prosumer1"]
        await wait_for("the first issuance", lambda: p1.wallet_balance()["money"] > 0)
        to = _address(net.services["dso"])
        first, second = [await _transfer(p1, to, amount) for amount in (10, 20)]
        assert first.key_images() == second.key_images()  # one output spent twice
        validator = net.services["validator1"]
        # An invalid CLSAG and an invalid range proof: refused by every validator's pool, and
        # a block holding one is refused.
        third = await _transfer(p1, to, 30)
        inp = third.inputs[0]
        raw = bytearray(inp.signature.encode())
        raw[0] ^= 1
        bad_clsag = dataclasses.replace(
            third, inputs=(dataclasses.replace(
                inp, signature=Clsag.decode(bytes(raw), len(inp.ring))),))
        bad_proof = dataclasses.replace(
            third, range_proof=dataclasses.replace(third.range_proof,
                                                   r1=third.range_proof.r1 + ONE))
        for tx, reason in ((bad_clsag, TxReject.BAD_RING_SIGNATURE),
                           (bad_proof, TxReject.BAD_RANGE_PROOF)):
            for name in ("dso", "validator1", "validator2", "validator3"):
                with pytest.raises(TxRejected) as refused:
                    await net.services[name].submit(encode_tx(tx))
                assert refused.value.reason is reason
            height = validator.status()["height"] + 1
            block = _block(net, validator, height, [encode_tx(tx)])
            assert not await validator._check_block(height, block)
            assert validator.counters[f"block_refused.{reason.value}"] == 1

        # One block holding both is refused by the proposal check (so never prevoted).
        height = validator.status()["height"] + 1
        both = _block(net, validator, height, [encode_tx(first), encode_tx(second)])
        assert not await validator._check_block(height, both)
        assert validator.counters["block_refused.key_image_conflict"] == 1
        # The pool keeps the first and refuses the second.
        await validator.submit(encode_tx(first))
        with pytest.raises(TxRejected) as refused:
            await validator.submit(encode_tx(second))
        assert refused.value.reason is TxReject.KEY_IMAGE_CONFLICT


async def test_one_validator_down_finalizes_two_down_stall_and_restart_resumes(
    tmp_path: Path,
) -> None:
    async with started(tmp_path, followers=1) as net:
        everyone = list(net.services)
        await wait_for("a few blocks", lambda: min(net.heights()) >= 3)
        await net.stop("validator3")
        h = max(net.heights())
        await wait_for("progress with one validator down", lambda: min(net.heights()) >= h + 5)

        await net.stop("validator2")
        await asyncio.sleep(0)  # let in-flight commits land
        await wait_for("the last decided height to spread",
                       lambda: len(set(net.heights())) == 1, timeout=5)
        stalled = max(net.heights())
        # Well past every timeout of several rounds: nothing more is final.
        await asyncio.sleep(1.5)
        assert max(net.heights()) == stalled
        assert net.services["dso"].status()["round"] >= 0

        # Both come back from disk: progress resumes, everyone agrees at every height.
        await net.start("validator2")
        await net.start("validator3")
        await wait_for("progress after restart",
                       lambda: min(net.heights()) >= stalled + 3, timeout=20)
        common = min(net.heights())
        reference = await hashes(net.services["dso"], common)
        for name in everyone:
            assert await hashes(net.services[name], common) == reference, name

        # A validator restarted mid-run keeps what was final and syncs the rest.
        kept = await hashes(net.services["validator1"], net.heights(["validator1"])[0])
        await net.stop("validator1")
        target = max(net.heights()) + 5
        await wait_for("progress without it", lambda: max(net.heights()) >= target)
        service = await net.start("validator1")
        assert service.status()["height"] >= len(kept)
        await wait_for("it to catch up", lambda: service.status()["height"] >= target)
        assert (await hashes(service, len(kept))) == kept
        assert await hashes(service, target) == await hashes(net.services["dso"], target)


async def test_conflicting_votes_are_kept_as_evidence(tmp_path: Path) -> None:
    # Two validators of four: the chain cannot move, so height 1 stays open.
    async with started(tmp_path, names=["dso", "validator1"], followers=0) as net:
        culprit = next(m for m in net.members if m.name == "validator3")
        votes = [Vote.sign(culprit.router, net.genesis.network_id, height=1, round=0,
                           type=VoteType.PREVOTE, block_hash=block_hash, validator=3)
                 for block_hash in (bytes(32), None)]
        peer = _FakePeer(net.hub, b"\xee" * 32)
        for target in ("dso", "validator1"):
            service = net.services[target]
            net.hub.link(peer.router_hash, _hash(net, target))
            for vote in votes:
                await peer.offer(_hash(net, target), ItemKind.VOTE, vote.encode())
            await wait_for("evidence", lambda s=service: s.status()["evidence"] == 1)
            kept = await _stored_evidence(service)
            assert len(kept) == 1
            assert kept[0]["validator"] == 3 and kept[0]["validator_name"] == "validator3"
            assert kept[0]["kind"] == "duplicate_vote" and kept[0]["height"] == 1
        # Kept on disk: a restart still has it.
        await net.stop("dso")
        service = await net.start("dso")
        assert len(await service.evidence()) == 1


# -- helpers --------------------------------------------------------------------------------------


async def _stored_evidence(service: LedgerService) -> list[dict[str, object]]:
    """The evidence in the store, once the write that follows the detection landed."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 5
    while not (kept := await service.evidence()):
        assert loop.time() < deadline, "evidence not stored"
        await asyncio.sleep(POLL_S)
    return kept


def _address(service: LedgerService) -> PublicAddress:
    return service._wallet.keys.address


def _hash(net: Net, name: str) -> bytes:
    return next(m for m in net.members if m.name == name).router.router_hash


async def _wait_tx_final(service: LedgerService, digest: bytes) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 15
    while ((await service.tx(digest)) or {}).get("status") != "final":
        assert loop.time() < deadline, "transfer not final"
        await asyncio.sleep(POLL_S)


async def _transfer(service: LedgerService, to: PublicAddress, amount: int) -> Transfer:
    """A transfer from ``service``'s wallet that is not submitted."""
    owned = service._wallet.unspent(MONEY.asset_id)[:1]
    records = await service._ledger.outputs_of(MONEY.asset_id)
    return build_transfer(
        service._wallet.keys, owned, to, amount, MONEY.asset_id, 0,
        _Decoys({MONEY.asset_id: records}, service._block_s),
        network_id=service._genesis.network_id,
        min_ring_size=service._params.min_ring_size, now=service._height * service._block_s,
        unlock_time=0.0, random_source=random.Random(amount),
    )


def _block(net: Net, service: LedgerService, height: int, txs: list[bytes]) -> Block:
    return Block.build(network_id=net.genesis.network_id, height=height, round=0,
                       time_ms=service._head_time_ms + 1, prev_hash=service._head_hash,
                       proposer=0, txs=txs)


class _FakePeer:
    """A router on the hub that offers items by gossip (have → want → item)."""

    def __init__(self, hub: Hub, router_hash: bytes) -> None:
        self.port = hub.port(router_hash)
        self.router_hash = router_hash
        self.items: dict[bytes, tuple[ItemKind, bytes]] = {}
        self.port.register("ledger.want", self._on_want)
        self.port.register("ledger.have", self._ignore)
        self.port.register("ledger.item", self._ignore)

    async def offer(self, peer: bytes, kind: ItemKind, data: bytes) -> None:
        digest = item_hash(data)
        self.items[digest] = (kind, data)
        await self.port.send(peer, encode_message(Have(kind, (digest,))))

    async def _on_want(self, peer: bytes, message: dict[str, Value]) -> None:
        want = decode_message(message)
        assert isinstance(want, Want)
        for digest in want.hashes:
            kind, data = self.items[digest]
            await self.port.send(peer, encode_message(Item(kind, data)))

    async def _ignore(self, peer: bytes, message: dict[str, Value]) -> None:
        return None


async def test_skip_empty_blocks_waits_for_transactions(tmp_path: Path) -> None:
    genesis, members = network(4, 1)
    quiet = dataclasses.replace(FAST, skip_empty_blocks=True)
    dso_config = dataclasses.replace(
        quiet, genesis_issuance=(members[-1].wallet.address.encode(),))
    net = Net(genesis, members, tmp_path, dso_config, quiet)
    try:
        for member in members:
            await net.start(member.name)
        p1 = net.services["prosumer1"]
        # The first issuance is the only traffic: its block, then nothing.
        await wait_for("the first issuance", lambda: p1.wallet_balance()["money"] > 0)
        settled = max(net.heights())
        await asyncio.sleep(0.5)  # ten block intervals: no empty block is made
        assert max(net.heights()) == settled
        digest = await p1.wallet_transfer(_address(net.services["dso"]), 5, MONEY)
        await _wait_tx_final(p1, digest)
        assert settled < max(net.heights()) <= settled + 2
    finally:
        await net.close()
