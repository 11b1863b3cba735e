"""UNet2DModel: diffusers' UNet2DModel (config vocabulary, defaults, weight names) on
pixelforge's layers, forward and backward.

Layout (the names are the state-dict keys diffusers uses, so checkpoints move both ways):

    sample (N, in_channels, H, W), timesteps (N,)
      time_proj: sinusoids (N, block_out_channels[0]); time_embedding.linear_1 -> SiLU -> linear_2
      (+ class_embedding(labels)) = emb (N, time_embed_dim)
      conv_in -> (N, C0, H, W)
      down_blocks[i]: layers_per_block x (ResnetBlock2D [+ Attention]) [+ downsampler, stride 2]
      mid_block: ResnetBlock2D, [Attention], ResnetBlock2D
      up_blocks[i]: (layers_per_block + 1) x (concat skip, ResnetBlock2D [+ Attention]) [+ upsampler]
      conv_norm_out -> SiLU -> conv_out -> (N, out_channels, H, W)

ResnetBlock2D: GroupNorm+SiLU (one fused pass) -> conv3x3 -> + time_emb_proj(SiLU(emb)) ->
GroupNorm+SiLU -> dropout -> conv3x3, + the input (1x1 conv_shortcut when channels change), all
divided by output_scale_factor. "scale_shift" conditioning: GroupNorm, h * (1 + scale) + shift,
SiLU. Attention: GroupNorm, to_q / to_k / to_v over the H*W positions, softmax(q k^T / sqrt(d))
v per head, to_out.0, + the input, / rescale_output_factor.

Differences from diffusers that do not change the math: SiLU(emb) is computed once for all
resnets (each diffusers resnet recomputes it), and q, k, v come from one packed product.
"""
from __future__ import annotations

import math

import numpy as np

from .. import _backend
from .. import functional as F
from .. import nn
from .._validate import integer
from ..tensor import Tensor, cat

__all__ = ["UNet2DModel", "UNET_DEFAULTS", "DATA_KEYS", "timestep_sinusoids"]

# diffusers' UNet2DModel defaults (diffusers 0.2x-0.4x)
UNET_DEFAULTS = dict(
    sample_size=None, in_channels=3, out_channels=3, center_input_sample=False,
    time_embedding_type="positional", time_embedding_dim=None, freq_shift=0, flip_sin_to_cos=True,
    down_block_types=("DownBlock2D", "AttnDownBlock2D", "AttnDownBlock2D", "AttnDownBlock2D"),
    mid_block_type="UNetMidBlock2D",
    up_block_types=("AttnUpBlock2D", "AttnUpBlock2D", "AttnUpBlock2D", "UpBlock2D"),
    block_out_channels=(224, 448, 672, 896), layers_per_block=2, mid_block_scale_factor=1,
    downsample_padding=1, downsample_type="conv", upsample_type="conv", dropout=0.0, act_fn="silu",
    attention_head_dim=8, norm_num_groups=32, attn_norm_num_groups=None, norm_eps=1e-5,
    resnet_time_scale_shift="default", add_attention=True, class_embed_type=None, num_class_embeds=None,
)
# the keys a generative model sets from its data (image shape, number of classes)
DATA_KEYS = ("in_channels", "out_channels", "sample_size", "num_class_embeds")
# keys diffusers writes that do not change the network
_INERT = ("_class_name", "_diffusers_version", "_name_or_path", "num_train_timesteps")
_DOWN = ("DownBlock2D", "AttnDownBlock2D")
_UP = ("UpBlock2D", "AttnUpBlock2D")
_CHOICES = dict(time_embedding_type=("positional",), mid_block_type=("UNetMidBlock2D", None),
                downsample_type=("conv",), upsample_type=("conv",), act_fn=("silu", "swish"),
                resnet_time_scale_shift=("default", "scale_shift"), class_embed_type=(None,))


def _bad(key, value, supported):
    return ValueError(f"{key}: unsupported value {value!r}; supported: {supported}")


