"""The Tendermint machine, N of them wired in memory with no event loop (STYLE: a ``Mesh`` of
sans-IO machines; the network is a queue the test delivers from, drops from and reorders)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from petranode.ledger.block import ZERO_HASH, Block
from petranode.ledger.consensus import (
    BroadcastProposal,
    BroadcastVote,
    CertificateVerifier,
    Consensus,
    ConsensusAction,
    Decide,
    Evidence,
    EvidenceKind,
    MakeBlock,
    RecordEvidence,
    SaveSignState,
    ScheduleTimeout,
    SignState,
    Step,
    TimeoutEvent,
    TimeoutParams,
    TimeoutStep,
    ValidateBlock,
    decode_proposal_item,
    encode_proposal_item,
)
from petranode.ledger.errors import BlockFault, BlockInvalid, VoteFault, VoteInvalid
from petranode.ledger.vote import CommitCertificate, Proposal, Vote, VoteType
from petranode.net.identity import RouterKeys
from petranode.wire.errors import DecodeError

NET = "consensus-test"
TIMEOUTS = TimeoutParams(propose_s=3.0, vote_s=1.0, delta_s=0.5)


def keys(i: int) -> RouterKeys:
    return RouterKeys.from_secrets(signing_seed=bytes([i + 1]) * 32,
                                   static_secret=bytes([i + 101]) * 32)


Message = tuple[Proposal, Block] | Vote


@dataclass
class Mesh:
    """``n`` validators (and ``followers`` non-validators) exchanging every broadcast through
    one queue of (destination, message)."""

    n: int = 4
    followers: int = 0
    valid: Callable[[Block], bool] = lambda block: True
    now: float = 0.0
    nodes: list[Consensus] = field(default_factory=list)
    up: list[bool] = field(default_factory=list)
    queue: list[tuple[int, Message]] = field(default_factory=list)
    timeouts: list[tuple[float, int, TimeoutEvent]] = field(default_factory=list)
    decisions: list[dict[int, Block]] = field(default_factory=list)
    certificates: list[dict[int, CommitCertificate]] = field(default_factory=list)
    sent: list[list[Message]] = field(default_factory=list)
    evidence: list[list[Evidence]] = field(default_factory=list)
    sign_states: list[SignState | None] = field(default_factory=list)
    refused: list[Exception] = field(default_factory=list)
    #: Start the next height as soon as a node decides (multi-height runs).
    continue_heights: bool = False
    #: A validator whose every broadcast is doubled by a conflicting one: odd nodes get the
    #: conflicting one first and then the honest one, even nodes only the honest one (an
    #: equivocator, f = 1 of 4).
    byzantine: int | None = None

    def __post_init__(self) -> None:
        self.validators = [keys(i).signing_key for i in range(self.n)]
        total = self.n + self.followers
        for i in range(total):
            signer = keys(i) if i < self.n else None
            self.nodes.append(Consensus(self.validators, NET, TIMEOUTS, signer=signer))
        self.up = [True] * total
        self.decisions = [{} for _ in range(total)]
        self.certificates = [{} for _ in range(total)]
        self.sent = [[] for _ in range(total)]
        self.evidence = [[] for _ in range(total)]
        self.sign_states = [None] * total

    # -- driving -----------------------------------------------------------------------------

    def start(self, height: int = 1, prev_hash: bytes = ZERO_HASH, prev_time: int = 0) -> None:
        for i, node in enumerate(self.nodes):
            if self.up[i]:
                self.run(i, node.start_height(height, prev_hash, prev_time, self.now))

    def run(self, i: int, actions: list[ConsensusAction]) -> None:
        node = self.nodes[i]
        for action in actions:
            match action:
                case BroadcastProposal(proposal, block):
                    self._broadcast(i, (proposal, block))
                case BroadcastVote(vote):
                    self._broadcast(i, vote)
                case ScheduleTimeout(event, deadline):
                    self.timeouts.append((deadline, i, event))
                case MakeBlock(height, round_, prev_hash, min_time_ms, proposer):
                    block = Block.build(
                        network_id=NET, height=height, round=round_,
                        time_ms=max(min_time_ms, 1000 * height + round_), prev_hash=prev_hash,
                        proposer=proposer, txs=[f"tx h{height} r{round_} p{proposer}".encode()],
                    )
                    self.run(i, node.propose(block, self.now))
                case ValidateBlock(_, block):
                    self.run(i, node.on_block_verdict(block.hash, self.valid(block), self.now))
                case Decide(height, block, certificate):
                    assert height not in self.decisions[i]
                    self.decisions[i][height] = block
                    self.certificates[i][height] = certificate
                    if self.continue_heights:
                        self.run(i, node.start_height(height + 1, block.hash,
                                                      block.header.time_ms, self.now))
                case SaveSignState(state):
                    self.sign_states[i] = state
                case RecordEvidence(evidence):
                    self.evidence[i].append(evidence)
                case _:
                    raise AssertionError(action)

    def _broadcast(self, sender: int, message: Message) -> None:
        self.sent[sender].append(message)
        twin = self._conflicting(sender, message) if sender == self.byzantine else None
        for j in range(len(self.nodes)):
            if j != sender:
                if twin is not None and j % 2:
                    self.queue.append((j, twin))
                self.queue.append((j, message))

    def _conflicting(self, sender: int, message: Message) -> Message:
        signer = keys(sender)
        if isinstance(message, Vote):
            other = None if message.block_hash is not None else bytes([sender]) * 32
            return Vote.sign(signer, NET, height=message.height, round=message.round,
                             type=message.type, block_hash=other, validator=sender)
        proposal, block = message
        twin = Block.build(network_id=NET, height=block.height, round=block.header.round,
                           time_ms=block.header.time_ms, prev_hash=block.header.prev_hash,
                           proposer=block.header.proposer, txs=[*block.txs, b"twin"])
        return (Proposal.sign(signer, NET, height=proposal.height, round=proposal.round,
                              block_hash=twin.hash, pol_round=proposal.pol_round,
                              proposer=proposal.proposer), twin)

    def receive(self, i: int, message: Message) -> None:
        if not self.up[i]:
            return
        node = self.nodes[i]
        try:
            if isinstance(message, Vote):
                actions = node.on_vote(message, self.now)
            else:
                actions = node.on_proposal(message[0], message[1], self.now)
        except (VoteInvalid, BlockInvalid) as exc:
            assert isinstance(exc, VoteInvalid) and exc.reason is VoteFault.WRONG_HEIGHT
            self.refused.append(exc)
            return
        self.run(i, actions)

    def deliver(self, keep: Callable[[int, Message], bool] = lambda i, m: True) -> int:
        """Deliver queued messages that ``keep`` accepts (FIFO) until none is left; the rest
        stay queued. Returns how many were delivered."""
        count = 0
        while True:
            index = next((k for k, (i, m) in enumerate(self.queue) if keep(i, m)), None)
            if index is None:
                return count
            i, message = self.queue.pop(index)
            self.receive(i, message)
            count += 1

    def fire(self, i: int, step: TimeoutStep) -> None:
        """Fire node ``i``'s timeout for its current (height, round) and ``step``."""
        node = self.nodes[i]
        event = TimeoutEvent(node.height, node.round, step)
        matches = [t for t in self.timeouts if t[1] == i and t[2] == event]
        assert matches, f"node {i} has no {step} timeout at ({node.height}, {node.round})"
        for entry in matches:
            self.timeouts.remove(entry)
        self.now = max(self.now, min(t[0] for t in matches))
        self.run(i, node.on_timeout(event, self.now))

    def fire_earliest(self) -> bool:
        live = [t for t in self.timeouts if self.up[t[1]]]
        if not live:
            return False
        entry = min(live, key=lambda t: t[0])
        self.timeouts.remove(entry)
        self.now = max(self.now, entry[0])
        self.run(entry[1], self.nodes[entry[1]].on_timeout(entry[2], self.now))
        return True

    def settle(self, until: Callable[[], bool], max_timeouts: int = 200) -> None:
        """Deliver everything; fire timeouts in time order until ``until()``."""
        for _ in range(max_timeouts):
            self.deliver()
            if until():
                return
            if not self.fire_earliest():
                return
        self.deliver()

    def decided(self, height: int, nodes: list[int]) -> bool:
        return all(height in self.decisions[i] for i in nodes)

    def votes_of(self, i: int, round_: int, vote_type: VoteType) -> list[Vote]:
        return [m for m in self.sent[i]
                if isinstance(m, Vote) and m.round == round_ and m.type is vote_type]


