"""`patrol detect PATH...`: run an installed model over image files, folders and globs.

One JSON line per image on stdout (or --out FILE), a progress bar and a summary on
stderr. A file that cannot be read is reported and counted; the run goes on and exits
with code 1 at the end. No installed model is exit code 2.

Results flow through sinks, in input order: JSON lines, annotated images, GeoJSON. A new
output is one more sink taking the same FileResult.
"""

from __future__ import annotations

import glob
import json
import sys
import time
from collections import Counter
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Protocol, TextIO, cast

import typer

if TYPE_CHECKING:
    from vision.annotate import Annotator
    from vision.pipeline import FileResult, FileSourceKind, Pipeline, TileMode
    from vision.taxonomy import Taxonomy

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".webp", ".bmp")
EXIT_FILES_FAILED = 1
EXIT_NO_MODEL = 2


class TileChoice(StrEnum):
    auto = "auto"
    on = "on"
    off = "off"


class SourceChoice(StrEnum):
    """What the images are; decides tiling under --tile auto (vision.pipeline.TilingConfig)."""

    auto = "auto"  # DJI XMP in the file: drone; otherwise unknown
    citizen = "citizen"
    drone = "drone"
    camera = "camera"
    unknown = "unknown"


def expand_inputs(inputs: list[str]) -> list[Path]:
    """Files as given, folders searched recursively for images, glob patterns expanded.

    A path that does not exist and is no pattern is kept, so that it is reported as
    `not_found` like any other unreadable file instead of silently vanishing.
    """
    found: list[Path] = []
    seen: set[Path] = set()

    def add(path: Path) -> None:
        if path not in seen:
            seen.add(path)
            found.append(path)

    for raw in inputs:
        path = Path(raw)
        if path.is_dir():
            for child in sorted(path.rglob("*")):
                if child.is_file() and child.suffix.lower() in IMAGE_SUFFIXES:
                    add(child)
        elif path.exists() or not glob.has_magic(raw):
            add(path)
        else:
            for match in sorted(glob.glob(raw, recursive=True)):
                match_path = Path(match)
                if match_path.is_file():
                    add(match_path)
    return found


def result_record(result: FileResult, taxonomy: Taxonomy, model: str, model_version: str) -> dict[str, Any]:
    """The JSON line for one file."""
    width, height = result.resolution_wh or (None, None)
    detections = []
    tiles = source_kind = None
    if result.detections is not None:
        tiles = result.detections.metadata.get("tiles")
        source_kind = result.detections.metadata.get("source_kind")
        dets = result.detections
        for key, score, box in zip(dets.data["class_key"], dets.confidence, dets.xyxy, strict=True):
            detections.append({
                "class_key": str(key),
                "name_zh": taxonomy.get(str(key)).name_zh,
                "score": round(float(score), 4),
                "box_xyxy": [round(float(v), 1) for v in box],
            })
    return {
        "file": result.path,
        "width": width,
        "height": height,
        "model": model,
        "model_version": model_version,
        "source_kind": source_kind,  # what decided tiling (--source; DJI XMP under auto)
        "tiles": tiles,
        "detections": detections,
        "error": None if result.error is None else {"reason": result.error.reason,
                                                    "detail": result.error.detail},
    }


class ResultSink(Protocol):
    """Receives every FileResult in input order."""

    def write(self, result: FileResult) -> None: ...

    def close(self) -> None: ...


class JsonLinesSink:
    def __init__(self, stream: TextIO, pipeline: Pipeline) -> None:
        self.stream = stream
        self.taxonomy = pipeline.taxonomy
        self.model, self.version = pipeline.card.name, pipeline.card.version

    def write(self, result: FileResult) -> None:
        record = result_record(result, self.taxonomy, self.model, self.version)
        self.stream.write(json.dumps(record, ensure_ascii=False) + "\n")
        self.stream.flush()

    def close(self) -> None:
        self.stream.flush()


