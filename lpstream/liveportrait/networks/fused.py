"""Inference-only rewrite of the receiver's W + G: same maths, less work on a CPU.

Built from loaded official-layout modules (`FusedWarpDecode(warping_module, spade_generator)`),
it computes the same function up to float rounding (tests bound the difference), using:

- BatchNorm folded into the preceding convolution, spectral norm folded into plain weights;
- sub-pixel convolution: a 3×3 conv of a nearest-×s-upsampled map equals, for each of the s²
  output phases, a ≤2×2 conv of the small map with summed taps. SPADE convolves the 64×64
  decoder input upsampled ×2 and ×4, and W's hourglass convolves ×2 upsampled volumes, so this
  removes most of those FLOPs and never materialises the upsampled maps;
- SPADE's γ and β convs merged into one conv; instance norm computed once per input at the
  input's resolution (it commutes with nearest upsampling) and fused with the modulation;
- channels-last activations in the decoder, where oneDNN's 2-D convolutions are fastest.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from lpstream.liveportrait.networks.blocks import (
    LEAKY_RELU_SLOPE_SPADE,
    SPADE,
    HourglassDecoder,
    SPADEResnetBlock,
    UpBlock3d,
)
from lpstream.liveportrait.networks.spade_generator import SPADEDecoder
from lpstream.liveportrait.networks.warping_network import WarpingNetwork

INSTANCE_NORM_EPS = 1e-5
"""torch's InstanceNorm2d default, used by the official SPADE."""

# ---------------------------------------------------------------------------------------------
# Folding


def fold_batch_norm(conv: nn.Module, norm: nn.Module) -> None:
    """Fold an eval-mode BatchNorm that follows `conv` into `conv`'s weight and bias.

    Exact in real arithmetic because eval BatchNorm is a per-channel affine map of the conv's
    output (running statistics, not batch statistics)."""
    if not isinstance(conv, nn.Conv2d | nn.Conv3d):
        raise TypeError(f"expected a Conv2d/Conv3d, got {type(conv).__name__}")
    if not isinstance(norm, nn.modules.batchnorm._BatchNorm) or norm.running_var is None:
        raise TypeError(f"expected a BatchNorm with running statistics, got {norm!r}")
    with torch.no_grad():
        scale = norm.weight / torch.sqrt(norm.running_var + norm.eps)
        bias = conv.bias if conv.bias is not None else torch.zeros_like(norm.running_var)
        shape = (-1,) + (1,) * (conv.weight.dim() - 1)
        conv.weight = nn.Parameter(conv.weight * scale.reshape(shape))
        conv.bias = nn.Parameter((bias - norm.running_mean) * scale + norm.bias)


def fold_conv_norm_pairs(module: nn.Module) -> None:
    """Fold every `norm` BatchNorm that directly follows a sibling `conv`/`compress` conv."""
    for child in module.modules():
        norm = getattr(child, "norm", None)
        if not isinstance(norm, nn.modules.batchnorm._BatchNorm):
            continue
        conv = getattr(child, "conv", None) or getattr(child, "compress", None)
        if isinstance(conv, nn.Conv2d | nn.Conv3d):
            fold_batch_norm(conv, norm)
            child.norm = nn.Identity()


# ---------------------------------------------------------------------------------------------
# Sub-pixel convolution of nearest-upsampled inputs