def is_vote(vote_type: VoteType, sender: int | None = None) -> Callable[[int, Message], bool]:
    def match(i: int, m: Message) -> bool:
        return isinstance(m, Vote) and m.type is vote_type and (
            sender is None or m.validator == sender)
    return match


def is_proposal(i: int, m: Message) -> bool:
    return not isinstance(m, Vote)


def check_certificate(mesh: Mesh, height: int, block: Block, node: int = 0) -> None:
    certificate = mesh.certificates[node][height]
    assert certificate.block_hash == block.hash and certificate.height == height
    certificate.verify(mesh.validators, NET)
    verifier = CertificateVerifier(mesh.validators, NET)
    prev = ZERO_HASH if height == 1 else mesh.decisions[node][height - 1].hash
    assert verifier.verify(height, prev, block.encode(), certificate.encode()) == block.hash


# -- decisions ------------------------------------------------------------------------------------


def test_four_validators_decide_in_round_zero_and_the_next_height() -> None:
    mesh = Mesh(followers=1)
    assert mesh.nodes[0].proposer(1, 0) == 1 and mesh.nodes[4].is_validator is False
    mesh.start()
    mesh.deliver()
    assert mesh.decided(1, list(range(5)))
    block = mesh.decisions[0][1]
    assert {d[1].hash for d in mesh.decisions} == {block.hash}
    assert block.header.round == 0 and block.header.proposer == 1
    check_certificate(mesh, 1, block)
    assert len(mesh.certificates[0][1].signatures) >= 3
    assert mesh.sent[4] == []  # the follower signs nothing
    assert all(n.step is Step.COMMIT for n in mesh.nodes)
    # Height 2 follows from the decided block; proposer (2 + 0) mod 4 = 2.
    mesh.start(2, block.hash, block.header.time_ms)
    mesh.deliver()
    assert mesh.decided(2, list(range(5)))
    assert mesh.decisions[3][2].header.proposer == 2
    assert mesh.decisions[3][2].header.prev_hash == block.hash
    check_certificate(mesh, 2, mesh.decisions[0][2])


