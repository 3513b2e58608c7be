"""Safe loading of official YOLOv5 checkpoints and the transplant into ultralytics' YOLOv5u."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import types
from collections.abc import Iterator
from contextlib import nullcontext as does_not_raise
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from training.transplant import (
    YOLOV5N_SHA256,
    UnsafeCheckpointError,
    check_ultralytics_checkpoint,
    load_yolov5_checkpoint,
    match_tensors,
    pickled_globals,
    save_ultralytics_checkpoint,
    transplant,
    yolov5_layer_types,
    yolov5_state_dict,
)
from vision.errors import ModelError

SHARED_WEIGHTS = Path(__file__).resolve().parents[3] / "shared" / "weights" / "yolov5n.pt"


# -- malicious pickles ------------------------------------------------------------------

class _SystemCall:
    """Pickles as os.system(command): what an attacker would put in a checkpoint."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


class _Eval:
    def __init__(self, code: str) -> None:
        self.code = code

    def __reduce__(self):
        return (eval, (self.code,))


class _Subprocess:
    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self):
        return (subprocess.call, (["sh", "-c", self.command],))


def _write_torch_zip(path: Path, payload: object) -> None:
    torch.save({"model": payload, "epoch": -1}, path)


def _write_raw_pickle(path: Path, payload: object) -> None:
    path.write_bytes(pickle.dumps({"model": payload}, protocol=2))


def _write_raw_pickle_protocol5(path: Path, payload: object) -> None:
    path.write_bytes(pickle.dumps({"model": payload}, protocol=5))


# Protocol 2 writes Python 2 aliases (subprocess -> commands); torch shortens builtins.eval to eval.
@pytest.mark.parametrize("make_payload, expected_globals", [
    (lambda marker: _SystemCall(f"touch {marker}"), ("posix.system",)),
    (lambda marker: _Eval(f"open({str(marker)!r}, 'w')"), ("eval",)),
    (lambda marker: _Subprocess(f"touch {marker}"), ("subprocess.call", "commands.call")),
])
@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
@pytest.mark.parametrize("writer", [_write_torch_zip, _write_raw_pickle, _write_raw_pickle_protocol5])
def test_malicious_pickle_is_refused_without_running(tmp_path, make_payload, expected_globals, writer):
    marker = tmp_path / "payload-ran"
    evil = tmp_path / "evil.pt"
    writer(evil, make_payload(marker))

    with pytest.raises(UnsafeCheckpointError) as caught:
        load_yolov5_checkpoint(evil, expected_sha256=None)

    assert any(name in str(caught.value) for name in expected_globals), str(caught.value)
    assert not marker.exists(), "the payload ran during a refused load"


def test_marker_control_an_unsafe_load_would_run_the_payload(tmp_path):
    """Proves the marker test above can fail: plain torch.load(weights_only=False) runs it."""
    marker = tmp_path / "payload-ran"
    evil = tmp_path / "evil.pt"
    _write_torch_zip(evil, _SystemCall(f"touch {marker}"))
    code = f"import torch; torch.load({str(evil)!r}, weights_only=False)"
    subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, timeout=120)
    assert marker.exists()


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_pickled_globals_follows_memoised_names(tmp_path, protocol):
    """Protocol 4+ names globals by two strings on the stack, often fetched back from the memo."""
    path = tmp_path / "p.pkl"
    path.write_bytes(pickle.dumps({"posix": "system", "calls": [_SystemCall("a"), _SystemCall("b")],
                                   "other": _Subprocess("c")}, protocol=protocol))
    assert {"posix.system"} <= set(pickled_globals(path))
    assert {"subprocess.call", "commands.call"} & set(pickled_globals(path))


@pytest.mark.parametrize("make_payload, expected_global", [
    (lambda: _SystemCall("true"), "posix.system"),
    (lambda: _Eval("1"), "eval"),
    (lambda: _Subprocess("true"), "call"),
    (lambda: {"weights": torch.zeros(1)}, None),
])
def test_ultralytics_checkpoint_check_refuses_planted_globals(tmp_path, make_payload, expected_global):
    path = tmp_path / "w.pt"
    _write_torch_zip(path, make_payload())
    if expected_global is None:
        check_ultralytics_checkpoint(path)  # tensors only: accepted
    else:
        with pytest.raises(UnsafeCheckpointError, match=expected_global):
            check_ultralytics_checkpoint(path)


def test_ultralytics_checkpoint_check_wants_the_zip_format(tmp_path):
    path = tmp_path / "legacy.pt"
    _write_raw_pickle(path, {"weights": [1, 2]})
    with pytest.raises(UnsafeCheckpointError, match="zip-format"):
        check_ultralytics_checkpoint(path)


@pytest.mark.slow
def test_ultralytics_checkpoint_check_accepts_an_ultralytics_checkpoint(tiny_model):
    check_ultralytics_checkpoint(tiny_model.pt_path)


