"""Simulated review loop (issue #10, "Measure"): does active learning teach a new class faster than random?

A labelled set stands in for the reviewers: an image "reviewed" is an image whose labels join
the training data. Starting from a model that has never seen `roadside_clutter`, each round
50 more images of ../shared/datasets/bogota-aerial-vendors (street vendors' stalls and umbrellas
on sidewalks, from the air) are reviewed, chosen by the review queue's ranking
(service/review/ranking.py: uncertainty at the class's operating threshold, class balance,
near-duplicates skipped by dHash; the class being taught counted alone, by diversity while none
of it is reviewed) or at random, and the last round's model is fine-tuned on the round's images
and a few of earlier rounds', with training/finetune.py's controls against forgetting (public
training images replayed as two thirds of every round's list, balanced by class, a fresh sample
per round by seed and round; backbone frozen, AdamW at a fixed rate, no warmup; the public labels'
rows of the head's last class convolution held; the reviewed images, labelled for the new class
only, teach nothing about the public labels: training/partial_labels.py) for a few epochs on the CPU, through
training/train.py (ultralytics offline; one torch thread, see torch_threads). Each round's model
is served branched (training/branches.py, `--branch on`, the default): the base's own layers score
the public labels and the fine-tuned layers after the frozen backbone the new class; the
fine-tuned model alone is scored on the public test too (`public_max_drop_taught_alone`), and
`served_onnx_s_ratio` is what the branch costs to serve (the last served model and the base
exported to ONNX, run side by side on 32 public test images; `served_public_s_ratio` the same
for the PyTorch prediction calls of the public AP50). After each round:
the class's AP50 on that set's fixed test split (by content hash, `patrol datasets build`), the
public test split's AP50 for the public labels, and the round's wall time. public_max_drop is
the largest fall of a public label's AP50 below the base's, over every round of both arms.

The starting model (--base shipped, the default, as the issue asks): today's shipped model
itself, models/default/model.pt (rebuilt from its ONNX file, training/rebuild_pt.py), which has
never seen the new class; its head grows by `roadside_clutter` in the first round
(training/grow_head.py: the learned rows kept) and the replay draws from its whole public
training split. --base stand-in is the base used before model.pt shipped: made the way the
default model was: ../shared/weights/yolov5n.pt through
training/transplant.py into YOLOv5u with the shipped labels plus `roadside_clutter`, then a
short fine-tune on the public training split (`patrol datasets build datasets/patrol-public.yaml`).
With the stand-in, --quick (sized for 15 minutes on the shared 2-core box,
where a training image costs 0.2 s idle, about a second when loaded) everything is small:
320 px, 5 epochs a round, 2 rounds, a base trained on 192 public images for 6 epochs (64 images
for 3 epochs left public AP50 at 0.02-0.05, which any replay only raised: no test of forgetting),
so its public figures are still low and the public drop is measured against that start (on the whole
public test split: a 32-image subset held 3 smoke boxes, and its smoke AP50 swung by 0.4 between
runs); reviewers draw from 100 of the vendor training images. The last line with --json is one
JSON object. --seed N changes the base's and the rounds' training, the random arm's draws and the
replay samples (the sets stay): public_max_drop moves by several points between seeds.

    python benchmarks/review_loop.py --quick --json [--seed 1]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import yaml

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from service.review.ranking import BoxEvidence, Candidate, Policy, Reviewed, choose  # noqa: E402
from training.branches import compose_checkpoints  # noqa: E402
from training.datasets.build import build_dataset  # noqa: E402
from training.datasets.labels import read_label_file  # noqa: E402
from training.datasets.spec import DatasetSpec, LabelSpec, SourceSpec  # noqa: E402
from training.datasets.yolo import label_path_for, list_images  # noqa: E402
from training.finetune import Recipe, Replay, chained, hold_class_rows, keep_batch_norm_statistics  # noqa: E402
from training.metrics import CocoEvaluation, ImageBoxes  # noqa: E402
from training.partial_labels import ignore_unlabelled_classes  # noqa: E402
from training.pseudo_labels import PseudoLabels, write_pseudo_labelled  # noqa: E402
from training.train import TrainOptions, train  # noqa: E402
from training.transplant import save_ultralytics_checkpoint, transplant  # noqa: E402
from vision.detections import Detections  # noqa: E402
from vision.detectors.base import UltralyticsConfig  # noqa: E402
from vision.detectors.ultralytics_torch import UltralyticsDetector  # noqa: E402
from vision.image_hash import dhash64  # noqa: E402
from vision.taxonomy import Taxonomy  # noqa: E402

NEW_CLASS = "roadside_clutter"
SHARED = REPO.parent / "shared"
PUBLIC_SPEC = REPO / "datasets" / "patrol-public.yaml"
VENDORS = "bogota-aerial-vendors"
YOLOV5N = SHARED / "weights" / "yolov5n.pt"
SCORE_FLOOR = 0.001  # predictions kept for AP (a curve needs the low scores too)
# The detectors' default conf (UltralyticsConfig): the boxes a candidate in the ledger carries. The
# ranking sees only these; at SCORE_FLOOR an image holds hundreds of boxes and a sum over them
# ranks by clutter.
CANDIDATE_CONF = UltralyticsConfig.model_fields["conf"].default
ARMS = ("active", "random")


@dataclass(frozen=True)
class Loop:
    """One simulated loop: the images, the labels (class id = position) and the schedule."""

    work: Path
    base: Path  # weights that have never seen `new_label`
    labels: tuple[str, ...]
    new_label: str
    public_labels: tuple[str, ...]  # scored on public_test; the drop is measured on these
    pool: tuple[Path, ...]  # unreviewed images; their label files are the reviewers' answers
    test: tuple[Path, ...]  # the new class's fixed test split
    public_test: tuple[Path, ...]
    replay: Replay  # public training images in every fine-tune, against forgetting
    val: tuple[Path, ...]  # ultralytics' per-epoch validation (not reported)
    thresholds: dict[str, float]  # operating threshold per label, for the ranking's uncertainty
    rounds: int = 3
    per_round: int = 50
    reviewed_replay: int = 16  # images of earlier rounds trained on again in each round
    epochs: int = 3
    imgsz: int = 320
    batch: int = 8
    recipe: Recipe = Recipe()  # each round's fine-tune (the base is trained without it)
    # The base's boxes of the public labels added to the reviewed images' labels (None: not).
    pseudo: PseudoLabels | None = None
    # The reviewed images teach only the new label: their loss ignores the other labels' outputs.
    ignore_unlabelled: bool = False
    keep_bn_stats: bool = False  # batch norms' running statistics kept as the base has them
    hold_rows: bool = True  # the public labels' rows of the head's last class convolution held
    base_freeze: int | None = 10
    # Each round's model served as the base and the taught branch side by side (training/branches.py):
    # the public labels scored by the base's own layers; False: the fine-tuned model alone.
    branch: bool = True
    seed: int = 0
    threads: int = 1  # torch threads; see one_thread()


# -- data ---------------------------------------------------------------------------------


def read_image(path: Path) -> np.ndarray:
    pixels = cv2.imread(str(path))
    if pixels is None:
        raise OSError(f"cannot read {path}")
    return pixels


def ground_truth(image: Path, labels: Sequence[str]) -> tuple[ImageBoxes, tuple[int, int]]:
    """Pixel boxes of an image's label file, in label names, and its (width, height)."""
    h, w = read_image(image).shape[:2]
    boxes, issues = read_label_file(label_path_for(image), valid_class_ids=range(len(labels)))
    if issues:
        raise ValueError(f"{image}: {issues[0]}")
    xyxy = np.array([[b.x1 * w, b.y1 * h, b.x2 * w, b.y2 * h] for b in boxes]).reshape(-1, 4)
    return ImageBoxes(xyxy, tuple(labels[b.class_id] for b in boxes)), (w, h)