def check_config(config: dict) -> dict:
    """The full config (defaults filled in) after checking every key and value; ValueError
    naming the key, the value and what is supported."""
    unknown = sorted(set(config) - set(UNET_DEFAULTS) - set(_INERT))
    if unknown:
        raise ValueError(f"config: unknown key(s) {unknown}; UNet2DModel accepts {sorted(UNET_DEFAULTS)}")
    c = {**UNET_DEFAULTS, **{k: v for k, v in config.items() if k not in _INERT}}
    for key, options in _CHOICES.items():
        if c[key] not in options:
            raise _bad(key, c[key], options)
    for key in ("in_channels", "out_channels", "layers_per_block", "norm_num_groups"):
        c[key] = integer(c[key], key, min_value=1, wrong_type=ValueError)
    for key in ("freq_shift", "downsample_padding"):
        c[key] = integer(c[key], key, min_value=0, wrong_type=ValueError)
    for key in ("time_embedding_dim", "attention_head_dim", "attn_norm_num_groups"):
        if c[key] is not None:
            c[key] = integer(c[key], key, min_value=1, wrong_type=ValueError)
    if c["num_class_embeds"] is not None:
        c["num_class_embeds"] = integer(c["num_class_embeds"], "num_class_embeds", min_value=1, wrong_type=ValueError)
    for key in ("center_input_sample", "flip_sin_to_cos", "add_attention"):
        if not isinstance(c[key], (bool, np.bool_)):
            raise _bad(key, c[key], "True or False")
        c[key] = bool(c[key])
    for key, lo in (("mid_block_scale_factor", None), ("norm_eps", None), ("dropout", 0.0)):
        v = c[key]
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) \
                or (v <= 0 if lo is None else not 0 <= v < 1):
            raise _bad(key, v, "a positive number" if lo is None else "a number in [0, 1)")
        c[key] = float(v)
    boc = c["block_out_channels"]
    if not isinstance(boc, (list, tuple)) or not boc:
        raise _bad("block_out_channels", boc, "a non-empty list of positive ints")
    c["block_out_channels"] = tuple(integer(b, "block_out_channels", min_value=1, wrong_type=ValueError) for b in boc)
    for key, kinds in (("down_block_types", _DOWN), ("up_block_types", _UP)):
        v = c[key]
        if not isinstance(v, (list, tuple)) or any(b not in kinds for b in v):
            raise _bad(key, v, f"a list of {kinds}")
        if len(v) != len(c["block_out_channels"]):
            raise ValueError(f"{key}: {len(v)} blocks for {len(c['block_out_channels'])} block_out_channels "
                             f"{list(c['block_out_channels'])}; one block per entry")
        c[key] = tuple(v)
    ss = c["sample_size"]
    if ss is not None:  # informational (diffusers' pipelines read it); kept as given
        for s in (ss if isinstance(ss, (list, tuple)) and len(ss) == 2 else (ss,)):
            integer(s, "sample_size", min_value=1, wrong_type=ValueError)
    g = c["norm_num_groups"]
    for ch in c["block_out_channels"]:
        if ch % g:
            raise ValueError(f"norm_num_groups: {g} must divide every block_out_channels entry, "
                             f"got {list(c['block_out_channels'])}")
    heads_at = [ch for ch, t in zip(c["block_out_channels"], c["down_block_types"]) if t.startswith("Attn")]
    heads_at += [ch for ch, t in zip(reversed(c["block_out_channels"]), c["up_block_types"]) if t.startswith("Attn")]
    if c["mid_block_type"] and c["add_attention"]:
        heads_at.append(c["block_out_channels"][-1])
        ag = c["attn_norm_num_groups"]
        if ag is not None and c["block_out_channels"][-1] % ag:
            raise ValueError(f"attn_norm_num_groups: {ag} must divide {c['block_out_channels'][-1]}")
    d = c["attention_head_dim"]
    for ch in heads_at:
        if d is not None and ch % d:
            raise ValueError(f"attention_head_dim: {d} must divide the {ch} channels of every attention block")
    return c


