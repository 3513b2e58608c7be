"""Which candidates reviewers see first (active learning), within a daily budget per reviewer pool.

Pure: candidates in, an ordered choice out; no database, no model. A candidate is one frame (a
task) with the boxes the model found in it. Its priority is that of its most useful box:

- uncertainty: the score near its class's operating threshold (the model card's) teaches the
  most; a box far above or far below it is a decision the model already makes;
- disagreement: a box across a tile seam (two tiles saw it differently), a score that differs
  from the same class's in the neighbouring frames, or from another model version's score,
  above all when the two fall on different sides of the threshold;
- class balance: a class reviewers have confirmed few boxes of comes first (its labels are
  worth the most to the next model).

A class being taught (`Policy.focus`: one the model learns from these reviews, such as a class
it has never seen) changes the rule. Only its boxes count, an image's priority is the sum over
them (each uncertain box is a label the next model learns from, so a frame with five uncertain
stalls teaches more than one with one), and while reviewers have confirmed no box of it yet the
model's scores for it mean nothing (an untrained output): the first choice is by diversity alone,
frames spread as far apart as their hashes allow (farthest first), the way a random draw would
cover the pool but without its clumps.

Diversity is a filter, not a score: a frame within `max_hamming` bits (perceptual hash) of one
already reviewed or already chosen is skipped, so a burst of near-identical frames costs one
review, not fifty. Candidates from proposal generators (rule detectors for classes the model does
not know yet) are their own stream with a share of each pool's budget: their scores are not the
model's, so they are never ranked against it; a share they leave unused goes to the model's stream.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from vision.image_hash import hamming


@dataclass(frozen=True)
class BoxEvidence:
    """One box of a candidate, and what else was seen of it."""

    class_key: str
    score: float
    on_seam: bool = False  # crosses a tile seam
    neighbour_score: float | None = None  # its class's best score in adjacent frames; None: not looked
    other_model_score: float | None = None  # another model version's score for this box; None: one model


@dataclass(frozen=True)
class Candidate:
    key: Hashable  # a frame id, an image path: whatever the caller pushes
    boxes: tuple[BoxEvidence, ...]
    phash: int | None = None  # None: no image to compare, never filtered as a duplicate
    pool: str = "default"  # the reviewer pool whose budget it spends
    proposal: bool = False  # from a rule detector, not the model


@dataclass(frozen=True)
class Weights:
    uncertainty: float = 1.0
    disagreement: float = 1.0
    balance: float = 0.5


@dataclass(frozen=True)
class Reviewed:
    """What reviewers already have: boxes per class, and the hashes of the frames they saw."""

    class_counts: Mapping[str, int] = field(default_factory=dict)
    hashes: tuple[int, ...] = ()


@dataclass(frozen=True)
class Policy:
    budget: Mapping[str, int]  # reviews left today per pool; a pool not named gets none
    thresholds: Mapping[str, float]  # operating threshold per class (model card)
    weights: Weights = Weights()
    proposal_share: float = 0.2  # of each pool's budget, kept for proposal candidates
    max_hamming: int = 6  # dHash bits within which two frames are near-duplicates
    default_threshold: float = 0.5  # for a class the card has no threshold for
    focus: frozenset[str] = frozenset()  # classes being taught; empty: every class counts


def uncertainty(score: float, threshold: float) -> float:
    """1 at the threshold, falling linearly to 0 at the far end of [0, 1]."""
    span = max(threshold, 1.0 - threshold)
    return max(0.0, 1.0 - abs(score - threshold) / span) if span > 0 else 1.0


def _against(score: float, other: float | None, threshold: float) -> float:
    if other is None:
        return 0.0
    # On different sides of the threshold the two make opposite decisions: the strongest disagreement.
    return 1.0 if (score >= threshold) != (other >= threshold) else abs(score - other)


def disagreement(box: BoxEvidence, threshold: float) -> float:
    return max(1.0 if box.on_seam else 0.0, _against(box.score, box.neighbour_score, threshold),
               _against(box.score, box.other_model_score, threshold))


def balance(class_key: str, class_counts: Mapping[str, int]) -> float:
    """1 for a class nobody has reviewed yet, 1/2 after one box, 1/(n+1) after n."""
    return 1.0 / (1.0 + max(0, class_counts.get(class_key, 0)))


def _box_priority(box: BoxEvidence, policy: Policy, reviewed: Reviewed) -> float:
    w = policy.weights
    threshold = policy.thresholds.get(box.class_key, policy.default_threshold)
    return (w.uncertainty * uncertainty(box.score, threshold)
            + w.disagreement * disagreement(box, threshold)
            + w.balance * balance(box.class_key, reviewed.class_counts))


def priority(candidate: Candidate, policy: Policy, reviewed: Reviewed) -> float:
    if policy.focus:
        return sum(_box_priority(b, policy, reviewed) for b in candidate.boxes if b.class_key in policy.focus)
    return max((_box_priority(b, policy, reviewed) for b in candidate.boxes), default=0.0)


def cold_start(policy: Policy, reviewed: Reviewed) -> bool:
    """True while a class being taught has no reviewed box: the model's scores for it are noise."""
    return any(reviewed.class_counts.get(key, 0) == 0 for key in policy.focus)


