"""What a photo upload costs the service beyond the core, in one process, one caller at a time.

    python benchmarks/photo_overhead.py [--photos N] [--rounds R] [--json]

`service_load.py` measures the whole server under 8 and 16 clients, but on a shared 2-core box its
CPU per photo moves by +-5 ms between runs (other jobs, the client on the same box), more than
most single changes to the upload path save. This measures the same photos (service_load's
1600x1200 JPEG, each made distinct by a comment segment) through:

- core: `load_image` (decoded for the model, as the service reads a citizen photo) + `Pipeline.detect`;
- service: the upload route's whole worker (`service.api.routes.photos._answer`: the duplicate
  check by content hash, the decode, detection, geotagging, the evidence JPEG, and the recording
  in the ledger: a temp SQLite file), which is where the service adds CPU besides HTTP.

Rounds alternate core and service, `--photos` each, and report the process CPU per photo (the
inference thread included), the service's excess over the core, and core/service (the worker
side of service_load's goal of >= 0.8; the event loop's HTTP and multipart share is not in it).
Every photo is recorded under the same place, so all but the first join one issue.

`--breakdown` then runs `--photos` more uploads through the worker with each stage timed in the
calling thread's CPU (the inference threads are not in it): where the excess goes, stage by
stage, the recording's steps indented under it.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from service_load import photo_jpeg, unique  # noqa: E402  (a sibling script, not a package)

LON, LAT = 117.2, 31.8


def cpu_ms_per_call(call: Callable[[], object], n: int) -> float:
    started = time.process_time()
    for _ in range(n):
        call()
    return (time.process_time() - started) * 1000 / n


WHOLE = "worker thread, whole upload"
# (label, module, attribute): the worker's stages, then the recording's steps (indented), timed
# where _answer and the recording call them. An attribute that a refactor renames fails loudly.
STAGES = (
    ("content hash", "service.api.routes.photos", "content_hash"),
    ("duplicate check", "service.api.routes.photos", "_recorded_before"),
    ("decode (read_image)", "service.runtime", "Runtime.read_image"),
    ("analyze", "service.photo_analyzer", "PipelineAnalyzer.analyze"),
    ("  detect (calling thread)", "vision.pipeline", "Pipeline.detect"),
    ("evidence JPEG (frame_jpeg)", "service.api.routes.photos", "frame_jpeg"),
    ("recording (_record)", "service.api.routes.photos", "_record"),
    ("  ledger lock", "service.ledger.intake", "lock_ledger"),
    ("  recorded before, in the lock", "service.ledger.intake", "recorded_result"),
    ("  source row", "service.ledger.intake", "_source"),
    ("  frame row", "service.ledger.intake", "_frame"),
    ("  observations", "service.ledger.intake", "_place_observation"),
    ("  evidence: frame file", "service.evidence", "EvidenceStore.save_frame"),
    ("  evidence: crops", "service.evidence", "EvidenceStore.save_crop"),
    ("  ORM flushes", "sqlalchemy.orm", "Session.flush"),
)


@contextmanager
def timed_stages(totals: dict[str, float]) -> Iterator[None]:
    """Each STAGES callable wrapped to add its calling thread's CPU seconds to `totals`."""
    import importlib

    restore: list[tuple[Any, str, Any]] = []

    def timer(label: str, call: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.thread_time()
            try:
                return call(*args, **kwargs)
            finally:
                totals[label] += time.thread_time() - started

        return timed

    try:
        for label, module_name, attribute in STAGES:
            owner: Any = importlib.import_module(module_name)
            *path, name = attribute.split(".")
            for part in path:
                owner = getattr(owner, part)
            original = owner.__dict__[name] if isinstance(owner, type) else getattr(owner, name)
            restore.append((owner, name, original))
            setattr(owner, name, timer(label, original))
        yield
    finally:
        for owner, name, original in reversed(restore):
            setattr(owner, name, original)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--photos", type=int, default=40, help="photos per round and side")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--model", default="default")
    parser.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    parser.add_argument("--breakdown", action="store_true", help="time the worker's stages too")
    args = parser.parse_args()

    from service.api.routes.photos import _answer
    from service.auth import Role, create_key
    from service.db.models import ApiKey
    from service.db.session import session_scope
    from service.migrations import runner
    from service.runtime import Runtime
    from service.settings import Settings
    from vision.image_io import load_image

    base = photo_jpeg()
    with tempfile.TemporaryDirectory(prefix="patrol-overhead-") as folder:
        settings = Settings(
            database_url=f"sqlite:///{folder}/ledger.db", data_dir=Path(folder) / "data", model=args.model
        )
        runtime = Runtime.build(settings)
        try:
            runner.upgrade(runtime.engine)
            with session_scope(runtime.session_factory) as session:
                key_id = create_key(session, role=Role.citizen, name="overhead", now=runtime.clock())[0].id
            with runtime.session_factory() as session:
                key = session.get(ApiKey, key_id)
                assert key is not None
                session.expunge(key)
            pipeline = runtime.pipeline()
            sizes = pipeline.decode_sizes()
            counter = [0]

            def core() -> None:
                counter[0] += 1
                pipeline.detect(
                    load_image(unique(base, counter[0]), default_kind="citizen", decode_sizes=sizes)
                )

            def service() -> None:
                counter[0] += 1
                _answer(runtime, key, unique(base, counter[0]), LON, LAT, "")

            for warm in (core, service, core, service):  # model loaded, first issue opened
                warm()
            rounds: dict[str, list[float]] = {"core": [], "service": []}
            for _ in range(args.rounds):
                rounds["core"].append(cpu_ms_per_call(core, args.photos))
                rounds["service"].append(cpu_ms_per_call(service, args.photos))
            stages: dict[str, float] = defaultdict(float)
            if args.breakdown:
                with timed_stages(stages):
                    started = time.thread_time()
                    for _ in range(args.photos):
                        service()
                    stages[WHOLE] = time.thread_time() - started
        finally:
            runtime.close()

    core_ms, service_ms = statistics.median(rounds["core"]), statistics.median(rounds["service"])
    result = {
        "benchmark": "photo_overhead",
        "photos_per_round": args.photos,
        "cpu_ms_per_photo_by_round": {k: [round(v, 2) for v in vs] for k, vs in rounds.items()},
        "core_cpu_ms_per_photo": round(core_ms, 2),
        "service_cpu_ms_per_photo": round(service_ms, 2),
        "service_excess_ms": round(service_ms - core_ms, 2),
        "core_over_service": round(core_ms / service_ms, 3),
    }
    if args.breakdown:
        labels = (WHOLE, *(label for label, _, _ in STAGES))
        result["worker_thread_cpu_ms_per_photo"] = {
            label: round(stages[label] * 1000 / args.photos, 3) for label in labels
        }
    if not args.json:
        for name, values in rounds.items():
            by_round = [round(v, 2) for v in values]
            print(f"{name:8s} CPU ms/photo by round {by_round}  median {statistics.median(values):.2f}")
        excess, ratio = result["service_excess_ms"], result["core_over_service"]
        print(f"service excess {excess} ms/photo; core/service {ratio} (worker side, HTTP not included)")
        for label, ms in result.get("worker_thread_cpu_ms_per_photo", {}).items():
            print(f"  {label:34s} {ms:7.3f} ms/photo (calling thread CPU)")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