def _phase_groups(factor: int) -> list[tuple[tuple[int, tuple[int, ...]], ...]]:
    """For each output phase p (0..factor-1) of one axis: the small-map offsets it reads and,
    per offset, which taps of the 3-tap kernel land there."""
    phases = []
    for phase in range(factor):
        groups: dict[int, list[int]] = {}
        for tap, delta in enumerate((-1, 0, 1)):
            groups.setdefault((phase + delta) // factor, []).append(tap)
        phases.append(tuple(sorted((offset, tuple(taps)) for offset, taps in groups.items())))
    return phases


def padded_windows(
    x: torch.Tensor, spans: list[tuple[int, int, int, int]]
) -> dict[tuple[int, int, int, int], torch.Tensor]:
    """Zero-padded views of x's last two axes shifted by each span's (row, col) offsets,
    made contiguous once (in x's memory format) so several convs can read them."""
    height, width = x.shape[-2:]
    padded = F.pad(x, (1, 1, 1, 1))
    layout = torch.channels_last if x.dim() == 4 else torch.contiguous_format
    return {
        (r0, r1, c0, c1): padded[..., 1 + r0 : 1 + height + r1, 1 + c0 : 1 + width + c1]
        .contiguous(memory_format=layout)
        for r0, r1, c0, c1 in set(spans)
    }


class UpsampledConv(nn.Module):
    """`conv3×3(nearest_upsample(x, factor))` without upsampling, via one small conv per
    distinct output phase (the last two axes; a leading depth axis of a 3-D kernel is kept).

    Zero padding of the upsampled map coincides with zero padding of the small map, so the
    result equals the original up to rounding of the summed taps.
    """

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None, factor: int) -> None:
        super().__init__()
        self.factor = factor
        self.three_d = weight.dim() == 5
        phases = _phase_groups(factor)
        distinct = sorted(set(phases))
        self.phase_class = [distinct.index(p) for p in phases]
        self.spans: list[tuple[int, int, int, int]] = []
        weights = []
        for rows in distinct:
            for cols in distinct:
                kernel = torch.stack(
                    [
                        torch.stack(
                            [weight[..., list(r_taps), :][..., list(c_taps)].sum((-2, -1))
                             for _, c_taps in cols],
                            dim=-1,
                        )
                        for _, r_taps in rows
                    ],
                    dim=-2,
                )
                weights.append(nn.Parameter(kernel.contiguous(), requires_grad=False))
                self.spans.append((rows[0][0], rows[-1][0], cols[0][0], cols[-1][0]))
        self.weights = nn.ParameterList(weights)
        self.classes = len(distinct)
        self.bias = None if bias is None else nn.Parameter(bias.clone(), requires_grad=False)

    def forward(
        self, x: torch.Tensor, windows: dict[tuple[int, int, int, int], torch.Tensor] | None = None
    ) -> torch.Tensor:
        """`windows` (from `padded_windows(x)`) may be passed to share them between convs."""
        conv = F.conv3d if self.three_d else F.conv2d
        if self.factor == 1:
            return conv(x, self.weights[0], self.bias, padding=1)
        if windows is None:
            windows = padded_windows(x, self.spans)
        depth_padding = (1, 0, 0) if self.three_d else 0
        outs = [
            conv(windows[span], weight, self.bias, padding=depth_padding)
            for weight, span in zip(self.weights, self.spans, strict=True)
        ]
        return self._interleave(outs)

    def _phase(self, outs: list[torch.Tensor], p: int, q: int) -> torch.Tensor:
        return outs[self.phase_class[p] * self.classes + self.phase_class[q]]

    def _interleave(self, outs: list[torch.Tensor]) -> torch.Tensor:
        """Place phase outputs so that out[..., s·i + p, s·j + q] = phase(p, q)[..., i, j].

        2-D results come out channels-last (the layout the decoder's convs prefer)."""
        s = self.factor
        first = outs[0]
        if torch.onnx.is_in_onnx_export():
            # Graph form without in-place slice writes: stack phases, then one reshape.
            rows = [torch.stack([self._phase(outs, p, q) for q in range(s)], dim=-1)
                    for p in range(s)]  # each (..., H, W, s)
            stacked = torch.stack(rows, dim=-3)  # (..., H, s, W, s)
            *lead, height, _, width, _ = stacked.shape
            return stacked.reshape(*lead, height * s, width * s)
        if self.three_d:
            *lead, height, width = first.shape
            out = first.new_empty(*lead, height, s, width, s)
            for p in range(s):
                for q in range(s):
                    out[..., :, p, :, q] = self._phase(outs, p, q)
            return out.reshape(*lead, height * s, width * s)
        batch, channels, height, width = first.shape
        out = first.new_empty(batch, height, s, width, s, channels)
        for p in range(s):
            for q in range(s):
                out[:, :, p, :, q, :] = self._phase(outs, p, q).permute(0, 2, 3, 1)
        return out.reshape(batch, height * s, width * s, channels).permute(0, 3, 1, 2)


class SubpixelUpBlock3d(nn.Module):
    """UpBlock3d (nearest ×2 in H, W → conv → BN → ReLU) with BN folded and no upsampling."""

    def __init__(self, block: UpBlock3d) -> None:
        super().__init__()
        conv = copy.deepcopy(block.conv)
        fold_batch_norm(conv, block.norm)
        self.conv = UpsampledConv(conv.weight.detach(), conv.bias.detach(), factor=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.conv(x))


# ---------------------------------------------------------------------------------------------
# SPADE decoder


