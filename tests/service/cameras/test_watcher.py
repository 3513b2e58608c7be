"""A camera's frames through the watcher: painted smoke confirmed by the persistence rule, recorded as
a geotagged camera finding, alerted to a real webhook and loudspeaker; masks, known issues and
reviewer-rejected false alarms keep quiet."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator

import numpy as np
import pytest
from sqlalchemy import select

from service.cameras.config import (
    AlertRule,
    CameraConfig,
    Loudspeaker,
    Mask,
    PresetWatch,
    RetryPolicy,
    WatchConfig,
    Webhook,
)
from service.cameras.delivery import SIGNATURE_HEADER, TIMESTAMP_HEADER, Dispatcher, verify_signature
from service.cameras.models import Alert, Delivery, DeliveryState
from service.cameras.receiver import Receiver
from service.cameras.watcher import CameraWatcher
from service.db.models import Frame, Issue, Observation, Source
from service.runtime import Runtime, utc_now
from tests.vision.fakes import paint_box
from vision.geo.tower import TowerCameraConfig
from vision.video import VideoFrame

SMOKE, GARBAGE = 2, 0  # painted-box labels: smoke -> straw_burning, garbage -> garbage_pile
WH = (640, 360)
SECRET = "tower-hook-secret-0123456789"
TOWER = TowerCameraConfig(
    name="east tower",
    lon=117.2272,
    lat=31.8206,
    mount_height_m=30,
    heading_deg=90,
    tilt_deg=-15,
    image_width=WH[0],
    image_height=WH[1],
    hfov_deg={1.0: 60.0},
)
MASK = Mask(points=((0, 0), (200, 0), (200, 120), (0, 120)), note="the chimney of the brickworks")


def _frame(
    time_s: float, boxes: list[tuple[int, tuple[int, int, int, int]]], received_at: float
) -> VideoFrame:
    pixels = np.zeros((WH[1], WH[0], 3), np.uint8)
    for label, xyxy in boxes:
        paint_box(pixels, xyxy, label, 0.9)
    return VideoFrame(pixels, time_s, int(time_s * 25), True, "rtsp://tower.test/stream", received_at)


@pytest.fixture
def receivers() -> Iterator[tuple[Receiver, Receiver]]:
    hook, speaker = Receiver(statuses=[502]), Receiver()  # the webhook fails once first
    yield hook, speaker
    hook.close()
    speaker.close()


def _config(hook: Receiver, speaker: Receiver) -> WatchConfig:
    camera = CameraConfig(
        id="east-tower",
        name="东塔",
        url="rtsp://tower.test/stream",
        tower=TOWER,
        presets=(PresetWatch(preset="home", every_s=2.0, settle_s=0.0, masks=(MASK,)),),
        loudspeakers=("east-village",),
    )
    return WatchConfig(
        cameras=(camera,),
        rules=(
            AlertRule(name="burning-now", classes=("straw_burning",), webhooks=("office",), loudspeaker=True),
            AlertRule(
                name="garbage-daily", classes=("garbage_pile",), delivery="digest", webhooks=("office",)
            ),
        ),
        webhooks=(Webhook(name="office", url=hook.url, secret=SECRET),),
        loudspeakers=(Loudspeaker(name="east-village", url=speaker.url),),
        retry=RetryPolicy(first_delay_s=0.05, factor=1.0),
    )


def _deliver_all(runtime: Runtime, config: WatchConfig) -> None:
    dispatcher = Dispatcher(runtime.session_factory, config, clock=utc_now)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        dispatcher.run_due()
        with runtime.session_factory() as session:
            if not session.scalars(select(Delivery).where(Delivery.state == DeliveryState.pending)).first():
                return
        time.sleep(0.05)
    raise AssertionError("deliveries still pending after 10 s")


def test_growing_smoke_becomes_a_geotagged_camera_finding_and_an_alert(runtime, receivers, clock):
    hook, speaker = receivers
    config = _config(hook, speaker)
    watcher = CameraWatcher(runtime, config, config.cameras[0])
    plume = [(300, 200, 330, 260), (296, 190, 336, 260), (290, 178, 342, 260), (284, 166, 348, 260)]
    chimney = (GARBAGE, (40, 40, 90, 100))  # inside the mask: never seen
    cloud = (SMOKE, (500, 30, 560, 60))  # smoke-coloured but fixed: never confirmed
    results = []
    for i, box in enumerate(plume):
        clock.advance(seconds=2)
        results.append(
            watcher.process(_frame(2.0 * i, [(SMOKE, box), chimney, cloud], received_at=1000 + 2 * i))
        )
    # between samples: a frame that is not due is not analysed
    assert watcher.process(_frame(6.5, [(SMOKE, plume[-1])], received_at=1007)) is None
    # nor is a frame the decoder could only conceal (its smeared blocks could pass for smoke)
    concealed = dataclasses.replace(_frame(8.0, [(SMOKE, plume[-1])], received_at=1008), concealed=True)
    assert watcher.process(concealed) is None
    assert watcher.process(_frame(8.1, [(SMOKE, plume[-1])], received_at=1008)) is not None  # a clean one is
    assert [r.recorded for r in results[:2]] == [[], []]
    assert [r.held for r in results[:2]] == [2, 2] and results[0].masked == 1
    confirmed = results[2]
    assert [(key, outcome) for key, outcome, _ in confirmed.recorded] == [("straw_burning", "opened")]
    assert len(confirmed.alert_ids) == 1
    assert results[3].recorded == []  # the same plume confirms once

    with runtime.session_factory() as session:
        obs = session.scalars(select(Observation)).one()
        frame = session.get(Frame, obs.frame_id)
        source = session.get(Source, frame.source_id)
        assert (source.kind, source.name, source.preset) == ("camera", "east-tower", "home")
        assert obs.lon is not None and obs.lat is not None
        assert obs.lon > TOWER.lon  # the tower looks east
        assert abs(obs.lat - TOWER.lat) < 0.01
        assert (runtime.settings.data_dir / frame.image_path).is_file()
        assert (runtime.settings.data_dir / obs.crop_path).is_file()
        alert = session.get(Alert, confirmed.alert_ids[0])
        assert (alert.rule, alert.camera_id, alert.class_key, alert.issue_id) == (
            "burning-now",
            "east-tower",
            "straw_burning",
            obs.issue_id,
        )

    _deliver_all(runtime, config)
    assert [r.status for r in hook.received] == [502, 200]  # retried once, delivered once
    got = hook.delivered()[0]
    assert verify_signature(SECRET, got.headers[TIMESTAMP_HEADER], got.headers[SIGNATURE_HEADER], got.body)
    import json

    payload = json.loads(got.body)
    assert payload["issue_id"] == obs.issue_id and payload["class_zh"] == "秸秆焚烧"
    assert payload["camera"] == {"id": "east-tower", "name": "东塔", "preset": "home"}
    assert [json.loads(r.body)["text"] for r in speaker.received] == ["请勿焚烧秸秆"]


def test_known_piles_are_not_recorded_again_and_rejected_false_alarms_stay_quiet(
    runtime, receivers, clock, client, keys
):
    hook, speaker = receivers
    config = _config(hook, speaker)
    watcher = CameraWatcher(runtime, config, config.cameras[0])
    pile = (GARBAGE, (400, 250, 460, 300))
    first = watcher.process(_frame(0.0, [pile], received_at=1000))
    assert [(k, o) for k, o, _ in first.recorded] == [("garbage_pile", "opened")]
    assert len(first.alert_ids) == 1  # a digest alert: no immediate delivery
    with runtime.session_factory() as session:
        assert session.scalars(select(Delivery)).all() == []
    clock.advance(seconds=2)
    again = watcher.process(_frame(2.0, [pile], received_at=1002))
    assert again.recorded == [] and again.suppressed == {"known": 1}

    issue_id = first.recorded[0][2]
    answer = client.post(
        f"/v1/issues/{issue_id}/transitions",
        headers=keys.headers("reviewer"),
        json={"to": "rejected", "reason": "a red roof at dusk"},
    )
    assert answer.status_code == 200, answer.text
    clock.advance(
        minutes=90
    )  # past the hour's refresh: a known pile would be recorded again (18:30 local, still day)
    later = watcher.process(_frame(4.0, [pile], received_at=1100))  # past the memory reload
    assert later.recorded == [] and later.suppressed == {"false_alarm": 1}
    with runtime.session_factory() as session:
        assert session.get(Issue, issue_id).state == "rejected"
        assert len(session.scalars(select(Observation)).all()) == 1
