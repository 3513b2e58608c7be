"""A rejected false alarm stays rejected: what a new sighting near a rejected issue does.

Dedup (`service.ledger.dedup`) never matches a rejected issue, so without this step the
chimney a reviewer rejected on Monday is a new candidate again on Tuesday. When a detection
matches no open or reboundable issue, the nearest rejected issue of its class within the
rule's radius decides:
- suppressed: the detection joins the rejected issue as evidence and its history says why;
  the issue stays rejected and its `max_score` stays what the reviewer saw (a run of
  suppressed sightings must not raise the bar a stronger one has to clear);
- stronger: its score is at least `score_margin` above the rejected issue's `max_score`, so a
  new candidate opens, its history naming the rejection;
- expired: it was taken more than `quiet_days` after the rejection, so a new candidate opens,
  likewise.
When several rejected issues are in range, one that suppresses wins over one that does not
(the newest rejection at a place is the one that holds), then the nearest.

The thresholds are data: `suppression.yaml` beside this module, or the file the setting
`suppression_rules_file` names.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from service.db.models import Issue
from service.errors import ServiceError
from service.ledger.dedup import DedupRules, nearby_issues
from service.ledger.events import last_transition_to
from service.ledger.states import State
from service.settings import Settings
from vision.config_files import load_config_file
from vision.taxonomy import Taxonomy

RULES_FILE = Path(__file__).with_name("suppression.yaml")


class SuppressionRulesError(ServiceError):
    """The suppression rules file is unreadable or invalid (a deployment error, not a request's)."""


class DefaultRule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    radius_m: float | None = Field(
        default=None, gt=0, le=10_000, description="Metres; null: the class's dedup radius."
    )
    score_margin: float = Field(
        ge=0, le=1, description="A sighting this much above the rejected score reopens."
    )
    quiet_days: float = Field(
        gt=0, le=3650, description="After this long since the rejection, a sighting reopens."
    )


class ClassRule(BaseModel):
    """One class's overrides of the default; an absent or null field takes the default's."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    radius_m: float | None = Field(default=None, gt=0, le=10_000)
    score_margin: float | None = Field(default=None, ge=0, le=1)
    quiet_days: float | None = Field(default=None, gt=0, le=3650)


@dataclass(frozen=True)
class ClassSuppression:
    """The resolved rule for one class."""

    radius_m: float
    score_margin: float
    quiet: timedelta


class SuppressionRules(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    default: DefaultRule
    classes: dict[str, ClassRule] = Field(default_factory=dict)

    @classmethod
    def load(cls, path: Path = RULES_FILE, taxonomy: Taxonomy | None = None) -> SuppressionRules:
        rules = load_config_file(cls, path, "suppression rules", SuppressionRulesError)
        if taxonomy is not None:
            unknown = sorted(set(rules.classes) - set(taxonomy.keys))
            if unknown:
                raise SuppressionRulesError(
                    f"{path}: rules for unknown classes {unknown}; known: {', '.join(taxonomy.keys)}"
                )
        return rules

    @classmethod
    def from_settings(cls, settings: Settings, taxonomy: Taxonomy) -> SuppressionRules:
        return cls.load(settings.suppression_rules_file or RULES_FILE, taxonomy)

    def for_class(self, class_key: str, dedup: DedupRules) -> ClassSuppression:
        own = self.classes.get(class_key, ClassRule())
        radius = own.radius_m or self.default.radius_m or dedup.radius_for(class_key)
        margin = own.score_margin if own.score_margin is not None else self.default.score_margin
        quiet = own.quiet_days if own.quiet_days is not None else self.default.quiet_days
        return ClassSuppression(radius, margin, timedelta(days=quiet))


def bundled_rules() -> SuppressionRules:
    return SuppressionRules.load(RULES_FILE)


class Verdict(StrEnum):
    suppressed = "suppressed"  # joins the rejected issue
    stronger = "stronger"  # a new candidate: clearly stronger than what was rejected
    expired = "expired"  # a new candidate: the rejection is older than the quiet time


@dataclass(frozen=True)
class RejectedMatch:
    issue: Issue
    distance_m: float
    verdict: Verdict
    reason: str  # for the history: of the rejected issue (suppressed) or of the new one


def judge_rejected(
    session: Session,
    rules: SuppressionRules,
    dedup: DedupRules,
    *,
    class_key: str,
    lon: float,
    lat: float,
    observed_at: datetime,
    score: float,
) -> RejectedMatch | None:
    """The rejected issue a new sighting meets and what it does there; None when none is in range."""
    rule = rules.for_class(class_key, dedup)
    judged = [
        (_verdict(issue, rule, observed_at, score), dist, issue)
        for issue, dist in nearby_issues(session, class_key, lon, lat, rule.radius_m, [State.rejected])
    ]
    if not judged:
        return None
    verdict, dist, issue = min(judged, key=lambda j: (j[0] != Verdict.suppressed, j[1], j[2].id))
    return RejectedMatch(
        issue, dist, verdict, _reason(session, issue, dist, verdict, rule, observed_at, score)
    )


def _verdict(issue: Issue, rule: ClassSuppression, observed_at: datetime, score: float) -> Verdict:
    if score >= issue.max_score + rule.score_margin:
        return Verdict.stronger
    if observed_at - issue.state_changed_at > rule.quiet:  # rejected is final: this is the rejection
        return Verdict.expired
    return Verdict.suppressed


def _reason(
    session: Session,
    issue: Issue,
    dist: float,
    verdict: Verdict,
    rule: ClassSuppression,
    observed_at: datetime,
    score: float,
) -> str:
    event = last_transition_to(session, issue.id, State.rejected)
    by = f" by {event.actor}" if event is not None else ""
    rejected = f"rejected {issue.state_changed_at:%Y-%m-%d %H:%M}{by}"
    days = (observed_at - issue.state_changed_at) / timedelta(days=1)
    quiet_days = rule.quiet / timedelta(days=1)
    if verdict == Verdict.suppressed:
        when = (
            "taken before the rejection"
            if days < 0
            else f"{days:.1f} days after the rejection, within its {quiet_days:g} quiet days"
        )
        return (
            f"suppressed: {issue.class_key} seen again {dist:.1f} m from this false alarm ({rejected}); "
            f"score {score:.2f} is not {rule.score_margin:g} above the rejected {issue.max_score:.2f}, "
            f"and it was {when}"
        )
    why = (
        f"its score {score:.2f} is at least {rule.score_margin:g} above the rejected {issue.max_score:.2f}"
        if verdict == Verdict.stronger
        else f"it was taken {days:.1f} days after the rejection, past its {quiet_days:g} quiet days"
    )
    return f"issue {issue.id}, {dist:.1f} m away, was {rejected} as a false alarm; {why}"
