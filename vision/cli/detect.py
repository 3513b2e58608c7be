"""`patrol detect PATH...`: run an installed model over image files, folders and globs, video
files and stream URLs.

One JSON line per image on stdout (or --out FILE), a progress bar and a summary on
stderr. A file that cannot be read is reported and counted; the run goes on and exits
with code 1 at the end. No installed model is exit code 2.

Videos (files with a video suffix, rtsp:// and http:// URLs; after the images) give one
line per analysed frame, one frame per `--every` seconds of stream time, with the frame's
`frame_time_s` and `frame_index`; `--keyframes` decodes keyframes only (vision.video). A
frame is a camera frame: no EXIF, so GeoJSON places it only with a tower camera config.

Results flow through sinks, in input order: JSON lines, annotated images, GeoJSON. A new
output is one more sink taking the same FileResult.
"""

from __future__ import annotations

import glob
import itertools
import json
import sys
import time
from collections import Counter
from collections.abc import Iterator
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Protocol, TextIO, cast

import typer

from vision.video import is_stream_url, is_video_source

if TYPE_CHECKING:
    from vision.annotate import Annotator
    from vision.geo.georeference import GeoreferenceOptions
    from vision.geo.tower import TowerCameraConfig
    from vision.pipeline import FileResult, FileSourceKind, Pipeline, TileMode
    from vision.taxonomy import Taxonomy
    from vision.video import VideoFrame

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".webp", ".bmp")
EXIT_FILES_FAILED = 1
EXIT_NO_MODEL = 2


class TileChoice(StrEnum):
    auto = "auto"
    on = "on"
    off = "off"


class DeviceChoice(StrEnum):
    """ONNX Runtime's execution provider; cuda and tensorrt need onnxruntime-gpu."""

    cpu = "cpu"
    cuda = "cuda"
    tensorrt = "tensorrt"


class EngineChoice(StrEnum):
    """The runtime of the model's ONNX export (vision.detectors.engines)."""

    auto = "auto"
    onnxruntime = "onnxruntime"
    openvino = "openvino"


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


