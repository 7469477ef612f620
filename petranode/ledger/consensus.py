"""The round-robin BFT consensus machine, sans I/O (SPEC §4.6; Buchman, Kwon, Milosevic, "The
latest gossip on BFT consensus", arXiv 1807.04938, Algorithm 1; CometBFT ``consensus/state.go``).

One :class:`Consensus` decides one height at a time. It reads no clock, starts no timer and
does no I/O: inputs are method calls with ``now`` (monotonic seconds); outputs are lists of
action records the caller (``ledger/service.py``) executes in order.

Rules (line numbers of Algorithm 1; ``n`` validators, ``f = ⌊(n−1)/3⌋``, quorum = ``2n//3+1``
validators — "more than two thirds", :func:`~petranode.ledger.vote.quorum`):

* **Proposer.** For height ``h`` and round ``r`` the proposer is ``validators[(h + r) mod n]``.
  It proposes its ``validValue`` if it has one (with ``pol_round = validRound``), else asks the
  caller for a fresh block (:class:`MakeBlock` → :meth:`Consensus.propose`) (l. 11–21).
* **Prevote** (l. 22–33). In step PROPOSE, on the round's proposal whose block the caller judged
  valid (:class:`ValidateBlock` → :meth:`Consensus.on_block_verdict`): prevote it unless locked on
  another block — or, for a proposal carrying a proof of lock (``pol_round = vr ≥ 0`` and a quorum
  of prevotes for it in round ``vr``), unless locked in a round after ``vr``. Otherwise nil. A
  timeout (``timeout_propose``) prevotes nil (l. 57).
* **Precommit and lock** (l. 36–46). A quorum of prevotes for the round's valid proposal: lock
  it (``lockedValue/lockedRound``), precommit it, and remember it as ``validValue/validRound``.
  A quorum of nil prevotes, or ``timeout_prevote`` after a quorum of any prevotes, precommits nil.
* **Decide** (l. 49). A quorum of precommits for one block in *any* round of the height, with
  the block known and valid: :class:`Decide` with a :class:`~.vote.CommitCertificate` of those
  precommits. The caller commits it and later calls :meth:`Consensus.start_height`.
* **Rounds** (l. 47, 55, 65). ``timeout_precommit`` after a quorum of any precommits starts the
  next round; votes of ``f + 1`` validators from a higher round jump to that round. Timeouts are
  ``timeout_{propose,vote} + r × delta``; they are :class:`ScheduleTimeout` actions with an
  absolute deadline, fed back through :meth:`Consensus.on_timeout` (CometBFT ``ticker.go``).
* **Evidence.** Two signed votes of one validator for the same (height, round, type) and
  different blocks, or two proposals of one proposer for the same (height, round), are kept as
  :class:`Evidence` (:class:`RecordEvidence`); only the first message counts.
* **Double-sign guard** (CometBFT ``privval`` ``LastSignState``). A validator never signs at a
  (height, round, step) below one it signed, nor twice at one with different contents. Before
  each signature it emits :class:`SaveSignState` — the last signed step and its lock — which the
  caller persists before broadcasting; a restarted machine resumes from it, so a crash never
  makes an honest validator equivocate or forget its lock.
* **Followers** (non-validators) run the same machine with no signer: they follow rounds and
  decide from the same messages, and sign nothing.

Input tiers: a message for another height is refused (:class:`~.errors.VoteInvalid`
``WRONG_HEIGHT``) — except those for the next height, which are checked and kept (bounded) until
:meth:`Consensus.start_height` replays them; then validator index, proposer, signature
(``UNKNOWN_VALIDATOR``, ``WRONG_PROPOSER``, ``BAD_SIGNATURE``); then the block against the proposal
(``BlockInvalid`` ``HASH_MISMATCH``: the relayer's fault). A signed proposal whose block breaks a
header rule is the proposer's fault: its block is judged invalid at once, so honest validators
prevote nil. Once decided, the machine ignores the height's messages until the next height starts.
"""

from __future__ import annotations

import enum
import logging
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final, assert_never, final

from petranode.ledger.block import HASH_BYTES, MAX_U63, ZERO_HASH, Block
from petranode.ledger.errors import BlockFault, BlockInvalid, VoteFault, VoteInvalid
from petranode.ledger.settings import LedgerConfig
from petranode.ledger.vote import (
    MAX_PROPOSAL_BYTES,
    CommitCertificate,
    Proposal,
    Verify,
    Vote,
    VoteType,
    quorum,
)
from petranode.net import signing
from petranode.net.signing import Signer
from petranode.wire import codec
from petranode.wire.errors import DecodeError, DecodeFault

log = logging.getLogger(__name__)

