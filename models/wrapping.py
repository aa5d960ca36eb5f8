"""An imported ONNX graph embedded, as is, in aeserve's graphs (the contract of core/manifest.py).

The user's nodes and weights are copied unchanged under a `user/` prefix; around them go the
scaling, the casts to and from the graph's element type and the score, written as plain ONNX
operators (opset ≥ 13). The math is the one of docs/artifacts.md, with one difference for BCE:
an imported graph gives probabilities, not logits, so the loss is PyTorch's `BCELoss`, whose
logarithms are clamped at -100.

A graph whose batch axis is fixed to one row runs inside a `Scan` over the rows, so every wrapped
graph takes a batch of any size.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from core.importing import CASTABLE, ImportPlan
from models.scaling import Scaling

PREFIX = "user/"
LOG_FLOOR = -100.0
"""torch.nn.BCELoss clamps each logarithm here, so a reconstruction of exactly 0 or 1 is finite."""

_ELEMENT = {
    "float32": TensorProto.FLOAT,
    "float64": TensorProto.DOUBLE,
    "float16": TensorProto.FLOAT16,
}


@dataclass(frozen=True)
class UserGraph:
    """The user's model under the `user/` prefix, and what the plan says its tensors are."""

    model: onnx.ModelProto
    plan: ImportPlan
    types: dict[str, str]
    """onnxruntime type of the input, the reconstruction and the codes (unprefixed names)."""
    input_dim: int
    latent_dim: int | None

    def name(self, tensor: str) -> str:
        return PREFIX + tensor

    def element(self, tensor: str) -> int:
        return _ELEMENT[CASTABLE[self.types[tensor]]]


def prefixed(model: onnx.ModelProto) -> onnx.ModelProto:
    return onnx.compose.add_prefix(model, PREFIX)


def separable(user: UserGraph) -> bool:
    """Whether the reconstruction depends on the input through the codes only."""
    if user.plan.codes is None:
        return False
    _, reached = _needed(
        user.model.graph, [user.name(user.plan.reconstructions)], {user.name(user.plan.codes)}
    )
    return user.name(user.plan.input) not in reached


def autoencoder_graph(user: UserGraph, scaling: Scaling, loss: str) -> onnx.ModelProto:
    """x [n, d] → (codes [n, k],) reconstructions [n, d], scores [n], feature_errors [n, d]."""
    b = _Builder(user, scaling)
    s = b.scaled("x")
    wanted = [user.plan.reconstructions, *([user.plan.codes] if user.plan.codes else [])]
    produced = b.user_part(user.plan.input, s, wanted)
    s_hat = b.cast_to_float(produced[user.plan.reconstructions])
    outputs = []
    if user.plan.codes is not None:
        b.node("Identity", [b.cast_to_float(produced[user.plan.codes])], ["codes"])
        outputs.append(b.output("codes", user.latent_dim))
    b.node("Mul", [s_hat, b.constant("scale", scaling.scale)], ["unscaled"])
    b.node("Add", ["unscaled", b.constant("offset", scaling.offset)], ["reconstructions"])
    errors = b.bce(s, s_hat) if loss == "bce" else b.squared_error(s, s_hat)
    b.node("Identity", [errors], ["feature_errors"])
    b.node(
        "ReduceSum",
        ["feature_errors", b.constant("features", np.array([1]))],
        ["error_sum"],
        keepdims=0,
    )
    d = np.array(user.input_dim, dtype=np.float32)
    b.node("Div", ["error_sum", b.constant("d", d)], ["scores"])
    outputs += [
        b.output("reconstructions", user.input_dim),
        b.output("scores", None),
        b.output("feature_errors", user.input_dim),
    ]
    return b.model("aeserve.autoencoder", [b.input("x", user.input_dim)], outputs)


def encoder_graph(user: UserGraph, scaling: Scaling) -> onnx.ModelProto:
    """x [n, d] → codes [n, k]."""
    assert user.plan.codes is not None
    b = _Builder(user, scaling)
    produced = b.user_part(user.plan.input, b.scaled("x"), [user.plan.codes])
    b.node("Identity", [b.cast_to_float(produced[user.plan.codes])], ["codes"])
    return b.model(
        "aeserve.encoder", [b.input("x", user.input_dim)], [b.output("codes", user.latent_dim)]
    )