class AnnotateSink:
    """Writes `<out_dir>/<file name>` with the findings drawn; names are made unique."""

    def __init__(self, out_dir: Path, annotator: Annotator) -> None:
        out_dir.mkdir(parents=True, exist_ok=True)
        self.out_dir = out_dir
        self.annotator = annotator
        self._used: set[str] = set()

    def target(self, source: Path) -> Path:
        suffix = source.suffix.lower() if source.suffix.lower() in (".jpg", ".jpeg", ".png") else ".png"
        name, n = f"{source.stem}{suffix}", 1
        while name in self._used:
            n += 1
            name = f"{source.stem}-{n}{suffix}"
        self._used.add(name)
        return self.out_dir / name

    def write(self, result: FileResult) -> None:
        if result.image is None or result.detections is None:
            return
        canvas = self.annotator.draw(result.image.pixels, result.detections)
        target = self.target(Path(result.path))
        if target.suffix in (".jpg", ".jpeg"):
            canvas.save(target, quality=90)
        else:
            canvas.save(target)

    def close(self) -> None:
        pass


class GeoJsonSink:
    """Geotags each file's findings (EXIF GPS, DJI pose, GeoTIFF) and writes one FeatureCollection.

    Findings in a file with no usable georeference stay in the collection with a null
    geometry and the reasons, so nothing silently disappears from the map export.
    """

    def __init__(self, path: Path, taxonomy: Taxonomy) -> None:
        self.path = path
        self.taxonomy = taxonomy
        self.collections: list[dict[str, Any]] = []

    def write(self, result: FileResult) -> None:
        from vision.errors import ImageLoadError
        from vision.geo.geojson import detections_to_feature_collection
        from vision.geo.georeference import GEOTIFF_SUFFIXES, georeference_image
        from vision.geo.geotagging import geotag_detections
        from vision.geo.types import Geotag, NoLocation

        detections = result.detections
        if detections is None or len(detections) == 0:
            return
        source, taken = None, None
        geotags: list[Geotag | NoLocation]
        try:
            # The decoded image carries its metadata: only a GeoTIFF is opened again, by
            # rasterio, for its transform (the image reader does not parse GeoTIFF tags).
            is_geotiff = Path(result.path).suffix.lower() in GEOTIFF_SUFFIXES
            ref = georeference_image(result.path if is_geotiff or result.image is None else result.image)
        except ImageLoadError as exc:
            geotags = [NoLocation(f"no georeference: {exc.reason}: {exc.detail}")] * len(detections)
        else:
            source, taken = ref.source, ref.captured_at
            if ref.projector is None:
                reason = "; ".join(ref.reasons) or "no georeference in the file"
                geotags = [NoLocation(reason)] * len(detections)
            else:
                geotags = geotag_detections(detections, ref.projector, taxonomy=self.taxonomy)
        self.collections.append(detections_to_feature_collection(
            detections, geotags, source=source, time=taken, image=result.path))

    def close(self) -> None:
        from vision.geo.geojson import merge_feature_collections, write_geojson

        write_geojson(self.path, merge_feature_collections(self.collections))


def _summary_table(counts: Counter[str], taxonomy: Taxonomy, n_files: int, n_failed: int,
                   elapsed_s: float, pipeline: Pipeline) -> Any:
    from rich.table import Table

    table = Table(title="patrol detect", show_header=True)
    table.add_column("")
    table.add_column("value", justify="right")
    table.add_row("files", str(n_files))
    table.add_row("ok", str(n_files - n_failed))
    table.add_row("failed", str(n_failed), style="red" if n_failed else None)
    for spec in taxonomy:
        table.add_row(f"{spec.key} {spec.name_zh}", str(counts.get(spec.key, 0)))
    table.add_row("images/s", f"{n_files / elapsed_s:.2f}" if elapsed_s > 0 else "-")
    stats = pipeline.stats()
    table.add_row("batches (mean size)", f"{stats.batches_run} ({stats.mean_batch_size:.2f})")
    return table


