"""`python -m lpstream export-onnx`: export the LivePortrait networks to ONNX graphs.

Graphs written to `--out` (one file each, fp32, opset ≥ 20 because W uses 5-D GridSample):

- `appearance_feature_extractor.onnx`: `image` B×3×H×W → `feature_3d` B×32×16×H/4×W/4
- `motion_extractor.onnx`: `image` B×3×256×256 → `pitch`, `yaw`, `roll` B×66, `t` B×3,
  `exp` B×63, `scale` B×1, `kp` B×63
- `warp_decode.onnx` (W then G): `feature_3d` B×32×16×h×w, `kp_driving`, `kp_source` B×21×3
  → `image` B×3×8h×8w. Exported from the fused rewrite (`networks/fused.py`: same function up
  to float rounding, ~15% fewer FLOPs; see bench/liveportrait_cpu.py for its CPU speed);
  `warp_decode_plain` (opt-in with `--only`) is the official structure op for op.
- `stitching.onnx`, `retarget_eye.onnx`, `retarget_lip.onnx`: `x` B×n → `delta` B×m

Spatial axes of F and W+G are dynamic (the networks are fully convolutional; W's hourglass
needs h, w ≥ 32 and multiples of 32), which lets tests run them small.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import onnx
import torch
from torch import nn

from lpstream.errors import LpstreamError
from lpstream.liveportrait.networks.fused import FusedWarpDecode, PlainWarpDecode
from lpstream.liveportrait.onnx_runtime import NOMINAL_SHAPE_PREFIX

OPSET = 20
"""First opset whose GridSample accepts 5-D inputs (W warps a 3-D feature volume)."""

MOTION_OUTPUTS = ("pitch", "yaw", "roll", "t", "exp", "scale", "kp")


class MotionExtractorGraph(nn.Module):
    """M with its output dict flattened into a fixed tuple order (ONNX outputs are positional)."""

    def __init__(self, motion_extractor: nn.Module) -> None:
        super().__init__()
        self.motion_extractor = motion_extractor

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, ...]:
        result = self.motion_extractor(image)
        return tuple(result[name] for name in MOTION_OUTPUTS)


def _fused_warp_decode(networks: object) -> nn.Module:
    return FusedWarpDecode(networks.warping_module, networks.spade_generator)


@dataclass(frozen=True)
class GraphSpec:
    """How to export one graph."""

    name: str
    """File stem under the output folder."""
    build: Callable[[object], nn.Module]
    """Networks object (attributes as `load_networks` returns) → module to trace."""
    inputs: dict[str, tuple[int, ...]]
    """Input name → nominal (real-use) shape, also used for tracing."""
    outputs: tuple[str, ...]
    dynamic_axes: dict[str, dict[int, str]]


def _batch_axes(names: Sequence[str]) -> dict[str, dict[int, str]]:
    return {name: {0: "batch"} for name in names}


def _mlp_spec(name: str, attribute: str, width: int) -> GraphSpec:
    return GraphSpec(
        name=name,
        build=lambda networks: getattr(networks, attribute),
        inputs={"x": (1, width)},
        outputs=("delta",),
        dynamic_axes=_batch_axes(("x", "delta")),
    )


def _warp_decode_spec(name: str, build: Callable[[object], nn.Module]) -> GraphSpec:
    return GraphSpec(
        name=name,
        build=build,
        inputs={
            "feature_3d": (1, 32, 16, 64, 64),
            "kp_driving": (1, 21, 3),
            "kp_source": (1, 21, 3),
        },
        outputs=("image",),
        dynamic_axes={
            "feature_3d": {0: "batch", 3: "feature_height", 4: "feature_width"},
            "kp_driving": {0: "batch"},
            "kp_source": {0: "batch"},
            "image": {0: "batch", 2: "height", 3: "width"},
        },
    )


GRAPHS: dict[str, GraphSpec] = {
    spec.name: spec
    for spec in (
        GraphSpec(
            name="appearance_feature_extractor",
            build=lambda networks: networks.appearance_feature_extractor,
            inputs={"image": (1, 3, 256, 256)},
            outputs=("feature_3d",),
            dynamic_axes={
                "image": {0: "batch", 2: "height", 3: "width"},
                "feature_3d": {0: "batch", 3: "feature_height", 4: "feature_width"},
            },
        ),
        GraphSpec(
            name="motion_extractor",
            build=lambda networks: MotionExtractorGraph(networks.motion_extractor),
            inputs={"image": (1, 3, 256, 256)},
            outputs=MOTION_OUTPUTS,
            dynamic_axes=_batch_axes(("image", *MOTION_OUTPUTS)),
        ),
        _warp_decode_spec("warp_decode", _fused_warp_decode),
        _warp_decode_spec(
            "warp_decode_plain",
            lambda networks: PlainWarpDecode(networks.warping_module, networks.spade_generator),
        ),
        _mlp_spec("stitching", "stitching", 126),
        _mlp_spec("retarget_eye", "retarget_eye", 66),
        _mlp_spec("retarget_lip", "retarget_lip", 65),
    )
}


DEFAULT_GRAPHS = tuple(name for name in GRAPHS if name != "warp_decode_plain")
"""What `export-onnx` writes unless `--only` says otherwise."""


def example_inputs(
    spec: GraphSpec, trace_shapes: dict[str, tuple[int, ...]] | None = None
) -> tuple[torch.Tensor, ...]:
    """Plausible tracing inputs: images in [0, 1], keypoints inside the [-1, 1] cube."""
    generator = torch.Generator().manual_seed(0)
    tensors = []
    for name, nominal in spec.inputs.items():
        shape = (trace_shapes or {}).get(name, nominal)
        if name.startswith("kp_"):
            tensors.append(torch.rand(shape, generator=generator) * 1.6 - 0.8)
        elif name == "image":
            tensors.append(torch.rand(shape, generator=generator))
        else:
            tensors.append(torch.randn(shape, generator=generator) * 0.1)
    return tuple(tensors)


def export_graph(
    spec: GraphSpec,
    networks: object,
    out_dir: Path,
    opset: int = OPSET,
    trace_shapes: dict[str, tuple[int, ...]] | None = None,
) -> Path:
    """Trace one graph on CPU in fp32 and write `<out_dir>/<name>.onnx`.

    `trace_shapes` overrides the tracing shape of some inputs (tests trace small); the nominal
    shapes are still recorded in the model metadata for the runner's probe run.
    """
    if opset < OPSET:
        raise ValueError(f"opset {opset} < {OPSET}: 5-D GridSample needs opset {OPSET}")
    module = spec.build(networks).eval()
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{spec.name}.onnx"
    with warnings.catch_warnings(), torch.no_grad():
        # The TorchScript exporter is deprecated but traces our plain modules exactly, keeps
        # the input/output names and handles 5-D grid_sample; silence its notices.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module,
            example_inputs(spec, trace_shapes),
            str(path),
            opset_version=opset,
            input_names=list(spec.inputs),
            output_names=list(spec.outputs),
            dynamic_axes=spec.dynamic_axes,
            do_constant_folding=True,
            dynamo=False,
        )
    model = onnx.load(str(path))
    for name, shape in spec.inputs.items():
        entry = model.metadata_props.add()
        entry.key = NOMINAL_SHAPE_PREFIX + name
        entry.value = ",".join(str(d) for d in shape)
    onnx.save(model, str(path))
    return path


def export_all(
    networks: object,
    out_dir: str | Path,
    names: Sequence[str] | None = None,
    opset: int = OPSET,
    trace_shapes: dict[str, dict[str, tuple[int, ...]]] | None = None,
) -> dict[str, Path]:
    """Export the named graphs (default `DEFAULT_GRAPHS`) of `networks`; returns name → path.

    A graph whose network the object lacks (attribute missing) is an error naming it.
    """
    selected = list(names) if names is not None else list(DEFAULT_GRAPHS)
    unknown = [name for name in selected if name not in GRAPHS]
    if unknown:
        raise ValueError(f"unknown graph(s) {unknown}; choose from {list(GRAPHS)}")
    paths = {}
    for name in selected:
        paths[name] = export_graph(
            GRAPHS[name], networks, Path(out_dir), opset, (trace_shapes or {}).get(name)
        )
    return paths


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m lpstream export-onnx",
        description="Export LivePortrait F, M, W+G and the stitching/retargeting MLPs to ONNX.",
    )
    parser.add_argument(
        "--weights",
        default=None,
        help="folder with the official weights layout (default: $LPSTREAM_WEIGHTS or models/)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="output folder (default: onnx/ inside the weights folder, i.e. models/onnx)",
    )
    parser.add_argument(
        "--only", nargs="+", choices=list(GRAPHS), help="export only these graphs"
    )
    parser.add_argument("--opset", type=int, default=OPSET, help=f"ONNX opset (>= {OPSET})")
    parser.add_argument(
        "--random-weights",
        action="store_true",
        help="export randomly initialised networks (for testing the pipeline without weights)",
    )
    return parser.parse_args(list(argv))


def main(argv: Sequence[str]) -> int:
    args = parse_args(argv)
    if args.out is None:
        # Beside the weights rather than under the current directory, so the default does
        # not depend on where the command is run from.
        from lpstream.liveportrait.weights import resolve_weights_dir

        args.out = resolve_weights_dir(args.weights) / "onnx"
    if args.opset < OPSET:
        print(f"error: --opset must be >= {OPSET} (5-D GridSample)", file=sys.stderr)
        return 2
    if args.out.exists() and not args.out.is_dir():
        message = f"error: --out {args.out} is a file; give a folder for the .onnx files"
        print(message, file=sys.stderr)
        return 2
    try:
        if args.random_weights:
            from lpstream.liveportrait.testing import random_networks

            networks: object = argparse.Namespace(**random_networks(seed=0))
        else:
            from lpstream.liveportrait.weights import load_networks

            networks = load_networks(args.weights, device="cpu")
        paths = export_all(networks, args.out, names=args.only, opset=args.opset)
    except LpstreamError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except OSError as error:  # unwritable or full output folder
        print(f"error: cannot write ONNX files to {args.out} ({error})", file=sys.stderr)
        return 1
    for name, path in paths.items():
        size_mb = path.stat().st_size / 1e6
        print(f"{name:<30} {path} ({size_mb:.1f} MB)")
    return 0
