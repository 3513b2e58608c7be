"""`patrol changes BEFORE.tif AFTER.tif --out changes.geojson`: what is new since the last survey.

Two orthomosaics of one area (and their DSMs, where the office has them) are co-registered
and compared window by window (vision.change); every new structure is an `illegal_structure`
feature: its ground point, footprint polygon and area in m², score, how it was found (kind:
height_gain, appearance, new_blue_roof) and, with --evidence DIR, both epochs' crops as
PNGs (before/after) named in its properties. One JSON summary on stdout: the measured
misregistration and the count. Rasters that cannot be compared (no CRS, no overlap, a
shift beyond the limit) exit 2 with the reason. This writes files only; to record the changes
as ledger candidates (before/after crops as evidence), submit both orthomosaics as surveys and run
`patrol surveys changes LATER --before EARLIER` (local ledger) or POST /v1/surveys/{id}/changes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

EXIT_BAD_INPUT = 2


def changes(
    before: Annotated[Path, typer.Argument(help="Earlier orthomosaic GeoTIFF (its grid is the reference).")],
    after: Annotated[Path, typer.Argument(help="Later orthomosaic GeoTIFF of the same area.")],
    out: Annotated[Path, typer.Option("--out", help="GeoJSON FeatureCollection to write.")],
    dsm_before: Annotated[Path | None, typer.Option("--dsm-before", help="Earlier DSM GeoTIFF (m).")] = None,
    dsm_after: Annotated[Path | None, typer.Option("--dsm-after", help="Later DSM GeoTIFF (m).")] = None,
    evidence: Annotated[
        Path | None, typer.Option("--evidence", help="Folder for each change's before/after crops (PNG).")
    ] = None,
    config: Annotated[
        Path | None, typer.Option("--config", help="Thresholds YAML (default: vision/change/change.yaml).")
    ] = None,
) -> None:
    """Write the new structures between two surveys as GeoJSON; print a JSON summary."""
    import cv2

    from vision.change.detector import ChangeConfig, ChangeDetector
    from vision.errors import GeoError
    from vision.geo.geojson import detections_to_feature_collection, write_geojson
    from vision.geo.orthomosaic import tile_detections_to_geotags

    try:
        detector = ChangeDetector(ChangeConfig.read(config) if config else None)
        result, pair = detector.run(before, after, dsm_before=dsm_before, dsm_after=dsm_after)
    except GeoError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(code=EXIT_BAD_INPUT) from None
    found = result.detections
    geotags = tile_detections_to_geotags(found, pair.transform, pair.crs)
    collection = detections_to_feature_collection(found, geotags, source="orthomosaic", image=after.name)
    if evidence is not None:
        evidence.mkdir(parents=True, exist_ok=True)
    for feature in collection["features"]:
        i = feature["properties"]["index"]
        gain = float(found.data["height_gain_m"][i])
        feature["properties"].update(
            kind=str(found.data["kind"][i]),
            height_gain_m=None if gain != gain else round(gain, 2),
            before=before.name,
        )
        if evidence is not None:
            for epoch in ("before", "after"):
                path = evidence / f"change_{i:04d}_{epoch}.png"
                cv2.imwrite(str(path), found.data[f"crop_{epoch}"][i])
                feature["properties"][f"crop_{epoch}"] = str(path)
    write_geojson(out, collection)
    reg = result.registration
    summary = {
        "changes": len(found),
        "uses_dsm": result.uses_dsm,
        "windows": result.windows,
        "shift_px": [round(v, 2) for v in reg.shift_px],
        "shift_m": round(reg.shift_m, 3),
        "registration_windows": f"{reg.windows_used}/{reg.windows_tried}",
        "thresholds": detector.name,
        "out": str(out),
    }
    typer.echo(json.dumps(summary, ensure_ascii=False))


def register(app: typer.Typer) -> None:
    app.command("changes")(changes)
