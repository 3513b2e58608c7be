"""Small hand-built ONNX graphs with known outputs, and edits of exported ones.

`constant_head_model` emits the same raw head output for every image in the batch (plus
0 x the input, so the graph depends on it and keeps its batch size). That gives the ONNX
backend known boxes in network pixels, whose source pixels a test can work out by hand.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def constant_head_model(
    path: Path,
    head: np.ndarray,
    *,
    metadata: Mapping[str, str],
    input_shape: tuple[int | str, int | str, int | str, int | str] = ("batch", 3, "height", "width"),
) -> Path:
    """An ONNX model whose output is `head` (shape (1, ...)) broadcast over the batch."""
    head = np.asarray(head, np.float32)
    rank = head.ndim
    nodes = [
        helper.make_node("ReduceMean", ["images"], ["mean"], keepdims=1),          # (B, 1, 1, 1)
        helper.make_node("Reshape", ["mean", "to_rank"], ["mean_r"]),             # (B, 1, ..)
        helper.make_node("Mul", ["mean_r", "zero"], ["zeros"]),
        helper.make_node("Add", ["zeros", "head"], ["output0"]),                  # (B, *head[1:])
    ]
    initialisers = [
        numpy_helper.from_array(np.array([-1] + [1] * (rank - 1), np.int64), "to_rank"),
        numpy_helper.from_array(np.zeros((), np.float32), "zero"),
        numpy_helper.from_array(head, "head"),
    ]
    graph = helper.make_graph(
        nodes, "constant_head",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, list(input_shape))],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, ["batch", *head.shape[1:]])],
        initialisers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    for key, value in metadata.items():
        model.metadata_props.append(onnx.StringStringEntryProto(key=key, value=value))
    onnx.checker.check_model(model)
    onnx.save(model, path)
    return path


def with_static_input(
    source: Path, target: Path, *, batch: int | None = None, size: int | None = None,
) -> Path:
    """A copy of an exported model with a fixed batch and/or a fixed square input size."""
    model = onnx.load(source)
    dims = model.graph.input[0].type.tensor_type.shape.dim
    if batch is not None:
        dims[0].dim_value = batch
    if size is not None:
        dims[2].dim_value = size
        dims[3].dim_value = size
    if batch is not None:
        for entry in model.metadata_props:
            if entry.key == "batch":
                entry.value = str(batch)
    onnx.save(model, target)
    return target


def anchor_free_head(boxes_cxcywh_scores: list[tuple[float, ...]], anchors: int = 16) -> np.ndarray:
    """(1, 4 + nc, anchors): the given rows first, the rest with zero scores."""
    rows = np.asarray(boxes_cxcywh_scores, np.float32)
    head = np.zeros((anchors, rows.shape[1]), np.float32)
    head[:, 2:4] = 1.0
    head[:len(rows)] = rows
    return head.T[None].copy()