def result_record(result: FileResult, taxonomy: Taxonomy, model: str, model_version: str,
                  frame: VideoFrame | None = None) -> dict[str, Any]:
    """The JSON line for one file, or for one frame of a video (with its time in the stream)."""
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
    timing = {} if frame is None else {"frame_time_s": round(frame.time_s, 3), "frame_index": frame.index}
    return {
        "file": result.path,
        **timing,
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
    """Receives every FileResult in input order; `frame` when the result is a video frame's."""

    def write(self, result: FileResult, frame: VideoFrame | None = None) -> None: ...

    def close(self) -> None: ...


class JsonLinesSink:
    def __init__(self, stream: TextIO, pipeline: Pipeline) -> None:
        self.stream = stream
        self.taxonomy = pipeline.taxonomy
        self.model, self.version = pipeline.card.name, pipeline.card.version

    def write(self, result: FileResult, frame: VideoFrame | None = None) -> None:
        record = result_record(result, self.taxonomy, self.model, self.version, frame)
        self.stream.write(json.dumps(record, ensure_ascii=False) + "\n")
        self.stream.flush()

    def close(self) -> None:
        self.stream.flush()


class AnnotateSink:
    """Writes `<out_dir>/<file name>` with the findings drawn (a video's frames as
    `<name>-t<seconds>.jpg`); names are made unique."""

    def __init__(self, out_dir: Path, annotator: Annotator) -> None:
        out_dir.mkdir(parents=True, exist_ok=True)
        self.out_dir = out_dir
        self.annotator = annotator
        self._used: set[str] = set()

    def target(self, source: Path, frame: VideoFrame | None = None) -> Path:
        suffix = source.suffix.lower() if source.suffix.lower() in (".jpg", ".jpeg", ".png") else ".png"
        stem = source.stem
        if frame is not None:  # frames as JPEG, like camera snapshots; the time keeps them in order
            stem, suffix = f"{stem}-t{frame.time_s:010.3f}", ".jpg"
        name, n = f"{stem}{suffix}", 1
        while name in self._used:
            n += 1
            name = f"{stem}-{n}{suffix}"
        self._used.add(name)
        return self.out_dir / name

    def write(self, result: FileResult, frame: VideoFrame | None = None) -> None:
        if result.image is None or result.detections is None:
            return
        canvas = self.annotator.draw(result.image.pixels, result.detections)
        target = self.target(Path(result.path), frame)
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

    def __init__(self, path: Path, taxonomy: Taxonomy, *, camera: TowerCameraConfig | None = None,
                 preset: str | None = None) -> None:
        self.path = path
        self.taxonomy = taxonomy
        self.collections: list[dict[str, Any]] = []
        # A video's frames carry no EXIF: a tower camera config (vision.geo.tower) places them.
        self.tower: GeoreferenceOptions = {} if camera is None else {"camera": camera, "preset": preset}

    def write(self, result: FileResult, frame: VideoFrame | None = None) -> None:
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
            options: GeoreferenceOptions = self.tower if frame is not None else {}
            ref = georeference_image(result.path if is_geotiff or result.image is None else result.image,
                                     **options)
        except ImageLoadError as exc:
            geotags = [NoLocation(f"no georeference: {exc.reason}: {exc.detail}")] * len(detections)
        else:
            source, taken = ref.source, ref.captured_at
            if ref.projector is None:
                reason = "; ".join(ref.reasons) or "no georeference in the file"
                geotags = [NoLocation(reason)] * len(detections)
            else:
                geotags = geotag_detections(detections, ref.projector, taxonomy=self.taxonomy)
        # A frame is named by its media fragment (W3C: clip.mp4#t=12.000), the time in the stream.
        image = result.path if frame is None else f"{result.path}#t={frame.time_s:.3f}"
        self.collections.append(detections_to_feature_collection(
            detections, geotags, source=source, time=taken, image=image))

    def close(self) -> None:
        from vision.geo.geojson import merge_feature_collections, write_geojson

        write_geojson(self.path, merge_feature_collections(self.collections))


def _summary_table(counts: Counter[str], taxonomy: Taxonomy, n_files: int, n_failed: int,
                   elapsed_s: float, pipeline: Pipeline, n_frames: int = 0) -> Any:
    from rich.table import Table

    table = Table(title="patrol detect", show_header=True)
    table.add_column("")
    table.add_column("value", justify="right")
    table.add_row("files", str(n_files))  # images and analysed video frames
    if n_frames:
        table.add_row("video frames", str(n_frames))
    table.add_row("ok", str(n_files - n_failed))
    table.add_row("failed", str(n_failed), style="red" if n_failed else None)
    for spec in taxonomy:
        table.add_row(f"{spec.key} {spec.name_zh}", str(counts.get(spec.key, 0)))
    table.add_row("images/s", f"{n_files / elapsed_s:.2f}" if elapsed_s > 0 else "-")
    stats = pipeline.stats()
    table.add_row("batches (mean size)", f"{stats.batches_run} ({stats.mean_batch_size:.2f})")
    return table


def _video_results(pipeline: Pipeline, source: str, *, every_s: float | None, keyframes_only: bool,
                   tiled: TileMode, keep_images: bool,
                   max_frames: int | None = None) -> Iterator[tuple[FileResult, VideoFrame | None]]:
    """One result per analysed frame of a video; an unreadable video (or one lost midway) ends
    with one error result, like an unreadable image."""
    from vision.errors import VideoError
    from vision.image_io import LoadedImage
    from vision.pipeline import FileError, FileResult, Timings
    from vision.sources import ImageMetadata
    from vision.video import open_video

    try:
        with open_video(source, every_s=every_s, keyframes_only=keyframes_only, decode_threads=0) as reader:
            started = time.perf_counter()
            for frame in itertools.islice(reader, max_frames):
                decoded = time.perf_counter()
                # A camera frame: tiled by the camera policy, and no EXIF to place it.
                detections = pipeline.detect(frame.pixels, tiled=tiled, source="camera")
                done = time.perf_counter()
                image = None
                if keep_images:
                    metadata = ImageMetadata(frame.resolution_wh, "video")
                    image = LoadedImage(frame.pixels, f"{source}#t={frame.time_s:.3f}", "video",
                                        frame.resolution_wh, metadata, kind="camera")
                timings = Timings((decoded - started) * 1000, (done - decoded) * 1000)
                yield FileResult(source, frame.resolution_wh, detections, None, timings, image), frame
                started = time.perf_counter()
    except VideoError as exc:
        yield FileResult(source, None, None, FileError(exc.reason, exc.detail), Timings(0.0, 0.0)), None


def detect_command(
    paths: Annotated[list[str], typer.Argument(
        help="Image files, folders (searched recursively) or globs; video files and rtsp:// or http:// "
             "stream URLs.")],
    model: Annotated[str, typer.Option(
        "--model", "-m", help="Installed model name or model folder.")] = "default",
    models_dir: Annotated[Path | None, typer.Option(
        "--models-dir", envvar="PATROL_MODELS_DIR", help="Where installed models live.")] = None,
    device: Annotated[DeviceChoice, typer.Option(
        "--device", envvar="PATROL_DEVICE",
        help="Run the model on cpu, cuda or tensorrt (ONNX Runtime's providers; the GPU ones need "
             "onnxruntime-gpu and its CUDA/TensorRT libraries).")] = DeviceChoice.cpu,
    engine: Annotated[EngineChoice, typer.Option(
        "--engine", envvar="PATROL_ENGINE",
        help="Runtime of the ONNX model: onnxruntime, openvino (the openvino extra, cpu only) or auto "
             "(openvino for a float model on cpu when installed and it runs bf16/f16 here, "
             "else onnxruntime).")] = EngineChoice.auto,
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
    native_resolution: Annotated[bool, typer.Option(
        "--native-resolution", help="Tile drone photos at their native resolution instead of shrinking "
                                    "them first to the ground sampling distance their classes need "
                                    "(from the DJI pose).")] = False,
    rules: Annotated[list[str] | None, typer.Option(
        "--rule", help="Also run this rule beside the model on drone photos and orthomosaics "
                       "(repeatable): blue_roof finds blue steel roofs (蓝色彩钢瓦) by colour and shape "
                       "(vision/detectors/blue_roof.py, models/rules/blue_roof.card.json).")] = None,
    source: Annotated[SourceChoice, typer.Option(
        "--source", help="What the images are: auto (DJI XMP in the file: drone, else unknown), citizen, "
                         "drone, camera, unknown.")] = SourceChoice.auto,
    batch: Annotated[int | None, typer.Option(
        "--batch", min=1, max=256, help="Most images per inference batch (default: 1 on CPU).")] = None,
    workers: Annotated[int, typer.Option(
        "--workers", min=1, max=64, help="Threads reading and decoding files.")] = 2,
    every: Annotated[float, typer.Option(
        "--every", min=0.0, help="Videos: analyse one frame per this many seconds of stream time "
                                 "(0: every frame).")] = 1.0,
    keyframes: Annotated[bool, typer.Option(
        "--keyframes", help="Videos: decode keyframes only (several times cheaper; frames only as often "
                            "as the stream has keyframes).")] = False,
    camera: Annotated[Path | None, typer.Option(
        "--camera", help="Videos: tower camera config (YAML or JSON) placing the frames' findings in "
                         "--geojson.")] = None,
    preset: Annotated[str | None, typer.Option("--preset", help="Preset id in the --camera config.")] = None,
    max_frames: Annotated[int | None, typer.Option(
        "--frames", min=1, help="Videos: stop after this many analysed frames of each (a live stream "
                                "otherwise runs until Ctrl-C).")] = None,
) -> None:
    """Detect violations in images and videos; one JSON line per image or analysed frame."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from vision.batcher import BatcherConfig
    from vision.errors import ModelError
    from vision.pipeline import Pipeline, TilingConfig
    from vision.rules import load_rules

    console = Console(stderr=True)
    urls = [p for p in paths if is_stream_url(p)]  # a URL is no path: Path() would fold its "//"
    files = expand_inputs([p for p in paths if not is_stream_url(p)])
    videos = [str(f) for f in files if is_video_source(f)] + urls
    files = [f for f in files if not is_video_source(f)]
    if not files and not videos:
        console.print(f"[red]no image files found in {' '.join(paths)}[/red]")
        raise typer.Exit(EXIT_FILES_FAILED)
    tower = None
    if camera is not None:
        from vision.geo.tower import TowerCameraConfig, TowerConfigError

        try:
            tower = TowerCameraConfig.load(camera)
            tower.preset(preset)
        except (TowerConfigError, ValueError) as exc:
            raise typer.BadParameter(str(exc), param_hint="--camera/--preset") from exc
    batcher = BatcherConfig() if batch is None else BatcherConfig(max_batch=batch)
    try:
        pipeline = Pipeline.from_model(model, models_dir=models_dir, batcher=batcher, device=device.value,
                                       engine=engine.value,
                                       tiling=TilingConfig(ground_sized=not native_resolution),
                                       rules=load_rules(rules or []))
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
            sinks.append(GeoJsonSink(geojson, pipeline.taxonomy, camera=tower, preset=preset))

        counts: Counter[str] = Counter()
        failed = frames = 0
        started = time.perf_counter()
        tiled: TileMode = "auto" if tile.value == "auto" else tile.value == "on"
        # SourceChoice's values other than auto are source kinds.
        kind = cast("FileSourceKind", "sniff" if source is SourceChoice.auto else source.value)
        progress = Progress(TextColumn("detect"), BarColumn(), MofNCompleteColumn(),
                            TextColumn("{task.fields[rate]}"), TimeElapsedColumn(), console=console)
        keep = annotate is not None or geojson is not None
        with pipeline, progress:
            # A video's frame count is not known before it is read (a stream has none).
            task = progress.add_task("detect", total=None if videos else len(files), rate="")
            results: Iterator[tuple[FileResult, VideoFrame | None]] = itertools.chain(
                ((result, None) for result in pipeline.detect_many(files, workers=workers, tiled=tiled,
                                                                  source=kind, keep_images=keep)),
                *(_video_results(pipeline, video, every_s=every or None, keyframes_only=keyframes,
                                 tiled=tiled, keep_images=keep, max_frames=max_frames) for video in videos))
            for done, (result, frame) in enumerate(results, 1):
                frames += frame is not None
                for sink in sinks:
                    sink.write(result, frame)
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
    console.print(_summary_table(counts, pipeline.taxonomy, len(files) + frames, failed, elapsed, pipeline,
                                 frames))
    if failed:
        raise typer.Exit(EXIT_FILES_FAILED)


def register(app: typer.Typer) -> None:
    app.command("detect")(detect_command)
