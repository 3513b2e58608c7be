"""`patrol promote`: make a model the default only if it is not worse on the fixed test split.

Rule: both models' cards hold metrics measured on the test split of the same dataset hash;
no class's AP50 drops by more than one point (0.01) and mean AP50 does not drop. A class the
default was measured on and the candidate lacks counts as a drop to zero. With no default
installed yet, any measured candidate is accepted.

Promotion copies the candidate into `models/default/`. The previous default is kept as
`models/<its name>/` (or `<its name>-<version>/` if that name is taken by other weights),
so going back is another promotion. Every decision is appended to `models/promotions.jsonl`.

With a local test split (`--local-data`: a dataset built from the township's reviewed images,
`patrol review export` then `patrol datasets build`), both models are also measured on its test
split at promotion time, through the serving pipeline, and the candidate must be better there:
a higher mean AP50 than the default's. The log holds both comparisons.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from vision.errors import ModelError
from vision.model_registry import DEFAULT_MODEL, InstalledModel, default_models_dir, resolve_model

MAX_CLASS_DROP = 0.01
PROMOTIONS_LOG = "promotions.jsonl"


@dataclass(frozen=True)
class ClassRow:
    key: str
    current_ap50: float | None
    candidate_ap50: float | None

    @property
    def delta(self) -> float | None:
        if self.current_ap50 is None:
            return None
        return (self.candidate_ap50 or 0.0) - self.current_ap50

    @property
    def ok(self) -> bool:
        delta = self.delta
        # A rounding hair over the limit is still within it (metrics are stored to 6 decimals).
        return delta is None or delta >= -MAX_CLASS_DROP - 1e-9


@dataclass(frozen=True)
class LocalCheck:
    """Both models on the local test split: the candidate must be better there."""

    dataset: str
    dataset_hash: str
    rows: list[ClassRow]
    current_map50: float | None
    candidate_map50: float | None
    better: bool
    reason: str


@dataclass(frozen=True)
class Decision:
    accepted: bool
    reasons: list[str]
    rows: list[ClassRow] = field(default_factory=list)
    current_map50: float | None = None
    candidate_map50: float | None = None
    candidate: str = ""
    current: str | None = None
    local: LocalCheck | None = None


# One model's `patrol evaluate --json` object on the local data's test split.
Measure = Callable[[InstalledModel, Path], dict[str, Any]]


def _test_metrics(model: InstalledModel, role: str) -> dict[str, Any]:
    metrics = model.card.metrics
    if not metrics or "per_class" not in metrics:
        raise ModelError(f"{role} model {model.name!r} has no metrics in its card; run `patrol evaluate "
                         f"{model.folder} --data DATASET --split test --write-card` first")
    if metrics.get("split") != "test":
        raise ModelError(f"{role} model {model.name!r}: its card's metrics were measured on the "
                         f"{metrics.get('split')!r} split, not test")
    if metrics.get("model_sha256") not in (None, model.card.sha256):
        raise ModelError(f"{role} model {model.name!r}: its card's metrics were measured on other weights "
                         f"({metrics.get('model_sha256')}); evaluate again")
    return metrics


def compare(current: dict[str, Any] | None, candidate: dict[str, Any], *, candidate_name: str = "",
            current_name: str | None = None) -> Decision:
    """Apply the promotion rule to two `patrol evaluate --json` objects."""
    if current is None:
        rows = [ClassRow(k, None, v.get("ap50")) for k, v in candidate["per_class"].items()]
        return Decision(True, ["no default model is installed yet"], rows, None, candidate.get("map50"),
                        candidate_name, None)
    if current.get("dataset_hash") != candidate.get("dataset_hash"):
        return Decision(False, [
            f"the models were measured on different datasets (default: {current.get('dataset')} "
            f"{str(current.get('dataset_hash'))[:12]}, candidate: {candidate.get('dataset')} "
            f"{str(candidate.get('dataset_hash'))[:12]}); evaluate both on the same test split and "
            f"record it with --write-card"], [], current.get("map50"), candidate.get("map50"),
            candidate_name, current_name)
    keys = list(dict.fromkeys([*current["per_class"], *candidate["per_class"]]))
    rows = [ClassRow(k, current["per_class"].get(k, {}).get("ap50"),
                     candidate["per_class"].get(k, {}).get("ap50")) for k in keys]
    reasons = []
    for row in rows:
        if not row.ok:
            reasons.append(f"{row.key}: AP50 drops {-(row.delta or 0) * 100:.1f} points "
                           f"({row.current_ap50:.3f} -> {row.candidate_ap50 or 0.0:.3f}), more than "
                           f"{MAX_CLASS_DROP * 100:.0f}")
    current_map, candidate_map = current.get("map50"), candidate.get("map50")
    if current_map is not None and (candidate_map is None or candidate_map < current_map - 1e-9):
        reasons.append(f"mean AP50 drops ({current_map:.3f} -> {candidate_map or 0.0:.3f})")
    accepted = not reasons
    if accepted:
        reasons.append("no class drops more than 1 point of AP50 and mean AP50 does not drop")
    return Decision(accepted, reasons, rows, current_map, candidate_map, candidate_name, current_name)


def compare_local(current: dict[str, Any] | None, candidate: dict[str, Any]) -> LocalCheck:
    """The local rule on two evaluations of the same local test split: a higher mean AP50."""
    keys = list(dict.fromkeys([*(current or {}).get("per_class", {}), *candidate["per_class"]]))
    rows = [ClassRow(k, (current or {}).get("per_class", {}).get(k, {}).get("ap50"),
                     candidate["per_class"].get(k, {}).get("ap50")) for k in keys]
    where = f"local test split ({candidate.get('dataset')} {str(candidate.get('dataset_hash'))[:12]})"
    cand = candidate.get("map50")
    cur = None if current is None else current.get("map50")
    if current is None:
        better, reason = True, f"{where}: no default model to compare with"
    elif cand is not None and (cur is None or cand > cur + 1e-9):
        better, reason = True, f"{where}: mean AP50 rises ({_num(cur)} -> {_num(cand)})"
    else:
        better, reason = False, f"{where}: mean AP50 is not better ({_num(cur)} -> {_num(cand)})"
    return LocalCheck(str(candidate.get("dataset")), str(candidate.get("dataset_hash")), rows, cur, cand,
                      better, reason)


def _num(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}"


def measure_on_test_split(model: InstalledModel, data: Path) -> dict[str, Any]:
    """`patrol evaluate MODEL --data DATA --split test --json`, as a function."""
    from training.evaluate import build_report, collect, open_eval_data
    from vision.taxonomy import Taxonomy

    taxonomy = Taxonomy.default()
    collected = collect(model, open_eval_data(data, "test", model.card, taxonomy), taxonomy)
    if not collected.images:
        raise ModelError(f"no image of {data}'s test split could be read")
    return build_report(collected, model, taxonomy).summary


def format_decision(decision: Decision) -> str:
    """The comparison table and the verdict, for people."""
    def fmt(value: float | None, scale: float = 1.0, signed: bool = False) -> str:
        if value is None:
            return "–"
        return f"{value * scale:+.1f}" if signed else f"{value * scale:.3f}"

    lines = [f"{'class':<18}{'default AP50':>14}{'candidate AP50':>16}{'change (pts)':>14}  ok"]
    for row in decision.rows:
        lines.append(f"{row.key:<18}{fmt(row.current_ap50):>14}{fmt(row.candidate_ap50):>16}"
                     f"{fmt(row.delta, 100, True):>14}  {'yes' if row.ok else 'NO'}")
    map_delta = (None if decision.current_map50 is None or decision.candidate_map50 is None
                 else decision.candidate_map50 - decision.current_map50)
    lines.append(f"{'mean AP50':<18}{fmt(decision.current_map50):>14}{fmt(decision.candidate_map50):>16}"
                 f"{fmt(map_delta, 100, True):>14}")
    if decision.local is not None:
        lines.append(f"local test split: {decision.local.dataset} {decision.local.dataset_hash[:12]}")
        for row in decision.local.rows:
            lines.append(f"{row.key:<18}{fmt(row.current_ap50):>14}{fmt(row.candidate_ap50):>16}"
                         f"{fmt(row.delta, 100, True):>14}")
        better = "better" if decision.local.better else "NO"
        lines.append(f"{'mean AP50':<18}{fmt(decision.local.current_map50):>14}"
                     f"{fmt(decision.local.candidate_map50):>16}  {better}")
    verdict = "PROMOTED" if decision.accepted else "REFUSED"
    lines.append(f"{verdict}: {decision.candidate} "
                 f"{'replaces ' + decision.current if decision.current else 'becomes the default'}"
                 if decision.accepted else f"{verdict}: {decision.candidate} stays a candidate")
    lines += [f"  - {reason}" for reason in decision.reasons]
    return "\n".join(lines)


def _archive_folder(models_dir: Path, current: InstalledModel) -> Path | None:
    """Where the outgoing default is kept; None when an identical copy is already installed."""
    name, version = current.card.name, current.card.version
    for candidate in (models_dir / name, models_dir / f"{name}-{version}"):
        card_path = candidate / "card.json"
        if candidate.name == DEFAULT_MODEL:
            continue
        if not candidate.exists():
            return candidate
        if card_path.is_file() and json.loads(card_path.read_text(encoding="utf-8")).get("sha256") \
                == current.card.sha256:
            return None
    raise ModelError(f"cannot keep the current default: {models_dir / current.card.name} and its "
                     f"-{current.card.version} variant both hold other weights; move one away")


def promote(candidate_ref: str | Path, *, models_dir: Path | None = None, local_data: Path | None = None,
            measure: Measure = measure_on_test_split) -> Decision:
    """Compare the candidate with the current default and install it as the default if accepted.

    `local_data`: a local dataset whose test split the candidate must do better on (`measure`
    runs a model over it; tests give one with a detector of known answers)."""
    root = models_dir or default_models_dir()
    candidate = resolve_model(candidate_ref, root)  # verifies the sha256
    if candidate.folder.resolve() == (root / DEFAULT_MODEL).resolve():
        raise ModelError("the candidate is already the default model")
    candidate_metrics = _test_metrics(candidate, "candidate")
    current: InstalledModel | None = None
    if (root / DEFAULT_MODEL / "card.json").is_file():
        current = resolve_model(DEFAULT_MODEL, root)
    decision = compare(_test_metrics(current, "default") if current else None, candidate_metrics,
                       candidate_name=candidate.card.name,
                       current_name=current.card.name if current else None)
    if local_data is not None:
        current_local = measure(current, local_data) if current else None
        local = compare_local(current_local, measure(candidate, local_data))
        decision = replace(decision, accepted=decision.accepted and local.better,
                           reasons=[*decision.reasons, local.reason], local=local)
    if decision.accepted:
        _install_as_default(root, candidate, current)
    _log(root, decision, candidate, current)
    return decision


def _install_as_default(root: Path, candidate: InstalledModel, current: InstalledModel | None) -> None:
    staging = root / f".{DEFAULT_MODEL}.promoting"
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(candidate.folder, staging)
    resolve_model(staging, root)  # the copy verifies before it replaces anything
    default = root / DEFAULT_MODEL
    if current is not None:
        archive = _archive_folder(root, current)
        if archive is not None:
            default.rename(archive)
        else:
            shutil.rmtree(default)
    staging.rename(default)


def _log(root: Path, decision: Decision, candidate: InstalledModel, current: InstalledModel | None) -> None:
    entry = {
        "time": datetime.now(UTC).isoformat(timespec="seconds"),
        "accepted": decision.accepted,
        "candidate": {"name": candidate.card.name, "version": candidate.card.version,
                      "sha256": candidate.card.sha256},
        "previous_default": None if current is None else {
            "name": current.card.name, "version": current.card.version, "sha256": current.card.sha256},
        "reasons": decision.reasons,
        "rows": [asdict(row) for row in decision.rows],  # the public test split, from the cards
        "public": {"dataset": candidate.card.metrics.get("dataset"),
                   "dataset_hash": candidate.card.metrics.get("dataset_hash"),
                   "current_map50": decision.current_map50, "candidate_map50": decision.candidate_map50},
        "local": None if decision.local is None else asdict(decision.local),
    }
    root.mkdir(parents=True, exist_ok=True)
    with (root / PROMOTIONS_LOG).open("a", encoding="utf-8") as fh:
        fh.write(json.dumps(entry, ensure_ascii=False) + "\n")