def detect_command(
    paths: Annotated[list[str], typer.Argument(help="Image files, folders (searched recursively) or globs.")],
    model: Annotated[str, typer.Option(
        "--model", "-m", help="Installed model name or model folder.")] = "default",
    models_dir: Annotated[Path | None, typer.Option(
        "--models-dir", envvar="PATROL_MODELS_DIR", help="Where installed models live.")] = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="JSON lines file; default stdout.")] = None,
    annotate: Annotated[Path | None, typer.Option(
        "--annotate", help="Folder to write annotated copies of the images into.")] = None,
    geojson: Annotated[Path | None, typer.Option(
        "--geojson", help="Also write the findings, geotagged from EXIF GPS / DJI XMP / GeoTIFF, "
                          "as one GeoJSON FeatureCollection.")] = None,
    tile: Annotated[TileChoice, typer.Option(
        "--tile", help="Tile large images: auto (by --source: drone photos when larger than the model "
                       "input, camera frames and others beyond 8x, citizen photos never), on, off."
    )] = TileChoice.auto,
    source: Annotated[SourceChoice, typer.Option(
        "--source", help="What the images are: auto (DJI XMP in the file: drone, else unknown), citizen, "
                         "drone, camera, unknown.")] = SourceChoice.auto,
    batch: Annotated[int | None, typer.Option(
        "--batch", min=1, max=256, help="Most images per inference batch (default: 1 on CPU).")] = None,
    workers: Annotated[int, typer.Option(
        "--workers", min=1, max=64, help="Threads reading and decoding files.")] = 2,
) -> None:
    """Detect violations in images; one JSON line per image."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from vision.batcher import BatcherConfig
    from vision.errors import ModelError
    from vision.pipeline import Pipeline

    console = Console(stderr=True)
    files = expand_inputs(paths)
    if not files:
        console.print(f"[red]no image files found in {' '.join(paths)}[/red]")
        raise typer.Exit(EXIT_FILES_FAILED)
    batcher = BatcherConfig() if batch is None else BatcherConfig(max_batch=batch)
    try:
        pipeline = Pipeline.from_model(model, models_dir=models_dir, batcher=batcher)
    except ModelError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(EXIT_NO_MODEL) from exc

    out_stream = out.open("w", encoding="utf-8") if out is not None else None
    sinks: list[ResultSink] = []
    try:
        sinks.append(JsonLinesSink(out_stream or sys.stdout, pipeline))
        if annotate is not None:
            from vision.annotate import Annotator
            annotator = Annotator(pipeline.taxonomy)
            if not annotator.style.chinese:
                console.print("[yellow]no CJK font found (fc-list :lang=zh); labels use English keys. "
                              "Install fonts-noto-cjk for Chinese names.[/yellow]")
            sinks.append(AnnotateSink(annotate, annotator))
        if geojson is not None:
            sinks.append(GeoJsonSink(geojson, pipeline.taxonomy))

        counts: Counter[str] = Counter()
        failed = 0
        started = time.perf_counter()
        tiled: TileMode = "auto" if tile.value == "auto" else tile.value == "on"
        # SourceChoice's values other than auto are source kinds.
        kind = cast("FileSourceKind", "sniff" if source is SourceChoice.auto else source.value)
        progress = Progress(TextColumn("detect"), BarColumn(), MofNCompleteColumn(),
                            TextColumn("{task.fields[rate]}"), TimeElapsedColumn(), console=console)
        with pipeline, progress:
            task = progress.add_task("detect", total=len(files), rate="")
            results = pipeline.detect_many(files, workers=workers, tiled=tiled, source=kind,
                                           keep_images=annotate is not None or geojson is not None)
            for done, result in enumerate(results, 1):
                for sink in sinks:
                    sink.write(result)
                if result.error is not None:
                    failed += 1
                    progress.console.print(f"[red]failed[/red] {result.path}: {result.error.reason}: "
                                           f"{result.error.detail}")
                elif result.detections is not None:
                    counts.update(result.detections.data["class_key"].tolist())
                elapsed = time.perf_counter() - started
                progress.update(task, advance=1, rate=f"{done / elapsed:.2f} images/s")
        elapsed = time.perf_counter() - started
    finally:
        for sink in sinks:
            sink.close()
        if out_stream is not None:
            out_stream.close()
    console.print(_summary_table(counts, pipeline.taxonomy, len(files), failed, elapsed, pipeline))
    if failed:
        raise typer.Exit(EXIT_FILES_FAILED)


def register(app: typer.Typer) -> None:
    app.command("detect")(detect_command)
