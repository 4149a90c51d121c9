"""A converted model exports (ONNX, both exporters; torch.jit.trace) and compiles (torch.compile).

Tracing and exporting record the plain MaxPool -> MaxUnpool -> Conv ops (every exporter knows them);
torch.compile goes through the memory-lean autograd function. Kept small: export and compile are slow.
"""

import pytest
import torch
from torch import nn

from poolskip import PoolSkip, convert


def _converted_model() -> nn.Module:
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.Conv2d(8, 8, 3, padding=1, stride=2),
        nn.ReLU(),
        nn.Conv2d(8, 8, 1),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(8, 5),
    )
    convert(model, pool_size=2)
    convert(model, include="5", pool_size=(3, 2))  # a per-dim pool size too
    assert sum(isinstance(m, PoolSkip) for m in model.modules()) == 3
    return model.eval()


# odd sizes: ragged edge blocks in every Pool Skip
INPUTS = [torch.randn(2, 3, 9, 11, generator=torch.Generator().manual_seed(1)), torch.randn(3, 3, 13, 7)]


def _onnx_outputs(path_or_bytes, x):
    ort = pytest.importorskip("onnxruntime")
    session = ort.InferenceSession(path_or_bytes, providers=["CPUExecutionProvider"])
    return torch.from_numpy(session.run(None, {session.get_inputs()[0].name: x.numpy()})[0])


def test_onnx_export_torchscript_exporter_dynamic_shapes(tmp_path):
    pytest.importorskip("onnx")
    model = _converted_model()
    path = tmp_path / "model.onnx"
    axes = {"x": {0: "n", 2: "h", 3: "w"}}
    torch.onnx.export(model, (INPUTS[0],), str(path), input_names=["x"], dynamic_axes=axes, dynamo=False)
    for x in INPUTS:  # the second size was not seen at export time
        with torch.no_grad():
            torch.testing.assert_close(_onnx_outputs(str(path), x), model(x), atol=1e-5, rtol=1e-5)


def test_onnx_export_default_exporter(tmp_path):
    pytest.importorskip("onnxscript")
    model = _converted_model()
    path = tmp_path / "model.onnx"
    torch.onnx.export(model, (INPUTS[0],), str(path), input_names=["x"])
    with torch.no_grad():
        torch.testing.assert_close(_onnx_outputs(str(path), INPUTS[0]), model(INPUTS[0]), atol=1e-5, rtol=1e-5)


def test_jit_trace_follows_new_sizes():
    model = _converted_model()
    traced = torch.jit.trace(model, INPUTS[0])
    for x in INPUTS:
        torch.testing.assert_close(traced(x), model(x))


def test_torch_compile_training_and_inference():
    torch._dynamo.reset()
    model = PoolSkip(4, (2, 3))
    compiled = torch.compile(model, backend="aot_eager", fullgraph=True)
    y = torch.randn(2, 4, 7, 8, requires_grad=True)
    out = compiled(y)
    grads = torch.autograd.grad(out.square().sum(), [y, *model.parameters()])
    want = model(y)
    want_grads = torch.autograd.grad(want.square().sum(), [y, *model.parameters()])
    torch.testing.assert_close(out, want)
    for got, exp in zip(grads, want_grads):
        torch.testing.assert_close(got, exp)
    with torch.no_grad():
        torch.testing.assert_close(compiled(y), want)
