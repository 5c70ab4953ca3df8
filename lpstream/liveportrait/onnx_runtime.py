"""Run an exported LivePortrait graph with ONNX Runtime on the best provider that works.

The provider is chosen once, at construction: TensorRT, then CUDA, then CPU, skipping any that
is not installed, whose session cannot be created, that ONNX Runtime silently replaced by
another one (it does so when CUDA libraries are missing), or whose first run fails (e.g. an
operator such as 5-D GridSample that the provider does not implement). Per-frame `run` calls
never re-decide.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnxruntime as ort

from lpstream.errors import LpstreamError

TENSORRT = "TensorrtExecutionProvider"
CUDA = "CUDAExecutionProvider"
CPU = "CPUExecutionProvider"
PREFERRED_PROVIDERS: tuple[str, ...] = (TENSORRT, CUDA, CPU)
"""Fastest first; CPU last because it always exists and runs every operator we export."""

NOMINAL_SHAPE_PREFIX = "lpstream.nominal_shape."
"""Model metadata key prefix (written by `onnx_export`) giving each input's real-use shape,
so a graph with dynamic axes can still be probed with a representative first run."""


class OnnxRuntimeError(LpstreamError):
    """No execution provider could load and run an exported graph."""


@dataclass(frozen=True)
class ProviderAttempt:
    """Why one provider was not used."""

    provider: str
    """Execution provider name, e.g. `CUDAExecutionProvider`."""
    reason: str
    """What failed: not installed, session creation, replaced by ORT, or the probe run."""


@dataclass
class ProviderChoice:
    """Outcome of provider selection: the provider in use and the ones rejected before it."""

    provider: str
    """The provider the session runs on."""
    rejected: list[ProviderAttempt] = field(default_factory=list)
    """Providers tried first and why each was dropped, in the order tried."""


def session_options(threads: int | None = None, optimize: bool = True) -> ort.SessionOptions:
    """Options every lpstream session uses: full graph optimisation, fixed thread count."""
    options = ort.SessionOptions()
    options.graph_optimization_level = (
        ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if optimize
        else ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    )
    if threads is not None:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    # Provider load failures are expected (GPU wheels on CPU machines) and reported by us.
    options.log_severity_level = 3
    return options


def provider_chain(provider: str, preference: Sequence[str]) -> list[str]:
    """`provider` plus every provider after it in `preference`, ending with CPU.

    ORT assigns nodes a provider cannot run to the next provider in the list, so e.g. a 5-D
    GridSample unsupported by CUDA falls back to CPU inside an otherwise-CUDA session.
    """
    order = list(preference)
    rest = order[order.index(provider) + 1 :] if provider in order else []
    chain = [provider, *rest]
    if CPU not in chain:
        chain.append(CPU)
    return chain


def probe_feed(session: ort.InferenceSession) -> dict[str, np.ndarray]:
    """Zero inputs of each input's nominal shape (metadata), else its static shape (symbolic
    dimensions as 1)."""
    metadata = session.get_modelmeta().custom_metadata_map
    feed: dict[str, np.ndarray] = {}
    for spec in session.get_inputs():
        nominal = metadata.get(NOMINAL_SHAPE_PREFIX + spec.name)
        if nominal:
            shape = [int(d) for d in nominal.split(",")]
        else:
            shape = [d if isinstance(d, int) and d > 0 else 1 for d in spec.shape]
        dtype = np.float16 if spec.type == "tensor(float16)" else np.float32
        feed[spec.name] = np.zeros(shape, dtype=dtype)
    return feed


def first_line(error: BaseException, limit: int = 300) -> str:
    """The first non-empty line of an ORT error (its messages run to several paragraphs)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    text = lines[0] if lines else type(error).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def no_provider_message(model_path: Path, rejected: Sequence[ProviderAttempt]) -> str:
    """Why no provider could run a model. When even the CPU provider cannot create a session,
    the file itself is at fault (truncated, not ONNX): say that once, with the fix, instead
    of every GPU provider's unrelated library error."""
    for attempt in rejected:
        if attempt.provider == CPU and attempt.reason.startswith("session creation failed"):
            return (
                f"cannot load ONNX model {model_path} ({attempt.reason}); it is probably "
                f"truncated or not an ONNX file: export it again with "
                f"`python -m lpstream export-onnx --out {model_path.parent}`"
            )
    details = "; ".join(f"{attempt.provider}: {attempt.reason}" for attempt in rejected)
    return f"no execution provider can run {model_path}: {details}"


