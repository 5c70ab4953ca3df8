"""ONNX export of the LivePortrait graphs and the provider-falling-back runner."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper

from lpstream.liveportrait.onnx_export import (
    DEFAULT_GRAPHS,
    GRAPHS,
    MOTION_OUTPUTS,
    OPSET,
    export_all,
    main,
)
from lpstream.liveportrait.onnx_runtime import (
    CPU,
    CUDA,
    NOMINAL_SHAPE_PREFIX,
    OnnxRunner,
    OnnxRuntimeError,
    provider_chain,
)
from lpstream.liveportrait.testing import random_networks, save_random_weights

# W's hourglass pools H and W five times, so 32 is the smallest spatial size it accepts.
SMALL_FEATURE = (1, 32, 16, 32, 32)
SMALL_TRACE = {name: {"feature_3d": SMALL_FEATURE} for name in ("warp_decode", "warp_decode_plain")}
WARP_GRAPHS = ("warp_decode", "warp_decode_plain")


@pytest.fixture(scope="module")
def networks() -> argparse.Namespace:
    torch.set_num_threads(1)
    return argparse.Namespace(**random_networks(seed=0))


@pytest.fixture(scope="module")
def exported(networks: argparse.Namespace, tmp_path_factory: pytest.TempPathFactory) -> dict:
    out_dir = tmp_path_factory.mktemp("onnx")
    return export_all(networks, out_dir, names=list(GRAPHS), trace_shapes=SMALL_TRACE)


def cpu_runner(path: Path) -> OnnxRunner:
    return OnnxRunner(path, providers=[CPU], threads=1, probe=False)


def test_every_graph_is_exported_with_opset_20_and_names(exported: dict) -> None:
    assert set(exported) == set(GRAPHS)
    assert "warp_decode_plain" not in DEFAULT_GRAPHS and "warp_decode" in DEFAULT_GRAPHS
    for name, path in exported.items():
        model = onnx.load(str(path), load_external_data=False)
        onnx.checker.check_model(model)
        opset = {entry.domain: entry.version for entry in model.opset_import}[""]
        assert opset >= OPSET
        assert [i.name for i in model.graph.input] == list(GRAPHS[name].inputs)
        assert [o.name for o in model.graph.output] == list(GRAPHS[name].outputs)
    for name in WARP_GRAPHS:
        warp = onnx.load(str(exported[name]), load_external_data=False)
        grid_samples = [node for node in warp.graph.node if node.op_type == "GridSample"]
        assert len(grid_samples) == 2  # the 22 candidate warps (batched) and the final warp


def test_appearance_feature_extractor_matches_torch(networks, exported) -> None:
    image = torch.rand(1, 3, 128, 128, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        expected = networks.appearance_feature_extractor(image).numpy()
    got = cpu_runner(exported["appearance_feature_extractor"]).run({"image": image.numpy()})
    assert got["feature_3d"].shape == (1, 32, 16, 32, 32)
    np.testing.assert_allclose(got["feature_3d"], expected, rtol=1e-3, atol=1e-4)


def test_motion_extractor_matches_torch(networks, exported) -> None:
    image = torch.rand(2, 3, 256, 256, generator=torch.Generator().manual_seed(2))
    with torch.inference_mode():
        expected = networks.motion_extractor(image)
    got = cpu_runner(exported["motion_extractor"]).run({"image": image.numpy()})
    for name in MOTION_OUTPUTS:
        np.testing.assert_allclose(got[name], expected[name].numpy(), rtol=1e-3, atol=1e-4)


@pytest.mark.parametrize("name", WARP_GRAPHS)
def test_warp_decode_matches_torch_at_two_sizes(networks, exported, name: str) -> None:
    """Both W+G graphs (fused rewrite and official structure) against torch eager W then G."""
    runner = cpu_runner(exported[name])
    generator = torch.Generator().manual_seed(3)
    kp_source = torch.rand(1, 21, 3, generator=generator) * 1.6 - 0.8
    kp_driving = kp_source + 0.05 * torch.randn(1, 21, 3, generator=generator)
    # The traced size and a larger one: the spatial axes really are dynamic.
    for shape in (SMALL_FEATURE, (1, 32, 16, 64, 32)):
        feature = 0.1 * torch.randn(shape, generator=generator)
        with torch.inference_mode():
            warped = networks.warping_module(feature, kp_driving=kp_driving, kp_source=kp_source)
            expected = networks.spade_generator(warped["out"]).numpy()
        got = runner.run(
            {
                "feature_3d": feature.numpy(),
                "kp_driving": kp_driving.numpy(),
                "kp_source": kp_source.numpy(),
            }
        )["image"]
        assert got.shape == (1, 3, shape[3] * 8, shape[4] * 8)
        np.testing.assert_allclose(got, expected, rtol=0, atol=2e-3)
        assert float(np.abs(got - expected).mean()) < 1e-4


@pytest.mark.parametrize(("name", "width"), [("stitching", 126), ("retarget_eye", 66),
                                             ("retarget_lip", 65)])
def test_mlps_match_torch_with_dynamic_batch(networks, exported, name: str, width: int) -> None:
    x = torch.randn(3, width, generator=torch.Generator().manual_seed(4))
    with torch.inference_mode():
        expected = getattr(networks, name)(x).numpy()
    got = cpu_runner(exported[name]).run({"x": x.numpy()})["delta"]
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)


def test_nominal_shapes_are_recorded_for_the_probe_run(exported) -> None:
    model = onnx.load(str(exported["warp_decode"]), load_external_data=False)
    metadata = {entry.key: entry.value for entry in model.metadata_props}
    assert metadata[NOMINAL_SHAPE_PREFIX + "feature_3d"] == "1,32,16,64,64"
    assert metadata[NOMINAL_SHAPE_PREFIX + "kp_source"] == "1,21,3"


def test_cli_exports_from_a_weights_folder(tmp_path: Path) -> None:
    weights = save_random_weights(tmp_path / "weights", seed=1)
    out = tmp_path / "onnx"
    assert main(["--weights", str(weights), "--out", str(out), "--only", "stitching"]) == 0
    assert [p.name for p in out.iterdir()] == ["stitching.onnx"]


def test_cli_reports_missing_weights_and_low_opset(tmp_path: Path, capsys) -> None:
    assert main(["--weights", str(tmp_path / "absent"), "--out", str(tmp_path)]) == 1
    assert "absent" in capsys.readouterr().err
    assert main(["--opset", "17", "--random-weights", "--out", str(tmp_path)]) == 2
    assert list(tmp_path.iterdir()) == []


def test_provider_chain_keeps_later_preferences_and_ends_on_cpu() -> None:
    preference = ["TensorrtExecutionProvider", CUDA, CPU]
    assert provider_chain("TensorrtExecutionProvider", preference) == preference
    assert provider_chain(CUDA, preference) == [CUDA, CPU]
    assert provider_chain(CUDA, [CUDA]) == [CUDA, CPU]


def test_runner_skips_unusable_providers_and_ends_on_cpu(exported) -> None:
    runner = OnnxRunner(
        exported["stitching"],
        providers=["NoSuchExecutionProvider", CUDA, CPU],
        threads=1,
    )
    assert runner.provider == CPU
    rejected = [attempt.provider for attempt in runner.choice.rejected]
    assert rejected[0] == "NoSuchExecutionProvider"
    if CUDA in ort.get_available_providers() and CUDA in rejected:
        # Installed but unusable here (no GPU): ORT's silent fallback is detected and reported.
        reason = next(a.reason for a in runner.choice.rejected if a.provider == CUDA)
        assert "fell back" in reason or "failed" in reason
    x = np.zeros((1, 126), np.float32)
    assert runner.run({"x": x})["delta"].shape == (1, 65)


def _model_failing_at_run_time(path: Path) -> Path:
    """A valid graph whose first run fails: Reshape to a shape that cannot hold the input."""
    graph = helper.make_graph(
        [helper.make_node("Reshape", ["x", "shape"], ["y"])],
        "reshape_fails",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        initializer=[helper.make_tensor("shape", TensorProto.INT64, [1], [5])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=10)
    onnx.save(model, str(path))
    return path


def test_a_provider_whose_first_run_fails_is_rejected_with_reasons(tmp_path: Path) -> None:
    path = _model_failing_at_run_time(tmp_path / "bad.onnx")
    with pytest.raises(OnnxRuntimeError) as raised:
        OnnxRunner(path, providers=[CUDA, CPU], threads=1)
    message = str(raised.value)
    assert "CPUExecutionProvider: first run failed" in message
    assert CUDA in message


def test_runner_rejects_missing_file_and_missing_inputs(tmp_path: Path, exported) -> None:
    with pytest.raises(OnnxRuntimeError, match="export-onnx"):
        OnnxRunner(tmp_path / "nope.onnx", providers=[CPU])
    runner = cpu_runner(exported["retarget_lip"])
    with pytest.raises(ValueError, match="missing"):
        runner.run({})


def test_corrupt_model_and_folder_give_one_clear_error(tmp_path: Path, exported, capfd) -> None:
    truncated = tmp_path / "truncated.onnx"
    truncated.write_bytes(Path(exported["stitching"]).read_bytes()[:5000])
    # Default preference (TensorRT, CUDA, CPU): on a CPU-only machine the GPU providers fail
    # for their own reasons, but the message must blame the file, once, and say how to fix it.
    with pytest.raises(OnnxRuntimeError) as raised:
        OnnxRunner(truncated, threads=1)
    message = str(raised.value)
    assert message.startswith(f"cannot load ONNX model {truncated}")
    assert "export-onnx" in message and "TensorrtExecutionProvider" not in message
    with pytest.raises(OnnxRuntimeError, match="is a folder"):
        OnnxRunner(tmp_path, threads=1)
    # ORT's own fallback banner ("EP Error ... Falling back") must not be printed.
    OnnxRunner(exported["retarget_eye"], threads=1)
    assert "EP Error" not in capfd.readouterr().out


def test_cli_output_folder_default_and_errors(tmp_path: Path, capsys) -> None:
    weights = tmp_path / "weights"
    weights.mkdir()
    # Default --out is beside the weights, whatever the current directory is.
    assert main(["--random-weights", "--weights", str(weights), "--only", "retarget_lip"]) == 0
    assert [p.name for p in (weights / "onnx").iterdir()] == ["retarget_lip.onnx"]
    not_a_folder = tmp_path / "file.onnx"
    not_a_folder.write_bytes(b"")
    assert main(["--random-weights", "--out", str(not_a_folder), "--only", "stitching"]) == 2
    assert "is a file" in capsys.readouterr().err
