"""End to end on a tiny synthetic dataset: train one epoch on CPU (offline, under a network
guard), record the run, export to ONNX, check it against PyTorch, install it, evaluate it;
and resume an interrupted run."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import types
from pathlib import Path

import numpy as np
import pytest

from tests.training.synthetic import make_synthetic_dataset
from training.run_record import RunRecord, hash_dataset_files, portable_command

pytestmark = pytest.mark.slow

PROJECT_ROOT = Path(__file__).resolve().parents[2]
# Taxonomy keys as labels, so the installed model's card maps them and evaluation scores them.
LABELS = ("garbage_pile", "roadside_clutter", "blue_steel_roof")

# Loaded by the child Python through PYTHONPATH: every attempt to resolve a name or to open a
# socket to anything but loopback or a unix socket is written to a log and refused.
NETWORK_GUARD = textwrap.dedent('''
    import os
    import socket

    _LOG = os.environ["PATROL_NET_GUARD_LOG"]
    _LOCAL_HOSTS = {None, "", "localhost", "127.0.0.1", "::1", "0.0.0.0"}

    def _record(what):
        with open(_LOG, "a", encoding="utf-8") as fh:
            fh.write(what + "\\n")

    def _is_local(sock, address):
        if sock.family == socket.AF_UNIX:
            return True
        host = address[0] if isinstance(address, tuple) else address
        return host in _LOCAL_HOSTS or str(host).startswith("127.")

    def _guard(original):
        def guarded(self, address, *args):
            if not _is_local(self, address):
                _record(f"{original.__name__} {address!r}")
                raise OSError("network access blocked by the test guard")
            return original(self, address, *args)
        return guarded

    _getaddrinfo = socket.getaddrinfo

    def getaddrinfo(host, *args, **kwargs):
        if host not in _LOCAL_HOSTS and not str(host).startswith("127."):
            _record(f"getaddrinfo {host!r}")
            raise socket.gaierror("name resolution blocked by the test guard")
        return _getaddrinfo(host, *args, **kwargs)

    socket.socket.connect = _guard(socket.socket.connect)
    socket.socket.connect_ex = _guard(socket.socket.connect_ex)
    socket.socket.sendto = _guard(socket.socket.sendto)
    socket.getaddrinfo = getaddrinfo
''')


def _guarded_env(tmp: Path) -> tuple[dict[str, str], Path]:
    guard_dir = tmp / "guard"
    guard_dir.mkdir(parents=True, exist_ok=True)
    (guard_dir / "sitecustomize.py").write_text(NETWORK_GUARD, encoding="utf-8")
    log = tmp / "network-attempts.log"
    env = {**os.environ,
           "PYTHONPATH": os.pathsep.join([str(guard_dir), str(PROJECT_ROOT)]),
           "PATROL_NET_GUARD_LOG": str(log),
           # A fresh ultralytics config dir: no fonts or settings left by earlier runs.
           "YOLO_CONFIG_DIR": str(tmp / "ultralytics-config"),
           "XDG_CACHE_HOME": str(tmp / "cache")}
    env.pop("ULTRALYTICS_API_KEY", None)
    return env, log


def _strace_works() -> bool:
    # Native code (onnxruntime's telemetry, libc's resolver) bypasses Python's socket module;
    # only a syscall trace sees it. Containers often forbid ptrace: then the guard alone runs.
    if shutil.which("strace") is None:
        return False
    probe = subprocess.run(["strace", "-f", "-o", os.devnull, "true"], capture_output=True, timeout=60)
    return probe.returncode == 0


STRACE = _strace_works()


def _run_patrol(args: list[str], env: dict[str, str], trace: Path) -> subprocess.CompletedProcess:
    """`patrol ARGS` in a child process, under the Python guard and, where possible, strace."""
    command = [sys.executable, "-m", "patrol_cli", *args]
    if STRACE:
        command = ["strace", "-f", "-e", "trace=connect,sendto,sendmsg", "-o", str(trace), *command]
    return subprocess.run(command, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=600)


def _inet_syscalls(trace: Path) -> list[str]:
    if not trace.exists():
        return []
    return [line for line in trace.read_text(errors="replace").splitlines()
            if "AF_INET" in line]  # AF_INET and AF_INET6; unix sockets (nscd, uuidd) are local


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory) -> types.SimpleNamespace:
    """`patrol train` then `patrol export`, each a child process under the network guard:
    1 epoch at 64 px on CPU, exported into a temporary models folder."""
    tmp = tmp_path_factory.mktemp("trained_run")
    dataset = make_synthetic_dataset(tmp / "shapes", n_train=24, n_val=8, n_test=8, seed=0, labels=LABELS)
    env, log = _guarded_env(tmp)
    args = ["train", "--data", str(dataset.data_yaml), "--base", "yolov5nu.yaml", "--name", "tiny",
            "--project", str(tmp / "runs"), "--epochs", "1", "--imgsz", "64", "--batch", "8",
            "--workers", "0", "--seed", "3", "--device", "cpu"]
    proc = _run_patrol(args, env, tmp / "strace-train.log")
    run_dir = tmp / "runs" / "tiny"
    export_args = ["export", str(run_dir / "weights" / "best.pt"), "--name", "tiny",
                   "--models-dir", str(tmp / "models"), "--version", "t1"]
    export = _run_patrol(export_args, env, tmp / "strace-export.log") if proc.returncode == 0 else None
    return types.SimpleNamespace(tmp=tmp, dataset=dataset, args=args, proc=proc, export=export, log=log,
                                 run_dir=run_dir, models_dir=tmp / "models")


def _check_trained(run: types.SimpleNamespace, exported: bool = False) -> None:
    if run.proc.returncode != 0:
        pytest.fail(f"patrol train failed ({run.proc.returncode}):\n{run.proc.stderr[-3000:]}")
    if exported and run.export.returncode != 0:
        pytest.fail(f"patrol export failed ({run.export.returncode}):\n{run.export.stderr[-3000:]}")


def test_training_and_export_make_no_network_attempt(trained_run):
    _check_trained(trained_run, exported=True)
    attempts = trained_run.log.read_text() if trained_run.log.exists() else ""
    assert attempts == "", f"training or export tried to reach the network:\n{attempts}"
    config_dir = trained_run.tmp / "ultralytics-config"
    assert any(p.name == "Arial.ttf" for p in config_dir.rglob("*.ttf"))


@pytest.mark.skipif(not STRACE, reason="strace is missing or ptrace is not permitted here")
@pytest.mark.parametrize("step", ["train", "export"])
def test_no_network_syscall_in_a_syscall_trace(trained_run, step):
    _check_trained(trained_run, exported=True)
    trace = trained_run.tmp / f"strace-{step}.log"
    assert trace.exists() and "connect(" in trace.read_text(errors="replace")  # the trace recorded
    assert _inet_syscalls(trace) == []


def test_network_guard_catches_ultralytics_font_download(tmp_path):
    """The control: without our fonts, ultralytics' check_font goes to the network, and the
    guard sees it. So an empty log above means nothing tried."""
    env, log = _guarded_env(tmp_path)
    code = ("from vision.detectors.ultralytics_offline import import_ultralytics; import_ultralytics(); "
            "from ultralytics.utils.checks import check_font; print(check_font('Arial.ttf'))")
    proc = subprocess.run([sys.executable, "-c", code], cwd=PROJECT_ROOT, env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert log.exists() and "getaddrinfo" in log.read_text()


def test_run_record_says_what_ran(trained_run):
    _check_trained(trained_run)
    record = RunRecord.read(trained_run.run_dir)
    assert record.status == "finished" and record.error is None
    # The record (copied into model cards) names no absolute path of this machine.
    assert record.command[1:] == portable_command(trained_run.args, PROJECT_ROOT)
    assert record.command_line.endswith(" ".join(record.command[1:]))
    assert record.run_id == "tiny" and (trained_run.run_dir / record.cwd).resolve() == PROJECT_ROOT.resolve()
    assert (trained_run.run_dir / record.data.data_yaml).resolve() == trained_run.dataset.data_yaml.resolve()
    assert record.train_args["project"] == ".."
    assert record.seed == 3 and record.train_args["seed"] == 3
    assert record.train_args["imgsz"] == 64 and record.train_args["plots"] is False
    assert record.train_args["amp"] is False and record.offline["amp"] is False
    assert sorted(record.offline["fonts_placed"]) == ["Arial.Unicode.ttf", "Arial.ttf"]
    assert record.base == {"kind": "architecture", "path": "yolov5nu.yaml", "sha256": None}
    assert record.data.hash_source == "files"
    assert record.data.hash == hash_dataset_files(trained_run.dataset.data_yaml, list(LABELS))
    assert record.data.labels == list(LABELS)
    assert record.hardware.cpu_cores == os.cpu_count() and record.hardware.gpu is None
    assert record.hardware.device == "cpu" and record.hardware.ultralytics
    if shutil.which("git"):
        # Others may commit while the test runs: the recorded commit must be HEAD or before it.
        ancestor = subprocess.run(["git", "merge-base", "--is-ancestor", record.code.commit, "HEAD"],
                                  cwd=PROJECT_ROOT, capture_output=True)
        assert len(record.code.commit) == 40 and ancestor.returncode == 0
    assert record.metrics["epochs_completed"] == 1
    assert record.wall_seconds is not None and record.wall_seconds > 0
    assert (trained_run.run_dir / "weights" / "best.pt").is_file()


def test_export_install_and_evaluate(trained_run):
    _check_trained(trained_run, exported=True)
    from training.evaluate import build_report, collect, open_eval_data
    from vision.detectors import load_detector
    from vision.detectors.base import OnnxRuntimeConfig
    from vision.model_registry import resolve_model
    from vision.taxonomy import Taxonomy

    printed = json.loads(trained_run.export.stdout)
    parity = printed["parity"]
    assert parity["passed"] is True and parity["failures"] == []
    assert parity["boxes_compared"] > 0
    assert parity["images"] == 8  # the val split
    installed = resolve_model("tiny", trained_run.models_dir)  # verifies the sha256
    card = installed.card
    assert printed["sha256"] == card.sha256
    assert card.labels == list(LABELS) and card.input_size == 64 and card.architecture == "yolov5nu"
    assert card.label_map == {label: label for label in LABELS}
    assert card.training["run"]["data"]["hash"] == RunRecord.read(trained_run.run_dir).data.hash
    assert card.training["export"]["parity"] == parity
    assert card.training["run_id"] == "tiny" and card.training["weights"] == "weights/best.pt"
    # The checkpoint ships beside the ONNX file, verified by its hash, for later fine-tunes.
    assert card.pytorch is not None and card.pytorch.sha256 == card.training["weights_sha256"]
    assert installed.pytorch_weights() == installed.folder / "model.pt"
    assert not [value for value in _strings(card.model_dump()) if value.startswith("/")]
    assert (installed.folder / "card.md").read_text().startswith("# Model tiny")

    detector = load_detector(OnnxRuntimeConfig(model=installed.weights, conf=0.001))
    assert detector.max_batch > 1  # dynamic batch
    image = np.zeros((90, 70, 3), dtype=np.uint8)
    detections = detector.predict_batch([image, image])
    assert len(detections) == 2
    assert all(d.metadata["resolution_wh"] == (70, 90) for d in detections)

    taxonomy = Taxonomy.default()
    data = open_eval_data(trained_run.dataset.data_yaml, "test", card, taxonomy)
    report = build_report(collect(installed, data, taxonomy), installed, taxonomy)
    summary = report.summary
    assert summary["split"] == "test" and summary["n_images"] == 8
    assert summary["model_sha256"] == card.sha256
    drawn = {key for image in trained_run.dataset.split("test") for key in
             (LABELS[box.class_id] for box in image.boxes)}
    assert set(summary["per_class"]) >= drawn
    json.dumps(summary)  # what `patrol evaluate --json` would print


def _strings(value):
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict | list):
        for item in value.values() if isinstance(value, dict) else value:
            yield from _strings(item)


class _StopAfterFirstEpoch(Exception):
    """Stands for a killed process: raised once the first epoch's weights are saved."""