#: Rounds above the current one whose messages are kept. Votes from further ahead are dropped:
#: a faulty validator could otherwise make us hold votes for any number of rounds. Reaching the
#: 64th round needs minutes of timeouts (each round adds ``delta``), far beyond a partition of a
#: small network; CometBFT similarly bounds a peer's "catchup" rounds.
MAX_ROUNDS_AHEAD: Final = 64
#: Messages of one validator kept for the next height (votes; proposals per round): the next
#: height starts a block interval after a decision, and a faster peer may already vote in it.
MAX_FUTURE_PER_VALIDATOR: Final = 8
#: Evidence kept in memory (the service also persists it): bounds what an equivocator costs us.
MAX_EVIDENCE: Final = 1024
#: Blocks of conflicting proposals kept per height, beside one per round.
MAX_EXTRA_BLOCKS: Final = 4
#: Largest proposal gossip item: a proposal and its block.
MAX_PROPOSAL_ITEM_BYTES: Final = 960 * 1024
SIGN_STATE_VERSION: Final = 1
EVIDENCE_VERSION: Final = 1


class Step(enum.IntEnum):
    """Where the machine is in a height; ordered as Algorithm 1's ``step ≥ prevote`` needs."""

    NEW_HEIGHT = 0
    PROPOSE = 1
    PREVOTE = 2
    PRECOMMIT = 3
    #: Decided: waiting for :meth:`Consensus.start_height` of the next height.
    COMMIT = 4


class TimeoutStep(enum.Enum):
    PROPOSE = "propose"
    PREVOTE = "prevote"
    PRECOMMIT = "precommit"


#: The double-sign guard orders signatures within a round: proposal, prevote, precommit.
_SIGN_RANK: Final[Mapping[VoteType | None, int]] = {
    None: 1,
    VoteType.PREVOTE: 2,
    VoteType.PRECOMMIT: 3,
}


@final
@dataclass(frozen=True, slots=True)
class TimeoutParams:
    """Round timeouts in seconds; each round adds ``delta_s`` (CometBFT ``timeout_*_delta``)."""

    propose_s: float = 3.0
    vote_s: float = 1.0
    delta_s: float = 0.5

    @classmethod
    def from_config(cls, config: LedgerConfig) -> TimeoutParams:
        return cls(config.timeout_propose_ms / 1000, config.timeout_vote_ms / 1000,
                   config.timeout_delta_ms / 1000)

    def duration(self, step: TimeoutStep, round_: int) -> float:
        base = self.propose_s if step is TimeoutStep.PROPOSE else self.vote_s
        return base + round_ * self.delta_s


# -- records -----------------------------------------------------------------------------------


class EvidenceKind(enum.Enum):
    DUPLICATE_VOTE = 1
    DUPLICATE_PROPOSAL = 2


@final
@dataclass(frozen=True, slots=True)
class Evidence:
    """Two conflicting messages signed by one validator: encoded votes or proposals, the smaller
    encoding first so that one conflict has one encoding (the store keeps it once)."""

    kind: EvidenceKind
    first: bytes
    second: bytes
    version: int = EVIDENCE_VERSION

    @classmethod
    def of(cls, kind: EvidenceKind, a: bytes, b: bytes) -> Evidence:
        first, second = sorted((a, b))
        return cls(kind, first, second)

    def messages(self) -> tuple[Vote, Vote] | tuple[Proposal, Proposal]:
        if self.kind is EvidenceKind.DUPLICATE_VOTE:
            return Vote.decode(self.first), Vote.decode(self.second)
        return Proposal.decode(self.first), Proposal.decode(self.second)

    @property
    def height(self) -> int:
        return self.messages()[0].height

    @property
    def validator(self) -> int:
        a = self.messages()[0]
        return a.validator if isinstance(a, Vote) else a.proposer

    def verify(self, validators: Sequence[bytes], network_id: str, *,
               verify: Verify = signing.verify) -> bool:
        """Whether both messages are validly signed by one validator and conflict."""
        a, b = self.messages()
        if isinstance(a, Vote) and isinstance(b, Vote):
            same = (a.height, a.round, a.type, a.validator) == (b.height, b.round, b.type,
                                                                b.validator)
            signer = a.validator
            conflict = same and a.block_hash != b.block_hash
        elif isinstance(a, Proposal) and isinstance(b, Proposal):
            same = (a.height, a.round, a.proposer) == (b.height, b.round, b.proposer)
            signer = a.proposer
            conflict = same and a != b
        else:
            return False
        if not conflict or signer >= len(validators):
            return False
        key = validators[signer]
        return a.verify(key, network_id, verify=verify) and b.verify(key, network_id,
                                                                      verify=verify)

    def encode(self) -> bytes:
        return codec.encode([self.version, self.kind.value, self.first, self.second])

    @classmethod
    def decode(cls, data: bytes) -> Evidence:
        items = codec.expect_list(
            codec.decode_canonical(data, max_size=2 * MAX_PROPOSAL_BYTES + 16), 4,
            what="evidence")
        version = codec.expect_int(items[0], 1, 1, what="version")
        kind = EvidenceKind(codec.expect_int(items[1], 1, 2, what="kind"))
        first = codec.expect_bytes(items[2], max_size=MAX_PROPOSAL_BYTES, what="first")
        second = codec.expect_bytes(items[3], max_size=MAX_PROPOSAL_BYTES, what="second")
        if first >= second:
            raise DecodeError(DecodeFault.WRONG_SHAPE, "evidence order")
        evidence = cls(kind, first, second, version)
        evidence.messages()  # both decode, or DecodeError
        return evidence

    def to_json(self) -> dict[str, object]:
        a = self.messages()[0]
        return {
            "kind": self.kind.name.lower(),
            "height": a.height,
            "round": a.round,
            "validator": self.validator,
            "first": self.first.hex(),
            "second": self.second.hex(),
        }


