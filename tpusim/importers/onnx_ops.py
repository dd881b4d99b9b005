"""What each ONNX op costs, as tables: element types to formats, ops that are free (layout,
shape-only, quantize/dequantize), vector ops and their ops per element, ops a producer's output
pipeline absorbs (fusable), and which inputs of a GEMM-like op are its operands.
"""
from __future__ import annotations

# ONNX TensorProto element types -> tpusim formats (onnx.TensorProto.DataType numbering).
_DTYPES = {
    1: "fp32",    # FLOAT
    2: "int8",    # UINT8: same multiplier width as int8 (zero point folds into the bias)
    3: "int8",    # INT8
    10: "fp16",   # FLOAT16
    11: "fp32",   # DOUBLE: no fp64 datapath in tpusim; counted as fp32 (assumption)
    16: "bf16",   # BFLOAT16
    17: "fp8_e4m3",  # FLOAT8E4M3FN
    18: "fp8_e4m3",  # FLOAT8E4M3FNUZ
    19: "fp8_e5m2",  # FLOAT8E5M2
    20: "fp8_e5m2",  # FLOAT8E5M2FNUZ
    21: "int4",   # UINT4
    22: "int4",   # INT4
}

# Ops that move or relabel data and cost nothing in our model (a TPU does them with addressing,
# or they are folded into the neighbouring kernel, as Q/DQ pairs are in an int8 kernel).
_FREE_OPS = {
    "Reshape", "Transpose", "Shape", "Size", "Constant", "ConstantOfShape", "Identity", "Flatten",
    "Squeeze", "Unsqueeze", "QuantizeLinear", "DequantizeLinear", "Cast", "CastLike", "Dropout",
    "Slice", "Split", "Expand", "Tile", "Range", "EyeLike", "Optional", "OptionalGetElement",
    "DepthToSpace", "SpaceToDepth",
}
# Free ops through which a tensor keeps its "quantized dtype" and "static weight" identity.
# ... and through the ops whose outputs are some of their inputs' values (a max, a clamp at 0),
# so a QDQ model's int8 values stay int8 (a DQ -> MaxPool -> Conv conv runs int8 as the pool
# did); an average or any arithmetic makes new values, and the next op sees the float dtype.
_PASS_THROUGH = {"Transpose", "Reshape", "Flatten", "Squeeze", "Unsqueeze", "Identity", "Cast",
                 "DequantizeLinear", "QuantizeLinear", "MaxPool", "GlobalMaxPool", "Relu"}