def _spread(candidates: Sequence[Candidate], seen: Sequence[int], limit: int) -> list[Candidate]:
    """The first `limit` candidates each the farthest (Hamming) from those reviewed or before it,
    then the rest in the caller's order.

    Ties go to the caller's order; candidates without a hash come last. Near-duplicates are left
    to `_take`, which this feeds (farthest first reaches them only when nothing far is left).
    O(n) a pick, so `limit` bounds the cost on a pool of thousands.
    """
    left = [c for c in candidates if c.phash is not None]
    hashes = [c.phash or 0 for c in left]
    # Each candidate's distance to the nearest anchor so far, updated as each is chosen.
    nearest = [min((hamming(h, a) for a in seen), default=65) for h in hashes]
    order: list[Candidate] = []
    while left and len(order) < limit:
        far = max(range(len(left)), key=lambda i: (nearest[i], -i))
        chosen, picked = left.pop(far), hashes.pop(far)
        nearest.pop(far)
        order.append(chosen)
        nearest = [min(d, hamming(h, picked)) for d, h in zip(nearest, hashes, strict=True)]
    return order + left + [c for c in candidates if c.phash is None]


def _ranked(candidates: Iterable[Candidate], policy: Policy, reviewed: Reviewed) -> list[Candidate]:
    scored = [(priority(c, policy, reviewed), i, c) for i, c in enumerate(candidates)]
    # Ties keep the caller's order (oldest first, say), so a choice is reproducible.
    return [c for _, _, c in sorted(scored, key=lambda t: (-t[0], t[1]))]


def _take(ranked: Sequence[Candidate], n: int, seen: list[int], max_hamming: int) -> list[Candidate]:
    taken: list[Candidate] = []
    for candidate in ranked:
        if len(taken) >= n:
            break
        if candidate.phash is not None:
            if any(hamming(candidate.phash, h) <= max_hamming for h in seen):
                continue
            seen.append(candidate.phash)
        taken.append(candidate)
    return taken


def choose(candidates: Sequence[Candidate], policy: Policy, reviewed: Reviewed = Reviewed()
           ) -> list[Candidate]:
    """The candidates to push now, best first within each pool: at most each pool's budget."""
    if not 0.0 <= policy.proposal_share <= 1.0:
        raise ValueError(f"expected proposal_share in [0, 1], got {policy.proposal_share}")
    chosen: list[Candidate] = []
    seen = list(reviewed.hashes)  # shared by the pools: a frame reviewed once need not be seen again
    for pool, budget in policy.budget.items():
        if budget < 0:
            raise ValueError(f"expected a budget >= 0 for pool {pool!r}, got {budget}")
        mine = [c for c in candidates if c.pool == pool]
        proposals = _take(_ranked((c for c in mine if c.proposal), policy, reviewed),
                          round(budget * policy.proposal_share), seen, policy.max_hamming)
        ours, wanted = [c for c in mine if not c.proposal], budget - len(proposals)
        ordered = (_spread(ours, seen, wanted) if cold_start(policy, reviewed)
                   else _ranked(ours, policy, reviewed))
        model = _take(ordered, wanted, seen, policy.max_hamming)
        chosen += model + proposals
    return chosen