def test_proposer_down_passes_to_the_next_round() -> None:
    mesh = Mesh()
    mesh.up[1] = False  # proposer of (1, 0)
    mesh.start()
    alive = [0, 2, 3]
    mesh.settle(lambda: mesh.decided(1, alive))
    assert mesh.decided(1, alive)
    block = mesh.decisions[0][1]
    assert {mesh.decisions[i][1].hash for i in alive} == {block.hash}
    assert block.header.round == 1 and block.header.proposer == 2
    assert mesh.certificates[0][1].round == 1
    # Round 0 ended with nil prevotes and nil precommits.
    assert [v.block_hash for v in mesh.votes_of(0, 0, VoteType.PREVOTE)] == [None]
    assert [v.block_hash for v in mesh.votes_of(0, 0, VoteType.PRECOMMIT)] == [None]
    check_certificate(mesh, 1, block)


def test_two_of_four_down_decides_nothing_however_long() -> None:
    mesh = Mesh()
    mesh.up[2] = mesh.up[3] = False
    mesh.start()
    mesh.settle(lambda: False, max_timeouts=120)
    assert not any(mesh.decisions)
    # Without a quorum of any prevotes no prevote timeout is armed: both wait in round 0
    # (Tendermint needs 2f + 1 messages to move on; it neither decides nor forks).
    assert [n.step for n in mesh.nodes[:2]] == [Step.PREVOTE, Step.PREVOTE]
    # The two come back: the round completes.
    mesh.up[2] = mesh.up[3] = True
    for i in (2, 3):
        mesh.run(i, mesh.nodes[i].start_height(1, ZERO_HASH, 0, mesh.now))
    for i in (0, 1):  # they re-send what they sent (gossip re-announces on relink)
        for message in list(mesh.sent[i]):
            for j in (2, 3):
                mesh.queue.append((j, message))
    mesh.settle(lambda: mesh.decided(1, list(range(4))))
    assert mesh.decided(1, list(range(4)))
    assert len({d[1].hash for d in mesh.decisions}) == 1