def decoder_graph(user: UserGraph, scaling: Scaling) -> onnx.ModelProto:
    """codes [n, k] → reconstructions [n, d] in raw units."""
    assert user.plan.codes is not None
    b = _Builder(user, scaling)
    codes = b.cast("codes", user.element(user.plan.codes), "codes_cast")
    produced = b.user_part(user.plan.codes, codes, [user.plan.reconstructions])
    s_hat = b.cast_to_float(produced[user.plan.reconstructions])
    b.node("Mul", [s_hat, b.constant("scale", scaling.scale)], ["unscaled"])
    b.node("Add", ["unscaled", b.constant("offset", scaling.offset)], ["reconstructions"])
    return b.model(
        "aeserve.decoder",
        [b.input("codes", user.latent_dim)],
        [b.output("reconstructions", user.input_dim)],
    )


class _Builder:
    """Nodes and constants of one wrapped graph, the user's nodes among them."""

    def __init__(self, user: UserGraph, scaling: Scaling) -> None:
        self.user = user
        self.scaling = scaling
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self._constants: set[str] = set()

    def node(self, op: str, inputs: list[str], outputs: list[str], **attrs: Any) -> str:
        self.nodes.append(
            helper.make_node(op, inputs, outputs, name=f"aeserve/{outputs[0]}", **attrs)
        )
        return outputs[0]

    def constant(self, name: str, value: np.ndarray | np.generic) -> str:
        full = f"aeserve/{name}"
        if full not in self._constants:
            array = np.asarray(value)
            if array.dtype.kind == "f":
                array = array.astype(np.float32)
            self.initializers.append(numpy_helper.from_array(array, full))
            self._constants.add(full)
        return full

    def cast(self, tensor: str, element: int, output: str) -> str:
        return self.node("Cast", [tensor], [output], to=element)

    def cast_to_float(self, tensor: str) -> str:
        return self.cast(tensor, TensorProto.FLOAT, f"{tensor}/float32")

    def scaled(self, x: str) -> str:
        """s = (x - offset) / scale, clipped to [0, 1] when the scaling says so."""
        self.node("Sub", [x, self.constant("offset", self.scaling.offset)], ["centred"])
        s = self.node("Div", ["centred", self.constant("scale", self.scaling.scale)], ["s"])
        if self.scaling.clip:
            zero, one = self.constant("zero", np.float32(0)), self.constant("one", np.float32(1))
            s = self.node("Clip", [s, zero, one], ["s_clipped"])
        return s

    def squared_error(self, s: str, s_hat: str) -> str:
        self.node("Sub", [s, s_hat], ["residual"])
        return self.node("Mul", ["residual", "residual"], ["squared_error"])

    def bce(self, s: str, s_hat: str) -> str:
        """-(s·max(log ŝ, -100) + (1 - s)·max(log(1 - ŝ), -100)), as torch.nn.BCELoss."""
        floor = self.constant("log_floor", np.float32(LOG_FLOOR))
        one = self.constant("bce_one", np.float32(1))
        self.node("Log", [s_hat], ["log_p"])
        self.node("Max", ["log_p", floor], ["log_p_floored"])
        self.node("Sub", [one, s_hat], ["one_minus_p"])
        self.node("Log", ["one_minus_p"], ["log_q"])
        self.node("Max", ["log_q", floor], ["log_q_floored"])
        self.node("Sub", [one, s], ["one_minus_s"])
        self.node("Mul", [s, "log_p_floored"], ["positive_term"])
        self.node("Mul", ["one_minus_s", "log_q_floored"], ["negative_term"])
        self.node("Add", ["positive_term", "negative_term"], ["log_likelihood"])
        return self.node("Neg", ["log_likelihood"], ["bce"])

    def user_part(self, feed: str, value: str, wanted: list[str]) -> dict[str, str]:
        """Run the user's nodes that compute `wanted` from its tensor `feed`, fed `value`
        (float32 [n, ·]); return the user's tensors by their unprefixed names."""
        user = self.user
        graph = user.model.graph
        value = (
            self.cast(value, user.element(feed), "user_input") if feed == user.plan.input else value
        )
        targets = [user.name(t) for t in wanted]
        order, _ = _needed(graph, targets, {user.name(feed)})
        chosen = [graph.node[i] for i in order]
        if not user.plan.fixed_batch:
            self.node("Identity", [value], [user.name(feed)])
            self.nodes.extend(chosen)
            return {t: user.name(t) for t in wanted}
        # One row at a time: Scan slices [n, ·] into rows [·]; the user's graph sees [1, ·].
        axes = self.constant("row_axis", np.array([0]))
        body_nodes = [
            helper.make_node("Unsqueeze", ["row", axes], [user.name(feed)], name="aeserve/row"),
            *chosen,
            *(
                helper.make_node(
                    "Squeeze", [user.name(t), axes], [f"{t}/row"], name=f"aeserve/{t}/row"
                )
                for t in wanted
            ),
        ]
        body = helper.make_graph(
            body_nodes,
            "aeserve.rows",
            [helper.make_tensor_value_info("row", user.element(feed), None)],
            [helper.make_tensor_value_info(f"{t}/row", user.element(t), None) for t in wanted],
        )
        scanned = [f"{t}/rows" for t in wanted]
        self.nodes.append(
            helper.make_node(
                "Scan", [value], scanned, name="aeserve/scan", body=body, num_scan_inputs=1
            )
        )
        return dict(zip(wanted, scanned, strict=True))

    def input(self, name: str, width: int | None) -> onnx.ValueInfoProto:
        return helper.make_tensor_value_info(name, TensorProto.FLOAT, ["n", width])

    def output(self, name: str, width: int | None) -> onnx.ValueInfoProto:
        shape = ["n"] if name == "scores" else ["n", width]
        return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)

    def model(
        self,
        name: str,
        inputs: list[onnx.ValueInfoProto],
        outputs: list[onnx.ValueInfoProto],
    ) -> onnx.ModelProto:
        source = self.user.model
        graph = helper.make_graph(
            self.nodes,
            name,
            inputs,
            outputs,
            initializer=[*source.graph.initializer, *self.initializers],
            sparse_initializer=list(source.graph.sparse_initializer),
        )
        model = helper.make_model(
            graph,
            opset_imports=list(source.opset_import),
            ir_version=max(source.ir_version, 7),  # opset 13 needs IR 7
            functions=list(source.functions),
            producer_name="aeserve",
        )
        # Weights of nodes another graph needs (the decoder's, in the encoder) are dropped.
        used = {name for node in _all_nodes(graph) for name in node.input}
        kept = [init for init in graph.initializer if init.name in used]
        del model.graph.initializer[:]
        model.graph.initializer.extend(kept)
        onnx.checker.check_model(model)
        return model


