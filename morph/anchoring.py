"""Attention anchored to the two ends: the smooth path.

Every in-between frame of a morph segment takes, in each of the UNet's attention layers (self- and
cross-attention), its attention from the segment's two ends, weighted by how far along it is (``t``): with its
own queries Q it reads ``(1 - t) attention(Q, keys/values of end A) + t attention(Q, keys/values of end B)``.
This is the outer attention interpolation of AID (Attention Interpolation of Text-to-Image Diffusion, He et
al. 2024: ``QY-H00/attention-interpolation-diffusion``), which also offers it fused with the frame's own
keys (mix "outer" here) and a single softmax over all three ("fused"); DiffMorpher injects the ends'
self-attention keys/values the same way, with a weight. The frame thus draws its content from the two
pictures it lies between rather than wandering through others (a colour or background neither end has),
and changes by degrees as ``t`` moves. The mixes and what they did on ``toy``: :data:`DEFAULT_MIX`.

The ends themselves are rendered plainly (their attention is never touched): a frame at a prompt is exactly
the plain render of that prompt. As ``t`` goes to 0 a frame's latents, queries and attention go to end A's,
so the path is continuous into its ends.

**What an end is.** An end is any sample the UNet denoises alongside or before the frames, known by an id
(any hashable). Its attention inputs are recorded while it is denoised (:class:`Row` with ``record``) and
looked up by id and step by the frames anchored to it (``ends``). A prompt's render is one kind of end; a
DDIM-inverted upload denoised back is another: whatever latents and conditioning the caller gives the
recording rows, the frames anchor to them. Classifier-free guidance keeps its two halves apart: the ids
include the half, so an unconditional sample anchors to the ends' unconditional samples.

**Two ways to get the ends' keys/values** (:class:`Anchors` ``keep``):

* *cached* (``keep=True``): the ends are denoised first, once, and their attention inputs of every step are
  kept; every later batch of frames reads them (no extra UNet work; memory: :func:`cache_bytes`);
* *in batch* (``keep=False``): the ends ride along in every UNet batch that needs them (a little more UNet
  work per batch, memory for one step only).

Only the attention *inputs* are kept (the hidden states a self-attention layer projects to keys and values,
the text a cross-attention layer does), which halves the memory against keeping keys and values; the two
projections are recomputed per batch (cheap against the attention itself).

:meth:`Anchors.installed` sets the processors through diffusers' attention-processor API
(``unet.set_attn_processor``) and restores the UNet's own processors afterwards, whatever happens.
"""
from __future__ import annotations

import contextlib
import math
from collections.abc import Hashable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

#: Prior weight of the ends' keys against the frame's own in the "fused" mix.
DEFAULT_STRENGTH = 1.0
#: How a frame mixes the ends' attention (:class:`Anchors` ``mix``): "ends" (the default)
#: ``(1 - t) attention(own query, A) + t attention(own query, B)``; "outer" the same over [own; A] and [own; B]
#: (AID's fused outer interpolation; twice the keys); "fused" one softmax over [own; A; B] with prior weights
#: 1, (1 - t) and t. On toy, "fused" kept the frames at end A for most of the way and then jumped (the frame's
#: queries match the end it already resembles); "outer" and "ends" turned gradually, "ends" at half the cost.
DEFAULT_MIX = "ends"


@dataclass(frozen=True)
class Row:
    """What one sample of a UNet batch is to the anchoring.

    ``record``: this sample is an end; its attention inputs are kept under this id (plain attention).
    ``ends``: anchor this sample to these two ends' ids at ``t`` (0 = all the first). Neither: plain.
    """

    record: Hashable | None = None
    ends: tuple[Hashable, Hashable] | None = None
    t: float = 0.0


