"""Official LivePortrait weight files: where they live, how to check them, how to load them.

The expected tensor layout is derived from the project's own modules (built on the `meta`
device, so checking allocates nothing), and a test pins it to `../shared/liveportrait/
checkpoint_layout.json`: official files load with `strict=True` and no key renaming except
the `module.` prefix some stitching checkpoints carry.
"""

from __future__ import annotations

import functools
import logging
import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from lpstream.errors import WeightsError
from lpstream.shared_data import REPO_ROOT

logger = logging.getLogger(__name__)

HUB_REPO_ID = "KwaiVGI/LivePortrait"
WEIGHTS_ENV = "LPSTREAM_WEIGHTS"
DEFAULT_WEIGHTS_DIR = REPO_ROOT / "models"

APPEARANCE_FILE = "liveportrait/base_models/appearance_feature_extractor.pth"
MOTION_FILE = "liveportrait/base_models/motion_extractor.pth"
WARPING_FILE = "liveportrait/base_models/warping_module.pth"
SPADE_FILE = "liveportrait/base_models/spade_generator.pth"
STITCHING_FILE = "liveportrait/retargeting_models/stitching_retargeting_module.pth"
REQUIRED_FILES = (APPEARANCE_FILE, MOTION_FILE, WARPING_FILE, SPADE_FILE, STITCHING_FILE)

SINGLE_NETWORK_FILES = {
    "appearance_feature_extractor": APPEARANCE_FILE,
    "motion_extractor": MOTION_FILE,
    "warping_module": WARPING_FILE,
    "spade_generator": SPADE_FILE,
}
"""Attribute name -> file holding exactly that network's state dict."""

STITCHING_SUB_DICTS = {
    "stitching": "retarget_shoulder",
    "retarget_lip": "retarget_mouth",
    "retarget_eye": "retarget_eye",
}
"""Attribute name -> key of its state dict inside the stitching/retargeting file."""

NETWORK_NAMES = (*SINGLE_NETWORK_FILES, *STITCHING_SUB_DICTS)
DDP_PREFIX = "module."

TensorLayout = dict[str, tuple[tuple[int, ...], torch.dtype]]
"""State-dict key -> (shape, dtype)."""


def network_factories() -> dict[str, Callable[[], nn.Module]]:
    """Attribute name -> constructor of the (unloaded) network, official hyper-parameters."""
    # Imported here so `import lpstream.liveportrait` stays light and the networks' modules
    # (written separately) are only needed when weights are actually used.
    from lpstream.liveportrait.networks.appearance_feature_extractor import (
        AppearanceFeatureExtractor,
    )
    from lpstream.liveportrait.networks.motion_extractor import MotionExtractor
    from lpstream.liveportrait.networks.spade_generator import SPADEDecoder
    from lpstream.liveportrait.networks.stitching_retargeting import (
        eye_retargeting_network,
        lip_retargeting_network,
        stitching_network,
    )
    from lpstream.liveportrait.networks.warping_network import WarpingNetwork

    return {
        "appearance_feature_extractor": AppearanceFeatureExtractor,
        "motion_extractor": MotionExtractor,
        "warping_module": WarpingNetwork,
        "spade_generator": SPADEDecoder,
        "stitching": stitching_network,
        "retarget_lip": lip_retargeting_network,
        "retarget_eye": eye_retargeting_network,
    }


def build_networks(device: str | torch.device = "cpu") -> dict[str, nn.Module]:
    """Every network, freshly initialised (not loaded), keyed by attribute name."""
    with torch.device(device):
        return {name: factory() for name, factory in network_factories().items()}


@functools.cache
def expected_layouts() -> dict[str, TensorLayout]:
    """Attribute name -> the tensor layout its checkpoint must have (do not mutate)."""
    return {
        name: {key: (tuple(value.shape), value.dtype) for key, value in module.state_dict().items()}
        for name, module in build_networks("meta").items()
    }


def default_weights_dir() -> Path:
    """`$LPSTREAM_WEIGHTS` if set, else `models/` in the checkout."""
    env = os.environ.get(WEIGHTS_ENV)
    return Path(env).expanduser() if env else DEFAULT_WEIGHTS_DIR