def _normalize(x: torch.Tensor) -> torch.Tensor:
    """Instance norm without affine parameters (biased variance, eps 1e-5, as torch's)."""
    var, mean = torch.var_mean(x, dim=(2, 3), keepdim=True, correction=0)
    rstd = torch.rsqrt(var + INSTANCE_NORM_EPS)
    return torch.addcmul(-mean * rstd, x, rstd)


def _modulate(
    normalized: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor | None = None
) -> torch.Tensor:
    """normalized·(1 + γ) + β (β optional), where `normalized` may be at 1/s of γ's
    resolution: it is broadcast over s×s blocks, which is nearest upsampling."""
    batch, channels, height, width = normalized.shape
    full_h, full_w = gamma.shape[-2:]
    s_h, s_w = full_h // height, full_w // width
    small = normalized.reshape(batch, channels, height, 1, width, 1)
    gamma = gamma.reshape(batch, channels, height, s_h, width, s_w)
    if beta is None:
        out = torch.addcmul(small, small, gamma)
    else:
        beta = beta.reshape(batch, channels, height, s_h, width, s_w)
        out = torch.addcmul(beta + small, small, gamma)
    return out.reshape(batch, channels, full_h, full_w)


class FusedSPADE(nn.Module):
    """SPADE's label branch for a segmap at 1/`factor` resolution: ReLU(shared conv), then one
    conv producing [γ, β].

    With `project` (a 1×1 conv matrix P applied after the SPADE, as the learned shortcut
    does), β is replaced by P·β, computed directly by a conv with weights P∘W_β: P(n(1+γ) + β)
    = P(n(1+γ)) + P·β, and P·β has fewer channels than β.
    """

    def __init__(self, spade: SPADE, factor: int, project: torch.Tensor | None = None) -> None:
        super().__init__()
        shared: nn.Conv2d = spade.mlp_shared[0]  # type: ignore[assignment]
        self.shared = UpsampledConv(shared.weight.detach(), shared.bias.detach(), factor)
        beta_weight, beta_bias = spade.mlp_beta.weight.detach(), spade.mlp_beta.bias.detach()
        if project is not None:
            beta_weight = torch.einsum("oc,cikl->oikl", project, beta_weight)
            beta_bias = project @ beta_bias
        self.gamma_channels = spade.mlp_gamma.out_channels
        self.gamma_beta = nn.Conv2d(
            spade.mlp_gamma.in_channels, self.gamma_channels + beta_weight.shape[0], 3, padding=1
        )
        with torch.no_grad():
            self.gamma_beta.weight.copy_(torch.cat([spade.mlp_gamma.weight, beta_weight]))
            self.gamma_beta.bias.copy_(torch.cat([spade.mlp_gamma.bias, beta_bias]))

    def forward(
        self, segmap: torch.Tensor, windows: dict | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(γ, β) — or (γ, P·β) with `project` — as channel views of one conv output."""
        hidden = F.relu(self.shared(segmap, windows))
        gamma_beta = self.gamma_beta(hidden.contiguous(memory_format=torch.channels_last))
        return gamma_beta[:, : self.gamma_channels], gamma_beta[:, self.gamma_channels :]


def _plain_conv(conv: nn.Module) -> nn.Conv2d:
    """A spectral-norm conv as an ordinary conv holding its eval-mode weight."""
    weight = conv.normalized_weight().detach()
    plain = nn.Conv2d(weight.shape[1], weight.shape[0], weight.shape[-1],
                      padding=weight.shape[-1] // 2, bias=conv.bias is not None)
    with torch.no_grad():
        plain.weight.copy_(weight)
        if conv.bias is not None:
            plain.bias.copy_(conv.bias)
    return plain


class FusedSPADEBlock(nn.Module):
    """SPADEResnetBlock whose input may still be at 1/`upsample` resolution (the decoder's ×2
    nearest upsampling is folded into the block)."""

    def __init__(self, block: SPADEResnetBlock, upsample: int, label_factor: int) -> None:
        super().__init__()
        self.upsample = upsample
        self.conv_0 = _plain_conv(block.conv_0)
        self.conv_1 = _plain_conv(block.conv_1)
        self.norm_0 = FusedSPADE(block.norm_0, label_factor)
        self.norm_1 = FusedSPADE(block.norm_1, label_factor)
        self.learned_shortcut = block.learned_shortcut
        if self.learned_shortcut:
            self.conv_s = _plain_conv(block.conv_s)
            projection = self.conv_s.weight.detach()[:, :, 0, 0]
            self.norm_s = FusedSPADE(block.norm_s, label_factor, project=projection)
        elif upsample != 1:
            raise ValueError("an upsampling block needs a learned shortcut")

    def forward(
        self, x: torch.Tensor, segmap: torch.Tensor, windows: dict | None = None
    ) -> torch.Tensor:
        normalized = _normalize(x)
        dx = _modulate(normalized, *self.norm_0(segmap, windows))
        dx = self.conv_0(F.leaky_relu(dx, LEAKY_RELU_SLOPE_SPADE, inplace=True))
        dx = _modulate(_normalize(dx), *self.norm_1(segmap, windows))
        dx = self.conv_1(F.leaky_relu(dx, LEAKY_RELU_SLOPE_SPADE, inplace=True))
        if not self.learned_shortcut:
            return x + dx
        gamma, projected_beta = self.norm_s(segmap, windows)
        shortcut = self.conv_s(_modulate(normalized, gamma))
        return (shortcut + projected_beta).add_(dx)


class FusedSPADEDecoder(nn.Module):
    """SPADEDecoder with the rewrites above; same input, same output."""

    def __init__(self, decoder: SPADEDecoder) -> None:
        super().__init__()
        self.fc = copy.deepcopy(decoder.fc)
        self.middle = nn.ModuleList(
            FusedSPADEBlock(block, upsample=1, label_factor=1) for block in decoder.middle_blocks()
        )
        self.up_0 = FusedSPADEBlock(decoder.up_0, upsample=2, label_factor=2)
        self.up_1 = FusedSPADEBlock(decoder.up_1, upsample=2, label_factor=4)
        self.conv_img = copy.deepcopy(decoder.conv_img)
        self.to(memory_format=torch.channels_last)

    def forward(self, feature: torch.Tensor) -> torch.Tensor:
        segmap = feature.contiguous(memory_format=torch.channels_last)
        x = self.fc(segmap)
        for block in self.middle:
            x = block(x, segmap)
        # Every sub-pixel label conv reads shifted windows of the same segmap: cut them once.
        spans = self.up_0.norm_0.shared.spans + self.up_1.norm_0.shared.spans
        windows = padded_windows(segmap, spans)
        x = self.up_0(x, segmap, windows)
        x = self.up_1(x, segmap, windows)
        x = F.leaky_relu(x, LEAKY_RELU_SLOPE_SPADE).contiguous(memory_format=torch.channels_last)
        return torch.sigmoid(self.conv_img(x))


# ---------------------------------------------------------------------------------------------
# Warping network and the whole receiver step


def fused_warping_network(warping: WarpingNetwork) -> WarpingNetwork:
    """A copy of `warping` with sub-pixel hourglass up blocks and BatchNorms folded."""
    fused = copy.deepcopy(warping)
    for decoder in fused.modules():
        if isinstance(decoder, HourglassDecoder):
            decoder.up_blocks = nn.ModuleList(SubpixelUpBlock3d(b) for b in decoder.up_blocks)
    fold_conv_norm_pairs(fused)
    return fused.eval()


class FusedWarpDecode(nn.Module):
    """G(W(f_s, x_d, x_s)["out"]) computed by the fused networks."""

    def __init__(self, warping: WarpingNetwork, decoder: SPADEDecoder) -> None:
        super().__init__()
        self.warping_module = fused_warping_network(warping)
        self.spade_generator = FusedSPADEDecoder(decoder).eval()

    def forward(
        self, feature_3d: torch.Tensor, kp_driving: torch.Tensor, kp_source: torch.Tensor
    ) -> torch.Tensor:
        warped = self.warping_module(feature_3d, kp_driving=kp_driving, kp_source=kp_source)
        return self.spade_generator(warped["out"])


class PlainWarpDecode(nn.Module):
    """G(W(f_s, x_d, x_s)["out"]) with the networks as loaded (the reference computation)."""

    def __init__(self, warping: WarpingNetwork, decoder: SPADEDecoder) -> None:
        super().__init__()
        self.warping_module = warping
        self.spade_generator = decoder

    def forward(
        self, feature_3d: torch.Tensor, kp_driving: torch.Tensor, kp_source: torch.Tensor
    ) -> torch.Tensor:
        warped = self.warping_module(feature_3d, kp_driving=kp_driving, kp_source=kp_source)
        return self.spade_generator(warped["out"])