class Anchors:
    """The anchoring state of one render: the rows of the current UNet call, the current step, and the
    recorded attention inputs of the ends.

    ``keep``: keep every step's recordings (the cached way) rather than only the current step's (in batch).
    ``mix``: see :data:`DEFAULT_MIX`. ``strength``: the "fused" mix's prior weight of the ends' keys.
    ``adain``: also move each frame's latent statistics between the ends' (:meth:`normalize`); off by default:
    on toy (4 pairs, 12 frames, 10 steps) it changed max/mean by less than the pairs' spread (SSIM 1.93 →
    2.09, CIEDE2000 1.52 → 1.46 with perceptual pacing) and pulled the midpoint towards end A. (Latent
    blending, the first 8 of 25 steps of every frame on the straight line between the ends' latents, left the
    frames' colour detours as they were, so it is not here.)
    """

    def __init__(self, keep: bool = True, strength: float = DEFAULT_STRENGTH, mix: str = DEFAULT_MIX,
                 adain: bool = False):
        self.keep = keep
        self.mix = mix
        self.adain = adain
        self._latents: dict[tuple[Hashable, int], torch.Tensor] = {}
        self.strength = float(strength)
        self.step = 0
        self.rows: list[Row] = []
        # (layer, step or None for text, end id) -> attention input of that end (tokens x channels)
        self._store: dict[tuple[str, int | None, Hashable], torch.Tensor] = {}

    # ------------------------------------------------------------------------------------------ driving
    def begin(self, step: int, rows: Sequence[Row]) -> None:
        """Before a UNet call: its step index (0-based) and what each sample of its batch is."""
        if not self.keep and step != self.step:
            self._store = {k: v for k, v in self._store.items() if k[1] is None or k[1] >= step}
        self.step = int(step)
        self.rows = list(rows)

    def normalize(self, step: int, rows: Sequence[Row], latents: torch.Tensor) -> torch.Tensor:
        """After a denoising step: keep the ends' latents (rows that ``record``), and give every anchored
        frame's latents the per-channel mean and standard deviation interpolated between its two ends' at
        this step (AdaIN, as DiffMorpher does), so overall colour and contrast move straight from one end to
        the other. ``rows``: one per sample of ``latents`` (frames, not guidance halves)."""
        for j, row in enumerate(rows):
            if row.record is not None:
                self._latents[(row.record, step)] = latents[j].detach().clone()
        anchored = [j for j, row in enumerate(rows) if row.ends is not None]
        if not anchored or not self.adain:
            return latents
        out = latents.clone()
        for j in anchored:
            row = rows[j]
            a, b = (self._latents[(end, step)].float() for end in row.ends)  # type: ignore[union-attr]
            t = float(row.t)
            mean = (1 - t) * a.mean(dim=(1, 2), keepdim=True) + t * b.mean(dim=(1, 2), keepdim=True)
            std = (1 - t) * a.std(dim=(1, 2), keepdim=True) + t * b.std(dim=(1, 2), keepdim=True)
            x = latents[j].float()
            x = (x - x.mean(dim=(1, 2), keepdim=True)) / x.std(dim=(1, 2), keepdim=True).clamp_min(1e-6)
            out[j] = (x * std + mean).to(latents.dtype)
        if not self.keep:
            self._latents = {k: v for k, v in self._latents.items() if k[1] >= step}
        return out

    def nbytes(self) -> int:
        """Bytes the recorded attention inputs take now."""
        return sum(v.numel() * v.element_size() for v in self._store.values())

    def clear(self) -> None:
        self._store.clear()
        self._latents.clear()

    @contextlib.contextmanager
    def installed(self, unet: Any) -> Iterator[None]:
        """Anchoring processors on every attention layer of ``unet`` for the block; its own ones after it."""
        own = unet.attn_processors
        unet.set_attn_processor({name: AnchoredAttnProcessor(self, name, processor)
                                 for name, processor in own.items()})
        try:
            yield
        finally:
            unet.set_attn_processor(own)

    # ------------------------------------------------------------------------------------------ layers
    def _put(self, layer: str, cross: bool, end: Hashable, value: torch.Tensor) -> None:
        self._store[(layer, None if cross else self.step, end)] = value.detach().clone()

    def _get(self, layer: str, cross: bool, end: Hashable) -> torch.Tensor:
        try:
            return self._store[(layer, None if cross else self.step, end)]
        except KeyError:
            raise RuntimeError(f"anchoring: end {end!r} was not recorded at step {self.step} in {layer}; "
                               "an end must be denoised before (or with) the frames anchored to it") from None