@final
@dataclass(frozen=True, slots=True)
class SignState:
    """What a validator last signed at its current height, and its lock: persisted before
    every signature so a restart neither equivocates nor unlocks (CometBFT ``LastSignState``
    plus the WAL's lock)."""

    height: int
    round: int
    #: 1 proposal, 2 prevote, 3 precommit (:data:`_SIGN_RANK`).
    rank: int
    block_hash: bytes | None
    locked_round: int = -1
    #: The encoded block locked on, or ``None``.
    locked_block: bytes | None = None
    version: int = SIGN_STATE_VERSION

    def encode(self) -> bytes:
        return codec.encode([self.version, self.height, self.round, self.rank, self.block_hash,
                             self.locked_round, self.locked_block])

    @classmethod
    def decode(cls, data: bytes) -> SignState:
        items = codec.expect_list(codec.decode_canonical(data, max_size=8 * 1024 * 1024), 7,
                                  what="sign state")
        block_hash = items[4]
        locked = items[6]
        return cls(
            version=codec.expect_int(items[0], 1, 1, what="version"),
            height=codec.expect_int(items[1], 1, MAX_U63, what="height"),
            round=codec.expect_int(items[2], 0, MAX_U63, what="round"),
            rank=codec.expect_int(items[3], 1, 3, what="rank"),
            block_hash=None if block_hash is None else codec.expect_bytes(
                block_hash, HASH_BYTES, what="block_hash"),
            locked_round=codec.expect_int(items[5], -1, MAX_U63, what="locked_round"),
            locked_block=None if locked is None else codec.expect_bytes(
                locked, max_size=8 * 1024 * 1024, what="locked_block"),
        )


def encode_proposal_item(proposal: Proposal, block: Block) -> bytes:
    """A proposal and the block it names, as one gossip item (kind PROPOSAL)."""
    return codec.encode([proposal.encode(), block.encode()])


def decode_proposal_item(data: bytes) -> tuple[Proposal, Block]:
    """The inverse of :func:`encode_proposal_item`, or :class:`DecodeError`."""
    items = codec.expect_list(codec.decode_canonical(data, max_size=MAX_PROPOSAL_ITEM_BYTES), 2,
                              what="proposal item")
    return (
        Proposal.decode(codec.expect_bytes(items[0], max_size=MAX_PROPOSAL_BYTES,
                                           what="proposal")),
        Block.decode(codec.expect_bytes(items[1], max_size=MAX_PROPOSAL_ITEM_BYTES,
                                        what="block")),
    )


@final
class CertificateVerifier:
    """Checks a synced block and its certificate against the genesis validators (the seam
    :class:`~petranode.ledger.sync.CertifiedBlockVerifier`)."""

    def __init__(self, validators: Sequence[bytes], network_id: str, *,
                 verify: Verify = signing.verify) -> None:
        self._validators = tuple(validators)
        self._network_id = network_id
        self._verify = verify

    def verify(self, height: int, prev_hash: bytes, block: bytes, certificate: bytes) -> bytes:
        decoded = Block.decode(block)
        decoded.validate_basic()
        header = decoded.header
        if header.network_id != self._network_id or header.height != height:
            raise BlockInvalid(BlockFault.MALFORMED, "network or height")
        if header.prev_hash != prev_hash:
            raise BlockInvalid(BlockFault.MALFORMED, "does not follow the head")
        cert = CommitCertificate.decode(certificate)
        if cert.height != height or cert.block_hash != decoded.hash:
            raise BlockInvalid(BlockFault.HASH_MISMATCH, "certificate names another block")
        cert.verify(self._validators, self._network_id, verify=self._verify)
        return decoded.hash


# -- actions -----------------------------------------------------------------------------------


@final
@dataclass(frozen=True, slots=True)
class TimeoutEvent:
    height: int
    round: int
    step: TimeoutStep


@final
@dataclass(frozen=True, slots=True)
class ScheduleTimeout:
    """Call :meth:`Consensus.on_timeout` with ``event`` at monotonic time ``deadline``."""

    event: TimeoutEvent
    deadline: float


