"""Villages and grids (网格): import from GeoJSON, nest by containment, find where an issue lies.

Nesting is geometric, so any hierarchy a township uses works (grids inside villages, or
villages inside grids): a region's parent is the smallest other region that covers at
least 99 % of it (hand-drawn boundaries never match exactly). An issue belongs to the
smallest region that covers its point; a point on a shared boundary goes to the smaller.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import shapely
from shapely.geometry import MultiPolygon, Point, Polygon
from shapely.geometry.base import BaseGeometry
from shapely.validation import explain_validity
from sqlalchemy import select
from sqlalchemy.orm import Session, defer

from service.db.models import REGION_KINDS, Issue, Region
from service.errors import InvalidInputError, check_no_nul
from service.ledger.geometry import from_geojson_text, to_geojson_text
from service.settings import MAX_REGION_VERTICES
from vision.geo.local_frame import area_m2
from vision.geo.types import in_wgs84_range

MAX_FEATURES = 10_000
PARENT_COVER_FRACTION = 0.99
_WGS84_CRS_NAMES = {
    "urn:ogc:def:crs:OGC:1.3:CRS84",
    "urn:ogc:def:crs:OGC::CRS84",
    "EPSG:4326",
    "urn:ogc:def:crs:EPSG::4326",
    "urn:ogc:def:crs:EPSG:4326",
}


@dataclass(frozen=True)
class RegionDraft:
    name: str
    kind: str
    geometry: BaseGeometry


@dataclass(frozen=True)
class ImportResult:
    created: list[Region]
    skipped: list[str]  # names of features identical to a stored region
    issues_reassigned: int


# -- parsing ------------------------------------------------------------------------------------


def parse_feature_collection(body: Any, *, max_vertices: int = MAX_REGION_VERTICES) -> list[RegionDraft]:
    """Validate a GeoJSON FeatureCollection of village/grid polygons, each of at most `max_vertices`
    vertices; InvalidInputError names the feature."""
    if not isinstance(body, dict) or body.get("type") != "FeatureCollection":
        got = body.get("type") if isinstance(body, dict) else type(body).__name__
        raise InvalidInputError(f"expected a GeoJSON FeatureCollection, got {got!r}")
    _check_crs(body.get("crs"))
    features = body.get("features")
    if not isinstance(features, list) or not features:
        raise InvalidInputError("expected a non-empty 'features' list")
    if len(features) > MAX_FEATURES:
        raise InvalidInputError(f"expected at most {MAX_FEATURES} features, got {len(features)}")
    return [_parse_feature(i, f, max_vertices) for i, f in enumerate(features)]


def _check_crs(crs: Any) -> None:
    if crs is None:
        return
    name = crs.get("properties", {}).get("name") if isinstance(crs, dict) else None
    if name not in _WGS84_CRS_NAMES:
        raise InvalidInputError(
            f"expected WGS-84 lon/lat coordinates (RFC 7946), got crs {name!r}; "
            f"reproject the file first, e.g. `ogr2ogr -t_srs EPSG:4326 out.geojson in.geojson`"
        )


def _parse_feature(index: int, feature: Any, max_vertices: int) -> RegionDraft:
    where = f"feature {index}"
    if not isinstance(feature, dict) or feature.get("type") != "Feature":
        raise InvalidInputError(f"{where}: expected a GeoJSON Feature")
    props = feature.get("properties") or {}
    name = props.get("name") if isinstance(props, dict) else None
    if not isinstance(name, str) or not name.strip():
        raise InvalidInputError(f"{where}: expected a non-empty string property 'name'")
    where = f"feature {index} ({name.strip()})"
    check_no_nul(f"feature {index}: name", name)
    kind = props.get("kind")
    if kind not in REGION_KINDS:
        raise InvalidInputError(
            f"{where}: expected property 'kind' to be one of {', '.join(REGION_KINDS)}, got {kind!r}"
        )
    raw = feature.get("geometry")
    if not isinstance(raw, dict) or raw.get("type") not in ("Polygon", "MultiPolygon"):
        got = raw.get("type") if isinstance(raw, dict) else raw
        raise InvalidInputError(f"{where}: expected a Polygon or MultiPolygon geometry, got {got!r}")
    geometry = _polygons(where, raw["type"], raw.get("coordinates"), max_vertices)
    if geometry.is_empty:
        raise InvalidInputError(f"{where}: the polygon is empty")
    min_lon, min_lat, max_lon, max_lat = geometry.bounds
    if not (in_wgs84_range(min_lon, min_lat) and in_wgs84_range(max_lon, max_lat)):
        raise InvalidInputError(f"{where}: expected lon/lat degrees in WGS-84, got bounds {geometry.bounds}")
    if not geometry.is_valid:
        raise InvalidInputError(
            f"{where}: invalid polygon ({explain_validity(geometry)}); fix it, e.g. in QGIS "
            f"with 'Fix geometries'"
        )
    return RegionDraft(name.strip()[:200], kind, geometry)


def _polygons(where: str, kind: str, coordinates: Any, max_vertices: int) -> BaseGeometry:
    """A Polygon or MultiPolygon from GeoJSON coordinates, checked before shapely sees them: shapely
    would close an open ring silently, and takes NaN, strings and any number of vertices."""
    polygons = [coordinates] if kind == "Polygon" else coordinates
    if not _list_of_lists(polygons) or not all(_list_of_lists(rings) for rings in polygons):
        raise InvalidInputError(
            f"{where}: expected {kind} coordinates as lists of rings of [lon, lat] positions"
        )
    vertices = sum(len(ring) for rings in polygons for ring in rings)
    if vertices > max_vertices:
        raise InvalidInputError(
            f"{where}: {vertices:,} vertices; at most {max_vertices:,} per region "
            f"(PATROL_MAX_REGION_VERTICES). Simplify it first, e.g. in QGIS with 'Simplify'"
        )
    parts = [Polygon(shell, holes) for shell, *holes in ([_ring(where, r) for r in rs] for rs in polygons)]
    return parts[0] if kind == "Polygon" else MultiPolygon(parts)


def _list_of_lists(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(item, list) for item in value)


_NUMBERS = (int, float)


def _numbers(position: list[Any]) -> bool:
    return all(type(v) in _NUMBERS for v in position)


def _ring(where: str, ring: list[Any]) -> np.ndarray:
    """A linear ring's lon/lat as an (n, 2) array: 4 or more finite positions, the last equal to the first."""
    if len(ring) < 4:
        raise InvalidInputError(
            f"{where}: a ring needs at least 4 positions (the first repeated last), got {len(ring)}"
        )
    # type(), not isinstance: JSON true/false are bools, which are ints to isinstance
    if not all(isinstance(p, list) and 2 <= len(p) <= 3 and _numbers(p) for p in ring):
        raise InvalidInputError(f"{where}: expected each position as [lon, lat] numbers")
    try:
        lon_lat = np.array([p[:2] for p in ring], dtype=np.float64)
    except OverflowError:  # an integer beyond any float
        lon_lat = np.array([np.inf])
    if not np.isfinite(lon_lat).all():
        raise InvalidInputError(f"{where}: coordinates must be finite numbers, got NaN or an infinity")
    if not np.array_equal(lon_lat[0], lon_lat[-1]):
        raise InvalidInputError(
            f"{where}: a ring is not closed: its last position {ring[-1]} must repeat its first {ring[0]} "
            f"(RFC 7946)"
        )
    return lon_lat