def test_resume_continues_an_interrupted_run(tmp_path):
    from training.train import TrainOptions, resume, train

    dataset = make_synthetic_dataset(tmp_path / "shapes", n_train=16, n_val=4, seed=2)

    def stop(trainer):
        if trainer.epoch == 0:
            raise _StopAfterFirstEpoch

    options = TrainOptions(data=dataset.data_yaml, base="yolov5nu.yaml", name="r", project=tmp_path / "runs",
                           epochs=2, imgsz=64, batch=8, workers=0)
    with pytest.raises(_StopAfterFirstEpoch):
        train(options, ["patrol", "train"], callbacks={"on_fit_epoch_end": stop})
    run_dir = tmp_path / "runs" / "r"
    interrupted = RunRecord.read(run_dir)
    assert interrupted.status == "failed" and "_StopAfterFirstEpoch" in (interrupted.error or "")
    assert (run_dir / "weights" / "last.pt").is_file()

    result = resume(run_dir, ["patrol", "train", "--resume"])

    record = result.record
    assert record.status == "finished" and len(record.resumed_at) == 1
    assert record.command == ["patrol", "train"]  # the command that started the run
    assert record.metrics["epochs_completed"] == 2
    assert record.wall_seconds > interrupted.wall_seconds
    rows = (run_dir / "results.csv").read_text().strip().splitlines()
    assert len(rows) == 1 + 2  # header + one row per epoch, the first not trained twice