def timestep_sinusoids(timesteps, dim, flip_sin_to_cos=True, freq_shift=0):
    """diffusers' get_timestep_embedding in float32, as torch computes it: (N,) -> (N, dim).

    freqs_j = exp(-ln(10000) * j / (dim/2 - freq_shift)); [sin(t freqs), cos(t freqs)] (flipped
    to [cos, sin] with flip_sin_to_cos), zero-padded for an odd dim."""
    half = dim // 2
    if half - freq_shift == 0:
        raise ValueError(f"freq_shift: {freq_shift} leaves no frequencies for a {dim}-wide embedding")
    t = np.asarray(timesteps).astype(np.float32).reshape(-1)
    exponent = np.float32(-math.log(10000.0)) * np.arange(half, dtype=np.float32)
    freqs = np.exp(exponent / np.float32(half - freq_shift))
    args = t[:, None] * freqs[None, :]
    sin, cos = np.sin(args), np.cos(args)
    out = np.concatenate([cos, sin] if flip_sin_to_cos else [sin, cos], axis=1)
    if dim % 2:
        out = np.pad(out, ((0, 0), (0, 1)))
    return out.astype(np.float32)


class ResnetBlock2D(nn.Module):
    """(N, cin, H, W), silu(emb) (N, temb) -> (N, cout, H, W)."""

    def __init__(self, cin, cout, temb, groups, eps, dropout=0.0, scale_shift=False, output_scale_factor=1.0):
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, cin, eps=eps)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.time_emb_proj = nn.Linear(temb, 2 * cout if scale_shift else cout)
        self.norm2 = nn.GroupNorm(groups, cout, eps=eps)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.conv_shortcut = nn.Conv2d(cin, cout, 1) if cin != cout else None
        self.p = float(dropout)
        self.scale_shift = bool(scale_shift)
        self.output_scale_factor = float(output_scale_factor)

    def forward(self, x, semb):
        h = self.conv1(self.norm1(x, act="silu"))
        e = self.time_emb_proj(semb)
        n, c = e.shape[0], h.shape[1]
        if self.scale_shift:
            scale, shift = e[:, :c].reshape(n, c, 1, 1), e[:, c:].reshape(n, c, 1, 1)
            h = F.silu(self.norm2(h) * (scale + 1.0) + shift)
        else:
            h = self.norm2(h + e.reshape(n, c, 1, 1), act="silu")
        if self.p and self.training:
            h = F.dropout(h, self.p, True)
        h = self.conv2(h)
        out = h + (self.conv_shortcut(x) if self.conv_shortcut is not None else x)
        return out if self.output_scale_factor == 1.0 else out / self.output_scale_factor


class AttentionBlock(nn.Module):
    """diffusers' Attention as the UNet2D blocks use it: self-attention over H*W positions with a
    residual; (N, C, H, W) -> (N, C, H, W)."""

    def __init__(self, channels, head_dim, groups, eps, rescale_output_factor=1.0):
        super().__init__()
        self.heads = channels // head_dim
        self.group_norm = nn.GroupNorm(groups, channels, eps=eps) if groups else None
        self.to_q = nn.Linear(channels, channels)
        self.to_k = nn.Linear(channels, channels)
        self.to_v = nn.Linear(channels, channels)
        self.to_out = nn.ModuleList([nn.Linear(channels, channels)])
        self.rescale_output_factor = float(rescale_output_factor)

    def forward(self, x):
        n, c, h, w = x.shape
        y = self.group_norm(x) if self.group_norm is not None else x
        seq = y.reshape(n, c, h * w).transpose(1, 2)                       # (N, HW, C)
        wqkv = cat([self.to_q.weight, self.to_k.weight, self.to_v.weight], dim=0)  # (3C, C)
        bqkv = cat([self.to_q.bias, self.to_k.bias, self.to_v.bias], dim=0)
        o = F._packed_attention(F.linear(seq, wqkv, bqkv), self.heads, self.heads)  # (N, HW, C)
        o = self.to_out[0](o).transpose(1, 2).reshape(n, c, h, w)
        out = o + x
        return out if self.rescale_output_factor == 1.0 else out / self.rescale_output_factor