# -- storing ------------------------------------------------------------------------------------


def import_regions(session: Session, drafts: list[RegionDraft], now: datetime) -> ImportResult:
    """Store new regions, re-nest all regions and move located issues into the smallest region."""
    existing = list(session.scalars(select(Region).options(defer(Region.geometry))))
    created: list[Region] = []
    new_drafts: list[RegionDraft] = []
    skipped: list[str] = []
    for draft in drafts:
        named = (draft.kind, draft.name)
        same_name = [REGION_SHAPES.get(session, r) for r in existing if (r.kind, r.name) == named]
        same_name += [d.geometry for d in new_drafts if (d.kind, d.name) == named]
        if any(g.equals(draft.geometry) for g in same_name):
            skipped.append(draft.name)
            continue
        new_drafts.append(draft)
        min_lon, min_lat, max_lon, max_lat = draft.geometry.bounds
        region = Region(
            name=draft.name,
            kind=draft.kind,
            geometry=to_geojson_text(draft.geometry),
            min_lon=min_lon,
            min_lat=min_lat,
            max_lon=max_lon,
            max_lat=max_lat,
            area_m2=area_m2(draft.geometry),
            created_at=now,
        )
        session.add(region)
        created.append(region)
    session.flush()
    nest_regions(session)
    moved = reassign_issues(session, created) if created else 0
    return ImportResult(created, skipped, moved)


def nest_regions(session: Session) -> None:
    regions = list(session.scalars(select(Region).options(defer(Region.geometry))))
    shapes = {r.id: REGION_SHAPES.get(session, r) for r in regions}
    for child in regions:
        parent = None
        for other in regions:
            if other.id == child.id or not _bigger(other, child) or not _bbox_overlaps(other, child):
                continue
            inside = shapes[other.id].intersection(shapes[child.id]).area
            if inside >= PARENT_COVER_FRACTION * shapes[child.id].area and (
                parent is None or _bigger(parent, other)
            ):
                parent = other
        child.parent_id = None if parent is None else parent.id
    session.flush()


def _bigger(a: Region, b: Region) -> bool:
    """Strictly larger; on equal areas a village is the parent of a grid."""
    if a.area_m2 != b.area_m2:
        return a.area_m2 > b.area_m2
    return a.kind == "village" and b.kind == "grid"


def _bbox_overlaps(a: Region, b: Region) -> bool:
    return (
        a.min_lon <= b.max_lon
        and b.min_lon <= a.max_lon
        and a.min_lat <= b.max_lat
        and b.min_lat <= a.max_lat
    )


