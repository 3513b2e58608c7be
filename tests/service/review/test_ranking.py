"""The review queue's active-learning ranking: each criterion moves a candidate up, and the
budget, the diversity filter and the proposal stream hold."""

from __future__ import annotations

import pytest

from service.review.ranking import (
    BoxEvidence,
    Candidate,
    Policy,
    Reviewed,
    balance,
    choose,
    disagreement,
    uncertainty,
)

THRESHOLDS = {"garbage_pile": 0.35, "roadside_clutter": 0.35}


def one(key: str, score: float, cls: str = "garbage_pile", **box: object) -> Candidate:
    phash = box.pop("phash", None)
    pool = box.pop("pool", "default")
    proposal = box.pop("proposal", False)
    return Candidate(key=key, boxes=(BoxEvidence(cls, score, **box),),  # type: ignore[arg-type]
                     phash=phash, pool=pool, proposal=proposal)  # type: ignore[arg-type]


def keys(chosen: list[Candidate]) -> list[object]:
    return [c.key for c in chosen]


def policy(n: int, **kw: object) -> Policy:
    return Policy(budget={"default": n}, thresholds=THRESHOLDS, **kw)  # type: ignore[arg-type]


def test_uncertainty_peaks_at_the_operating_threshold() -> None:
    assert uncertainty(0.35, 0.35) == 1.0
    assert uncertainty(0.30, 0.35) > uncertainty(0.10, 0.35) > uncertainty(0.0, 0.35)
    assert uncertainty(1.0, 0.35) == 0.0
    chosen = choose([one("sure", 0.95), one("near", 0.37), one("faint", 0.05)], policy(1))
    assert keys(chosen) == ["near"]


def test_disagreement_seams_neighbours_and_model_versions() -> None:
    assert disagreement(BoxEvidence("garbage_pile", 0.9, on_seam=True), 0.35) == 1.0
    # Opposite sides of the threshold: full disagreement; same side: the gap.
    assert disagreement(BoxEvidence("garbage_pile", 0.9, neighbour_score=0.1), 0.35) == 1.0
    assert disagreement(BoxEvidence("garbage_pile", 0.9, other_model_score=0.8), 0.35) == pytest.approx(0.1)
    assert disagreement(BoxEvidence("garbage_pile", 0.9), 0.35) == 0.0
    plain, seam = one("plain", 0.9), one("seam", 0.9, on_seam=True)
    versions = one("versions", 0.9, other_model_score=0.2)
    assert keys(choose([plain, seam, versions], policy(2))) == ["seam", "versions"]


def test_rare_classes_come_first() -> None:
    assert balance("roadside_clutter", {"garbage_pile": 500}) == 1.0
    assert balance("garbage_pile", {"garbage_pile": 3}) == 0.25
    common, rare = one("common", 0.5), one("rare", 0.5, cls="roadside_clutter")
    reviewed = Reviewed(class_counts={"garbage_pile": 200, "roadside_clutter": 2})
    assert keys(choose([common, rare], policy(1), reviewed)) == ["rare"]


def test_near_duplicates_of_reviewed_or_chosen_frames_are_skipped() -> None:
    base = 0x0F0F_0F0F_0F0F_0F0F
    twin = base ^ 0b111  # 3 bits away
    far = ~base & (2**64 - 1)
    candidates = [one("a", 0.35, phash=base), one("a-twin", 0.35, phash=twin), one("b", 0.30, phash=far)]
    assert keys(choose(candidates, policy(2))) == ["a", "b"]
    # Already reviewed: both copies are skipped.
    assert keys(choose(candidates, policy(3), Reviewed(hashes=(base,)))) == ["b"]
    assert keys(choose(candidates, policy(3, max_hamming=2))) == ["a", "a-twin", "b"]


def test_proposals_are_their_own_stream_with_a_share_of_the_budget() -> None:
    model = [one(f"m{i}", 0.35) for i in range(10)]
    # A rule detector's score is not the model's: even a weak proposal gets its share.
    proposals = [one(f"p{i}", 0.99, cls="blue_steel_roof", proposal=True) for i in range(10)]
    chosen = choose(model + proposals, policy(10, proposal_share=0.3))
    assert sum(c.proposal for c in chosen) == 3 and len(chosen) == 10
    # A share the proposals cannot fill goes to the model's stream.
    chosen = choose(model + proposals[:1], policy(10, proposal_share=0.3))
    assert sum(c.proposal for c in chosen) == 1 and len(chosen) == 10


def test_a_daily_budget_per_pool() -> None:
    north = [one(f"n{i}", 0.35, pool="north") for i in range(5)]
    south = [one(f"s{i}", 0.35, pool="south") for i in range(5)]
    chosen = choose(north + south, Policy(budget={"north": 2, "south": 4}, thresholds=THRESHOLDS))
    assert keys(chosen) == ["n0", "n1", "s0", "s1", "s2", "s3"]
    # A pool without a budget gets nothing; a negative budget is an error, not zero.
    assert choose(north, Policy(budget={"south": 3}, thresholds=THRESHOLDS)) == []
    with pytest.raises(ValueError, match="budget"):
        choose(north, Policy(budget={"north": -1}, thresholds=THRESHOLDS))


def many(key: str, cls: str, scores: tuple[float, ...], phash: int) -> Candidate:
    return Candidate(key=key, boxes=tuple(BoxEvidence(cls, s) for s in scores), phash=phash)


def test_a_class_being_taught_starts_by_diversity_alone() -> None:
    # Nothing of roadside_clutter reviewed yet: its scores are an untrained output's, so the
    # near-threshold one is not preferred; frames far from each other and from the reviewed are.
    reviewed = Reviewed({"garbage_pile": 50}, hashes=(0xFFFF_FFFF_FFFF_FFFF,))
    pool = [many("uncertain", "roadside_clutter", (0.35,), 0xFFFF_FFFF_FFFF_FF00),  # 8 bits from reviewed
            many("far", "roadside_clutter", (0.01,), 0x0),  # 64 bits from reviewed
            many("between", "roadside_clutter", (0.01,), 0xFFFF_FFFF_0000_0000)]  # 32 from each
    taught = policy(2, focus=frozenset({"roadside_clutter"}))
    assert keys(choose(pool, taught, reviewed)) == ["far", "between"]
    # Once some are reviewed, the class's uncertainty ranks again.
    later = Reviewed({"roadside_clutter": 10}, hashes=reviewed.hashes)
    assert keys(choose(pool, taught, later))[0] == "uncertain"


def test_a_class_being_taught_counts_its_boxes_only_and_all_of_them() -> None:
    later = Reviewed({"roadside_clutter": 10})
    pool = [many("one-stall", "roadside_clutter", (0.35,), 0x0F),
            many("five-stalls", "roadside_clutter", (0.3, 0.4, 0.2, 0.5, 0.3), 0xF0F0_F0F0),
            many("garbage", "garbage_pile", (0.35, 0.35, 0.35), 0xFFFF_0000_FFFF_0000)]
    taught = policy(3, focus=frozenset({"roadside_clutter"}))
    assert keys(choose(pool, taught, later)) == ["five-stalls", "one-stall", "garbage"]
    # Without a focus an image is as useful as its best box, whatever its class.
    assert keys(choose(pool, policy(1), later)) == ["garbage"]
