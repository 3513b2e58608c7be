"""Import ultralytics so that it never reaches for the network and never phones home.

Seen with 8.4.x: import probes DNS (YOLO_OFFLINE=1 stops it); it writes a settings file
with analytics and hub sync on (YOLO_CONFIG_DIR + settings below turn them off); export
tries to pip-install onnxslim (pre-installed in the `train` extra; YOLO_AUTOINSTALL=false
stops the attempt); importing it drops torch to one thread on small machines (restored).
Every caller that needs ultralytics goes through `import_ultralytics()`.
"""

from __future__ import annotations

import os
from pathlib import Path
from types import ModuleType

from vision.errors import BackendUnavailableError

_OFFLINE_SETTINGS = {
    "sync": False,
    "clearml": False,
    "comet": False,
    "dvc": False,
    "mlflow": False,
    "raytune": False,
    "tensorboard": False,
    "wandb": False,
    "vscode_msg": False,
    "openvino_msg": False,
}


def default_config_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "patrol-vision" / "ultralytics"


def import_ultralytics() -> ModuleType:
    """Return the ultralytics module, configured to stay offline."""
    os.environ.setdefault("YOLO_OFFLINE", "1")
    os.environ.setdefault("YOLO_AUTOINSTALL", "false")
    os.environ.setdefault("YOLO_VERBOSE", "false")
    os.environ.setdefault("YOLO_CONFIG_DIR", str(default_config_dir()))
    Path(os.environ["YOLO_CONFIG_DIR"]).mkdir(parents=True, exist_ok=True)
    try:
        import torch
        threads = torch.get_num_threads()
        import ultralytics
        from ultralytics.utils import SETTINGS
    except ImportError as exc:
        raise BackendUnavailableError(
            "ultralytics/torch are not installed; install the training extra: "
            "pip install 'patrol-vision[train]' -c requirements/constraints.txt") from exc
    if any(SETTINGS.get(k) != v for k, v in _OFFLINE_SETTINGS.items()):
        SETTINGS.update(_OFFLINE_SETTINGS)
    # ultralytics caps torch at one thread on machines with few cores; we want all of them.
    torch.set_num_threads(max(threads, os.cpu_count() or 1))
    # ultralytics.utils.patches replaces PIL.Image.open process-wide: on a file Pillow cannot
    # identify it tries to install and import pi-heif, so vision.image_io gets a
    # ModuleNotFoundError instead of UnidentifiedImageError (or, with autoinstall, a pip run).
    from PIL import Image
    from ultralytics.utils import patches
    original_open = getattr(patches, "_image_open", None)
    if original_open is not None and Image.open is not original_open:
        Image.open = original_open
    return ultralytics