class Downsample2D(nn.Module):
    """conv3x3 stride 2; padding 0 pads one row and column at the bottom/right first."""

    def __init__(self, channels, padding):
        super().__init__()
        self.padding = int(padding)
        self.conv = nn.Conv2d(channels, channels, 3, stride=2, padding=self.padding)

    def forward(self, x):
        return self.conv(F.pad(x, (0, 1, 0, 1)) if self.padding == 0 else x)


class Upsample2D(nn.Module):
    """nearest x2, conv3x3."""

    def __init__(self, channels):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x):
        return self.conv(F.interpolate(x, scale_factor=2))


class _Block(nn.Module):
    """A down or up block: resnets, optional attentions, optional resampler."""

    def __init__(self, resnets, attentions, resampler, kind):
        super().__init__()
        self.resnets = nn.ModuleList(resnets)
        if attentions:
            self.attentions = nn.ModuleList(attentions)
        else:
            self.attentions = None
        if resampler is not None:
            setattr(self, "downsamplers" if kind == "down" else "upsamplers", nn.ModuleList([resampler]))
        self.kind = kind

    def _resampler(self):
        m = self._modules.get("downsamplers" if self.kind == "down" else "upsamplers")
        return None if m is None else m[0]

    def down(self, x, semb):
        skips = []
        for i, r in enumerate(self.resnets):
            x = r(x, semb)
            if self.attentions is not None:
                x = self.attentions[i](x)
            skips.append(x)
        ds = self._resampler()
        if ds is not None:
            x = ds(x)
            skips.append(x)
        return x, skips

    def up(self, x, skips, semb):
        for i, r in enumerate(self.resnets):
            x = r(cat([x, skips.pop()], dim=1), semb)
            if self.attentions is not None:
                x = self.attentions[i](x)
        us = self._resampler()
        return x if us is None else us(x)


class _MidBlock(nn.Module):
    def __init__(self, resnets, attention):
        super().__init__()
        self.resnets = nn.ModuleList(resnets)
        self.attentions = nn.ModuleList([attention]) if attention is not None else None

    def forward(self, x, semb):
        x = self.resnets[0](x, semb)
        if self.attentions is not None:
            x = self.attentions[0](x)
        return self.resnets[1](x, semb)


class _TimestepEmbedding(nn.Module):
    def __init__(self, cin, dim):
        super().__init__()
        self.linear_1 = nn.Linear(cin, dim)
        self.linear_2 = nn.Linear(dim, dim)

    def forward(self, x):
        return self.linear_2(F.silu(self.linear_1(x)))