# -- a hermetic stand-in for the yolov5 repository's classes -------------------------------

@pytest.fixture
def yolov5_modules(monkeypatch) -> Iterator[types.SimpleNamespace]:
    """Classes named like the yolov5 repo's (models.common.Conv, models.yolo.Model), importable
    only while the test writes its checkpoint, as if saved by that repository."""
    models = types.ModuleType("models")
    common = types.ModuleType("models.common")
    yolo = types.ModuleType("models.yolo")

    class Conv(nn.Module):
        def __init__(self, c1: int, c2: int, k: int, s: int, p: int) -> None:
            super().__init__()
            self.conv = nn.Conv2d(c1, c2, k, s, p, bias=False)
            self.bn = nn.BatchNorm2d(c2)
            self.act = nn.SiLU()

    class Model(nn.Module):
        def __init__(self, layers: list[nn.Module]) -> None:
            super().__init__()
            self.model = nn.Sequential(*layers)
            self.names = ["person"]

    for cls, module in ((Conv, common), (Model, yolo)):
        cls.__module__ = module.__name__
        cls.__qualname__ = cls.__name__
        setattr(module, cls.__name__, cls)
    for name, module in (("models", models), ("models.common", common), ("models.yolo", yolo)):
        monkeypatch.setitem(sys.modules, name, module)
    yield types.SimpleNamespace(Conv=Conv, Model=Model)


def _fake_checkpoint(path: Path, ns: types.SimpleNamespace) -> nn.Module:
    """Layers 0 and 1 shaped like yolov5n's (3->16 k6 s2, 16->32 k3 s2), layer 2 named unlike it."""
    torch.manual_seed(0)
    model = ns.Model([ns.Conv(3, 16, 6, 2, 2), ns.Conv(16, 32, 3, 2, 1), ns.Conv(32, 7, 1, 1, 0)])
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.uniform_(-1, 1)
            module.running_var.uniform_(0.5, 2)
    torch.save({"epoch": -1, "model": model.half(), "ema": None, "optimizer": None}, path)
    return model


def test_stand_in_loading_reads_every_tensor_as_float32(tmp_path, yolov5_modules, monkeypatch):
    path = tmp_path / "fake_yolov5.pt"
    original = _fake_checkpoint(path, yolov5_modules)
    # The yolov5 repository is not importable when we load, just as in production.
    for name in ("models", "models.common", "models.yolo"):
        monkeypatch.delitem(sys.modules, name)

    checkpoint = load_yolov5_checkpoint(path, expected_sha256=None)
    tensors = yolov5_state_dict(checkpoint)

    expected = original.state_dict()
    assert list(tensors) == list(expected)
    for name, tensor in tensors.items():
        if expected[name].is_floating_point():
            assert tensor.dtype == torch.float32, name
        assert torch.equal(tensor, expected[name].to(tensor.dtype)), name
    assert yolov5_layer_types(checkpoint) == ["Conv", "Conv", "Conv"]
    assert type(checkpoint["model"]).__module__ == "training.transplant"


def test_transplant_copies_matching_tensors_and_reports_the_rest(tmp_path, yolov5_modules, monkeypatch):
    path = tmp_path / "fake_yolov5.pt"
    original = _fake_checkpoint(path, yolov5_modules).float()
    for name in ("models", "models.common", "models.yolo"):
        monkeypatch.delitem(sys.modules, name)

    model, report = transplant(path, ["a", "b"], expected_sha256=None)

    per_layer = 6  # conv.weight + bn weight, bias, running_mean, running_var, num_batches_tracked
    assert report.counts["transplanted"] == 2 * per_layer
    layer_2 = sorted(k for k in original.state_dict() if k.startswith("model.2."))
    assert sorted(report.skipped_source) == layer_2
    # The target's layer 2 is a C3 (cv1, cv2, cv3, m): a plain Conv's names are not there.
    assert set(report.skipped_source.values()) == {"no tensor of that name in the target"}
    target = model.state_dict()
    assert report.counts["untouched_target"] == len(target) - 2 * per_layer
    for name in report.transplanted:
        assert torch.equal(target[name], original.state_dict()[name].to(target[name].dtype)), name
    assert report.layer_types_match is False  # three fake layers are not a YOLOv5 network
    assert model.names == {0: "a", 1: "b"}


@pytest.mark.parametrize("source, target, copied, skipped, untouched", [
    ({"a": (2, 3)}, {"a": (2, 3)}, ["a"], [], []),
    ({"a": (2, 3)}, {"a": (3, 2)}, [], ["a"], ["a"]),
    ({"a": (1,)}, {"b": (1,)}, [], ["a"], ["b"]),
    ({"a": (1,), "b": (4,)}, {"a": (1,), "b": (4,), "c": (2,)}, ["a", "b"], [], ["c"]),
])
def test_match_tensors_by_name_and_shape(source, target, copied, skipped, untouched):
    copy, skip, left = match_tensors({k: torch.zeros(s) for k, s in source.items()},
                                     {k: torch.zeros(s) for k, s in target.items()})
    assert sorted(copy) == copied
    assert sorted(skip) == skipped
    assert sorted(left) == untouched


