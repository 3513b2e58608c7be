"""Digest rules: alerts collected through the day, one signed message per webhook at the rule's local
hour listing those raised before it, delivered once; alerts after the hour wait for tomorrow's."""

from __future__ import annotations

import json
from datetime import datetime

from service.cameras.config import AlertRule, CameraConfig, PresetWatch, RetryPolicy, WatchConfig, Webhook
from service.cameras.delivery import SIGNATURE_HEADER, TIMESTAMP_HEADER, Dispatcher, verify_signature
from service.cameras.receiver import Receiver
from service.cameras.runner import CameraService
from service.cameras.watcher import CameraWatcher
from service.runtime import utc_now
from tests.service.cameras.test_watcher import GARBAGE, SECRET, TOWER, _frame


def test_a_daily_digest_lists_the_days_alerts_once_at_its_hour(runtime, clock):
    hook = Receiver()
    camera = CameraConfig(
        id="east-tower", name="东塔", url="rtsp://tower.test/s", tower=TOWER,
        presets=(PresetWatch(every_s=2.0, settle_s=0.0),),
    )
    config = WatchConfig(
        cameras=(camera,),
        rules=(
            AlertRule(name="garbage-daily", classes=("garbage_pile",), delivery="digest", digest_hour=8,
                      webhooks=("office",)),
        ),
        webhooks=(Webhook(name="office", url=hook.url, secret=SECRET),),
        retry=RetryPolicy(first_delay_s=0.05, factor=1.0),
    )
    watcher = CameraWatcher(runtime, config, camera)
    service = CameraService(runtime, config)  # not started: its digest tick is run by hand here
    dispatcher = Dispatcher(runtime.session_factory, config, clock=utc_now)
    try:
        # 2026-11-02 17:00 and 17:00:02 Shanghai: two piles far apart, each a new issue and a digest alert
        first = watcher.process(_frame(0.0, [(GARBAGE, (40, 250, 90, 300))], received_at=1000))
        clock.advance(seconds=2)
        second = watcher.process(_frame(2.0, [(GARBAGE, (560, 250, 620, 300))], received_at=1002))
        raised = first.alert_ids + second.alert_ids
        assert len(raised) == 2
        assert service.run_digests() == 0  # today's 08:00 came before these were raised
        dispatcher.run_due()
        assert hook.received == []

        clock.now = datetime.fromisoformat("2026-11-03T07:59:00+08:00")
        assert service.run_digests() == 0  # not yet the hour
        clock.now = datetime.fromisoformat("2026-11-03T08:00:30+08:00")
        assert service.run_digests() == 1
        dispatcher.run_due()
        clock.advance(hours=2)
        assert service.run_digests() == 0  # digested alerts are not sent again
        dispatcher.run_due()
    finally:
        hook.close()
    (got,) = hook.delivered()
    assert verify_signature(SECRET, got.headers[TIMESTAMP_HEADER], got.headers[SIGNATURE_HEADER], got.body)
    digest = json.loads(got.body)
    assert (digest["type"], digest["rule"], digest["day"]) == ("digest", "garbage-daily", "2026-11-03")
    assert sorted(a["alert_id"] for a in digest["alerts"]) == sorted(raised)
    assert {a["class_zh"] for a in digest["alerts"]} == {"垃圾堆"}