def reassign_issues(session: Session, regions: list[Region]) -> int:
    """Recompute the region of located issues inside the bounding box of `regions`."""
    min_lon = min(r.min_lon for r in regions)
    min_lat = min(r.min_lat for r in regions)
    max_lon = max(r.max_lon for r in regions)
    max_lat = max(r.max_lat for r in regions)
    moved = 0
    issues = session.scalars(
        select(Issue).where(Issue.lon.between(min_lon, max_lon), Issue.lat.between(min_lat, max_lat))
    )
    for issue in issues:
        region = smallest_region_containing(session, issue.lon, issue.lat)  # type: ignore[arg-type]  # selected by lon/lat between(): never NULL
        new_id = None if region is None else region.id
        if new_id != issue.region_id:
            issue.region_id = new_id
            moved += 1
    session.flush()
    return moved


# -- lookups ------------------------------------------------------------------------------------


def smallest_region_containing(session: Session, lon: float, lat: float) -> Region | None:
    """The index is two-staged: SQL narrows to the regions whose bounding box holds the point (an
    index on the bounds), prepared polygons from REGION_SHAPES decide the rest."""
    rows = session.scalars(
        select(Region)
        .options(defer(Region.geometry))
        .where(Region.min_lon <= lon, Region.max_lon >= lon, Region.min_lat <= lat, Region.max_lat >= lat)
    )
    point = Point(lon, lat)
    containing = [r for r in rows if REGION_SHAPES.get(session, r).covers(point)]
    if not containing:
        return None
    return min(containing, key=lambda r: (r.area_m2, r.kind != "grid", r.id))


def region_chain(regions_by_id: dict[int, Region], region_id: int | None) -> list[Region]:
    """The region and its ancestors, outermost first."""
    chain: list[Region] = []
    seen: set[int] = set()
    while region_id is not None and region_id in regions_by_id and region_id not in seen:
        seen.add(region_id)
        region = regions_by_id[region_id]
        chain.append(region)
        region_id = region.parent_id
    return chain[::-1]


def descendants(regions_by_id: dict[int, Region], region_id: int) -> set[int]:
    """`region_id` and every region nested under it."""
    children: dict[int, list[int]] = {}
    for r in regions_by_id.values():
        if r.parent_id is not None:
            children.setdefault(r.parent_id, []).append(r.id)
    out, stack = set(), [region_id]
    while stack:
        current = stack.pop()
        if current in out:
            continue
        out.add(current)
        stack.extend(children.get(current, []))
    return out


def all_regions(session: Session, *, geometry: bool = False) -> dict[int, Region]:
    """Every region by id; their GeoJSON text (megabytes, for big ones) only with `geometry`."""
    query = select(Region).order_by(Region.id)
    return {r.id: r for r in session.scalars(query if geometry else query.options(defer(Region.geometry)))}


# -- parsed polygons ----------------------------------------------------------------------------


class RegionShapes:
    """Each region's polygon parsed once per process and prepared for point tests, shared by
    every session and thread.

    Polygons are stored as GeoJSON text; parsing a big one again for each photo made every
    lookup slow. An entry's key is what identifies a stored region (its database, id, creation
    time, kind, name, bounds and area). Regions are only ever added, so a key never goes stale;
    a region rolled back and another stored under the same id has another key. Bounded by the
    vertices held, least recently used first out.
    """

    def __init__(self, max_vertices: int) -> None:
        self.max_vertices = max_vertices
        self._held = 0
        self._shapes: OrderedDict[Hashable, BaseGeometry] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, session: Session, region: Region) -> BaseGeometry:
        key = _version(session, region)
        with self._lock:
            shape = self._shapes.get(key)
            if shape is not None:
                self._shapes.move_to_end(key)
                return shape
        shape = from_geojson_text(region.geometry)  # loads the deferred column: one query
        shapely.prepare(shape)
        # GEOS builds a prepared polygon's point index lazily, on its first test: build it here,
        # before other threads share the shape.
        shape.covers(shape.representative_point())
        with self._lock:
            if key not in self._shapes:
                self._shapes[key] = shape
                self._held += int(shapely.get_num_coordinates(shape))
            while self._held > self.max_vertices and len(self._shapes) > 1:
                _, old = self._shapes.popitem(last=False)
                self._held -= int(shapely.get_num_coordinates(old))
        return shape

    def __len__(self) -> int:
        return len(self._shapes)


def _version(session: Session, region: Region) -> Sequence[Hashable]:
    bounds = (region.min_lon, region.min_lat, region.max_lon, region.max_lat)
    database = str(session.get_bind().engine.url)
    return (database, region.id, region.created_at, region.kind, region.name, bounds, region.area_m2)


# About 40 regions at the vertex cap, or thousands of ordinary ones (~100 bytes a vertex prepared).
REGION_SHAPES = RegionShapes(max_vertices=2_000_000)
