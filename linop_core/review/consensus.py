"""Several readers, one decision: the consensus rules an export can require, and where readers disagree.

Readers review the same candidates independently (:attr:`CandidateEntry.reviews`). An export asks a
:class:`ConsensusRule` what the readers' decisions add up to; the adjudication view lists the candidates
:func:`disputed` finds, so a senior reader can settle them.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum

from linop_core.review.session import CandidateEntry
from linop_core.vocab import Decision


class ConsensusRule(StrEnum):
    """How readers' decisions combine. ``LATEST`` is the single-reader workflow: the last decision counts."""

    LATEST = "latest"
    ALL = "all"  # approved when every reader approved (and at least ``min_readers`` did)
    MAJORITY = "majority"  # approved when more than half of the readers approved
    ANY = "any"  # approved when at least one reader approved


def consensus(entry: CandidateEntry, rule: ConsensusRule, min_readers: int = 1) -> Decision:
    """The decision ``rule`` makes of ``entry``'s readers' decisions.

    Fewer than ``min_readers`` readers leave the candidate pending under ALL and MAJORITY (and ANY without an
    approval). A MAJORITY tie is pending: neither side has more than half.
    """
    rule = ConsensusRule(rule)
    if rule is ConsensusRule.LATEST:
        return entry.decision
    votes = [review.decision for review in entry.reviews.values()]
    approvals = sum(vote is Decision.APPROVED for vote in votes)
    rejections = len(votes) - approvals
    if rule is ConsensusRule.ANY:
        if approvals:
            return Decision.APPROVED
        return Decision.REJECTED if len(votes) >= min_readers and rejections else Decision.PENDING
    if len(votes) < max(min_readers, 1):
        return Decision.PENDING
    if rule is ConsensusRule.ALL:
        return Decision.APPROVED if rejections == 0 else Decision.REJECTED
    if 2 * approvals > len(votes):
        return Decision.APPROVED
    return Decision.REJECTED if 2 * rejections > len(votes) else Decision.PENDING


def disputed(entries: Iterable[CandidateEntry]) -> list[CandidateEntry]:
    """The candidates on which at least two readers decided differently (for adjudication)."""
    return [e for e in entries if len({review.decision for review in e.reviews.values()}) > 1]