def quiet_default_logger() -> None:
    """Silence ORT's process-wide logger below errors-we-report level.

    `session_options` only covers messages logged by a session; provider libraries that fail
    to load (GPU wheel on a CPU-only machine) log through the default logger, which would
    print several red error lines per session. Those failures are recorded in `ProviderChoice`
    instead, and every failure that matters reaches the caller as an exception.
    """
    ort.set_default_logger_severity(4)


class OnnxRunner:
    """One ONNX graph on one execution provider, chosen once at construction.

    `providers` is the preference order (default TensorRT → CUDA → CPU); providers that are
    not installed are skipped. Unless `probe` is False, the first candidate must also survive
    one run on `probe_inputs` (default: zeros of the nominal input shapes) to be kept.
    """

    def __init__(
        self,
        model_path: str | os.PathLike[str],
        providers: Sequence[str] | None = None,
        threads: int | None = None,
        probe: bool = True,
        probe_inputs: Mapping[str, np.ndarray] | None = None,
        optimize: bool = True,
    ) -> None:
        self.model_path = Path(model_path)
        if self.model_path.is_dir():
            raise OnnxRuntimeError(
                f"ONNX model {self.model_path} is a folder; pass one .onnx file from it"
            )
        if not self.model_path.is_file():
            raise OnnxRuntimeError(
                f"ONNX model {self.model_path} not found; export it with "
                f"`python -m lpstream export-onnx --out {self.model_path.parent}`"
            )
        preference = list(providers) if providers is not None else list(PREFERRED_PROVIDERS)
        if not preference:
            raise ValueError("providers must name at least one execution provider")
        installed = set(ort.get_available_providers())
        rejected: list[ProviderAttempt] = []
        options = session_options(threads, optimize)
        quiet_default_logger()
        for provider in preference:
            if provider not in installed:
                rejected.append(ProviderAttempt(provider, "not installed in this onnxruntime"))
                continue
            try:
                # enable_fallback=0: without it ORT itself retries a failing provider list
                # without the failing provider and prints an "EP Error" banner to stdout;
                # falling back is this loop's job, and it reports why.
                session = ort.InferenceSession(
                    str(self.model_path),
                    sess_options=options,
                    providers=provider_chain(provider, preference),
                    enable_fallback=0,
                )
            except Exception as error:  # ORT raises bare RuntimeError/Fail subclasses.
                reason = f"session creation failed: {first_line(error)}"
                rejected.append(ProviderAttempt(provider, reason))
                continue
            active = session.get_providers()[0]
            if active != provider:
                rejected.append(
                    ProviderAttempt(provider, f"unusable here; onnxruntime fell back to {active}")
                )
                continue
            if probe:
                try:
                    session.run(None, dict(probe_inputs or probe_feed(session)))
                except Exception as error:
                    reason = f"first run failed: {first_line(error)}"
                    rejected.append(ProviderAttempt(provider, reason))
                    continue
            self._session = session
            self.choice = ProviderChoice(provider, rejected)
            break
        else:
            raise OnnxRuntimeError(no_provider_message(self.model_path, rejected))
        self.input_names = [spec.name for spec in self._session.get_inputs()]
        self.output_names = [spec.name for spec in self._session.get_outputs()]

    @property
    def provider(self) -> str:
        return self.choice.provider

    def run(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run the graph; `inputs` maps every input name to a contiguous array."""
        missing = set(self.input_names) - set(inputs)
        if missing:
            raise ValueError(
                f"{self.model_path.name} needs inputs {self.input_names}, missing {sorted(missing)}"
            )
        feed = {name: inputs[name] for name in self.input_names}
        outputs = self._session.run(self.output_names, feed)
        return dict(zip(self.output_names, outputs, strict=True))
