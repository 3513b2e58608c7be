"""Build a tiny, untrained YOLO model and export it to ONNX, offline, for hermetic tests.

ultralytics builds a model from its architecture YAML without any download. Untrained
weights give meaningless boxes, so tests that need known boxes use synthetic raw outputs;
tests of the backends compare our ONNX path against ultralytics' own predict on the same
weights, which holds whatever the weights are.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from vision.detectors.ultralytics_offline import import_ultralytics

TINY_LABELS = ("garbage", "garbage_bin", "smoke")


@dataclass(frozen=True)
class TinyModel:
    pt_path: Path
    onnx_path: Path
    imgsz: int
    labels: tuple[str, ...]


def build_tiny_model(folder: Path, imgsz: int = 128, arch: str = "yolov5nu.yaml") -> TinyModel:
    """Write `tiny.pt` and `tiny.onnx` (dynamic batch and size) into `folder`."""
    ultralytics = import_ultralytics()
    from ultralytics.nn.tasks import DetectionModel

    folder.mkdir(parents=True, exist_ok=True)
    model = DetectionModel(cfg=arch, nc=len(TINY_LABELS), verbose=False)
    model.names = dict(enumerate(TINY_LABELS))
    yolo = ultralytics.YOLO(arch)
    yolo.model = model
    pt_path = folder / "tiny.pt"
    yolo.save(pt_path)
    reloaded = ultralytics.YOLO(str(pt_path))
    exported = Path(reloaded.export(format="onnx", imgsz=imgsz, dynamic=True, simplify=True,
                                    batch=1, verbose=False))
    onnx_path = folder / "tiny.onnx"
    if exported != onnx_path:
        shutil.move(exported, onnx_path)
    return TinyModel(pt_path, onnx_path, imgsz, TINY_LABELS)
