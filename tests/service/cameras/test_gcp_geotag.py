"""A preset surveyed with ground control points: camera findings are placed by the homography fitted
to them (not by the tower's pose), inside the ground the detection's box covers."""

from __future__ import annotations

from sqlalchemy import select

from service.cameras.config import CameraConfig, PresetWatch, WatchConfig
from service.cameras.watcher import CameraWatcher
from service.db.models import Observation
from tests.service.cameras.test_watcher import GARBAGE, TOWER, WH, _frame
from vision.geo.tower import GroundControlPoint, Preset

# The preset looks at a field about 550 m north of the tower (its pose says east: heading 90);
# the survey's map of pixels to the ground is affine: 1e-5 degrees per pixel each way.
LON0, LAT0, STEP = TOWER.lon - 0.0032, TOWER.lat + 0.0065, 1e-5


def _ground(x: float, y: float) -> tuple[float, float]:
    return LON0 + STEP * x, LAT0 - STEP * y


def test_a_finding_from_a_gcp_preset_is_placed_by_its_homography(runtime):
    corners = [(0, 0), (WH[0], 0), (WH[0], WH[1]), (0, WH[1]), (WH[0] / 2, WH[1] / 2)]
    gcps = tuple(GroundControlPoint(pixel=p, lon=_ground(*p)[0], lat=_ground(*p)[1]) for p in corners)
    tower = TOWER.model_copy(update={"presets": (Preset(id="field", pan_deg=-90, gcps=gcps),)})
    camera = CameraConfig(
        id="north-view", name="北望", url="rtsp://tower.test/s", tower=tower,
        presets=(PresetWatch(preset="field", every_s=2.0, settle_s=0.0),),
    )
    watcher = CameraWatcher(runtime, WatchConfig(cameras=(camera,)), camera)
    box = (400, 250, 460, 300)
    result = watcher.process(_frame(0.0, [(GARBAGE, box)], received_at=1000))
    assert [(k, o) for k, o, _ in result.recorded] == [("garbage_pile", "opened")]
    with runtime.session_factory() as session:
        obs = session.scalars(select(Observation)).one()
    (west, north), (east, south) = _ground(box[0], box[1]), _ground(box[2], box[3])
    assert west <= obs.lon <= east and south <= obs.lat <= north, (obs.lon, obs.lat)