def resolve_weights_dir(weights_dir: str | os.PathLike[str] | None) -> Path:
    return Path(weights_dir).expanduser() if weights_dir is not None else default_weights_dir()


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a weights folder."""

    file: str
    """Path relative to the weights folder."""
    message: str
    """What is wrong, in words a user can act on."""
    key: str | None = None
    """The offending tensor (with its sub-dict as `sub/key` in the stitching file), if any."""

    def __str__(self) -> str:
        where = f"{self.file} [{self.key}]" if self.key else self.file
        return f"{where}: {self.message}"


@dataclass
class LivePortraitNetworks:
    """The seven LivePortrait networks, loaded and in eval mode."""

    appearance_feature_extractor: nn.Module
    """F: 1×3×256×256 image -> 1×32×16×64×64 feature volume."""
    motion_extractor: nn.Module
    """M: 1×3×256×256 image -> pose logits, t, exp, scale, kp."""
    warping_module: nn.Module
    """W: (feature_3d, kp_driving, kp_source) -> {deformation, occlusion_map, out}."""
    spade_generator: nn.Module
    """G: 1×256×64×64 -> 1×3×512×512 image in [0, 1]."""
    stitching: nn.Module
    """S: 126 -> 65."""
    retarget_eye: nn.Module
    """R_eye: 66 -> 63."""
    retarget_lip: nn.Module
    """R_lip: 65 -> 63."""
    weights_dir: Path | None
    """The folder the weights came from (None for in-memory random weights in tests)."""


UNREADABLE_ADVICE = (
    "it is probably truncated or not an official LivePortrait checkpoint: delete it and "
    "download again"
)


class UnreadableCheckpointError(WeightsError):
    """A weight file exists but torch cannot load it (truncated, corrupt, unsafe pickle)."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"cannot read weight file {path} ({reason}); {UNREADABLE_ADVICE}")
        self.path = path
        self.reason = reason


def read_checkpoint(path: Path, *, mmap: bool = False) -> object:
    """The unpickled content of one official `.pth`, loaded safely (`weights_only=True`)."""
    if not path.is_file():
        raise WeightsError(
            f"missing weight file {path}; run `python -m lpstream weights download "
            f"--dir {path_root_hint(path)}` or see models/README.md"
        )
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except Exception as error:
        # Any exception counts: on arbitrary bytes torch's restricted unpickler raises not only
        # UnpicklingError but KeyError, ValueError, IndexError, ... (e.g. a text file).
        if mmap and "mmap" in str(error):
            # Legacy (non-zip) pickles cannot be memory-mapped; read them normally.
            return read_checkpoint(path, mmap=False)
        raise UnreadableCheckpointError(path, short_reason(error)) from error


def short_reason(error: BaseException, limit: int = 120) -> str:
    """`Type: first sentence` of an exception, short enough for a one-line problem report."""
    text = " ".join(str(error).split())
    # torch appends a paragraph of advice to its zip errors; the first sentence is the fact.
    first = text.split(". ")[0].rstrip(".")
    if len(first) > limit:
        first = first[: limit - 3] + "..."
    return f"{type(error).__name__}: {first}" if first else type(error).__name__


def path_root_hint(path: Path) -> Path:
    """The weights folder a file path belongs to (for messages), best effort."""
    for relative in REQUIRED_FILES:
        if path.as_posix().endswith(relative):
            return Path(path.as_posix()[: -len(relative)] or ".")
    return path.parent


