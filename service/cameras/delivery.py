"""Sending alerts: signed webhooks and loudspeaker broadcasts, retried with backoff, dead-lettered.

Every delivery is a row (`service.cameras.models.Delivery`) holding the exact body to send;
the dispatcher sends the due ones and records each attempt. A delivery is claimed before it
is sent (its next attempt moved past the send's timeout in one conditional UPDATE), so two
dispatchers (the API process and a worker) never send it twice, and no transaction stays
open during the HTTP call. A failure is retried after `RetryPolicy.delay_after(attempts)`;
after `max_attempts` the delivery is `dead` (the dead letter) until `patrol alerts resend`.

Webhook requests carry (receivers verify with `verify_signature`):
- `X-Patrol-Timestamp`: Unix seconds when this attempt was sent;
- `X-Patrol-Signature`: `sha256=` + hex HMAC-SHA256 over `timestamp + "." + body` with the
  webhook's secret (the timestamp is signed, so an old request replayed later is refused);
- `X-Patrol-Delivery`: the delivery id, the same on every retry (receivers deduplicate by it).

A loudspeaker gets `{"speaker", "text", "camera", "alert_id"}` as JSON, unsigned (broadcast
boxes have no key store), at most once per its `min_interval_s`: a later delivery within it
is `skipped` with the reason, never queued to play late.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from service.background import WakeableThread
from service.cameras.config import WatchConfig
from service.cameras.models import Delivery, DeliveryAttempt, DeliveryKind, DeliveryState
from service.db.session import session_scope

log = logging.getLogger(__name__)

TIMESTAMP_HEADER = "X-Patrol-Timestamp"
SIGNATURE_HEADER = "X-Patrol-Signature"
DELIVERY_HEADER = "X-Patrol-Delivery"
SIGNATURE_TOLERANCE_S = 300  # a receiver refuses signatures older (or newer) than this
CLAIM_MARGIN_S = 30.0  # a claimed delivery is free again this long after its send's timeout

Clock = Callable[[], datetime]


def signature(secret: str, timestamp: int, body: bytes) -> str:
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def verify_signature(
    secret: str, timestamp: str, signature_header: str, body: bytes, *, now_s: float | None = None
) -> bool:
    """What a receiver checks: the signature matches and the timestamp is recent."""
    try:
        sent = int(timestamp)
    except ValueError:
        return False
    if abs((time.time() if now_s is None else now_s) - sent) > SIGNATURE_TOLERANCE_S:
        return False
    return hmac.compare_digest(signature(secret, sent, body), signature_header)


@dataclass(frozen=True)
class SendResult:
    ok: bool
    status_code: int | None
    error: str | None
    duration_ms: float


def post_json(url: str, body: bytes, headers: dict[str, str], timeout_s: float) -> SendResult:
    """One POST; any 2xx is delivered, anything else (status, refused, timeout) is a failure."""
    request = urllib.request.Request(
        url, data=body, method="POST", headers={"Content-Type": "application/json", **headers}
    )
    started = time.perf_counter()
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:  # noqa: S310  # configured http(s) URL
            status = int(response.status)
        error = None if 200 <= status < 300 else f"HTTP {status}"
    except urllib.error.HTTPError as exc:
        status, error = exc.code, f"HTTP {exc.code}"
    except (urllib.error.URLError, OSError, ValueError) as exc:
        status, error = None, f"{type(exc).__name__}: {getattr(exc, 'reason', exc)}"
    return SendResult(error is None, status, error, (time.perf_counter() - started) * 1000)


@dataclass(frozen=True)
class _Claimed:
    id: int
    kind: str
    target: str
    body: str
    attempts: int


class Dispatcher:
    """Sends due deliveries; `run_due()` once, or `start()` a thread that runs it until `stop()`."""

    def __init__(
        self,
        session_factory: sessionmaker[Session],
        config: WatchConfig,
        *,
        clock: Clock,
        send: Callable[[str, bytes, dict[str, str], float], SendResult] = post_json,
        poll_s: float = 1.0,
    ) -> None:
        self._sessions = session_factory
        self._config = config
        self._clock = clock
        self._send = send
        self._poll_s = poll_s
        self._thread = WakeableThread("alert-dispatcher")
        self.on_delivered: Callable[[int], None] | None = None  # delivery id; for latency figures

    def start(self) -> None:
        self._thread.start(self._loop)

    def stop(self, timeout_s: float = 10.0) -> None:
        self._thread.stop(timeout_s)

    def wake(self) -> None:
        """New deliveries were committed: send them now rather than at the next poll."""
        self._thread.wake()

    def _loop(self) -> None:
        while not self._thread.stopping.is_set():
            try:
                self.run_due()
            except Exception:  # a database hiccup must not end alerting; log and poll again
                log.exception("alert dispatcher: sending due deliveries failed")
            self._thread.woken.wait(self._poll_s)
            self._thread.woken.clear()

    def run_due(self) -> int:
        """Send every delivery due now; returns how many were attempted (sent or skipped)."""
        done = 0
        while not self._thread.stopping.is_set():
            claimed = self._claim_next()
            if claimed is None:
                return done
            self._attempt(claimed)
            done += 1
        return done

    def _claim_next(self) -> _Claimed | None:
        now = self._clock()
        with session_scope(self._sessions) as session:
            row = session.scalars(
                select(Delivery)
                .where(Delivery.state == DeliveryState.pending, Delivery.next_attempt_at <= now)
                .order_by(Delivery.next_attempt_at, Delivery.id)
                .limit(1)
            ).first()
            if row is None:
                return None
            hold = now + timedelta(seconds=self._timeout_of(row.kind, row.target) + CLAIM_MARGIN_S)
            taken = session.execute(
                update(Delivery)
                .where(
                    Delivery.id == row.id,
                    Delivery.state == DeliveryState.pending,
                    Delivery.next_attempt_at == row.next_attempt_at,
                )
                .values(next_attempt_at=hold)
                .execution_options(synchronize_session=False)
            )
            if int(getattr(taken, "rowcount", 0) or 0) != 1:
                return None  # another dispatcher took it first; the next round looks again
            return _Claimed(row.id, row.kind, row.target, row.body, row.attempts)

    def _timeout_of(self, kind: str, target: str) -> float:
        try:
            if kind == DeliveryKind.webhook:
                return self._config.webhook(target).timeout_s
            return self._config.loudspeaker(target).timeout_s
        except StopIteration:
            return 0.0

    def _attempt(self, claimed: _Claimed) -> None:
        now = self._clock()
        if claimed.kind == DeliveryKind.loudspeaker and self._spoke_recently(claimed, now):
            return
        result = self._deliver(claimed)
        with session_scope(self._sessions) as session:
            row = session.get(Delivery, claimed.id)
            if row is None:
                return
            session.add(
                DeliveryAttempt(
                    delivery_id=row.id,
                    at=now,
                    ok=result.ok,
                    status_code=result.status_code,
                    error=result.error,
                    duration_ms=round(result.duration_ms, 2),
                )
            )
            row.attempts += 1
            if result.ok:
                row.state, row.finished_at, row.last_error = DeliveryState.delivered, self._clock(), None
            elif row.attempts >= self._config.retry.max_attempts:
                row.state, row.finished_at, row.last_error = DeliveryState.dead, self._clock(), result.error
            else:
                row.last_error = result.error
                row.next_attempt_at = now + timedelta(seconds=self._config.retry.delay_after(row.attempts))
        if result.ok and self.on_delivered is not None:
            self.on_delivered(claimed.id)

    def _deliver(self, claimed: _Claimed) -> SendResult:
        body = claimed.body.encode()
        try:
            if claimed.kind == DeliveryKind.webhook:
                hook = self._config.webhook(claimed.target)
                stamp = int(time.time())
                headers = {
                    TIMESTAMP_HEADER: str(stamp),
                    SIGNATURE_HEADER: signature(hook.secret.get_secret_value(), stamp, body),
                    DELIVERY_HEADER: str(claimed.id),
                }
                return self._send(hook.url, body, headers, hook.timeout_s)
            speaker = self._config.loudspeaker(claimed.target)
            return self._send(speaker.url, body, {DELIVERY_HEADER: str(claimed.id)}, speaker.timeout_s)
        except StopIteration:
            return SendResult(False, None, f"{claimed.kind} {claimed.target!r} is not configured", 0.0)

    def _spoke_recently(self, claimed: _Claimed, now: datetime) -> bool:
        """Skip (and say why) a broadcast within the speaker's min_interval_s of its last one."""
        try:
            interval = self._config.loudspeaker(claimed.target).min_interval_s
        except StopIteration:
            return False
        with session_scope(self._sessions) as session:
            last = session.scalars(
                select(Delivery.finished_at)
                .where(
                    Delivery.kind == DeliveryKind.loudspeaker,
                    Delivery.target == claimed.target,
                    Delivery.state == DeliveryState.delivered,
                )
                .order_by(Delivery.finished_at.desc())
                .limit(1)
            ).first()
            if last is None or (now - last).total_seconds() >= interval:
                return False
            row = session.get(Delivery, claimed.id)
            if row is not None:
                row.state, row.finished_at = DeliveryState.skipped, now
                row.last_error = (
                    f"rate limited: {claimed.target} spoke at {last.isoformat()}, "
                    f"less than {interval:g} s ago"
                )
        return True


def resend_deliveries(session: Session, delivery_ids: list[int], now: datetime) -> list[int]:
    """Queue finished deliveries again, due now: their attempt counts start over and their
    earlier attempts stay on record. Pending ones are left as they are. The ids queued."""
    rows = session.scalars(
        select(Delivery)
        .where(Delivery.id.in_(delivery_ids), Delivery.state != DeliveryState.pending)
        .order_by(Delivery.id)
    ).all()
    for row in rows:
        row.state, row.attempts, row.next_attempt_at, row.finished_at = DeliveryState.pending, 0, now, None
    return [row.id for row in rows]


def resend_alert(
    session: Session, alert_id: int, now: datetime, *, include_delivered: bool = False
) -> list[int]:
    """An alert's dead-lettered deliveries again (and, if asked, the delivered and skipped ones)."""
    states = [DeliveryState.dead]
    if include_delivered:
        states += [DeliveryState.delivered, DeliveryState.skipped]
    ids = session.scalars(
        select(Delivery.id).where(Delivery.alert_id == alert_id, Delivery.state.in_(states))
    ).all()
    return resend_deliveries(session, list(ids), now)