def test_round_skip_on_f_plus_one_votes_from_a_higher_round() -> None:
    node, _ = started_node()
    assert node.round == 0

    def nil_prevote(validator: int, round_: int) -> Vote:
        return Vote.sign(keys(validator), NET, height=1, round=round_, type=VoteType.PREVOTE,
                         block_hash=None, validator=validator)

    node.on_vote(nil_prevote(2, 5), 0.0)
    assert node.round == 0  # one validator (f) could be lying
    actions = node.on_vote(nil_prevote(3, 5), 0.0)
    assert node.round == 5 and node.step is Step.PROPOSE  # f + 1: at least one honest
    timeouts = [a for a in actions if isinstance(a, ScheduleTimeout)]
    assert timeouts[0].event == TimeoutEvent(1, 5, TimeoutStep.PROPOSE)
    assert timeouts[0].deadline == TIMEOUTS.duration(TimeoutStep.PROPOSE, 5)


def test_lock_keeps_a_different_block_from_being_decided() -> None:
    """The classic: validators 0 and 1 lock block B0 in round 0 but nobody decides it; in
    rounds 1 and 2 fresh blocks cannot gather a quorum past the locks; in round 3 validator 0
    proposes B0 again with its proof of lock and everyone decides B0."""
    mesh = Mesh()
    mesh.start()
    # Round 0, proposer 1. Validator 3 misses the proposal and prevotes nil on timeout.
    mesh.deliver(lambda i, m: is_proposal(i, m) and i != 3)
    mesh.fire(3, TimeoutStep.PROPOSE)
    b0 = mesh.sent[1][0]
    assert isinstance(b0, tuple)
    b0_hash = b0[1].hash
    # 0 and 1 get every prevote; 2 and 3 miss validator 0's (held back for later).
    held = is_vote(VoteType.PREVOTE, sender=0)
    mesh.deliver(lambda i, m: is_vote(VoteType.PREVOTE)(i, m) and (i in (0, 1)
                                                                  or not held(i, m)))
    assert mesh.nodes[0].locked_hash == b0_hash and mesh.nodes[1].locked_hash == b0_hash
    assert mesh.nodes[2].locked_hash is None and mesh.nodes[3].locked_hash is None
    for i in (2, 3):
        mesh.fire(i, TimeoutStep.PREVOTE)  # precommit nil
    mesh.deliver(lambda i, m: is_vote(VoteType.PRECOMMIT)(i, m))
    assert not any(mesh.decisions)  # two precommits for B0 are not a quorum
    for i in range(4):
        mesh.fire(i, TimeoutStep.PRECOMMIT)
    assert all(n.round == 1 for n in mesh.nodes)

    # Rounds 1 (proposer 2) and 2 (proposer 3): fresh blocks; the locked prevote nil.
    for round_ in (1, 2):
        mesh.deliver(lambda i, m: not held(i, m))
        assert [v.block_hash for v in mesh.votes_of(0, round_, VoteType.PREVOTE)] == [None]
        assert [v.block_hash for v in mesh.votes_of(1, round_, VoteType.PREVOTE)] == [None]
        assert not any(mesh.decisions)
        for i in range(4):
            mesh.fire(i, TimeoutStep.PREVOTE)
        mesh.deliver(lambda i, m: not held(i, m))
        for i in range(4):
            mesh.fire(i, TimeoutStep.PRECOMMIT)
    assert all(n.round == 3 for n in mesh.nodes)

    # Round 3, proposer 0: B0 again, proof of lock round 0. The held prevote arrives.
    mesh.deliver()
    proposal = [m for m in mesh.sent[0] if not isinstance(m, Vote)]
    assert proposal and proposal[-1][0].pol_round == 0 and proposal[-1][0].round == 3
    assert mesh.decided(1, list(range(4)))
    assert {d[1].hash for d in mesh.decisions} == {b0_hash}
    assert mesh.certificates[2][1].round == 3
    check_certificate(mesh, 1, mesh.decisions[2][1], node=2)