class AnchoredAttnProcessor:
    """diffusers attention processor: plain scaled-dot-product attention for plain and recording rows, the
    anchored attention for anchored rows (see the module docstring). ``fallback`` (the layer's own processor)
    runs any call the anchoring does not cover (an attention mask, rows not described)."""

    def __init__(self, anchors: Anchors, name: str, fallback: Any):
        self.anchors = anchors
        self.name = name
        self.fallback = fallback

    def __call__(self, attn, hidden_states: torch.Tensor, encoder_hidden_states: torch.Tensor | None = None,
                 attention_mask: torch.Tensor | None = None, temb: torch.Tensor | None = None, *args, **kwargs):
        rows = self.anchors.rows
        if attention_mask is not None or len(rows) != hidden_states.shape[0] or attn.spatial_norm is not None:
            return self.fallback(attn, hidden_states, encoder_hidden_states, attention_mask, temb, *args, **kwargs)
        residual = hidden_states
        input_ndim = hidden_states.ndim
        if input_ndim == 4:
            batch, channel, height, width = hidden_states.shape
            hidden_states = hidden_states.view(batch, channel, height * width).transpose(1, 2)
        if attn.group_norm is not None:
            hidden_states = attn.group_norm(hidden_states.transpose(1, 2)).transpose(1, 2)
        cross = encoder_hidden_states is not None
        context = hidden_states
        if encoder_hidden_states is not None:
            context = encoder_hidden_states
            if attn.norm_cross:
                context = attn.norm_encoder_hidden_states(context)
        for i, row in enumerate(rows):
            if row.record is not None:
                self.anchors._put(self.name, cross, row.record, context[i])

        query = attn.to_q(hidden_states)
        out = torch.empty_like(query)
        plain = [i for i, r in enumerate(rows) if r.ends is None]
        anchored = [i for i, r in enumerate(rows) if r.ends is not None]
        if plain:
            out[plain] = self._attend(attn, query[plain], context[plain], None)
        if anchored:
            a = self.anchors
            own = context[anchored]
            ends = [torch.stack([a._get(self.name, cross, rows[i].ends[e]) for i in anchored])  # type: ignore[index]
                    for e in (0, 1)]
            t = torch.tensor([float(rows[i].t) for i in anchored], device=query.device,
                             dtype=query.dtype).view(-1, 1, 1)
            q = query[anchored]
            if a.mix == "fused":  # one softmax over [own; A; B], the ends' keys weighted (1 - t) and t
                n = context.shape[1]
                bias = torch.zeros(len(anchored), 1, 1, 3 * n, device=query.device, dtype=query.dtype)
                tt = t.view(-1, 1, 1).clamp(1e-6, 1 - 1e-6)
                bias[..., n:2 * n] = torch.log(a.strength * (1 - tt))
                bias[..., 2 * n:] = torch.log(a.strength * tt)
                out[anchored] = self._attend(attn, q, torch.cat([own, *ends], dim=1), bias)
            else:  # outer: (1 - t) attention over [own; A] + t attention over [own; B] ("ends": no own)
                with_own = a.mix == "outer"
                x0 = self._attend(attn, q, torch.cat([own, ends[0]], dim=1) if with_own else ends[0], None)
                x1 = self._attend(attn, q, torch.cat([own, ends[1]], dim=1) if with_own else ends[1], None)
                out[anchored] = (1 - t) * x0 + t * x1

        hidden_states = attn.to_out[0](out)
        hidden_states = attn.to_out[1](hidden_states)
        if input_ndim == 4:
            hidden_states = hidden_states.transpose(-1, -2).reshape(batch, channel, height, width)
        if attn.residual_connection:
            hidden_states = hidden_states + residual
        return hidden_states / attn.rescale_output_factor

    @staticmethod
    def _attend(attn, query: torch.Tensor, context: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        """Multi-head attention of ``query`` (b x n x d) over ``context``'s keys and values (b x m x c), with an
        additive logit ``bias`` (b x 1 x 1 x m) or none; b x n x d out."""
        b = query.shape[0]
        key, value = attn.to_k(context), attn.to_v(context)
        head_dim = key.shape[-1] // attn.heads
        q = query.view(b, -1, attn.heads, head_dim).transpose(1, 2)
        k = key.view(b, -1, attn.heads, head_dim).transpose(1, 2)
        v = value.view(b, -1, attn.heads, head_dim).transpose(1, 2)
        if attn.norm_q is not None:
            q = attn.norm_q(q)
        if attn.norm_k is not None:
            k = attn.norm_k(k)
        x = F.scaled_dot_product_attention(q, k, v, attn_mask=bias, dropout_p=0.0, is_causal=False)
        return x.transpose(1, 2).reshape(b, -1, attn.heads * head_dim).to(query.dtype)


def cache_bytes(unet: Any, latent_side: int, steps: int, ends: int, halves: int) -> int:
    """Bytes the cached way keeps for ``ends`` ends (x ``halves``: 2 with classifier-free guidance) over
    ``steps`` steps at ``latent_side`` x ``latent_side`` latents, from the UNet's architecture: every
    self-attention layer keeps its input (tokens at its resolution x its channels) per step, every
    cross-attention layer its text once. SD 1.5 at 512² (64² latents), fp16: 16 self-attention layers with
    11.6 M numbers per step, 23 MB per end and half and step; 2 ends x 2 halves x 25 steps = 2.3 GB.
    """
    from diffusers.models.attention_processor import Attention

    size = unet.dtype.itemsize if hasattr(unet, "dtype") else 4
    levels = len(unet.config.block_out_channels)
    per_step = per_text = 0
    for name, module in unet.named_modules():
        if not isinstance(module, Attention):
            continue
        if name.startswith("down_blocks."):
            level = int(name.split(".")[1])
        elif name.startswith("up_blocks."):
            level = levels - 1 - int(name.split(".")[1])
        else:
            level = levels - 1
        if module.is_cross_attention:
            per_text += 77 * module.to_k.in_features
        else:
            side = math.ceil(latent_side / 2 ** level)
            per_step += side * side * module.to_k.in_features
    return int((per_step * steps + per_text) * size * ends * halves)