@pytest.mark.parametrize("expected_sha256, expectation", [
    (None, does_not_raise()),
    ("0" * 64, pytest.raises(ModelError, match="expected sha256 0000")),
])
def test_checksum_is_verified_before_loading(tmp_path, yolov5_modules, monkeypatch, expected_sha256,
                                             expectation):
    path = tmp_path / "fake_yolov5.pt"
    _fake_checkpoint(path, yolov5_modules)
    with expectation:
        load_yolov5_checkpoint(path, expected_sha256=expected_sha256)


def test_yolov5_checkpoint_is_no_ultralytics_checkpoint(tmp_path, yolov5_modules):
    path = tmp_path / "fake_yolov5.pt"
    _fake_checkpoint(path, yolov5_modules)
    with pytest.raises(UnsafeCheckpointError, match="models.yolo.Model.*patrol transplant"):
        check_ultralytics_checkpoint(path)


def test_missing_checkpoint_says_so(tmp_path):
    with pytest.raises(ModelError, match="not found"):
        load_yolov5_checkpoint(tmp_path / "absent.pt")


# -- the real official weights ----------------------------------------------------------

@pytest.mark.slow
@pytest.mark.accuracy
@pytest.mark.skipif(not SHARED_WEIGHTS.is_file(),
                    reason=f"official yolov5n.pt not present at {SHARED_WEIGHTS} (../shared is absent)")
def test_official_yolov5n_transplant_into_yolov5nu(tmp_path):
    checkpoint = load_yolov5_checkpoint(SHARED_WEIGHTS)  # default: verifies the official sha256
    source = yolov5_state_dict(checkpoint)

    model, report = transplant(SHARED_WEIGHTS, ["garbage", "garbage_bin", "overflow"])

    assert report.source_sha256 == YOLOV5N_SHA256
    assert report.layer_types_match is True
    # Everything but the anchor-based head moves: backbone + neck are layers 0-23.
    assert all(name.startswith("model.24.") for name in report.skipped_source)
    assert report.counts["transplanted"] == len(source) - len(report.skipped_source)
    assert report.counts["transplanted"] == 342
    assert all(name.startswith("model.24.") for name in report.untouched_target)
    target = model.state_dict()
    for name in report.transplanted:
        assert torch.equal(target[name], source[name]), name

    out = save_ultralytics_checkpoint(model, report, tmp_path / "yolov5nu-coco.pt")
    from vision.detectors.ultralytics_offline import import_ultralytics
    yolo = import_ultralytics().YOLO(str(out))
    reloaded = yolo.model.state_dict()
    # Saved in fp16 like every ultralytics checkpoint; the source was fp16, so no loss.
    assert all(torch.equal(reloaded[name].float(), source[name]) for name in report.transplanted)
    assert yolo.names == {0: "garbage", 1: "garbage_bin", 2: "overflow"}
    image = np.full((96, 128, 3), 114, dtype=np.uint8)
    results = yolo.predict(image, imgsz=64, device="cpu", verbose=False)
    assert len(results) == 1


# -- the command line -------------------------------------------------------------------

def _cli():
    import typer

    from training.cli_train import register

    app = typer.Typer()
    register(app)
    return app


@pytest.mark.parametrize("extra, exit_code, message", [
    ([], 2, "expected sha256"),                            # not the official file: refused
    (["--any-checksum"], 0, "12 tensors transplanted"),
    (["--any-checksum", "--data", "x.yaml"], 2, "exactly one of"),
])
def test_transplant_command(tmp_path, yolov5_modules, monkeypatch, extra, exit_code, message):
    from typer.testing import CliRunner

    source = tmp_path / "fake_yolov5.pt"
    _fake_checkpoint(source, yolov5_modules)
    for name in ("models", "models.common", "models.yolo"):
        monkeypatch.delitem(sys.modules, name)
    out = tmp_path / "base.pt"
    result = CliRunner().invoke(_cli(), ["transplant", str(source), "--out", str(out), "--labels",
                                         "garbage_pile,garbage_bin", *extra])
    assert result.exit_code == exit_code, result.output
    assert message in result.output
    if exit_code == 0:
        check_ultralytics_checkpoint(out)
        saved = torch.load(out, map_location="cpu", weights_only=False)  # our own file
        assert saved["transplant"]["counts"]["transplanted"] == 12
        assert saved["model"].names == {0: "garbage_pile", 1: "garbage_bin"}