# ONNX op -> (tpusim vector op, element operations per output element or None for VECTOR_OPS').
_VECTOR = {
    "Add": "add", "Sub": "sub", "Mul": "mul", "Div": "div", "Sum": "add", "Mean": "add",
    "Relu": "relu", "LeakyRelu": "relu", "PRelu": "relu", "Elu": "relu", "Selu": "relu",
    "Clip": "clip", "Sigmoid": "sigmoid", "HardSigmoid": "sigmoid", "Tanh": "tanh",
    "Gelu": "gelu", "FastGelu": "gelu", "BiasGelu": "gelu", "QuickGelu": "gelu",
    "HardSwish": "hardswish", "Swish": "swish", "Mish": "swish", "Softplus": "sigmoid",
    "Softmax": "softmax", "LogSoftmax": "softmax",
    "LayerNormalization": "layernorm", "SkipLayerNormalization": "layernorm",
    "InstanceNormalization": "layernorm", "GroupNormalization": "layernorm",
    "SimplifiedLayerNormalization": "rmsnorm", "SkipSimplifiedLayerNormalization": "rmsnorm",
    "RMSNormalization": "rmsnorm", "BatchNormalization": "batchnorm",
    "LRN": "layernorm", "MeanVarianceNormalization": "layernorm",
    "MaxPool": "maxpool", "AveragePool": "avgpool", "LpPool": "avgpool",
    "GlobalAveragePool": "globalpool", "GlobalMaxPool": "globalpool", "GlobalLpPool": "globalpool",
    "ReduceMean": "reduce", "ReduceSum": "reduce", "ReduceMax": "reduce", "ReduceMin": "reduce",
    "ReduceProd": "reduce", "ReduceL2": "reduce", "ReduceL1": "reduce",
    "ReduceSumSquare": "reduce", "ReduceLogSumExp": "reduce", "ArgMax": "reduce",
    "ArgMin": "reduce", "TopK": "reduce", "CumSum": "reduce",
    "Concat": "concat", "Gather": "embedding", "GatherElements": "embedding",
    "GatherND": "embedding", "Pad": "elementwise", "Resize": "elementwise",
    "Upsample": "elementwise", "Where": "elementwise",
    # one element op each (assumption: a compare, select or simple arithmetic per element)
    "Pow": "elementwise", "Sqrt": "elementwise", "Exp": "elementwise", "Log": "elementwise",
    "Reciprocal": "elementwise", "Neg": "elementwise", "Abs": "elementwise",
    "Min": "elementwise", "Max": "elementwise", "Equal": "elementwise", "Less": "elementwise",
    "Greater": "elementwise", "LessOrEqual": "elementwise", "GreaterOrEqual": "elementwise",
    "Not": "elementwise", "And": "elementwise", "Or": "elementwise", "Xor": "elementwise",
    "Floor": "elementwise", "Ceil": "elementwise", "Round": "elementwise", "Sign": "elementwise",
    "Mod": "elementwise", "IsNaN": "elementwise", "IsInf": "elementwise",
    "Sin": "elementwise", "Cos": "elementwise", "Erf": "elementwise",
    "DynamicQuantizeLinear": "quantize",
    # com.microsoft quantized element-wise ops (QOperator form): dequantize, op, requantize
    "QLinearAdd": "add", "QLinearMul": "mul", "QLinearSigmoid": "sigmoid",
    "QLinearLeakyRelu": "relu", "QLinearAveragePool": "avgpool",
    "QLinearGlobalAveragePool": "globalpool", "QLinearConcat": "concat",
    "QLinearSoftmax": "softmax", "QLinearReduceMean": "reduce",
}
# Ops per element where VECTOR_OPS' default does not fit (assumptions, one sentence each):
_OPS_PER_ELEMENT = {
    "Erf": 4,                    # a short polynomial, like tanh
    "Exp": 4, "Log": 4, "Sin": 4, "Cos": 4, "Pow": 2, "Sqrt": 2,  # transcendental approximations
    "DynamicQuantizeLinear": 4,  # min, max, scale and round per element
}
# Vector ops whose elements are the input's (reductions), not the output's.
_INPUT_ELEMENTS = {"GlobalAveragePool", "GlobalMaxPool", "GlobalLpPool", "ReduceMean", "ReduceSum",
                   "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL2", "ReduceL1",
                   "ReduceSumSquare", "ReduceLogSumExp", "ArgMax", "ArgMin", "TopK",
                   "QLinearGlobalAveragePool", "QLinearReduceMean", "DynamicQuantizeLinear"}
# Element-wise ops that may run in a GEMM's output pipeline (SPEC: fused=true).
_FUSABLE = {"Relu", "Clip", "BatchNormalization", "LeakyRelu", "PRelu", "HardSigmoid"}
# GEMM ops and the positions of (activation, weight) inputs.
_GEMM_INPUTS = {
    "Conv": (0, 1), "ConvTranspose": (0, 1), "ConvInteger": (0, 1), "QLinearConv": (0, 3),
    "Gemm": (0, 1), "MatMul": (0, 1), "MatMulInteger": (0, 1), "QLinearMatMul": (0, 3),
    "QGemm": (0, 3), "FusedConv": (0, 1), "FusedGemm": (0, 1), "FusedMatMul": (0, 1),
    "Einsum": (0, 1),
}
_CONV_OPS = {"Conv", "ConvInteger", "QLinearConv", "FusedConv"}
# Shape rules for com.microsoft ops that ONNX shape inference does not know: same shape as input 0.