def test_invalid_block_is_prevoted_nil_and_never_decided() -> None:
    def valid(block: Block) -> bool:
        return block.header.round != 0

    mesh = Mesh(valid=valid)
    mesh.start()
    mesh.settle(lambda: mesh.decided(1, list(range(4))))
    assert mesh.decided(1, list(range(4)))
    block = mesh.decisions[0][1]
    assert block.header.round >= 1
    assert all(v.block_hash is None for i in range(4) if i != 1
               for v in mesh.votes_of(i, 0, VoteType.PREVOTE))


# -- evidence and refusals --------------------------------------------------------------------


def started_node() -> tuple[Consensus, list[bytes]]:
    validators = [keys(i).signing_key for i in range(4)]
    node = Consensus(validators, NET, TIMEOUTS, signer=keys(0))
    node.start_height(1, ZERO_HASH, 0, 0.0)
    return node, validators


def test_conflicting_votes_are_recorded_as_evidence_and_count_once() -> None:
    node, validators = started_node()
    h = bytes(range(32))
    a = Vote.sign(keys(2), NET, height=1, round=0, type=VoteType.PREVOTE, block_hash=h,
                  validator=2)
    b = Vote.sign(keys(2), NET, height=1, round=0, type=VoteType.PREVOTE, block_hash=None,
                  validator=2)
    assert node.on_vote(a, 0.0) == []
    assert node.on_vote(a, 0.0) == []  # the same vote again is no evidence
    actions = node.on_vote(b, 0.0)
    assert len(actions) == 1 and isinstance(actions[0], RecordEvidence)
    evidence = actions[0].evidence
    assert evidence.kind is EvidenceKind.DUPLICATE_VOTE and evidence.validator == 2
    assert evidence.height == 1 and evidence.verify(validators, NET)
    assert not evidence.verify(validators, "another-net")
    assert Evidence.decode(evidence.encode()) == evidence
    assert Evidence.of(EvidenceKind.DUPLICATE_VOTE, b.encode(), a.encode()) == evidence
    assert node.evidence == [evidence]
    assert node.on_vote(b, 0.0) == []  # recorded once
    assert evidence.to_json()["validator"] == 2
    # Two copies of one vote are not evidence.
    same = Evidence.of(EvidenceKind.DUPLICATE_VOTE, a.encode(), a.encode())
    assert not same.verify(validators, NET)
    with pytest.raises(DecodeError):
        Evidence.decode(same.encode())


def test_conflicting_proposals_are_evidence() -> None:
    node, validators = started_node()
    proposer = keys(1)  # (1 + 0) mod 4

    def proposal(tx: bytes) -> tuple[Proposal, Block]:
        block = Block.build(network_id=NET, height=1, round=0, time_ms=5, prev_hash=ZERO_HASH,
                            proposer=1, txs=[tx])
        return Proposal.sign(proposer, NET, height=1, round=0, block_hash=block.hash,
                             pol_round=-1, proposer=1), block

    first, second = proposal(b"a"), proposal(b"b")
    actions = node.on_proposal(*first, 0.0)
    assert [type(a) for a in actions] == [ValidateBlock]
    actions = node.on_proposal(*second, 0.0)
    evidence = [a.evidence for a in actions if isinstance(a, RecordEvidence)]
    assert len(evidence) == 1 and evidence[0].kind is EvidenceKind.DUPLICATE_PROPOSAL
    assert evidence[0].verify(validators, NET)


