"""Autoencoders trained "elsewhere", built the way users build them, for the import tests: PyTorch
modules exported with `torch.onnx.export` or `torch.jit.save`, and hand-made ONNX graphs (with
onnx.helper) for the ones aeserve must refuse. Nothing here uses aeserve's training code."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from onnx import TensorProto, helper, numpy_helper
from torch import nn


class PlainAutoencoder(nn.Module):
    """An MLP autoencoder as a user writes one: forward gives (reconstruction, codes)."""

    def __init__(self, d: int, k: int, activation: type[nn.Module] = nn.Tanh) -> None:
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(d, 8), activation(), nn.Linear(8, k))
        self.decoder = nn.Sequential(nn.Linear(k, 8), activation(), nn.Linear(8, d))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        codes = self.encoder(x)
        return self.decoder(codes), codes


class SigmoidAutoencoder(nn.Module):
    """Another layout: GELU, a sigmoid output for data in [0, 1], the reconstruction only."""

    def __init__(self, d: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(d, 3), nn.GELU(), nn.Linear(3, 5), nn.GELU(), nn.Linear(5, d), nn.Sigmoid()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.net(x)
        return out


class SkipAutoencoder(PlainAutoencoder):
    """Codes plus a skip connection from the input: no decoder can be cut out of it."""

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        codes = self.encoder(x)
        return self.decoder(codes) + 0.1 * x, codes


def train_briefly(module: nn.Module, rows: np.ndarray, steps: int = 200) -> nn.Module:
    """A few Adam steps on the reconstruction: a real (if small) trained model."""
    torch.manual_seed(0)
    optimizer = torch.optim.Adam(module.parameters(), lr=0.01)
    x = torch.from_numpy(rows)
    for _ in range(steps):
        optimizer.zero_grad()
        out = module(x)
        recon = out[0] if isinstance(out, tuple) else out
        loss = ((recon - x) ** 2).mean()
        loss.backward()  # type: ignore[no-untyped-call]
        optimizer.step()
    return module.eval()


def export(
    module: nn.Module,
    path: Path,
    d: int,
    outputs: list[str],
    *,
    input_name: str = "input",
    fixed_batch: bool = False,
) -> Path:
    """torch.onnx.export as its documentation shows it, a dynamic batch axis unless fixed."""
    axes = None if fixed_batch else {name: {0: "batch"} for name in [input_name, *outputs]}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module,
            (torch.zeros(1 if fixed_batch else 2, d),),
            str(path),
            dynamo=False,
            input_names=[input_name],
            output_names=outputs,
            dynamic_axes=axes,
        )
    return path


def script(module: nn.Module, path: Path) -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.jit.save(torch.jit.script(module), str(path))
    return path


def run(path: Path, x: np.ndarray) -> dict[str, np.ndarray]:
    """The foreign model's own outputs, by onnxruntime, row by row for a fixed batch of one."""
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (tensor,) = session.get_inputs()
    names = [o.name for o in session.get_outputs()]
    if tensor.shape[0] == 1:
        parts = [session.run(names, {tensor.name: x[i : i + 1]}) for i in range(len(x))]
        return {n: np.concatenate([p[j] for p in parts]) for j, n in enumerate(names)}
    return dict(zip(names, session.run(names, {tensor.name: x}), strict=True))


def crafted(
    path: Path,
    inputs: list[tuple[str, int, list[int | str]]],
    outputs: list[tuple[str, int, list[int | str]]],
    nodes: list[onnx.NodeProto],
    weights: dict[str, np.ndarray] | None = None,
    opset: int = 17,
) -> Path:
    """A hand-made ONNX graph: (name, element type, shape) for each input and output."""
    graph = helper.make_graph(
        nodes,
        "crafted",
        [helper.make_tensor_value_info(n, t, s) for n, t, s in inputs],
        [helper.make_tensor_value_info(n, t, s) for n, t, s in outputs],
        initializer=[numpy_helper.from_array(v, k) for k, v in (weights or {}).items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    onnx.save_model(model, str(path))
    return path


def linear(path: Path, d: int, d_out: int | None = None, batch: int | str = "n") -> Path:
    """x [batch, d] @ W [d, d_out] → y: an autoencoder when d_out == d."""
    d_out = d if d_out is None else d_out
    weight = np.random.default_rng(1).normal(size=(d, d_out)).astype(np.float32) * 0.3
    return crafted(
        path,
        [("x", TensorProto.FLOAT, [batch, d])],
        [("y", TensorProto.FLOAT, [batch, d_out])],
        [helper.make_node("MatMul", ["x", "W"], ["y"])],
        {"W": weight},
    )


def external_weights(path: Path, location: str, d: int = 6) -> Path:
    """x @ W with W "stored" in another file, named by the graph: a way to make a reader open
    a file of the server's."""
    weight = TensorProto(name="W", data_type=TensorProto.FLOAT, dims=[d, d])
    weight.data_location = TensorProto.EXTERNAL
    for key, value in {"location": location, "offset": "0", "length": str(4 * d * d)}.items():
        entry = weight.external_data.add()
        entry.key, entry.value = key, value
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["y"])],
        "external",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", d])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", d])],
        initializer=[weight],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    path.write_bytes(model.SerializeToString())
    return path
