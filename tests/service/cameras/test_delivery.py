"""Deliveries against real HTTP endpoints on loopback: retries, signatures, dead letters, rate limits."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from service.cameras.alerts import add_delivery
from service.cameras.config import Loudspeaker, RetryPolicy, WatchConfig, Webhook
from service.cameras.delivery import (
    DELIVERY_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    Dispatcher,
    resend_deliveries,
    verify_signature,
)
from service.cameras.models import Delivery, DeliveryAttempt, DeliveryKind, DeliveryState
from service.cameras.receiver import Receiver
from service.db.session import make_engine, make_session_factory, session_scope
from service.settings import Settings
from tests.servers.core import free_port

SECRET = "s3cr3t-for-the-township-hook"
FAST = RetryPolicy(max_attempts=4, first_delay_s=0.05, factor=1.0, max_delay_s=0.05)


def utc_now() -> datetime:
    return datetime.now(UTC)


@pytest.fixture
def sessions(settings: Settings) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(settings.database_url)
    yield make_session_factory(engine)
    engine.dispose()


def _queue(sessions: sessionmaker[Session], kind: DeliveryKind, target: str, body: str) -> int:
    with session_scope(sessions) as session:
        row = add_delivery(session, kind, target, body, utc_now(), alert_id=None)
        session.flush()
        return row.id


def _until(
    dispatcher: Dispatcher, sessions: sessionmaker[Session], delivery_id: int, states: set[str]
) -> Delivery:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        dispatcher.run_due()
        with sessions() as session:
            row = session.get(Delivery, delivery_id)
            assert row is not None
            if row.state in states:
                session.expunge(row)
                return row
        time.sleep(0.02)
    raise AssertionError(f"delivery {delivery_id} never reached {states}")


def _attempts(sessions: sessionmaker[Session], delivery_id: int) -> list[DeliveryAttempt]:
    with sessions() as session:
        rows = session.scalars(
            select(DeliveryAttempt)
            .where(DeliveryAttempt.delivery_id == delivery_id)
            .order_by(DeliveryAttempt.id)
        ).all()
        session.expunge_all()
        return list(rows)


def test_webhook_failing_twice_is_delivered_once_with_a_valid_signature(sessions):
    receiver = Receiver(statuses=[500, 503])
    try:
        config = WatchConfig(webhooks=(Webhook(name="office", url=receiver.url, secret=SECRET),), retry=FAST)
        dispatcher = Dispatcher(sessions, config, clock=utc_now)
        body = '{"type":"alert","class_key":"straw_burning","text":"请勿焚烧秸秆"}'
        delivery_id = _queue(sessions, DeliveryKind.webhook, "office", body)
        row = _until(dispatcher, sessions, delivery_id, {DeliveryState.delivered, DeliveryState.dead})
    finally:
        receiver.close()
    assert row.state == DeliveryState.delivered and row.attempts == 3
    assert [r.status for r in receiver.received] == [500, 503, 200]
    assert len(receiver.delivered()) == 1
    got = receiver.delivered()[0]
    assert got.body == body.encode()
    assert verify_signature(SECRET, got.headers[TIMESTAMP_HEADER], got.headers[SIGNATURE_HEADER], got.body)
    assert not verify_signature(
        "another-secret-of-16+", got.headers[TIMESTAMP_HEADER], got.headers[SIGNATURE_HEADER], got.body
    )
    assert not verify_signature(
        SECRET, got.headers[TIMESTAMP_HEADER], got.headers[SIGNATURE_HEADER], got.body + b" "
    )
    assert {r.headers[DELIVERY_HEADER] for r in receiver.received} == {str(delivery_id)}
    attempts = _attempts(sessions, delivery_id)
    assert [(a.ok, a.status_code) for a in attempts] == [(False, 500), (False, 503), (True, 200)]


def test_signature_too_old_is_refused():
    from service.cameras.delivery import signature

    stamp = int(time.time()) - 3600
    assert not verify_signature(SECRET, str(stamp), signature(SECRET, stamp, b"{}"), b"{}")
    assert verify_signature(SECRET, str(stamp), signature(SECRET, stamp, b"{}"), b"{}", now_s=stamp + 10)


def test_loudspeaker_down_keeps_the_message_dead_lettered_and_resend_delivers_it(sessions):
    port = free_port()
    speaker = Loudspeaker(name="village-east", url=f"http://127.0.0.1:{port}/say", timeout_s=1)
    config = WatchConfig(loudspeakers=(speaker,), retry=FAST)
    dispatcher = Dispatcher(sessions, config, clock=utc_now)
    body = '{"speaker":"village-east","text":"请勿焚烧秸秆"}'
    delivery_id = _queue(sessions, DeliveryKind.loudspeaker, "village-east", body)
    row = _until(dispatcher, sessions, delivery_id, {DeliveryState.dead, DeliveryState.delivered})
    assert row.state == DeliveryState.dead and row.attempts == FAST.max_attempts
    assert row.body == body and "refused" in (row.last_error or "").lower()
    assert [a.ok for a in _attempts(sessions, delivery_id)] == [False] * FAST.max_attempts

    receiver = Receiver(port=port)
    try:
        with session_scope(sessions) as session:
            assert resend_deliveries(session, [delivery_id], utc_now()) == [delivery_id]
        row = _until(dispatcher, sessions, delivery_id, {DeliveryState.delivered, DeliveryState.dead})
    finally:
        receiver.close()
    assert row.state == DeliveryState.delivered
    assert [r.body for r in receiver.received] == [body.encode()]
    assert len(_attempts(sessions, delivery_id)) == FAST.max_attempts + 1  # the earlier ones stay on record


def test_loudspeaker_speaks_at_most_once_per_interval(sessions):
    receiver = Receiver()
    try:
        speaker = Loudspeaker(name="east", url=receiver.url, min_interval_s=600)
        dispatcher = Dispatcher(sessions, WatchConfig(loudspeakers=(speaker,), retry=FAST), clock=utc_now)
        first = _queue(sessions, DeliveryKind.loudspeaker, "east", '{"text":"一"}')
        second = _queue(sessions, DeliveryKind.loudspeaker, "east", '{"text":"二"}')
        done = [
            _until(dispatcher, sessions, d, {DeliveryState.delivered, DeliveryState.skipped})
            for d in (first, second)
        ]
    finally:
        receiver.close()
    assert [d.state for d in done] == [DeliveryState.delivered, DeliveryState.skipped]
    assert "rate limited" in (done[1].last_error or "")
    assert [r.body for r in receiver.received] == ['{"text":"一"}'.encode()]


def test_two_dispatchers_never_send_one_delivery_twice(sessions):
    receiver = Receiver()
    try:
        config = WatchConfig(webhooks=(Webhook(name="office", url=receiver.url, secret=SECRET),), retry=FAST)
        ids = [_queue(sessions, DeliveryKind.webhook, "office", f'{{"n":{i}}}') for i in range(6)]
        dispatchers = [Dispatcher(sessions, config, clock=utc_now) for _ in range(2)]
        for d in dispatchers:
            d.start()
        deadline = time.monotonic() + 10
        while len(receiver.received) < len(ids) and time.monotonic() < deadline:
            time.sleep(0.05)
        for d in dispatchers:
            d.stop()
    finally:
        receiver.close()
    assert sorted(r.body for r in receiver.received) == sorted(f'{{"n":{i}}}'.encode() for i in range(6))