def box_counts(images: Sequence[Path], labels: Sequence[str]) -> dict[str, int]:
    counts = dict.fromkeys(labels, 0)
    for image in images:
        for box in read_label_file(label_path_for(image))[0]:
            counts[labels[box.class_id]] += 1
    return counts


def write_data_yaml(folder: Path, train_images: Sequence[Path], val_images: Sequence[Path],
                    labels: Sequence[str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "train.txt").write_text("".join(f"{p.resolve()}\n" for p in train_images), encoding="utf-8")
    (folder / "val.txt").write_text("".join(f"{p.resolve()}\n" for p in val_images), encoding="utf-8")
    data = {"path": str(folder.resolve()), "train": "train.txt", "val": "val.txt",
            "names": dict(enumerate(labels))}
    path = folder / "data.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


# -- model --------------------------------------------------------------------------------


def predict(weights: Path, images: Sequence[Path], imgsz: int, chunk: int = 16) -> list[Detections]:
    config = UltralyticsConfig(model=weights, imgsz=imgsz, conf=SCORE_FLOOR)
    detector = UltralyticsDetector.from_config(config)
    out: list[Detections] = []
    for start in range(0, len(images), chunk):
        out += detector.predict_batch([read_image(p) for p in images[start:start + chunk]])
    return out


def ap50(weights: Path, images: Sequence[Path], loop: Loop, classes: Sequence[str]
         ) -> dict[str, float | None]:
    """AP50 per class in `classes` over `images` (None: no ground truth of that class there)."""
    truth = [ground_truth(p, loop.labels) for p in images]
    preds = [ImageBoxes(d.xyxy.astype(np.float64), tuple(str(c) for c in d.data["class_name"]),
                        d.confidence.astype(np.float64)) for d in predict(weights, images, loop.imgsz)]
    evaluation = CocoEvaluation([t for t, _ in truth], preds, [s for _, s in truth], list(loop.labels))
    return {c: evaluation.class_ap(c).ap50 for c in classes}


def torch_threads(n: int) -> dict[str, Callable[[Any], None]]:
    """Callbacks that set torch's threads once ultralytics has set its own.

    On this 2-core machine shared by several jobs (load 10-18), a forward and backward pass of
    YOLOv5n at 320 px took 28-30 s with 2 threads and 7-8 s with 1 (the threads wait on each other
    for cores they cannot get); training.train sets all cores, so the benchmark sets them back.
    """
    import torch

    torch.set_num_threads(n)
    return {"on_pretrain_routine_end": lambda _trainer: torch.set_num_threads(n)}


def fine_tune(loop: Loop, base: Path, train_images: Sequence[Path], name: str,
              recipe: Recipe | None = None, epochs: int | None = None, reviewed: Sequence[Path] = ()) -> Path:
    """`recipe`: a round's fine-tune; None: the base's training (ultralytics' optimiser).
    `reviewed`: the images of `train_images` labelled for the new label only."""
    data = write_data_yaml(loop.work / "data" / name, train_images, loop.val, loop.labels)
    options = TrainOptions(data=data, base=str(base), name=name, project=loop.work / "runs",
                           epochs=epochs or loop.epochs, imgsz=loop.imgsz, batch=loop.batch,
                           freeze=loop.base_freeze, seed=loop.seed, workers=0)
    callbacks = torch_threads(loop.threads)
    if recipe is not None:
        # Every round teaches the new label: its rows learn at the recipe's taught_rate.
        options = recipe.apply(options).model_copy(update={"taught_labels": (loop.new_label,)})
        new_id = loop.labels.index(loop.new_label)
        if loop.hold_rows:
            # The public labels' own outputs learn nothing from images that only teach the new class.
            callbacks = chained(callbacks, hold_class_rows(i for i in range(len(loop.labels)) if i != new_id))
        if loop.ignore_unlabelled and reviewed:
            callbacks = chained(callbacks, ignore_unlabelled_classes(reviewed, [new_id]))
        if loop.keep_bn_stats:
            callbacks = chained(callbacks, keep_batch_norm_statistics())
    return train(options, ["benchmarks/review_loop.py", name], callbacks).last


# -- choosing what is reviewed ------------------------------------------------------------


def rank_pool(weights: Path, pool: Sequence[Path], loop: Loop, reviewed: Sequence[Path],
              hashes: dict[Path, int], n: int) -> list[Path]:
    """The review queue's choice of `n` images from `pool`, given the model and what was reviewed."""
    detections = predict(weights, pool, loop.imgsz)
    candidates = [
        Candidate(key=path, phash=hashes[path],
                  boxes=tuple(BoxEvidence(str(c), float(s))
                              for c, s in zip(d.data["class_name"], d.confidence, strict=True)
                              if s >= CANDIDATE_CONF))
        for path, d in zip(pool, detections, strict=True)]
    # Boxes reviewers have labelled per class; the new class is the one being taught.
    counts = box_counts(reviewed, loop.labels)
    policy = Policy(budget={"default": n}, thresholds=loop.thresholds, proposal_share=0.0,
                    focus=frozenset({loop.new_label}))
    chosen = choose(candidates, policy, Reviewed(counts, tuple(hashes[p] for p in reviewed)))
    keys = [c.key for c in chosen]
    if len(keys) < n:  # every other image a near-duplicate: fill in ranking order regardless
        rest = [p for p in pool if p not in set(keys)]
        keys += rest[:n - len(keys)]
    return [Path(str(k)) for k in keys]


Chooser = Callable[[Path, list[Path], list[Path], int], list[Path]]


def run_loop(loop: Loop, log: Callable[[str], None] = lambda _: None) -> dict[str, Any]:
    """Both arms from the same base; per round the AP50 of the new class and of the public ones."""
    torch_threads(loop.threads)
    hashes = {p: dhash64(p) for p in loop.pool}
    started = time.perf_counter()
    base_public = ap50(loop.base, loop.public_test, loop, loop.public_labels)
    base_public_s = time.perf_counter() - started  # against the served models' (the branch's cost)
    base_new = ap50(loop.base, loop.test, loop, [loop.new_label])[loop.new_label]
    log(f"base: {loop.new_label} AP50 {base_new}, public {base_public}")
    rng, rng_replay = random.Random(loop.seed), random.Random(loop.seed + 1)

    def random_choice(_weights: Path, pool: list[Path], _reviewed: list[Path], n: int) -> list[Path]:
        return rng.sample(pool, min(n, len(pool)))

    def active_choice(weights: Path, pool: list[Path], reviewed: list[Path], n: int) -> list[Path]:
        return rank_pool(weights, pool, loop, reviewed, hashes, n)

    choosers: dict[str, Chooser] = {"active": active_choice, "random": random_choice}
    # The base's answers on every image a reviewer may label, for the pseudo-labels of each round.
    base_found = dict(zip(loop.pool, predict(loop.base, loop.pool, loop.imgsz), strict=True)) \
        if loop.pseudo else {}
    curves: dict[str, list[float]] = {arm: [] for arm in ARMS}
    public: dict[str, list[dict[str, float | None]]] = {arm: [] for arm in ARMS}
    round_s: dict[str, list[float]] = {arm: [] for arm in ARMS}
    public_s: list[float] = []
    # With the branch: the fine-tuned model alone on the public labels too, what the branch spares
    alone: dict[str, list[dict[str, float | None]]] = {arm: [] for arm in ARMS}
    for arm in ARMS:
        # `weights` is what the round serves (and ranks with); `taught` what the next round tunes
        weights, taught_weights, reviewed = loop.base, loop.base, list[Path]()
        for k in range(1, loop.rounds + 1):
            started = time.perf_counter()
            pool = [p for p in loop.pool if p not in set(reviewed)]
            new = choosers[arm](weights, pool, reviewed, loop.per_round)
            # From the last round's weights: this round's images, a replay of earlier rounds' and
            # of public ones (against forgetting), never the whole history: rounds cost the same.
            # Both arms replay the same public images in a round (seed and round number).
            earlier = rng_replay.sample(reviewed, min(loop.reviewed_replay, len(reviewed)))
            reviewed += new
            taught_on = [*new, *earlier]
            if loop.pseudo:
                taught_on = write_pseudo_labelled(taught_on, [base_found[p] for p in taught_on],
                                                  loop.work / "pseudo" / f"{arm}-r{k}", loop.pseudo)
            listed = [*taught_on, *loop.replay.sample(len(taught_on), k)]
            taught_weights = fine_tune(loop, taught_weights, listed, f"{arm}-r{k}", recipe=loop.recipe,
                                       reviewed=taught_on)
            weights = compose_checkpoints(loop.base, taught_weights, loop.work / "served" / f"{arm}-r{k}.pt",
                                          shared=loop.recipe.freeze) if loop.branch else taught_weights
            taught = ap50(weights, loop.test, loop, [loop.new_label])[loop.new_label]
            public_started = time.perf_counter()
            public[arm].append(ap50(weights, loop.public_test, loop, loop.public_labels))
            public_s.append(time.perf_counter() - public_started)
            if loop.branch:
                alone[arm].append(ap50(taught_weights, loop.public_test, loop, loop.public_labels))
            curves[arm].append(round(taught or 0.0, 4))
            round_s[arm].append(round(time.perf_counter() - started, 1))
            log(f"{arm} round {k}: {len(reviewed)} reviewed, {loop.new_label} AP50 {curves[arm][-1]}, "
                f"public {public[arm][-1]}, {round_s[arm][-1]} s")
    # Every round's model is one a promotion could weigh: the drop is the worst of them all.
    def max_drop(rows: dict[str, list[dict[str, float | None]]]) -> float:
        drops = [(base_public[c] or 0.0) - (row[c] or 0.0) for arm in ARMS for row in rows[arm]
                 for c in loop.public_labels if base_public[c] is not None]
        return round(max(drops, default=0.0), 4)

    branch = {"public_ap50_taught_alone": {arm: [{c: _r(v) for c, v in row.items()} for row in alone[arm]]
                                           for arm in ARMS},
              "public_max_drop_taught_alone": max_drop(alone),
              # wall time of the public test's predictions, served model over base (same images)
              "served_public_s_ratio": round(statistics.median(public_s) / base_public_s, 3),
              **serving_cost(loop, weights)} \
        if loop.branch else {}
    return {
        "rounds": loop.rounds, "per_round": loop.per_round, "class": loop.new_label,
        "base_ap50": round(base_new or 0.0, 4),
        "active_ap50": curves["active"], "random_ap50": curves["random"],
        "public_base_ap50": {c: _r(v) for c, v in base_public.items()},
        "public_ap50": {arm: [{c: _r(v) for c, v in row.items()} for row in public[arm]] for arm in ARMS},
        "public_max_drop": max_drop(public),
        **branch,
        "round_s": [round(a + b, 1) for a, b in zip(round_s["active"], round_s["random"], strict=True)],
        "round_s_by_arm": round_s,
        "settings": {"epochs": loop.epochs, "imgsz": loop.imgsz, "recipe": loop.recipe.model_dump(),
                     "batch": loop.batch, "threads": loop.threads, "pool": len(loop.pool),
                     "test_images": len(loop.test), "public_test_images": len(loop.public_test),
                     "replay_pool": len(loop.replay.images), "replay_share": loop.replay.share,
                     "reviewed_replay": loop.reviewed_replay, "hold_rows": loop.hold_rows,
                     "branch": loop.branch,
                     "ignore_unlabelled": loop.ignore_unlabelled, "keep_bn_stats": loop.keep_bn_stats,
                     "pseudo": None if loop.pseudo is None else loop.pseudo.model_dump()},
    }


def serving_cost(loop: Loop, served: Path, images: int = 32, passes: int = 4) -> dict[str, float]:
    """The base and the last served model exported to ONNX the same way and run side by side by the
    serving backend on the same public test images, alternating: seconds per image and the ratio."""
    import onnx

    from training.export import export_onnx
    from vision.detectors.engines import open_export
    from vision.detectors.yolo_export import parse_labels

    frames = [read_image(p) for p in loop.public_test[:images]]
    folder = loop.work / "serving-cost"
    detectors = {}
    for name, weights in (("base", loop.base), ("served", served)):
        exported = export_onnx(weights, folder / f"{name}.onnx", loop.imgsz)
        # the labels the exported file carries (ultralytics' `names` metadata), not a second load of the .pt
        meta = {p.key: p.value for p in onnx.load(str(exported), load_external_data=False).metadata_props}
        detectors[name] = open_export("onnxruntime", exported, imgsz=loop.imgsz, conf=CANDIDATE_CONF,
                                      labels=parse_labels(meta["names"]), end2end=False)
        detectors[name].predict_batch(frames[:2])  # warm-up
    times: dict[str, list[float]] = {name: [] for name in detectors}
    for turn in range(passes):
        for name in (("base", "served") if turn % 2 == 0 else ("served", "base")):
            started = time.perf_counter()
            detectors[name].predict_batch(frames)
            times[name].append((time.perf_counter() - started) / len(frames))
    base_s, served_s = statistics.median(times["base"]), statistics.median(times["served"])
    return {"base_onnx_s_per_image": round(base_s, 5), "served_onnx_s_per_image": round(served_s, 5),
            "served_onnx_s_ratio": round(served_s / base_s, 3)}


def _r(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


# -- the real sets ------------------------------------------------------------------------


def vendors_spec(public: DatasetSpec) -> DatasetSpec:
    """The vendors set alone, with the public labels plus the new class, split by content hash."""
    source = SourceSpec(name="bogota-vendors", path=VENDORS, folders=("train", "valid", "test"),
                        classes={0: "vendedor_ambulante"}, class_map={"vendedor_ambulante": NEW_CLASS},
                        split="hash", licence="CC BY 4.0",
                        attribution="vendedores_ambulantes_pesquisa v8 (Ingenieco/pesquisaMMQ), CC BY 4.0")
    return DatasetSpec(name="review-loop-vendors", labels=public.labels, sources=(source,),
                       fractions=public.fractions)


def with_new_label(public: DatasetSpec) -> DatasetSpec:
    new = LabelSpec(name=NEW_CLASS, taxonomy=NEW_CLASS, description="Stalls and umbrellas on sidewalks.")
    return public.model_copy(update={"labels": (*public.labels, new)})


def transplanted(work: Path, labels: Sequence[str]) -> Path:
    """yolov5n's COCO backbone and neck in YOLOv5u with `labels` (the default model's start)."""
    model, report = transplant(YOLOV5N, list(labels))
    return save_ultralytics_checkpoint(model, report, work / "transplanted.pt")


@dataclass(frozen=True)
class Sizes:
    base_images: int | None  # public training images for the base (None: all)
    base_epochs: int
    pool: int | None  # vendor training images reviewers may be shown (None: all)
    public_test: int | None  # public test images evaluated (None: all)
    rounds: int
    epochs: int
    imgsz: int


QUICK = Sizes(base_images=192, base_epochs=6, pool=100, public_test=None, rounds=2, epochs=5, imgsz=320)
FULL = Sizes(base_images=None, base_epochs=20, pool=None, public_test=None, rounds=5, epochs=10, imgsz=640)


def _first(items: list[Path], n: int | None, rng: random.Random | None = None) -> list[Path]:
    """`n` of `items`: drawn by `rng`, else every k-th (each source's share, as names begin with it)."""
    if n is None or n >= len(items):
        return items
    return rng.sample(items, n) if rng is not None else items[::len(items) // n][:n]


def shipped_base() -> Path:
    """The serving model's own trainable weights (models/default/model.pt, hash-verified)."""
    from vision.model_registry import resolve_model

    return resolve_model(REPO / "models" / "default").pytorch_weights()


def real_loop(work: Path, sizes: Sizes, log: Callable[[str], None], seed: int = 0,
              base: str = "shipped", keep_bn_stats: bool = False, branch: bool = True) -> Loop:
    """The vendors set and the public sets built by `patrol datasets build`, and the base model.
    `seed`: the base's and every round's training, the random arm's draws and the replay samples
    (the images drawn for the base, the pool and the sets stay the same for every seed).
    `base`: "shipped", the serving model (its head grows by the new class in the first round,
    training/grow_head.py), replaying its whole public training split; "stand-in", a short
    fine-tune of transplanted COCO weights on `sizes.base_images` public images."""
    taxonomy = Taxonomy.default()
    public = with_new_label(DatasetSpec.from_yaml(PUBLIC_SPEC))
    data_root = SHARED / "datasets"
    started = time.perf_counter()
    build_dataset(public, work / "public", data_root, taxonomy=taxonomy, check_near_duplicates=False)
    build_dataset(vendors_spec(public), work / "vendors", data_root, taxonomy=taxonomy,
                  check_near_duplicates=False)
    log(f"datasets built in {time.perf_counter() - started:.0f} s")
    pick = random.Random(0)
    public_train = _first(list_images(work / "public" / "images" / "train"),
                          sizes.base_images if base == "stand-in" else None, pick)
    vendor_val = list_images(work / "vendors" / "images" / "val")
    # Thresholds: the shipped card's for the labels it has, the taxonomy's for the new class.
    card = json.loads((REPO / "models" / "default" / "card.json").read_text(encoding="utf-8"))
    thresholds = {**{label: taxonomy.get(key).threshold for label, key in public.label_map.items() if key},
                  **card["thresholds"]}
    loop = Loop(
        work=work, base=transplanted(work, public.label_names), labels=public.label_names,
        new_label=NEW_CLASS,
        public_labels=tuple(label for label, key in public.label_map.items() if key and key != NEW_CLASS),
        pool=tuple(_first(list_images(work / "vendors" / "images" / "train"), sizes.pool, pick)),
        test=tuple(list_images(work / "vendors" / "images" / "test")),
        public_test=tuple(_first(list_images(work / "public" / "images" / "test"), sizes.public_test)),
        # Replay draws from what the base learned from, as a fine-tune of the shipped model would
        # from the public training split: no public image the base has not seen.
        # Balanced by class: 24 of the 192 hold fire, and a uniform sample let it fade.
        replay=Replay.by_class(public_train, share=2 / 3, seed=seed), val=tuple(vendor_val[:8]),
        ignore_unlabelled=True, keep_bn_stats=keep_bn_stats, branch=branch, seed=seed, thresholds=thresholds,
        rounds=sizes.rounds, epochs=sizes.epochs,
        imgsz=sizes.imgsz)
    if base == "shipped":
        return replace(loop, base=shipped_base())
    started = time.perf_counter()
    # The stand-in for the shipped model: public images only, so it has never seen the new class.
    trained = fine_tune(loop, loop.base, public_train, "base", epochs=sizes.base_epochs)
    log(f"base model (public images only) in {time.perf_counter() - started:.0f} s")
    return replace(loop, base=trained)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="small CPU settings (about 15 minutes)")
    parser.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    parser.add_argument("--work", type=Path, default=None, help="working folder (default: a temporary one)")
    parser.add_argument("--seed", type=int, default=0, help="training and draws (real_loop)")
    parser.add_argument("--bn-stats", choices=("keep", "learn"), default="learn",
                        help="keep: every batch norm keeps the base's running statistics while "
                             "fine-tuning (training/finetune.keep_batch_norm_statistics); learn: "
                             "ultralytics' default (updated except in frozen layers)")
    parser.add_argument("--base", choices=("shipped", "stand-in"), default="shipped",
                        help="shipped: the serving model (models/default/model.pt); stand-in: "
                             "transplanted COCO weights briefly trained on public images")
    parser.add_argument("--branch", choices=("on", "off"), default="on",
                        help="on: each round serves the base and the taught branch side by side "
                             "(training/branches.py); off: the fine-tuned model alone")
    args = parser.parse_args(argv)

    def log(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    with tempfile.TemporaryDirectory(prefix="review-loop-") as tmp:
        work = args.work or Path(tmp)
        started = time.perf_counter()
        loop = real_loop(work, QUICK if args.quick else FULL, log, seed=args.seed, base=args.base,
                         keep_bn_stats=args.bn_stats == "keep", branch=args.branch == "on")
        result = run_loop(loop, log)
        result["seed"] = args.seed
        result["wall_s"] = round(time.perf_counter() - started, 1)
        result["quick"] = args.quick
        result["base"] = args.base
        result["note"] = (
            "base: the serving model's own weights (models/default/model.pt), its head grown by "
            "roadside_clutter in the first round" if args.base == "shipped" else
            "base: the shipped model's labels + roadside_clutter, yolov5n.pt transplanted "
            "(training/transplant.py) and fine-tuned on public images only")
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key}: {value}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
