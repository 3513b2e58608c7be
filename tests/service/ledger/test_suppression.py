"""A rejected false alarm stays rejected (issue #10 part 5): a new sighting at its place joins it as
suppressed evidence, unless it is much stronger or the rejection is older than the quiet time.

Through the API on SQLite and PostgreSQL (the `client` fixture's backends), with the bundled rules
(service/ledger/suppression.yaml: margin 0.15, 30 quiet days; straw_burning 100 m and 7 days).
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from service.api.app import create_app
from service.ledger.dedup import DedupRules
from service.ledger.suppression import RULES_FILE, SuppressionRules, SuppressionRulesError
from service.settings import Settings
from tests.service.helpers import issue, issues, move, upload_ok
from tests.service.images import BASE_LAT, BASE_LON, drone_box_at, drone_photo, offset, painted, png
from vision.taxonomy import Taxonomy

BOX = (100, 80, 180, 160)
REJECTED_SCORE = 0.6


def _photo(label: str, score: float, shade: int) -> bytes:
    return png(painted([(label, BOX, score)], shade=shade))


def _reject_first(client, keys, label: str = "garbage") -> int:  # type: ignore[no-untyped-def]
    first = upload_ok(client, keys, _photo(label, REJECTED_SCORE, 1), lon=BASE_LON, lat=BASE_LAT)
    issue_id = int(first["issues"][0]["id"])
    response = move(client, keys, issue_id, "rejected", who="reviewer", reason="a haystack")
    assert response.status_code == 200, response.text
    return issue_id


# (case, [(days after the previous upload, score)] after the rejection, expected outcomes)
SIGHTINGS = [
    ("weaker again: suppressed", [(3, 0.65)], ["suppressed"]),
    ("same score a day later: suppressed", [(1, 0.6)], ["suppressed"]),
    ("0.15 stronger: a new candidate", [(3, 0.8)], ["opened"]),
    ("past the 30 quiet days: a new candidate", [(31, 0.6)], ["opened"]),
    # 0.7 is suppressed and must not become the bar: 0.8 clears 0.6 + 0.15, not 0.7 + 0.15.
    ("suppressed sightings do not raise the bar", [(1, 0.7), (1, 0.8)], ["suppressed", "opened"]),
    # once a stronger sighting reopened the place, the next one joins that open candidate.
    ("an open candidate wins over the rejection", [(1, 0.8), (1, 0.65)], ["opened", "joined"]),
]


@pytest.mark.parametrize("case, sightings, expected", SIGHTINGS, ids=[s[0] for s in SIGHTINGS])
def test_sightings_at_a_rejected_place(client, keys, clock, case, sightings, expected):
    rejected_id = _reject_first(client, keys)
    outcomes = []
    for shade, (days, score) in enumerate(sightings, start=2):
        clock.advance(days=days)
        lon, lat = offset(BASE_LON, BASE_LAT, east_m=10.0)
        result = upload_ok(client, keys, _photo("garbage", score, shade), lon=lon, lat=lat, who="citizen2")
        outcomes.append(result["issues"][0]["outcome"])
        if result["issues"][0]["outcome"] == "suppressed":
            assert result["issues"][0]["id"] == rejected_id and result["issues"][0]["state"] == "rejected"
    assert outcomes == expected

    props = issue(client, keys, rejected_id)["properties"]
    suppressed = expected.count("suppressed")
    assert props["state"] == "rejected"
    assert props["observation_count"] == 1 + suppressed  # counted, with its evidence
    assert len(props["evidence"]) == 1 + suppressed
    assert props["max_score"] == pytest.approx(REJECTED_SCORE, abs=0.01)  # the bar stays what was rejected
    joined = [e for e in props["history"] if e["kind"] == "joined"]
    assert len(joined) == suppressed
    for event in joined:
        assert event["reason"].startswith("suppressed: garbage_pile seen again 10.0 m from this false alarm")
        assert "by key:" in event["reason"] and "not 0.15 above the rejected 0.60" in event["reason"]

    if "opened" in expected:
        new_id = max(f["properties"]["id"] for f in issues(client, keys))
        assert new_id != rejected_id
        opened = issue(client, keys, new_id)["properties"]["history"][0]
        assert opened["kind"] == "opened"
        assert f"issue {rejected_id}, 10.0 m away, was rejected" in opened["reason"]
        days_case = sightings[0][0] > 30
        because = "past its 30 quiet days" if days_case else "is at least 0.15 above the rejected 0.60"
        assert because in opened["reason"]
    else:
        assert len(issues(client, keys)) == 1


def test_a_sighting_taken_before_the_rejection_joins_it(client, keys, clock):
    """An old photo arriving late (capture time before the rejection) is evidence of the false alarm."""
    taken = clock() - timedelta(days=2)
    clock.advance(days=1)
    rejected_id = _reject_first(client, keys)
    late = drone_photo(BASE_LON, BASE_LAT, [("garbage", drone_box_at(0, 0), 0.62)], taken=taken)
    result = upload_ok(client, keys, late, who="ingest")
    assert result["issues"][0]["outcome"] == "suppressed" and result["issues"][0]["id"] == rejected_id
    reason = issue(client, keys, rejected_id)["properties"]["history"][-1]["reason"]
    assert "taken before the rejection" in reason


def test_each_class_has_its_own_rule(client, keys, clock):
    """straw_burning suppresses within 100 m, not its 300 m dedup radius: a rejected chimney does not
    hide a burning in the next field."""
    rejected_id = _reject_first(client, keys, label="smoke")
    clock.advance(days=1)
    near_lon, near_lat = offset(BASE_LON, BASE_LAT, east_m=80.0)
    near = upload_ok(client, keys, _photo("smoke", 0.6, 2), lon=near_lon, lat=near_lat)
    far_lon, far_lat = offset(BASE_LON, BASE_LAT, east_m=150.0)
    far = upload_ok(client, keys, _photo("smoke", 0.6, 3), lon=far_lon, lat=far_lat)
    assert (near["issues"][0]["outcome"], near["issues"][0]["id"]) == ("suppressed", rejected_id)
    assert far["issues"][0]["outcome"] == "opened"


def test_the_rules_file_comes_from_settings(settings, analyzer, clock, keys_factory, tmp_path):
    rules = tmp_path / "suppression.yaml"
    rules.write_text("default: {score_margin: 0.15, quiet_days: 1}\n", encoding="utf-8")
    app = create_app(
        settings.model_copy(update={"suppression_rules_file": rules}), analyzer=analyzer, clock=clock
    )
    with TestClient(app) as client:
        keys = keys_factory()
        _reject_first(client, keys)
        clock.advance(days=2)
        second = upload_ok(client, keys, _photo("garbage", 0.6, 2), lon=BASE_LON, lat=BASE_LAT)
        assert second["issues"][0]["outcome"] == "opened"  # 2 days > this file's 1 quiet day


# -- the rules file -----------------------------------------------------------------------------------


def test_bundled_rules_resolve_per_class():
    taxonomy = Taxonomy.default()
    rules = SuppressionRules.load(RULES_FILE, taxonomy)
    dedup = DedupRules.from_settings(Settings(), taxonomy)
    garbage = rules.for_class("garbage_pile", dedup)
    assert (garbage.radius_m, garbage.score_margin, garbage.quiet.days) == (25.0, 0.15, 30)
    smoke = rules.for_class("straw_burning", dedup)
    assert (smoke.radius_m, smoke.score_margin, smoke.quiet.days) == (100.0, 0.15, 7)


@pytest.mark.parametrize(
    "text, message",
    [
        ("default: {score_margin: 0.15}\n", "quiet_days"),
        ("default: {score_margin: 2, quiet_days: 3}\n", "score_margin"),
        ("default: {score_margin: 0.1, quiet_days: 3}\nclasses: {blue_roof: {quiet_days: 2}}\n", "blue_roof"),
        ("default: {score_margin: 0.1, quiet_days: 3, typo: 1}\n", "typo"),
        ("default: [\n", "not valid YAML"),
    ],
)
def test_bad_rules_files_are_refused_with_the_reason(tmp_path: Path, text: str, message: str):
    path = tmp_path / "rules.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(SuppressionRulesError, match=message) as raised:
        SuppressionRules.load(path, Taxonomy.default())
    assert str(path) in str(raised.value)
