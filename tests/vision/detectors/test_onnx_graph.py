"""The DFL Softmax rewrite: same outputs, Softmax on the last axis, anything else left alone."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from vision.detectors.onnx_graph import rewrite_dfl_softmax, session_model

DEFAULT_MODEL = Path(__file__).resolve().parents[3] / "models" / "default" / "model.onnx"


def dfl_head(weights: np.ndarray, perm: tuple[int, ...] = (0, 2, 1, 3)) -> onnx.ModelProto:
    """ultralytics' DFL as exported: (B, 64, A) -> (B, 4, 16, A) -> Transpose -> Softmax(1) -> 1x1
    Conv -> (B, 4, A)."""
    nodes = [
        helper.make_node("Reshape", ["x", "split"], ["bins"]),
        helper.make_node("Transpose", ["bins"], ["moved"], perm=list(perm)),
        helper.make_node("Softmax", ["moved"], ["p"], axis=1),
        helper.make_node(
            "Conv",
            ["p", "w"],
            ["e"],
            kernel_shape=[1, 1],
            strides=[1, 1],
            pads=[0, 0, 0, 0],
            dilations=[1, 1],
            group=1,
            name="dfl_conv",
        ),
        helper.make_node("Reshape", ["e", "sides"], ["y"]),
    ]
    inits = [
        numpy_helper.from_array(np.array([0, 4, 16, -1], np.int64), "split"),
        numpy_helper.from_array(np.array([0, 4, -1], np.int64), "sides"),
        numpy_helper.from_array(weights.astype(np.float32).reshape(1, 16, 1, 1), "w"),
    ]
    graph = helper.make_graph(
        nodes,
        "dfl",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 64, "anchors"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4, "anchors"])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def run(model: onnx.ModelProto | bytes | str, x: np.ndarray) -> np.ndarray:
    data = model.SerializeToString() if isinstance(model, onnx.ModelProto) else model
    out: np.ndarray = ort.InferenceSession(data, providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    return out


def test_rewrite_keeps_the_expectation_and_moves_the_softmax_to_the_last_axis() -> None:
    x = np.random.default_rng(0).normal(0, 3, (2, 64, 37)).astype(np.float32)
    model = dfl_head(np.arange(16))
    before = run(model, x)
    assert rewrite_dfl_softmax(model)
    onnx.checker.check_model(model)
    ops = {n.op_type: n for n in model.graph.node}
    assert "Conv" not in ops and "MatMul" in ops
    assert [a.i for a in ops["Softmax"].attribute if a.name == "axis"] == [-1]
    np.testing.assert_allclose(run(model, x), before, rtol=1e-6, atol=1e-5)
    # The expectation by hand: softmax over each side's 16 bins, times 0..15.
    logits = x.reshape(2, 4, 16, 37)
    p = np.exp(logits - logits.max(axis=2, keepdims=True))
    p /= p.sum(axis=2, keepdims=True)
    np.testing.assert_allclose(before, (p * np.arange(16)[:, None]).sum(axis=2), rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize(
    "weights, perm",
    [
        (np.arange(16)[::-1], (0, 2, 1, 3)),  # not the bins 0..15: some other 1x1 conv
        (np.arange(16), (0, 1, 2, 3)),  # the softmax is not over the moved bins axis
    ],
)
def test_other_graphs_are_left_as_they_are(weights: np.ndarray, perm: tuple[int, ...]) -> None:
    model = dfl_head(weights, perm)
    before = model.SerializeToString()
    assert not rewrite_dfl_softmax(model)
    assert model.SerializeToString() == before


def test_the_default_model_gives_the_same_outputs_rewritten() -> None:
    rewritten = session_model(DEFAULT_MODEL)
    assert isinstance(rewritten, bytes), "the shipped model has a DFL head to rewrite"
    x = np.random.default_rng(1).random((2, 3, 320, 256), dtype=np.float32)
    as_exported = ort.InferenceSession(str(DEFAULT_MODEL), providers=["CPUExecutionProvider"])
    faster = ort.InferenceSession(rewritten, providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(
        faster.run(None, {"images": x})[0], as_exported.run(None, {"images": x})[0], rtol=1e-5, atol=1e-3
    )


def test_a_model_without_the_pattern_is_opened_from_its_path(tmp_path: Path) -> None:
    path = tmp_path / "other.onnx"
    onnx.save(dfl_head(np.ones(16)), path)
    assert session_model(path) == str(path)