def _all_nodes(graph: onnx.GraphProto) -> list[onnx.NodeProto]:
    nodes = []
    for node in graph.node:
        nodes.append(node)
        for attribute in node.attribute:
            for sub in [attribute.g] if attribute.HasField("g") else list(attribute.graphs):
                nodes.extend(_all_nodes(sub))
    return nodes


def _node_inputs(node: onnx.NodeProto) -> set[str]:
    """A node's inputs, those its subgraphs take from the enclosing scope included."""
    names = {name for name in node.input if name}
    for attribute in node.attribute:
        for sub in [attribute.g] if attribute.HasField("g") else list(attribute.graphs):
            names |= {name for inner in _all_nodes(sub) for name in inner.input if name}
    return names


def _needed(
    graph: onnx.GraphProto, targets: list[str], stop: set[str]
) -> tuple[list[int], set[str]]:
    """The indices of the nodes that compute `targets` (in graph order) without going past the
    tensors in `stop`, and every tensor name they read."""
    producer = {name: i for i, node in enumerate(graph.node) for name in node.output}
    chosen: set[int] = set()
    reached: set[str] = set()
    pending = [t for t in targets if t not in stop]
    while pending:
        name = pending.pop()
        if name in reached:
            continue
        reached.add(name)
        index = producer.get(name)
        if index is None or index in chosen:
            continue
        chosen.add(index)
        pending.extend(n for n in _node_inputs(graph.node[index]) if n not in stop)
    return sorted(chosen), reached