def test_bad_signature_unknown_validator_and_wrong_height_are_refused() -> None:
    node, _ = started_node()
    h = bytes(32)
    vote = Vote.sign(keys(2), NET, height=1, round=0, type=VoteType.PREVOTE, block_hash=h,
                     validator=2)
    forged = dataclasses.replace(vote, signature=bytes([vote.signature[0] ^ 1])
                                 + vote.signature[1:])
    with pytest.raises(VoteInvalid) as refused:
        node.on_vote(forged, 0.0)
    assert refused.value.reason is VoteFault.BAD_SIGNATURE
    # Signed by another validator than the index claims.
    with pytest.raises(VoteInvalid) as refused:
        node.on_vote(Vote.sign(keys(3), NET, height=1, round=0, type=VoteType.PREVOTE,
                               block_hash=h, validator=2), 0.0)
    assert refused.value.reason is VoteFault.BAD_SIGNATURE
    # Another network.
    with pytest.raises(VoteInvalid):
        node.on_vote(Vote.sign(keys(2), "other", height=1, round=0, type=VoteType.PREVOTE,
                               block_hash=h, validator=2), 0.0)
    with pytest.raises(VoteInvalid) as refused:
        node.on_vote(Vote.sign(keys(7), NET, height=1, round=0, type=VoteType.PREVOTE,
                               block_hash=h, validator=7), 0.0)
    assert refused.value.reason is VoteFault.UNKNOWN_VALIDATOR
    for height in (3, 9):
        with pytest.raises(VoteInvalid) as refused:
            node.on_vote(Vote.sign(keys(2), NET, height=height, round=0,
                                   type=VoteType.PREVOTE, block_hash=h, validator=2), 0.0)
        assert refused.value.reason is VoteFault.WRONG_HEIGHT
    assert node.counters["wrong_height"] == 2
    assert node._votes == {}  # nothing counted


def test_proposals_from_the_wrong_proposer_or_with_another_block_are_refused() -> None:
    node, _ = started_node()
    block = Block.build(network_id=NET, height=1, round=0, time_ms=5, prev_hash=ZERO_HASH,
                        proposer=2, txs=[])
    wrong = Proposal.sign(keys(2), NET, height=1, round=0, block_hash=block.hash, pol_round=-1,
                          proposer=2)
    with pytest.raises(VoteInvalid) as refused:
        node.on_proposal(wrong, block, 0.0)
    assert refused.value.reason is VoteFault.WRONG_PROPOSER
    right = Proposal.sign(keys(1), NET, height=1, round=0, block_hash=bytes(32), pol_round=-1,
                          proposer=1)
    with pytest.raises(BlockInvalid) as mismatch:
        node.on_proposal(right, block, 0.0)
    assert mismatch.value.reason is BlockFault.HASH_MISMATCH
    # A block that does not follow the head is the proposer's fault: judged invalid at once,
    # prevoted nil, no transaction check asked.
    off = Block.build(network_id=NET, height=1, round=0, time_ms=5, prev_hash=bytes([1]) * 32,
                      proposer=1, txs=[])
    proposal = Proposal.sign(keys(1), NET, height=1, round=0, block_hash=off.hash, pol_round=-1,
                             proposer=1)
    actions = node.on_proposal(proposal, off, 0.0)
    votes = [a.vote for a in actions if isinstance(a, BroadcastVote)]
    assert [v.block_hash for v in votes] == [None]
    assert not any(isinstance(a, ValidateBlock) for a in actions)


