"""Find installed models under a models directory and verify them before use.

Layout: `<models_dir>/<name>/{model.onnx, card.json, card.md}`. The directory is
`PATROL_MODELS_DIR` when set, else `models/` at the project root.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from vision.errors import ModelError
from vision.model_card import ModelCard

DEFAULT_MODEL = "default"


def default_models_dir() -> Path:
    env = os.environ.get("PATROL_MODELS_DIR")
    if env:
        return Path(env)
    return Path(__file__).resolve().parent.parent / "models"


def sha256_file(path: Path, chunk_size: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True)
class InstalledModel:
    """A model folder whose card parsed; `weights` is verified only by `verify()`."""

    name: str
    folder: Path
    card: ModelCard

    @property
    def weights(self) -> Path:
        return self.folder / self.card.file

    def verify(self) -> None:
        """Raise ModelError unless the weights exist and match the card's sha256."""
        if not self.weights.is_file():
            raise ModelError(f"model {self.name!r}: weights file {self.weights} is missing")
        actual = sha256_file(self.weights)
        if actual != self.card.sha256:
            raise ModelError(f"model {self.name!r}: {self.weights.name} has sha256 {actual}, "
                             f"but its card says {self.card.sha256}; the file is damaged or replaced")

    def pytorch_weights(self) -> Path:
        """The verified trainable checkpoint shipped beside the ONNX file, for fine-tuning."""
        shipped = self.card.pytorch
        if shipped is None:
            raise ModelError(f"model {self.name!r} ships no PyTorch weights; rebuild them from its ONNX "
                             f"file with `patrol rebuild-pt {self.name} --images DIR`")
        path = self.folder / shipped.file
        if not path.is_file():
            raise ModelError(f"model {self.name!r}: PyTorch weights {path} are missing")
        actual = sha256_file(path)
        if actual != shipped.sha256:
            raise ModelError(f"model {self.name!r}: {shipped.file} has sha256 {actual}, but its card says "
                             f"{shipped.sha256}; the file is damaged or replaced")
        return path


def list_models(models_dir: Path | None = None) -> list[InstalledModel]:
    """Every folder with a card.json, sorted by name; folders with broken cards raise."""
    root = models_dir or default_models_dir()
    if not root.is_dir():
        return []
    found = []
    for card_path in sorted(root.glob("*/card.json")):
        found.append(InstalledModel(card_path.parent.name, card_path.parent, ModelCard.read(card_path)))
    return found


def resolve_model(name_or_path: str | Path | None = None, models_dir: Path | None = None) -> InstalledModel:
    """A registry name ("default"), or a path to a model folder or to its card.json."""
    root = models_dir or default_models_dir()
    target = Path(name_or_path) if name_or_path is not None else root / DEFAULT_MODEL
    if name_or_path is not None and not target.exists() and "/" not in str(name_or_path):
        target = root / str(name_or_path)
    if target.is_file() and target.name == "card.json":
        target = target.parent
    card_path = target / "card.json"
    if not card_path.is_file():
        if target == root / DEFAULT_MODEL:
            raise ModelError(
                f"no trained default model is installed (looked for {card_path}). Train one with "
                f"`patrol train` and `patrol promote`, or pass --model PATH to a model folder.")
        raise ModelError(f"no model card at {card_path}; a model folder holds model.onnx and card.json")
    model = InstalledModel(target.name, target, ModelCard.read(card_path))
    model.verify()
    return model
