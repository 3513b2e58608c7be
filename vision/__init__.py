"""patrol-vision inference core: sources, preprocessing, batching, tiling, detectors, geotagging.

Usable as a library without the service; never imports torch outside vision.detectors'
ultralytics backend.
"""

__version__ = "0.1.0"
