"""Any drone's pose, each fact from wherever its file has it: real files from ../shared/geo-samples
and a synthesised file for each maker's layout."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from PIL.TiffImagePlugin import IFDRational
from typer.testing import CliRunner

from tests.vision.geo.conftest import dji_xmp, dms, write_jpeg
from tests.vision.geo.test_cli_geotag import invoke
from tests.vision.geo.test_drone import LAT, LON, H, W, dji, local
from vision.geo.camera import Orientation
from vision.geo.drone_intrinsics import parse_dewarp
from vision.geo.drone_metadata import nadir_body_orientation, orientation_from_axes, read_drone_metadata
from vision.geo.frame_projector import FrameProjector
from vision.geo.georeference import georeference_image, locate_points
from vision.geo.phone import PhotographerProjector
from vision.image_io import load_image, probe_image

SAMPLES = Path(__file__).resolve().parents[4] / "shared" / "geo-samples"
needs_samples = pytest.mark.skipif(not (SAMPLES / "README.md").is_file(),
                                   reason="../shared/geo-samples (real drone files) is not present")
NS = {
    "drone-dji": "http://www.dji.com/drone-dji/1.0/",
    "drone-skydio": "https://www.skydio.com/drone-skydio/1.0/",
    "drone-parrot": "http://www.parrot.com/drone-parrot/1.0/",
    "Camera": "http://pix4d.com/camera/1.0/",
    "sensefly": "http://ns.sensefly.com/Camera/1.0/",
    "MicaSense": "http://micasense.com/MicaSense/1.0/",
}
F_PX = (W / 2) / math.tan(math.radians(42))  # hfov 84 deg, as test_drone's photos
GPS = {1: "N", 2: dms(LAT), 3: "E", 4: dms(LON), 5: b"\x00", 6: IFDRational(25000, 100)}
FOCAL_35 = {0xA405: 24}  # 24 mm equivalent: hfov 73.7 deg on the diagonal rule


def packet(attrs: dict[str, Any], body: str = "", prefixes: dict[str, str] | None = None) -> bytes:
    """An XMP packet with `prefix:Name` attributes and any element `body`, in the given prefixes."""
    prefixes = prefixes or NS
    xmlns = " ".join(f'xmlns:{p}="{uri}"' for p, uri in prefixes.items())
    attributes = " ".join(f'{k}="{v}"' for k, v in attrs.items())
    return (f'<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?><x:xmpmeta xmlns:x="adobe:ns:meta/">'
            f'<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
            f'<rdf:Description rdf:about="" {xmlns} {attributes}>{body}</rdf:Description>'
            f'</rdf:RDF></x:xmpmeta><?xpacket end="w"?>').encode()


def centre_local(path: Path) -> tuple[float, float]:
    ref = georeference_image(path)
    assert isinstance(ref.projector, FrameProjector), ref.reasons
    return local(locate_points(ref, np.array([[W / 2, H / 2]]))[0])


# -- real files -----------------------------------------------------------------------------


@needs_samples
@pytest.mark.parametrize("name", ["100_0005_0018.tif", "100_0005_0136.tif"])
def test_dji_multispectral_tiff_xmp_is_read(name: str) -> None:
    # GDAL wrote the packet as "xml:XMP=<?xpacket ...": the reader used to refuse it as malformed.
    probe = probe_image(SAMPLES / name)
    assert probe.metadata.xmp_problem is None and probe.kind == "drone"
    ref = georeference_image(SAMPLES / name)
    assert ref.source == "drone" and ref.drone is not None and ref.drone.full_pose
    assert ref.drone.sources.position == "XMP drone-dji GpsLatitude/GpsLongitude"
    assert ref.drone.sources.altitude is not None and "RelativeAltitude" in ref.drone.sources.altitude
    # DewarpData fx 3657.02 and principal point (2736 - 4.03, 1824 + 23.10) px of the
    # 5472x3648 sensor, in this 1368x912 file: a quarter of each.
    intr = ref.drone.intrinsics
    assert intr is not None and ref.drone.sources.focal_length is not None
    assert "DewarpData" in ref.drone.sources.focal_length
    assert (intr.fx, intr.fy) == pytest.approx((3657.02 / 4, 3650.62 / 4))
    assert (intr.cx, intr.cy) == pytest.approx(((2736 - 4.03) / 4, (1824 + 23.10) / 4))
    # Pitch -60 at ~100 m above take-off: the image centre is ~58 m from the drone, not under it.
    centre = locate_points(ref)[0]
    x, y = ref.projector.frame.to_local(centre["lon"], centre["lat"])  # type: ignore[union-attr]
    assert math.hypot(float(x), float(y)) == pytest.approx(100 / math.tan(math.radians(60)), rel=0.1)


@needs_samples
def test_tiny_multispectral_tiff_gives_a_reason_not_a_crash() -> None:
    path = SAMPLES / "tiny_drone_image_multispec.tif"
    loaded = load_image(path)  # once "seek of closed file"
    assert loaded.kind == "drone" and loaded.resolution_wh == (48, 36)
    ref = georeference_image(path)
    assert ref.drone is not None and ref.drone.maker == "micasense" and not ref.drone.full_pose
    assert ref.drone.sources.position == "EXIF GPS"
    assert "PerspectiveFocalLength" in str(ref.drone.sources.focal_length)
    assert any("sun sensor" in r for r in ref.reasons)
    assert isinstance(ref.projector, PhotographerProjector)  # placed by its EXIF GPS, honestly


@needs_samples
def test_sensefly_jpeg_pose_from_exif_gps_and_camera_namespace() -> None:
    ref = georeference_image(SAMPLES / "tiny_drone_image.jpg")
    drone = ref.drone
    assert drone is not None and drone.maker == "sensefly" and drone.full_pose
    assert drone.sources.position == "EXIF GPS" and drone.sources.attitude is not None
    # 5.2 mm on the Canon S110's 7.44 mm sensor over 48 px; FocalPlaneXResolution (kept from
    # the 4000 px original) would say a 0.09 mm sensor.
    assert drone.intrinsics is not None and drone.intrinsics.fx == pytest.approx(5.2 * 48 / 7.44)
    assert drone.sources.focal_length is not None and "camera table" in drone.sources.focal_length
    # Fixed camera on a plane pitched 2.4 and rolled 6.7 deg: the view is 7.1 deg off nadir.
    assert drone.orientation is not None
    assert drone.orientation.pitch_deg == pytest.approx(-90 + math.hypot(2.36, 6.70), abs=0.05)
    # Only an altitude above sea level: flat ground needs the height above it, so a reason.
    assert ref.source == "citizen" and any("RelativeAltitude" in r for r in ref.reasons)


@needs_samples
def test_geotag_prints_the_source_of_each_fact() -> None:
    code, body, _ = invoke(CliRunner(), str(SAMPLES / "100_0005_0018.tif"))
    assert code == 0 and body is not None and body["source"] == "drone"
    assert body["drone_metadata"]["full_pose"] is True
    assert body["drone_metadata"]["sources"]["attitude"].startswith("XMP drone-dji Gimbal")
    assert body["camera"]["sources"]["position"] == "XMP drone-dji GpsLatitude/GpsLongitude"


# -- synthesised layouts --------------------------------------------------------------------


def test_old_dji_firmware_position_from_exif_gps(tmp_path: Path) -> None:
    xmp = dji_xmp(**dji(GpsLatitude=None, GpsLongitude=None, GimbalPitchDegree="-45", GimbalYawDegree="90"))
    path = write_jpeg(tmp_path / "t.jpg", (W, H), gps=GPS, xmp=xmp)
    assert centre_local(path) == pytest.approx((100.0, 0.0), abs=0.3)  # EXIF position to 1e-4 s
    drone = georeference_image(path).drone
    assert drone is not None and drone.sources.position == "EXIF GPS"
    assert drone.sources.attitude is not None and "drone-dji" in drone.sources.attitude


def test_autel_writes_the_dji_namespace_as_drone(tmp_path: Path) -> None:
    tags = {f"drone:{k}": v for k, v in dji(GimbalPitchDegree="-45", GimbalYawDegree="90").items()}
    xmp = packet(tags, prefixes={"drone": NS["drone-dji"]})
    centre = centre_local(write_jpeg(tmp_path / "a.jpg", (W, H), xmp=xmp))
    assert centre == pytest.approx((100.0, 0.0), abs=0.05)


@pytest.mark.parametrize("as_attributes", [False, True])
def test_skydio_camera_orientation_struct(tmp_path: Path, as_attributes: bool) -> None:
    cam = {"Yaw": "90.0", "Pitch": "-45.0", "Roll": "0.0"}
    flight = {"Yaw": "10.0", "Pitch": "-5.0", "Roll": "3.0"}  # the aircraft's: must not be taken

    def struct(name: str, values: dict[str, str]) -> str:
        if as_attributes:
            inner = " ".join(f'drone-skydio:{k}="{v}"' for k, v in values.items())
            return f"<drone-skydio:{name}><rdf:Description {inner}/></drone-skydio:{name}>"
        fields = "".join(f"<drone-skydio:{k}>{v}</drone-skydio:{k}>" for k, v in values.items())
        return f'<drone-skydio:{name} rdf:parseType="Resource">{fields}</drone-skydio:{name}>'

    xmp = packet({"drone-skydio:Latitude": LAT, "drone-skydio:Longitude": LON,
                  "drone-skydio:RelativeAltitude": "100.0"},
                 struct("FlightOrientationNED", flight) + struct("CameraOrientationNED", cam))
    path = write_jpeg(tmp_path / "s.jpg", (W, H), xmp=xmp, exif_ifd={0xA405: 24})
    assert centre_local(path) == pytest.approx((100.0, 0.0), abs=0.05)
    drone = georeference_image(path).drone
    assert drone is not None and drone.maker == "skydio"
    assert drone.sources.position == "XMP drone-skydio Latitude/Longitude"
    assert drone.sources.focal_length == "EXIF FocalLengthIn35mmFilm 24 mm"


def test_parrot_gimbal_angles_and_above_ground_altitude(tmp_path: Path) -> None:
    body = ("<drone-parrot:CameraYawDegree>180</drone-parrot:CameraYawDegree>"
            "<drone-parrot:CameraPitchDegree>-45</drone-parrot:CameraPitchDegree>"
            "<drone-parrot:CameraRollDegree>0</drone-parrot:CameraRollDegree>"
            "<Camera:AboveGroundAltitude>50</Camera:AboveGroundAltitude>"
            "<Camera:GPSXYAccuracy>4.0</Camera:GPSXYAccuracy>")
    path = write_jpeg(tmp_path / "p.jpg", (W, H), gps=GPS, xmp=packet({}, body), exif_ifd=FOCAL_35)
    assert centre_local(path) == pytest.approx((0.0, -50.0), abs=0.3)  # 50 m south
    drone = georeference_image(path).drone
    assert drone is not None and drone.maker == "parrot"
    assert drone.sources.altitude == "XMP Camera:AboveGroundAltitude (above take-off)"
    # The receiver's stated 4 m, not the standalone-GNSS default of 1.5 m, sizes the radius.
    ref = georeference_image(path)
    assert isinstance(ref.projector, FrameProjector) and ref.projector.uncertainty.horizontal_m == 4.0


@pytest.mark.parametrize("prefix", ["Camera", "sensefly"])
def test_fixed_nadir_camera_angles(tmp_path: Path, prefix: str) -> None:
    # Pix4D's angles: all zero looks straight down, image top north; yaw 90 turns the top east,
    # pitch +45 (nose up) tilts the view forward: 50 m east of a camera 50 m up.
    attrs = {f"{prefix}:Yaw": "90", f"{prefix}:Pitch": "45", f"{prefix}:Roll": "0",
             "Camera:AboveGroundAltitude": "50"}
    path = write_jpeg(tmp_path / "n.jpg", (W, H), gps=GPS, xmp=packet(attrs), exif_ifd=FOCAL_35)
    assert centre_local(path) == pytest.approx((50.0, 0.0), abs=0.3)
    ref = georeference_image(path)
    assert ref.drone is not None and ref.drone.sources.attitude is not None
    assert ref.drone.sources.attitude.endswith("(senseFly)" if prefix == "sensefly" else "(Pix4D)")


def test_nadir_body_angles_match_the_gimbal_convention() -> None:
    level = nadir_body_orientation(30.0, 0.0, 0.0)
    assert (level.yaw_deg, level.pitch_deg, level.roll_deg) == pytest.approx((30.0, -90.0, 0.0), abs=1e-9)
    rng = np.random.default_rng(3)
    for _ in range(50):
        o = Orientation(yaw_deg=rng.uniform(0, 360), pitch_deg=rng.uniform(-89, 89),
                        roll_deg=rng.uniform(-170, 170))
        axes = o.camera_to_world()
        back = orientation_from_axes(axes[:, 2], axes[:, 0])
        np.testing.assert_allclose(back.camera_to_world(), axes, atol=1e-9)


def test_micasense_without_camera_attitude_gives_a_reason(tmp_path: Path) -> None:
    xmp = packet({"MicaSense:CaptureId": "abc", "Camera:BandName": "Blue", "Camera:IrradianceYaw": "93.7"})
    ref = georeference_image(write_jpeg(tmp_path / "m.jpg", (W, H), gps=GPS, xmp=xmp, exif_ifd=FOCAL_35))
    assert isinstance(ref.projector, PhotographerProjector)
    assert ref.drone is not None and ref.drone.sources.attitude is None and not ref.drone.full_pose
    assert any("sun sensor" in r for r in ref.reasons)


def test_dewarp_data_on_a_resized_photo(tmp_path: Path) -> None:
    # Calibrated on an 800x600 sensor image, stored at 400x300.
    dewarp = "2020-01-01;440.0,436.0,6.0,-4.0,-0.1,0.05,0.001,0.0002,-0.01"
    xmp = dji_xmp(**dji(CalibratedOpticalCenterX="400", CalibratedOpticalCenterY="300", DewarpData=dewarp))
    ref = georeference_image(write_jpeg(tmp_path / "d.jpg", (W, H), xmp=xmp))
    assert isinstance(ref.projector, FrameProjector)
    intr = ref.projector.camera.intrinsics
    assert (intr.fx, intr.fy, intr.cx, intr.cy) == pytest.approx((220.0, 218.0, 203.0, 148.0))
    assert intr.distortion == ()  # parsed, not applied (vision.geo.drone_intrinsics says why)
    assert any("scaled by 0.5000" in r for r in ref.reasons)


def test_malformed_dewarp_data_falls_back_to_calibrated_focal_length(tmp_path: Path) -> None:
    assert isinstance(parse_dewarp("2020-01-01;1,2,3"), str)
    xmp = dji_xmp(**dji(DewarpData="2020-01-01;a,b"))
    ref = georeference_image(write_jpeg(tmp_path / "d.jpg", (W, H), xmp=xmp))
    assert isinstance(ref.projector, FrameProjector)
    assert ref.projector.camera.intrinsics.fx == pytest.approx(F_PX, rel=1e-6)
    assert any("DewarpData" in r for r in ref.reasons)


def test_impossible_focal_plane_resolution_is_refused(tmp_path: Path) -> None:
    # A 400 px photo with the resolution tag of an 8000 px original: a 0.66 mm "1-inch" sensor.
    exif = {0x920A: IFDRational(88, 10), 0xA20E: IFDRational(8000 * 100, 132), 0xA210: 3, 0xA002: W}
    no_focal = dict.fromkeys((
        "CalibratedFocalLength", "CalibratedOpticalCenterX", "CalibratedOpticalCenterY"))
    xmp = dji_xmp(**dji(**no_focal))
    ref = georeference_image(write_jpeg(tmp_path / "r.jpg", (W, H), xmp=xmp, exif_ifd=exif))
    assert ref.projector is None
    assert any("FocalPlaneXResolution" in r and "cameras.yaml" in r for r in ref.reasons)


def test_gdal_prefixed_xmp_in_a_16_bit_tiff(tmp_path: Path) -> None:
    path = tmp_path / "band.tif"
    xmp = b"xml:XMP=" + dji_xmp(**dji())
    Image.fromarray(np.full((H, W), 4000, np.uint16)).save(path, tiffinfo={700: xmp})
    meta = probe_image(path).metadata
    assert meta.xmp_problem is None and meta.dji["GimbalPitchDegree"] == "-90.00"
    drone = read_drone_metadata(meta)
    assert drone is not None and drone.full_pose
    assert load_image(path).kind == "drone"