@final
@dataclass(frozen=True, slots=True)
class MakeBlock:
    """We propose in (height, round): build a block and pass it to :meth:`Consensus.propose`.
    Its header needs these fields; ``time_ms`` must exceed ``min_time_ms − 1``."""

    height: int
    round: int
    prev_hash: bytes
    min_time_ms: int
    proposer: int


@final
@dataclass(frozen=True, slots=True)
class ValidateBlock:
    """Apply ``block``'s transactions to the ledger; answer :meth:`Consensus.on_block_verdict`."""

    height: int
    block: Block


@final
@dataclass(frozen=True, slots=True)
class SaveSignState:
    """Persist ``state`` before executing the actions after this one."""

    state: SignState


@final
@dataclass(frozen=True, slots=True)
class BroadcastProposal:
    proposal: Proposal
    block: Block


@final
@dataclass(frozen=True, slots=True)
class BroadcastVote:
    vote: Vote


@final
@dataclass(frozen=True, slots=True)
class Decide:
    """``block`` is final at ``height``: commit it with ``certificate``."""

    height: int
    block: Block
    certificate: CommitCertificate


@final
@dataclass(frozen=True, slots=True)
class RecordEvidence:
    evidence: Evidence


ConsensusAction = (
    ScheduleTimeout | MakeBlock | ValidateBlock | SaveSignState | BroadcastProposal
    | BroadcastVote | Decide | RecordEvidence
)


# -- the machine -------------------------------------------------------------------------------


