"""GeoJSON (RFC 7946) output: Point features at ground points, footprints as a property or a second file.

WGS-84 lon/lat order, no "crs" member, polygon rings counter-clockwise (the right-hand rule),
coordinates rounded to 1e-7 degrees (about 1 cm). A GCJ-02 copy can be made for display on
Chinese basemaps; it is marked as such and is never what is stored.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, TypedDict

from shapely.geometry import mapping
from shapely.geometry.polygon import orient
from typing_extensions import Unpack

from vision.detections import Detections
from vision.geo.gcj02 import wgs84_to_gcj02
from vision.geo.types import Geotag, NoLocation

PRECISION = 7


class FeatureContext(TypedDict, total=False):
    """What every feature of one image's collections says besides its detection (all optional)."""

    source: str | None  # the source kind, where the geotag does not say it
    time: datetime | str | None  # capture time
    labels: Sequence[str] | None  # class names by class id, where the detections carry no keys
    image: str | None  # the image's name


def _round(value: Any) -> Any:
    if isinstance(value, float):
        return round(value, PRECISION)
    if isinstance(value, (list, tuple)):
        return [_round(v) for v in value]
    return value


def _geometry(geom: Any) -> dict[str, Any]:
    geo = mapping(orient(geom, sign=1.0) if geom.geom_type == "Polygon" else geom)
    return {"type": geo["type"], "coordinates": _round(geo["coordinates"])}


def _class_name(detections: Detections, i: int, labels: Sequence[str] | None) -> str:
    for key in ("class_key", "class_name"):
        if key in detections.data:
            value = detections.data[key][i]
            if value is not None and value == value and str(value):  # skip None and NaN
                return str(value)
    cid = int(detections.class_id[i])
    if labels is not None and 0 <= cid < len(labels):
        return labels[cid]
    return str(cid)


def _properties(
    detections: Detections,
    i: int,
    result: Geotag | NoLocation,
    context: FeatureContext,
) -> dict[str, Any]:
    source, time, image = context.get("source"), context.get("time"), context.get("image")
    labels = context.get("labels")
    props: dict[str, Any] = {
        "index": i,
        "class": _class_name(detections, i, labels),
        "class_id": int(detections.class_id[i]),
        "score": round(float(detections.confidence[i]), 4),
        "source": result.source if isinstance(result, Geotag) else source,
        "time": time.isoformat() if isinstance(time, datetime) else time,
        "pixel_xyxy": [round(float(v), 2) for v in detections.xyxy[i]],
    }
    if image is not None:
        props["image"] = image
    if isinstance(result, Geotag):
        props["uncertainty_m"] = round(result.point.uncertainty_m, 3)
        props["anchor"] = result.anchor
        props["area_m2"] = None if result.area_m2 is None else round(result.area_m2, 3)
        if result.footprint is not None:
            props["footprint_method"] = result.footprint.method
            u = result.footprint.area_uncertainty_m2
            props["area_uncertainty_m2"] = None if u is None else round(u, 3)
        if result.footprint_reason:
            props["footprint_reason"] = result.footprint_reason
    else:
        props["uncertainty_m"] = None
        props["area_m2"] = None
        props["no_location_reason"] = result.reason
    return props


def _check_one_per_detection(detections: Detections, geotags: Sequence[Geotag | NoLocation]) -> None:
    if len(geotags) != len(detections):
        raise ValueError(f"expected one geotag per detection ({len(detections)}), got {len(geotags)}")


def detections_to_feature_collection(
    detections: Detections,
    geotags: Sequence[Geotag | NoLocation],
    *,
    footprints_as_property: bool = True,
    include_unlocated: bool = True,
    **context: Unpack[FeatureContext],
) -> dict[str, Any]:
    """A FeatureCollection of Point features at each detection's ground point.

    Properties: class (taxonomy key, else label), class_id, score, source, time, uncertainty_m,
    area_m2, anchor and, with `footprints_as_property`, the footprint polygon as a GeoJSON
    geometry under "footprint". Detections without a location keep a feature with a null
    geometry (allowed by RFC 7946) and "no_location_reason", unless `include_unlocated` is off.
    """
    _check_one_per_detection(detections, geotags)
    features = []
    for i, result in enumerate(geotags):
        if isinstance(result, NoLocation) and not include_unlocated:
            continue
        props = _properties(detections, i, result, context)
        geometry = None
        if isinstance(result, Geotag):
            geometry = {"type": "Point", "coordinates": _round([result.point.lon, result.point.lat])}
            if footprints_as_property and result.footprint is not None:
                props["footprint"] = _geometry(result.footprint.polygon)
        features.append({"type": "Feature", "geometry": geometry, "properties": props})
    return {"type": "FeatureCollection", "features": features}


def footprints_to_feature_collection(
    detections: Detections,
    geotags: Sequence[Geotag | NoLocation],
    **context: Unpack[FeatureContext],
) -> dict[str, Any]:
    """A FeatureCollection of Polygon features, one per detection that has a footprint."""
    _check_one_per_detection(detections, geotags)
    features = []
    for i, result in enumerate(geotags):
        if isinstance(result, Geotag) and result.footprint is not None:
            props = _properties(detections, i, result, context)
            features.append(
                {"type": "Feature", "geometry": _geometry(result.footprint.polygon), "properties": props}
            )
    return {"type": "FeatureCollection", "features": features}


def merge_feature_collections(collections: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Several images' collections as one (e.g. `patrol detect` over a folder)."""
    return {"type": "FeatureCollection", "features": [f for c in collections for f in c["features"]]}


def write_geojson(
    path: str | Path,
    collection: dict[str, Any],
    *,
    footprints: dict[str, Any] | None = None,
    footprints_path: str | Path | None = None,
) -> None:
    """Write a FeatureCollection (UTF-8, RFC 7946), and optionally a footprint collection beside it."""
    if collection.get("type") != "FeatureCollection":
        raise ValueError(f"expected a FeatureCollection, got type {collection.get('type')!r}")
    Path(path).write_text(json.dumps(collection, ensure_ascii=False), encoding="utf-8")
    if footprints is not None:
        if footprints_path is None:
            raise ValueError("expected footprints_path together with footprints")
        Path(footprints_path).write_text(json.dumps(footprints, ensure_ascii=False), encoding="utf-8")


def _convert(coords: Any) -> Any:
    if isinstance(coords, list) and coords and isinstance(coords[0], (int, float)):
        lon, lat = wgs84_to_gcj02(float(coords[0]), float(coords[1]))
        return _round([lon, lat]) + coords[2:]
    return [_convert(c) for c in coords]


def to_gcj02_for_display(collection: dict[str, Any]) -> dict[str, Any]:
    """A copy in GCJ-02 for AMap/Tencent basemaps, flagged with "display_datum": "GCJ-02".

    Not RFC 7946 any more (that mandates WGS-84): never store it or feed it back.
    """
    out = copy.deepcopy(collection)
    out["display_datum"] = "GCJ-02"
    for feature in out["features"]:
        if feature.get("geometry"):
            feature["geometry"]["coordinates"] = _convert(feature["geometry"]["coordinates"])
        fp = feature.get("properties", {}).get("footprint")
        if fp:
            fp["coordinates"] = _convert(fp["coordinates"])
    return out