def test_messages_for_the_next_height_wait_for_it() -> None:
    mesh = Mesh()
    mesh.start()
    # Node 3 hears nothing of height 1 and decides it late; the others move on at once.
    mesh.deliver(lambda i, m: i != 3)
    assert mesh.decided(1, [0, 1, 2])
    block = mesh.decisions[0][1]
    for i in (0, 1, 2):
        mesh.run(i, mesh.nodes[i].start_height(2, block.hash, block.header.time_ms, mesh.now))
    mesh.deliver(lambda i, m: i != 3 or (isinstance(m, Vote) and m.height == 2)
                 or (not isinstance(m, Vote) and m[0].height == 2))
    assert mesh.nodes[3].has_future(2)
    mesh.deliver()
    assert mesh.decided(1, [3])
    mesh.run(3, mesh.nodes[3].start_height(2, block.hash, block.header.time_ms, mesh.now))
    mesh.deliver()
    assert mesh.decided(2, [0, 1, 2, 3])
    assert len({mesh.decisions[i][2].hash for i in range(4)}) == 1


def test_a_restarted_validator_neither_equivocates_nor_forgets_its_lock() -> None:
    mesh = Mesh()
    mesh.start()
    mesh.deliver(is_proposal)
    mesh.deliver(lambda i, m: is_vote(VoteType.PREVOTE)(i, m) and i == 0)
    state = mesh.sign_states[0]
    assert state is not None and state.rank == 3 and state.locked_round == 0
    assert SignState.decode(state.encode()) == state
    locked = mesh.nodes[0].locked_hash
    # Validator 0 restarts from its saved state: same round, same lock.
    restarted = Consensus(mesh.validators, NET, TIMEOUTS, signer=keys(0),
                          sign_state=SignState.decode(state.encode()))
    mesh.nodes[0] = restarted
    actions = restarted.start_height(1, ZERO_HASH, 0, mesh.now)
    assert restarted.round == 0 and restarted.locked_hash == locked
    assert not any(isinstance(a, BroadcastVote) for a in actions)
    # A fresh proposal of round 0 reaching it again: its prevote was already signed.
    b0 = mesh.sent[1][0]
    assert isinstance(b0, tuple)
    mesh.run(0, restarted.on_proposal(*b0, mesh.now))
    assert mesh.votes_of(0, 0, VoteType.PREVOTE)[-1].block_hash == locked
    assert len(mesh.votes_of(0, 0, VoteType.PREVOTE)) == 1
    mesh.deliver()
    assert mesh.decided(1, [0, 1, 2, 3])
    assert mesh.decisions[0][1].hash == locked


def test_an_equivocating_validator_is_caught_and_the_rest_still_decide() -> None:
    mesh = Mesh(byzantine=1)  # the proposer of (1, 0)
    mesh.start()
    mesh.settle(lambda: mesh.decided(1, [0, 2]), max_timeouts=20)
    assert mesh.decided(1, [0, 2])
    # Validator 3 counted the equivocator's nil precommit first, so it lacks a quorum for the
    # block the others decided: it catches up by block sync, and never decides another one.
    assert len({mesh.decisions[i][1].hash for i in (0, 2, 3) if 1 in mesh.decisions[i]}) == 1
    kinds = {e.kind for e in mesh.evidence[3]}
    assert kinds == {EvidenceKind.DUPLICATE_VOTE, EvidenceKind.DUPLICATE_PROPOSAL}
    assert all(e.verify(mesh.validators, NET) and e.validator == 1
               for i in range(4) for e in mesh.evidence[i])


def test_nodes_stuck_after_lost_messages_catch_up_from_each_other() -> None:
    """Gossip delivers each message once: validators that lost precommits, and one that was
    away, are stuck; each asks its peers for what they hold of the height (the service's
    ``ledger.consensus?`` when no progress is seen) and they decide."""
    mesh = Mesh()
    mesh.up[3] = False
    mesh.start()
    mesh.deliver(lambda i, m: not is_vote(VoteType.PRECOMMIT)(i, m))
    mesh.queue.clear()  # every precommit is lost: 0..2 wait, locked, in step precommit
    assert [n.step for n in mesh.nodes[:3]] == [Step.PRECOMMIT] * 3
    mesh.up[3] = True
    mesh.run(3, mesh.nodes[3].start_height(1, ZERO_HASH, 0, mesh.now))
    for _ in range(2):
        for i in range(4):
            for j in range(4):
                if i != j:
                    proposals, votes = mesh.nodes[j].catch_up()
                    for proposal, block in proposals:
                        mesh.receive(i, (proposal, block))
                    for vote in votes:
                        mesh.receive(i, vote)
    mesh.queue.clear()
    assert mesh.decided(1, list(range(4)))
    assert len({d[1].hash for d in mesh.decisions}) == 1


