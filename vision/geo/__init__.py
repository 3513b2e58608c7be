"""Geotagging: every detection gets a place on the ground (WGS-84), a footprint and an area.

Rooms:
- `types`: GroundPosition, Geotag, Footprint, NoLocation (results).
- `camera`, `surface`, `dem`, `frame_projector`: pinhole geometry, ray to flat ground or DEM.
- `exif_gps` + `phone`: phone photos (EXIF GPS, photographer's position with a radius).
- `xmp` + `drone_metadata` + `drone_intrinsics` + `camera_table`: any drone maker's pose (XMP
  parsed with defusedxml, EXIF), each fact with where it was read; `drone`: its camera model.
- `tower` + `homography`: watchtower cameras from a config, or a GCP homography per preset.
- `orthomosaic`: windowed GeoTIFF tiles for the detector, boxes back to WGS-84 polygons.
- `georeference`: picks the model for an image file; `geotagging`: Detections -> Geotags.
- `exif_orientation`: upright pixels (what detections use) vs the stored frame of the camera.
- `geojson`: RFC 7946 output; `gcj02`: display-only conversion for Chinese basemaps.

Typical use (what `patrol detect --geojson` does):

    ref = georeference_image(path)                 # or camera=TowerCameraConfig.load(...)
    tags = geotag_detections(detections, ref.projector)
    fc = detections_to_feature_collection(detections, tags, source=ref.source, time=ref.captured_at)
    write_geojson("out.geojson", fc)
"""

from vision.geo.geojson import (
    detections_to_feature_collection,
    footprints_to_feature_collection,
    merge_feature_collections,
    to_gcj02_for_display,
    write_geojson,
)
from vision.geo.georeference import ImageGeoreference, georeference_image, locate_points
from vision.geo.geotagging import geotag_detections, resolve_anchors
from vision.geo.types import Footprint, Geotag, GroundPosition, NoLocation

__all__ = [
    "Footprint",
    "Geotag",
    "GroundPosition",
    "ImageGeoreference",
    "NoLocation",
    "detections_to_feature_collection",
    "footprints_to_feature_collection",
    "geotag_detections",
    "georeference_image",
    "locate_points",
    "merge_feature_collections",
    "resolve_anchors",
    "to_gcj02_for_display",
    "write_geojson",
]