def strip_ddp_prefix(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Drop the `module.` prefix that `DistributedDataParallel` training leaves on keys."""
    return {
        key[len(DDP_PREFIX) :] if key.startswith(DDP_PREFIX) else key: value
        for key, value in state_dict.items()
    }


def checkpoint_state_dicts(
    relative: str, content: object
) -> tuple[dict[str, dict[str, torch.Tensor]], list[Problem]]:
    """Network name -> state dict found in one file's content, plus structural problems."""
    problems: list[Problem] = []
    if not isinstance(content, Mapping):
        return {}, [Problem(relative, f"holds a {type(content).__name__}, expected a dict")]
    if relative != STITCHING_FILE:
        name = next(name for name, file in SINGLE_NETWORK_FILES.items() if file == relative)
        return {name: dict(content)}, problems
    found: dict[str, dict[str, torch.Tensor]] = {}
    for name, sub_dict in STITCHING_SUB_DICTS.items():
        if not isinstance(content.get(sub_dict), Mapping):
            problems.append(Problem(relative, f"has no sub-dict {sub_dict!r}", sub_dict))
            continue
        found[name] = strip_ddp_prefix(content[sub_dict])
    # Other top-level entries (training bookkeeping) are ignored, as the official loader does;
    # the tensors inside each sub-dict are checked strictly.
    return found, problems


def compare_layout(
    relative: str, prefix: str, state_dict: Mapping[str, object], expected: TensorLayout
) -> list[Problem]:
    """Every missing, unexpected, mis-shaped or mis-typed tensor of one state dict."""
    problems = []
    for key, (shape, dtype) in expected.items():
        label = prefix + key
        if key not in state_dict:
            problems.append(Problem(relative, "missing tensor", label))
            continue
        tensor = state_dict[key]
        if not isinstance(tensor, torch.Tensor):
            problems.append(Problem(relative, f"is a {type(tensor).__name__}, not a tensor", label))
        elif tuple(tensor.shape) != shape:
            problems.append(
                Problem(relative, f"shape {tuple(tensor.shape)}, expected {shape}", label)
            )
        elif tensor.dtype != dtype:
            problems.append(Problem(relative, f"dtype {tensor.dtype}, expected {dtype}", label))
    for key in state_dict:
        if key not in expected:
            problems.append(Problem(relative, "unexpected tensor", prefix + key))
    return problems


def files_for(names: tuple[str, ...]) -> dict[str, list[str]]:
    """File -> the network names it holds, for the networks asked for."""
    by_file: dict[str, list[str]] = {}
    for name in names:
        relative = SINGLE_NETWORK_FILES.get(name, STITCHING_FILE)
        by_file.setdefault(relative, []).append(name)
    return by_file


def check_weights(weights_dir: str | os.PathLike[str] | None = None) -> list[Problem]:
    """Every problem with the required files of a weights folder; empty when all is well."""
    root = resolve_weights_dir(weights_dir)
    if root.exists() and not root.is_dir():
        return [Problem(str(root), "is a file, not a weights folder")]
    if not root.is_dir():
        return [Problem(str(root), "weights folder does not exist")]
    layouts = expected_layouts()
    problems: list[Problem] = []
    for relative, names in files_for(NETWORK_NAMES).items():
        path = root / relative
        if not path.is_file():
            problems.append(Problem(relative, "missing file"))
            continue
        try:
            content = read_checkpoint(path, mmap=True)
        except UnreadableCheckpointError as error:
            # The Problem already names the file; keep the line short.
            problems.append(Problem(relative, f"cannot read ({error.reason}); {UNREADABLE_ADVICE}"))
            continue
        state_dicts, structural = checkpoint_state_dicts(relative, content)
        problems += structural
        for name in names:
            if name in state_dicts:
                prefix = f"{STITCHING_SUB_DICTS[name]}/" if relative == STITCHING_FILE else ""
                problems += compare_layout(relative, prefix, state_dicts[name], layouts[name])
    return problems


def load_networks(
    weights_dir: str | os.PathLike[str] | None = None, device: str | torch.device = "cpu"
) -> LivePortraitNetworks:
    """Build the seven networks and load the official weights strictly.

    Raises WeightsError naming every missing file or mismatched tensor. All networks are
    fp32 here; precision choices belong to `lpstream.liveportrait.device`.
    """
    root = resolve_weights_dir(weights_dir)
    if not root.is_dir():
        raise WeightsError(
            f"weights folder {root} does not exist; run `python -m lpstream weights download "
            f"--dir {root}` or set ${WEIGHTS_ENV} (see models/README.md)"
        )
    # Validate everything first (cheap: memory-mapped, meta-device layouts) so a broken
    # folder fails fast with the full list of problems instead of a torch traceback.
    problems = check_weights(root)
    if problems:
        raise WeightsError(describe_problems(root, problems))
    modules = build_networks("cpu")
    for relative, names in files_for(NETWORK_NAMES).items():
        content = read_checkpoint(root / relative, mmap=True)
        state_dicts, _ = checkpoint_state_dicts(relative, content)
        for name in names:
            modules[name].load_state_dict(state_dicts[name], strict=True)
    for module in modules.values():
        module.eval().requires_grad_(False).to(device)
    return LivePortraitNetworks(**modules, weights_dir=root)


_networks_lock = threading.Lock()
_networks_cache: dict[tuple[str, str], tuple[tuple[object, ...], LivePortraitNetworks]] = {}
"""(weights folder, device) -> (file signature, loaded networks)."""


def shared_networks(
    weights_dir: str | os.PathLike[str] | None, device: str
) -> LivePortraitNetworks:
    """The networks of a weights folder, loaded once per process and device.

    The call server creates a sender per participant and a renderer per viewed participant;
    loading ~500 MB of weights for every one of them cost seconds per join and half a
    gigabyte of RAM per stage. Inference never modifies the networks, so every stage shares
    one copy. A folder whose files changed (size or mtime) is loaded again.
    """
    root = resolve_weights_dir(weights_dir).resolve()
    signature = tuple(_file_signature(root / relative) for relative in REQUIRED_FILES)
    key = (str(root), device)
    # Held while loading, so stages created at the same moment wait for one load.
    with _networks_lock:
        cached = _networks_cache.get(key)
        if cached is not None and cached[0] == signature:
            return cached[1]
        # Networks load on the CPU; each stage's device plan moves them where they run.
        networks = load_networks(root, device="cpu")
        # One folder at a time: a process serves from one weights folder, and stale entries
        # (tests, a replaced folder) would pin half a gigabyte each.
        _networks_cache.clear()
        _networks_cache[key] = (signature, networks)
        logger.info("loaded LivePortrait networks from %s", root)
        return networks


def _file_signature(path: Path) -> tuple[int, int] | None:
    try:
        stat = path.stat()
    except OSError:
        return None
    return stat.st_size, stat.st_mtime_ns


def describe_problems(root: Path, problems: list[Problem], limit: int = 12) -> str:
    lines = [f"LivePortrait weights in {root} are incomplete or do not match the official layout:"]
    lines += [f"  {problem}" for problem in problems[:limit]]
    if len(problems) > limit:
        lines.append(f"  ... and {len(problems) - limit} more")
    lines.append(
        f"Run `python -m lpstream weights check {root}` for the full list, or "
        f"`python -m lpstream weights download --dir {root}` to fetch the official files."
    )
    return "\n".join(lines)