def test_proposal_items_round_trip() -> None:
    block = Block.build(network_id=NET, height=4, round=2, time_ms=5, prev_hash=ZERO_HASH,
                        proposer=2, txs=[b"x", b"y"])
    proposal = Proposal.sign(keys(2), NET, height=4, round=2, block_hash=block.hash,
                             pol_round=-1, proposer=2)
    assert decode_proposal_item(encode_proposal_item(proposal, block)) == (proposal, block)
    with pytest.raises(DecodeError):
        decode_proposal_item(encode_proposal_item(proposal, block)[:-1])


def test_timeouts_grow_with_the_round() -> None:
    assert TIMEOUTS.duration(TimeoutStep.PROPOSE, 0) == 3.0
    assert TIMEOUTS.duration(TimeoutStep.PROPOSE, 4) == 5.0
    assert TIMEOUTS.duration(TimeoutStep.PRECOMMIT, 2) == 2.0


# -- safety under any delivery order ----------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(st.data(), st.sampled_from([None, 0, 3]))
def test_safety_under_random_delivery_orders_drops_and_timeouts(
    data: st.DataObject, byzantine: int | None
) -> None:
    """Four machines (honest, or one equivocating), messages delivered in any order, some
    dropped, timeouts fired at any point, some blocks judged invalid: never two different
    decisions at one height."""
    invalid_rounds = data.draw(st.sets(st.integers(0, 3), max_size=2))
    mesh = Mesh(valid=lambda b: b.header.round not in invalid_rounds, continue_heights=True,
                byzantine=byzantine)
    mesh.start()
    for _ in range(data.draw(st.integers(50, 400))):
        choice = data.draw(st.integers(0, 9))
        if mesh.queue and choice < 7:
            index = data.draw(st.integers(0, len(mesh.queue) - 1))
            i, message = mesh.queue.pop(index)
            mesh.receive(i, message)
        elif mesh.queue and choice == 7:
            mesh.queue.pop(data.draw(st.integers(0, len(mesh.queue) - 1)))  # dropped
        elif mesh.timeouts:
            entry = mesh.timeouts.pop(data.draw(st.integers(0, len(mesh.timeouts) - 1)))
            mesh.now = max(mesh.now, entry[0])
            mesh.run(entry[1], mesh.nodes[entry[1]].on_timeout(entry[2], mesh.now))
    heights = {h for d in mesh.decisions for h in d}
    for height in heights:
        decided = {d[height].hash for i, d in enumerate(mesh.decisions)
                   if height in d and i != byzantine}
        assert len(decided) <= 1, f"two blocks decided at height {height}"
        for i, d in enumerate(mesh.decisions):
            if height in d and i != byzantine:
                check_certificate(mesh, height, d[height], node=i)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=400))
def test_decoders_give_a_value_or_decode_error(data: bytes) -> None:
    for decode in (Evidence.decode, SignState.decode, decode_proposal_item):
        try:
            decode(data)
        except DecodeError:
            pass


@settings(max_examples=50, deadline=None)
@given(st.integers(1, 2**40), st.integers(0, 1000), st.integers(1, 3),
       st.one_of(st.none(), st.binary(min_size=32, max_size=32)), st.integers(-1, 1000),
       st.one_of(st.none(), st.binary(max_size=64)))
def test_sign_state_round_trips(height: int, round_: int, rank: int, block_hash: bytes | None,
                                locked_round: int, locked: bytes | None) -> None:
    state = SignState(height, round_, rank, block_hash, locked_round, locked)
    assert SignState.decode(state.encode()) == state
