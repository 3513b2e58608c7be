"""The choices of an INT8 quantisation, named once for `QuantizeOptions` (training.quantize) and
for `patrol quantize`, whose options list them: types only, so the CLI can name them without
importing the quantiser (numpy, onnx, the evaluation code: seconds at every `patrol` start).
Named `...Name` where onnxruntime's enum of the same thing is called the same (QuantFormat,
CalibrationMethod), since training.quantize maps these names onto those."""

from __future__ import annotations

from typing import Literal

QuantFormatName = Literal["qdq", "qoperator"]
ActivationName = Literal["uint8", "int8"]
CalibrationName = Literal["minmax", "entropy", "percentile"]
# Learned layers that can be left in float besides the head's tail (training.quantize.FLOAT_GROUPS).
FloatGroup = Literal["stem", "head_outputs", "pyramid_pool"]
