"""patrol-vision inference core: sources, preprocessing, batching, tiling, detectors, geotagging.

Usable as a library without the service; never imports torch outside vision.detectors'
ultralytics backend.
"""

import os

# onnxruntime's Linux build carries Microsoft's 1DS telemetry, which was seen resolving
# mobile.events.data.microsoft.com (during export, via onnxslim). The switch only works if set
# before onnxruntime is first imported, and every ONNX Runtime user imports this package first.
os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")

__version__ = "0.1.0"