class UNet2DModel(nn.Module):
    """diffusers' UNet2DModel on pixelforge: ``UNet2DModel(**config)`` with diffusers' keys and
    defaults (see :data:`UNET_DEFAULTS`); ``config`` holds the full checked config.

    ``forward(sample, timesteps, class_labels=None)``: sample (N, in_channels, H, W) Tensor or
    array; timesteps an int or (N,) ints (host); class_labels (N,) ints when num_class_embeds
    is set -> (N, out_channels, H, W) Tensor (H, W divisible by 2^(levels - 1))."""

    def __init__(self, **config):
        super().__init__()
        c = check_config(config)
        self.config = c
        boc = c["block_out_channels"]
        temb = c["time_embedding_dim"] or boc[0] * 4
        groups, eps, lpb = c["norm_num_groups"], c["norm_eps"], c["layers_per_block"]
        shift = c["resnet_time_scale_shift"] == "scale_shift"
        head = c["attention_head_dim"]

        def resnet(cin, cout, osf=1.0):
            return ResnetBlock2D(cin, cout, temb, groups, eps, c["dropout"], shift, osf)

        def attn(ch, g=groups, osf=1.0):
            return AttentionBlock(ch, head or ch, g, eps, osf)

        self.conv_in = nn.Conv2d(c["in_channels"], boc[0], 3, padding=1)
        self.time_embedding = _TimestepEmbedding(boc[0], temb)
        self.class_embedding = nn.Embedding(c["num_class_embeds"], temb) if c["num_class_embeds"] else None
        self.down_blocks = nn.ModuleList()
        cout = boc[0]
        for i, kind in enumerate(c["down_block_types"]):
            cin, cout = cout, boc[i]
            last = i == len(boc) - 1
            rs = [resnet(cin if j == 0 else cout, cout) for j in range(lpb)]
            ats = [attn(cout) for _ in range(lpb)] if kind == "AttnDownBlock2D" else None
            self.down_blocks.append(_Block(rs, ats, None if last else Downsample2D(cout, c["downsample_padding"]),
                                           "down"))
        if c["mid_block_type"] is None:
            self.mid_block = None
        else:
            ch, osf = boc[-1], c["mid_block_scale_factor"]
            ag = c["attn_norm_num_groups"]
            if ag is None:  # diffusers: no norm in the mid attention under scale_shift
                ag = groups if not shift else None
            self.mid_block = _MidBlock([resnet(ch, ch, osf), resnet(ch, ch, osf)],
                                       attn(ch, ag, osf) if c["add_attention"] else None)
        self.up_blocks = nn.ModuleList()
        rev = list(reversed(boc))
        cout = rev[0]
        for i, kind in enumerate(c["up_block_types"]):
            prev, cout = cout, rev[i]
            cskip_last = rev[min(i + 1, len(boc) - 1)]
            last = i == len(boc) - 1
            rs = [resnet((prev if j == 0 else cout) + (cskip_last if j == lpb else cout), cout)
                  for j in range(lpb + 1)]
            ats = [attn(cout) for _ in range(lpb + 1)] if kind == "AttnUpBlock2D" else None
            self.up_blocks.append(_Block(rs, ats, None if last else Upsample2D(cout), "up"))
        self.conv_norm_out = nn.GroupNorm(groups, boc[0], eps=eps)
        self.conv_out = nn.Conv2d(boc[0], c["out_channels"], 3, padding=1)

    @property
    def levels(self):
        return len(self.config["block_out_channels"])

    def forward(self, sample, timesteps, class_labels=None):
        c = self.config
        x = sample if isinstance(sample, Tensor) else Tensor(sample, requires_grad=False)
        if len(x.shape) != 4 or x.shape[1] != c["in_channels"]:
            raise ValueError(f"sample: expected (N, {c['in_channels']}, H, W), got shape {tuple(x.shape)}")
        n, _, h, w = x.shape
        f = 2 ** (self.levels - 1)
        if h % f or w % f:
            raise ValueError(f"sample: H and W must be multiples of {f} for {self.levels} levels, got {h}x{w}")
        t = np.asarray(_backend.to_host(timesteps))
        if t.ndim == 0:
            t = np.full(n, t)
        if t.shape != (n,) or t.dtype.kind not in "iuf":
            raise ValueError(f"timesteps: expected a number or ({n},) numbers, got shape {t.shape} dtype {t.dtype}")
        if c["center_input_sample"]:
            x = x * 2.0 - 1.0
        xp = _backend.xp_of(x.data)
        sinus = timestep_sinusoids(t, c["block_out_channels"][0], c["flip_sin_to_cos"], c["freq_shift"])
        emb = self.time_embedding(Tensor(xp.asarray(sinus), requires_grad=False))
        if self.class_embedding is not None:
            if class_labels is None:
                raise ValueError("class_labels: this UNet has class embeddings (num_class_embeds); pass labels")
            emb = emb + self.class_embedding(class_labels)
        elif class_labels is not None:
            raise ValueError("class_labels: this UNet has no class embeddings (num_class_embeds is None)")
        semb = F.silu(emb)
        x = self.conv_in(x)
        skips = [x]
        for blk in self.down_blocks:
            x, s = blk.down(x, semb)
            skips += s
        if self.mid_block is not None:
            x = self.mid_block(x, semb)
        for blk in self.up_blocks:
            x = blk.up(x, skips, semb)
        return self.conv_out(self.conv_norm_out(x, act="silu"))

    def extra_repr(self):
        c = self.config
        return (f"block_out_channels={list(c['block_out_channels'])}, layers_per_block={c['layers_per_block']}, "
                f"down={list(c['down_block_types'])}, up={list(c['up_block_types'])}")