@final
class Consensus:
    """Tendermint for one node: a validator when ``signer`` is one of ``validators``, else a
    follower. Starts idle; call :meth:`start_height` first."""

    def __init__(
        self,
        validators: Sequence[bytes],
        network_id: str,
        timeouts: TimeoutParams,
        *,
        signer: Signer | None = None,
        height: int = 0,
        sign_state: SignState | None = None,
        verify: Verify = signing.verify,
    ) -> None:
        if not validators:
            raise ValueError("consensus needs at least one validator")
        self._validators = tuple(validators)
        self._network_id = network_id
        self._timeouts = timeouts
        self._verify = verify
        self._n = len(self._validators)
        self._quorum = quorum(self._n)
        self._skip = (self._n - 1) // 3 + 1
        self._signer = signer
        self.index: int | None = None
        if signer is not None and signer.signing_key in self._validators:
            self.index = self._validators.index(signer.signing_key)
        self._sign_state = sign_state
        #: The height being decided; before :meth:`start_height`, the last committed one.
        self.height = height
        self.round = 0
        self.step = Step.NEW_HEIGHT
        self._prev_hash = ZERO_HASH
        self._prev_time_ms = 0
        self._reset_height_state()
        self._future_votes: dict[int, list[Vote]] = {}
        self._future_proposals: dict[int, dict[int, tuple[Proposal, Block]]] = {}
        self.evidence: list[Evidence] = []
        self.counters: Counter[str] = Counter()

    def _reset_height_state(self) -> None:
        self._locked_round = -1
        self._locked: Block | None = None
        self._valid_round = -1
        self._valid: Block | None = None
        self._proposals: dict[int, Proposal] = {}
        self._blocks: dict[bytes, Block] = {}
        #: Block hash → the caller's verdict; absent while it is being checked.
        self._verdicts: dict[bytes, bool] = {}
        self._asked: set[bytes] = set()
        self._votes: dict[tuple[int, VoteType], dict[int, Vote]] = {}
        self._round_voters: dict[int, set[int]] = {}
        #: Rules that fire once per round (l. 34, 36, 47).
        self._fired: set[tuple[str, int]] = set()
        self._decided: Block | None = None
        self._extra_blocks = 0

    # -- what the caller reads ---------------------------------------------------------------

    @property
    def is_validator(self) -> bool:
        return self.index is not None

    @property
    def decided(self) -> Block | None:
        return self._decided

    @property
    def locked_round(self) -> int:
        return self._locked_round

    @property
    def locked_hash(self) -> bytes | None:
        return None if self._locked is None else self._locked.hash

    def proposer(self, height: int, round_: int) -> int:
        """Index of the proposer of (height, round): ``(h + r) mod n`` (SPEC §4.6)."""
        return (height + round_) % self._n

    def has_future(self, height: int) -> bool:
        """Whether messages for ``height`` wait for it to start."""
        return height == self.height + 1 and bool(
            self._future_votes or self._future_proposals)

    @property
    def progress(self) -> tuple[int, int, Step]:
        """(height, round, step): the caller notices a stall when this stops changing."""
        return self.height, self.round, self.step

    def catch_up(self) -> tuple[list[tuple[Proposal, Block]], list[Vote]]:
        """What a peer stuck at this height needs from us (CometBFT's consensus reactor
        re-sends votes a peer lacks; gossip delivers each message once): the proposals and
        votes of the current and previous round, of the rounds we locked or saw a valid block
        in, and of the two highest rounds ahead of ours we hold votes for."""
        if self.step is Step.NEW_HEIGHT:
            return [], []
        ahead = sorted(r for r in self._round_voters if r > self.round)[-2:]
        rounds = {self.round, self.round - 1, self._locked_round, self._valid_round, *ahead}
        rounds.discard(-1)
        votes = [vote for (round_, _), by_validator in sorted(self._votes.items(),
                                                              key=lambda kv: -kv[0][0])
                 if round_ in rounds for vote in by_validator.values()]
        proposals = [(self._proposals[r], self._blocks[self._proposals[r].block_hash])
                     for r in sorted(rounds, reverse=True) if r in self._proposals]
        return proposals, votes

    # -- inputs ------------------------------------------------------------------------------

    def start_height(self, height: int, prev_hash: bytes, prev_time_ms: int, now: float
                     ) -> list[ConsensusAction]:
        """Start deciding ``height`` (the previous block is ``prev_hash``, made at
        ``prev_time_ms``): round 0, or the round a restored sign state was in."""
        if height <= self.height:
            raise ValueError(f"height {height} does not follow {self.height}")
        future_votes = self._future_votes if height == self.height + 1 else {}
        future_proposals = self._future_proposals if height == self.height + 1 else {}
        self._future_votes, self._future_proposals = {}, {}
        self.height = height
        self._prev_hash = prev_hash
        self._prev_time_ms = prev_time_ms
        self._reset_height_state()
        start_round = 0
        restored = self._sign_state
        if restored is not None and restored.height == height:
            start_round = restored.round
            if restored.locked_block is not None:
                try:
                    block = Block.decode(restored.locked_block)
                except DecodeError:
                    log.error("consensus.sign_state.corrupt_lock height=%d", height)
                else:
                    self._locked = self._valid = block
                    self._locked_round = self._valid_round = restored.locked_round
                    self._blocks[block.hash] = block
                    self._verdicts[block.hash] = True
        actions = self._start_round(start_round, now)
        for proposals in future_proposals.values():
            for proposal, block in proposals.values():
                actions += self._replay(self.on_proposal, proposal, block, now)
        for votes in future_votes.values():
            for vote in votes:
                actions += self._replay(self.on_vote, vote, now)
        return actions

    def finish_height(self, height: int) -> None:
        """``height`` was committed from a synced certificate: stop deciding it."""
        if height == self.height and self.step is not Step.NEW_HEIGHT:
            self.step = Step.COMMIT

    def on_proposal(self, proposal: Proposal, block: Block, now: float
                    ) -> list[ConsensusAction]:
        """A signed proposal and its block, from the network (or replayed)."""
        if not self._current_or_next(proposal.height, proposal.round):
            return []
        if proposal.proposer != self.proposer(proposal.height, proposal.round):
            raise VoteInvalid(VoteFault.WRONG_PROPOSER, f"round {proposal.round}")
        if not proposal.verify(self._validators[proposal.proposer], self._network_id,
                               verify=self._verify):
            raise VoteInvalid(VoteFault.BAD_SIGNATURE, f"proposer {proposal.proposer}")
        if block.hash != proposal.block_hash:
            raise BlockInvalid(BlockFault.HASH_MISMATCH)
        if proposal.height == self.height + 1:
            return self._keep_future_proposal(proposal, block)
        actions: list[ConsensusAction] = []
        known = self._proposals.get(proposal.round)
        if known == proposal:
            self.counters["duplicate_proposals"] += 1
            return []
        if known is not None:
            actions += self._record(Evidence.of(EvidenceKind.DUPLICATE_PROPOSAL,
                                                known.encode(), proposal.encode()))
            # Only the first proposal counts, but the other's block may be the one a quorum
            # precommits (the equivocator told them that one): keep a few to decide from.
            if block.hash in self._blocks or self._extra_blocks >= MAX_EXTRA_BLOCKS:
                return actions
            self._extra_blocks += 1
        else:
            self._proposals[proposal.round] = proposal
        self._blocks.setdefault(block.hash, block)
        if block.hash not in self._verdicts and block.hash not in self._asked:
            fault = self._header_fault(proposal, block)
            if fault is not None:
                self.counters[f"invalid_block.{fault.value}"] += 1
                self._verdicts[block.hash] = False
            else:
                self._asked.add(block.hash)
                actions.append(ValidateBlock(self.height, block))
        return actions + self._evaluate(now)

    def on_vote(self, vote: Vote, now: float) -> list[ConsensusAction]:
        """A signed prevote or precommit, from the network (or replayed)."""
        if not self._current_or_next(vote.height, vote.round):
            return []
        if vote.validator >= self._n:
            raise VoteInvalid(VoteFault.UNKNOWN_VALIDATOR, str(vote.validator))
        if not vote.verify(self._validators[vote.validator], self._network_id,
                           verify=self._verify):
            raise VoteInvalid(VoteFault.BAD_SIGNATURE, f"validator {vote.validator}")
        if vote.height == self.height + 1:
            return self._keep_future_vote(vote)
        actions = self._add_vote(vote)
        return actions + self._evaluate(now)

    def on_block_verdict(self, block_hash: bytes, valid: bool, now: float
                         ) -> list[ConsensusAction]:
        """The caller's answer to :class:`ValidateBlock`: do the block's transactions apply?"""
        if block_hash not in self._asked or self.step is Step.COMMIT:
            return []
        self._asked.discard(block_hash)
        self._verdicts[block_hash] = valid
        if not valid:
            self.counters["invalid_block.txs"] += 1
        return self._evaluate(now)

    def propose(self, block: Block, now: float) -> list[ConsensusAction]:
        """Our block for the round :class:`MakeBlock` named (its transactions already checked
        by the caller); ignored if the round has moved on."""
        if (self.index is None or self.step is not Step.PROPOSE
                or self.proposer(self.height, self.round) != self.index
                or self.round in self._proposals):
            return []
        header = block.header
        if (header.height != self.height or header.round != self.round
                or header.prev_hash != self._prev_hash or header.proposer != self.index
                or header.time_ms <= self._prev_time_ms):
            raise ValueError("the block does not fit the round it is proposed in")
        self._blocks[block.hash] = block
        self._verdicts[block.hash] = True
        return self._broadcast_proposal(block, -1, now)

    def on_timeout(self, event: TimeoutEvent, now: float) -> list[ConsensusAction]:
        """A timeout this machine scheduled is due (l. 57–67); stale ones do nothing."""
        if (event.height != self.height or event.round != self.round
                or self.step is Step.COMMIT):
            return []
        actions: list[ConsensusAction] = []
        match event.step:
            case TimeoutStep.PROPOSE:
                if self.step is Step.PROPOSE:
                    self.counters["timeouts.propose"] += 1
                    actions += self._vote(VoteType.PREVOTE, None)
                    self.step = Step.PREVOTE
            case TimeoutStep.PREVOTE:
                if self.step is Step.PREVOTE:
                    self.counters["timeouts.prevote"] += 1
                    actions += self._vote(VoteType.PRECOMMIT, None)
                    self.step = Step.PRECOMMIT
            case TimeoutStep.PRECOMMIT:
                self.counters["timeouts.precommit"] += 1
                actions += self._start_round(self.round + 1, now)
            case _:
                assert_never(event.step)
        return actions + self._evaluate(now)

    # -- the rules -----------------------------------------------------------------------------

    def _evaluate(self, now: float) -> list[ConsensusAction]:
        """Fire Algorithm 1's "upon" rules until none applies."""
        actions: list[ConsensusAction] = []
        rules = (self._rule_decide, self._rule_round_skip, self._rule_prevote_proposal,
                 self._rule_prevote_timeout, self._rule_lock, self._rule_precommit_nil,
                 self._rule_precommit_timeout)
        progressed = True
        while progressed and self.step not in (Step.COMMIT, Step.NEW_HEIGHT):
            progressed = False
            for rule in rules:
                fired = rule(now)
                if fired is not None:
                    actions += fired
                    progressed = True
                    break
        return actions

    def _rule_decide(self, now: float) -> list[ConsensusAction] | None:
        """l. 49: a quorum of precommits for a known, valid block in any round."""
        for (round_, vote_type), votes in self._votes.items():
            if vote_type is not VoteType.PRECOMMIT or len(votes) < self._quorum:
                continue
            for block_hash, count in Counter(v.block_hash for v in votes.values()).items():
                if (block_hash is None or count < self._quorum
                        or not self._verdicts.get(block_hash, False)):
                    continue
                block = self._blocks[block_hash]
                certificate = CommitCertificate.from_votes(
                    [v for v in votes.values() if v.block_hash == block_hash])
                self._decided = block
                self.step = Step.COMMIT
                self.counters["decided"] += 1
                log.debug("consensus.decided height=%d round=%d hash=%s", self.height, round_,
                          block_hash.hex()[:16])
                return [Decide(self.height, block, certificate)]
        return None

    def _rule_round_skip(self, now: float) -> list[ConsensusAction] | None:
        """l. 55: votes of f + 1 validators from a higher round: go to that round."""
        higher = [r for r, voters in self._round_voters.items()
                  if r > self.round and len(voters) >= self._skip]
        if not higher:
            return None
        self.counters["round_skips"] += 1
        return self._start_round(max(higher), now)

    def _rule_prevote_proposal(self, now: float) -> list[ConsensusAction] | None:
        """l. 22 and 28: prevote the round's proposal, or nil."""
        if self.step is not Step.PROPOSE:
            return None
        proposal = self._proposals.get(self.round)
        if proposal is None:
            return None
        verdict = self._verdicts.get(proposal.block_hash)
        if verdict is None:
            return None  # its transactions are being checked
        vr = proposal.pol_round
        if vr == -1:
            acceptable = self._locked_round == -1 or self.locked_hash == proposal.block_hash
        elif vr < self.round and self._count(vr, VoteType.PREVOTE,
                                             proposal.block_hash) >= self._quorum:
            acceptable = self._locked_round <= vr or self.locked_hash == proposal.block_hash
        else:
            return None  # its proof of lock has not reached us (yet)
        choice = proposal.block_hash if verdict and acceptable else None
        actions = self._vote(VoteType.PREVOTE, choice)
        self.step = Step.PREVOTE
        return actions

    def _rule_prevote_timeout(self, now: float) -> list[ConsensusAction] | None:
        """l. 34: a quorum of any prevotes: schedule ``timeout_prevote`` once."""
        if self.step is not Step.PREVOTE or ("prevote", self.round) in self._fired:
            return None
        if self._count_any(self.round, VoteType.PREVOTE) < self._quorum:
            return None
        self._fired.add(("prevote", self.round))
        return [self._schedule(TimeoutStep.PREVOTE, now)]

    def _rule_lock(self, now: float) -> list[ConsensusAction] | None:
        """l. 36: a quorum of prevotes for the round's valid proposal: lock and precommit it
        (in step prevote), and remember it as the valid value, once per round."""
        if self.step < Step.PREVOTE or ("lock", self.round) in self._fired:
            return None
        proposal = self._proposals.get(self.round)
        if proposal is None or not self._verdicts.get(proposal.block_hash, False):
            return None
        if self._count(self.round, VoteType.PREVOTE, proposal.block_hash) < self._quorum:
            return None
        self._fired.add(("lock", self.round))
        block = self._blocks[proposal.block_hash]
        actions: list[ConsensusAction] = []
        if self.step is Step.PREVOTE:
            self._locked, self._locked_round = block, self.round
            actions += self._vote(VoteType.PRECOMMIT, block.hash)
            self.step = Step.PRECOMMIT
        self._valid, self._valid_round = block, self.round
        return actions

    def _rule_precommit_nil(self, now: float) -> list[ConsensusAction] | None:
        """l. 44: a quorum of nil prevotes: precommit nil."""
        if self.step is not Step.PREVOTE:
            return None
        if self._count(self.round, VoteType.PREVOTE, None) < self._quorum:
            return None
        actions = self._vote(VoteType.PRECOMMIT, None)
        self.step = Step.PRECOMMIT
        return actions

    def _rule_precommit_timeout(self, now: float) -> list[ConsensusAction] | None:
        """l. 47: a quorum of any precommits: schedule ``timeout_precommit`` once."""
        if ("precommit", self.round) in self._fired:
            return None
        if self._count_any(self.round, VoteType.PRECOMMIT) < self._quorum:
            return None
        self._fired.add(("precommit", self.round))
        return [self._schedule(TimeoutStep.PRECOMMIT, now)]

    # -- steps -------------------------------------------------------------------------------

    def _start_round(self, round_: int, now: float) -> list[ConsensusAction]:
        """l. 11: StartRound."""
        self.round = round_
        self.step = Step.PROPOSE
        actions: list[ConsensusAction] = [self._schedule(TimeoutStep.PROPOSE, now)]
        if self.index is not None and self.proposer(self.height, round_) == self.index:
            if self._valid is not None:
                actions += self._broadcast_proposal(self._valid, self._valid_round, now)
            elif self._may_sign(round_, None, None):
                actions.append(MakeBlock(self.height, round_, self._prev_hash,
                                         self._prev_time_ms + 1, self.index))
        return actions + self._evaluate(now)

    def _broadcast_proposal(self, block: Block, pol_round: int, now: float
                            ) -> list[ConsensusAction]:
        assert self._signer is not None and self.index is not None
        if not self._may_sign(self.round, None, block.hash):
            return []
        proposal = Proposal.sign(self._signer, self._network_id, height=self.height,
                                 round=self.round, block_hash=block.hash, pol_round=pol_round,
                                 proposer=self.index)
        self._proposals[self.round] = proposal
        actions: list[ConsensusAction] = [
            self._signed(self.round, None, block.hash),
            BroadcastProposal(proposal, block),
        ]
        return actions + self._evaluate(now)

    def _vote(self, vote_type: VoteType, block_hash: bytes | None) -> list[ConsensusAction]:
        """Sign and broadcast our vote (validators only; the guard may refuse)."""
        if self._signer is None or self.index is None:
            return []
        if not self._may_sign(self.round, vote_type, block_hash):
            self.counters["sign_refused"] += 1
            return []
        vote = Vote.sign(self._signer, self._network_id, height=self.height, round=self.round,
                         type=vote_type, block_hash=block_hash, validator=self.index)
        saved = self._signed(self.round, vote_type, block_hash)
        self._store_vote(vote)
        return [saved, BroadcastVote(vote)]

    def _may_sign(self, round_: int, vote_type: VoteType | None, block_hash: bytes | None
                  ) -> bool:
        last = self._sign_state
        if last is None or last.height != self.height:
            return last is None or last.height < self.height
        here = (round_, _SIGN_RANK[vote_type])
        before = (last.round, last.rank)
        if here != before:
            return here > before
        return block_hash == last.block_hash  # the same message again, never another

    def _signed(self, round_: int, vote_type: VoteType | None, block_hash: bytes | None
                ) -> SaveSignState:
        self._sign_state = SignState(
            self.height, round_, _SIGN_RANK[vote_type], block_hash, self._locked_round,
            None if self._locked is None else self._locked.encode())
        return SaveSignState(self._sign_state)

    def _schedule(self, step: TimeoutStep, now: float) -> ScheduleTimeout:
        return ScheduleTimeout(TimeoutEvent(self.height, self.round, step),
                               now + self._timeouts.duration(step, self.round))

    # -- votes -------------------------------------------------------------------------------

    def _add_vote(self, vote: Vote) -> list[ConsensusAction]:
        votes = self._votes.get((vote.round, vote.type), {})
        known = votes.get(vote.validator)
        if known is not None:
            if known.block_hash != vote.block_hash:
                return self._record(Evidence.of(EvidenceKind.DUPLICATE_VOTE, known.encode(),
                                                vote.encode()))
            self.counters["duplicate_votes"] += 1
            return []
        self._store_vote(vote)
        return []

    def _store_vote(self, vote: Vote) -> None:
        self._votes.setdefault((vote.round, vote.type), {})[vote.validator] = vote
        self._round_voters.setdefault(vote.round, set()).add(vote.validator)

    def _count(self, round_: int, vote_type: VoteType, block_hash: bytes | None) -> int:
        votes = self._votes.get((round_, vote_type), {})
        return sum(1 for v in votes.values() if v.block_hash == block_hash)

    def _count_any(self, round_: int, vote_type: VoteType) -> int:
        return len(self._votes.get((round_, vote_type), {}))

    def _record(self, evidence: Evidence) -> list[ConsensusAction]:
        self.counters["evidence"] += 1
        if evidence in self.evidence:
            return []
        if len(self.evidence) >= MAX_EVIDENCE:
            self.evidence.pop(0)
        self.evidence.append(evidence)
        log.warning("consensus.evidence kind=%s height=%d validator=%d",
                    evidence.kind.name.lower(), evidence.height, evidence.validator)
        return [RecordEvidence(evidence)]

    # -- admission -----------------------------------------------------------------------------

    def _current_or_next(self, height: int, round_: int) -> bool:
        """Whether a message of (height, round) is for us: raise ``WRONG_HEIGHT`` for another
        height than this one or the next; False (ignore) once decided or too far ahead."""
        if height not in (self.height, self.height + 1):
            self.counters["wrong_height"] += 1
            raise VoteInvalid(VoteFault.WRONG_HEIGHT, f"{height} at {self.height}")
        if height == self.height and self.step in (Step.COMMIT, Step.NEW_HEIGHT):
            self.counters["after_decision"] += 1
            return False
        base = self.round if height == self.height else 0
        if round_ > base + MAX_ROUNDS_AHEAD:
            self.counters["too_far_ahead"] += 1
            return False
        return True

    def _keep_future_vote(self, vote: Vote) -> list[ConsensusAction]:
        kept = self._future_votes.setdefault(vote.validator, [])
        if vote not in kept and len(kept) < MAX_FUTURE_PER_VALIDATOR:
            kept.append(vote)
            self.counters["future_kept"] += 1
        return []

    def _keep_future_proposal(self, proposal: Proposal, block: Block) -> list[ConsensusAction]:
        kept = self._future_proposals.setdefault(proposal.proposer, {})
        if proposal.round not in kept and len(kept) < MAX_FUTURE_PER_VALIDATOR:
            kept[proposal.round] = (proposal, block)
            self.counters["future_kept"] += 1
        return []

    def _header_fault(self, proposal: Proposal, block: Block) -> BlockFault | None:
        """Why the proposer's block cannot be the next block, if it cannot."""
        header = block.header
        try:
            block.validate_basic()
        except BlockInvalid as exc:
            return exc.reason
        if (header.network_id != self._network_id or header.height != self.height
                or header.prev_hash != self._prev_hash or header.time_ms <= self._prev_time_ms
                or header.proposer >= self._n):
            return BlockFault.MALFORMED
        if proposal.pol_round == -1:
            if header.round != proposal.round or header.proposer != proposal.proposer:
                return BlockFault.ROUND_MISMATCH
        elif header.round > proposal.pol_round:
            return BlockFault.ROUND_MISMATCH
        return None

    def _replay(self, handler: Callable[..., list[ConsensusAction]], *args: object
                ) -> list[ConsensusAction]:
        """A kept message of the height just started, through the usual checks."""
        try:
            return handler(*args)
        except (VoteInvalid, BlockInvalid) as exc:
            self.counters[f"replay_refused.{exc.reason.value}"] += 1
            return []
