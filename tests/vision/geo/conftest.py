"""Builders for synthetic geotagged images: JPEGs with EXIF GPS / DJI XMP, small GeoTIFFs."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import numpy as np
from PIL import Image
from PIL.TiffImagePlugin import IFDRational

from vision.geo.camera import FrameCamera
from vision.geo.frame_projector import FrameProjector, PoseUncertainty
from vision.geo.local_frame import LocalFrame
from vision.geo.surface import FlatGround

GPS_IFD = 0x8825
EXIF_IFD = 0x8769


def dms(value: float) -> tuple[IFDRational, IFDRational, IFDRational]:
    """Decimal degrees -> EXIF degrees/minutes/seconds rationals (seconds to 1/10000)."""
    degrees = int(value)
    minutes_f = (value - degrees) * 60
    minutes = int(minutes_f)
    seconds = round((minutes_f - minutes) * 60 * 10000)
    return IFDRational(degrees, 1), IFDRational(minutes, 1), IFDRational(seconds, 10000)


def write_jpeg(
    path: Path,
    size_wh: tuple[int, int] = (64, 48),
    *,
    gps: Mapping[int, Any] | None = None,
    exif_ifd: Mapping[int, Any] | None = None,
    xmp: bytes | None = None,
) -> Path:
    image = Image.new("RGB", size_wh, (90, 120, 60))
    exif = image.getexif()
    if gps is not None:
        ifd = exif.get_ifd(GPS_IFD)
        ifd.update(gps)
    if exif_ifd is not None:
        exif.get_ifd(EXIF_IFD).update(exif_ifd)
    kwargs: dict[str, Any] = {"exif": exif}
    if xmp is not None:
        kwargs["xmp"] = xmp
    image.save(path, "JPEG", **kwargs)
    return path


def dji_xmp(**tags: Any) -> bytes:
    attrs = "\n".join(f'   drone-dji:{k}="{v}"' for k, v in tags.items())
    return f"""<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>
<x:xmpmeta xmlns:x="adobe:ns:meta/">
 <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
  <rdf:Description rdf:about="DJI Meta Data" xmlns:tiff="http://ns.adobe.com/tiff/1.0/"
   xmlns:drone-dji="http://www.dji.com/drone-dji/1.0/"
{attrs}>
  </rdf:Description>
 </rdf:RDF>
</x:xmpmeta>
<?xpacket end="w"?>""".encode()


def write_geotiff(path: Path, image_rgb: np.ndarray, crs: str, transform: Any) -> Path:
    """An RGB orthophoto, tiled in 256 px blocks as orthomosaic tools write them."""
    return write_raster(path, np.transpose(image_rgb, (2, 0, 1)), crs, transform,
                        tiled=True, blockxsize=256, blockysize=256, compress="deflate")


def write_raster(path: Path, bands: np.ndarray, crs: str, transform: Any, **profile: Any) -> Path:
    """A GeoTIFF of (bands, height, width) values in their own dtype; `profile` adds creation options."""
    import rasterio

    count, height, width = bands.shape
    with rasterio.open(path, "w", driver="GTiff", width=width, height=height, count=count,
                       dtype=str(bands.dtype), crs=crs, transform=transform, **profile) as dst:
        dst.write(bands)
    return path


def flat_ground_projector(
    camera: FrameCamera, lon: float, lat: float, *, curvature: bool, source: Literal["drone", "camera"]
) -> FrameProjector:
    """`camera` at (lon, lat) over flat ground, with the default pose uncertainty."""
    ground = FlatGround(earth_curvature=curvature)
    return FrameProjector(camera=camera, frame=LocalFrame(lon, lat), surface=ground,
                          uncertainty=PoseUncertainty(), source=source)
