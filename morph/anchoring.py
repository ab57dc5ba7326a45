"""Attention anchored to the two ends: the smooth path.

Every in-between frame of a morph segment takes, in each of the UNet's attention layers (self- and
cross-attention), its keys and values from the segment's two ends, mixed by how far along it is (``t``): with
its own queries Q it reads ``attention(Q, (1 - t) keys of A + t keys of B, (1 - t) values of A + t values of
B)``. This is the inner attention interpolation of AID (Attention Interpolation of Text-to-Image Diffusion, He
et al. 2024: ``QY-H00/attention-interpolation-diffusion``) without the frame's own keys; DiffMorpher injects
the ends' self-attention keys/values the same way, with a weight. The frame thus draws its content from the
two pictures it lies between rather than wandering through others (a colour or background neither end has),
and changes by degrees as ``t`` moves; it costs one attention per layer, as a plain frame's. Tried on
``toy`` and left out (``bench/RESULTS.md``, the smooth path): the outer interpolation, ``(1 - t)
attention(Q, A) + t attention(Q, B)`` (as even: pair for pair a tie over 24 pairs; two attentions per layer
made the whole render 1.05x slower); AID's variants with the frame's own keys ("outer"
over [own; A] and [own; B]: as gradual at twice that cost; "fused", one softmax over [own; A; B] weighted 1,
1 - t, t: kept the frames at end A for most of the way and then jumped; the same over [A; B] alone: each query
took the end it matched best, a longer way round by ΔE); AdaIN of the latents towards the
ends' statistics (changed the evenness by less than the pairs' spread and pulled the midpoint towards end A).

Cross-attention reads only the two ends' texts (their keys/values mixed: with lerp interpolation that is the
frame's own mixed text), so the request's ``interpolation`` (lerp or slerp) matters on the plain path (and,
on the smooth path, only through SDXL's pooled text, which is no attention input).

**Colour straightened after decoding.** On ``toy`` the attention alone leaves the morph's colour detours
(black → green → blue backgrounds) where they were, and they are not the UNet's: the toy VAE decodes the
midpoint of a black and a blue picture's latents as green, so no path through latent space between the ends
decodes to a straight colour path. So every decoded frame in between gets :func:`straightened`: its
low-frequency colour (a Gaussian blur of :data:`STRAIGHTEN_BLUR` x its side) is replaced by that of the ends'
pixel cross-fade at its ``t``, its detail (shape outlines, texture: what the blur removes) stays its own.
The background goes black → dark blue → blue, and a colour both ends share stays. Tried instead and left
out (bench/RESULTS.md): pulling each frame all the way onto the line between its ends' latents (the frames
become latent cross-fades, the green stays; a partial pull is kept for the shapes, below), and blurs of
1/32 (more ghosting of the other end's outline) and 1/8 (less straight).

**Latents pulled.** Attention alone still lets a frame's shape wander: on ``toy`` a circle shrinks into a
small blob half-way to a square and grows back, a detour that adds up in the frames' colour differences
(CIEDE2000 path/direct 2.07 over 24 pairs, against 1.06 for the ends' pixel cross-fade). So after every
denoising step each frame in between moves :data:`LATENT_PULL` of the way onto the straight line between its
two ends' latents of that step, at its ``t`` (:meth:`Anchors.pull`; the ends' latents are kept per step
like their attention inputs); the rest of each step is its own. The frame's layout thus follows its ends'
from the first step, and its own denoising keeps it a picture rather than a double exposure: 0.7 took ΔE
path/direct to 1.40 and 1 − Gini to 0.87 on toy (bench/RESULTS.md). The price: a faint double outline where
the two ends' shapes differ most (more of it at 1: the frames become the ends' latent cross-fade, that is
two pictures on top of each other). Tried and left out: pulling only the first 20 or 23 of 25 steps all
the way (holes and drips where the last steps redraw the blend), 0.35 and 0.5 (less straight, less even).
Tuned on ``toy`` only: on SD 1.5 or SDXL it is unmeasured (no weights, no GPU here). Picture morphs are
not pulled: between two fixed pictures the seed is what a reroll changes, and a pull at every step shrinks
what it changes to almost nothing (a reroll's middle frame moved by 0.0001 of a grey level on ``toy``).

The ends themselves are rendered plainly (their attention and colour are never touched): a frame at a prompt
is exactly the plain render of that prompt. As ``t`` goes to 0 a frame's latents, queries and attention go to end A's,
so the path is continuous into its ends.

**What an end is.** An end is any sample the UNet denoises alongside or before the frames, known by an id
(any hashable). Its attention inputs are recorded while it is denoised (:class:`Row` with ``record``) and
looked up by id and step by the frames anchored to it (``ends``). A prompt's render is one kind of end; a
DDIM-inverted upload denoised back is another: whatever latents and conditioning the caller gives the
recording rows, the frames anchor to them. Classifier-free guidance keeps its two halves apart: the ids
include the half, so an unconditional sample anchors to the ends' unconditional samples.

**Two ways to get the ends' keys/values** (:class:`Anchors` ``keep``):

* *cached* (``keep=True``): the ends are denoised once, at the front of the render's first batch, and their
  attention inputs of every step are kept; the frames of that batch and of every later one read them (no
  extra UNet work; memory: :func:`cache_bytes`);
* *in batch* (``keep=False``): the ends ride along in every UNet batch that needs them (a little more UNet
  work per batch, memory for one step only).

Only the attention *inputs* are kept (the hidden states a self-attention layer projects to keys and values,
the text a cross-attention layer does), which halves the memory against keeping keys and values; each
layer call projects every end it needs once and shares the keys/values among all the frames anchored to
it (cheap against the attention itself).

:meth:`Anchors.installed` sets the processors through diffusers' attention-processor API
(``unet.set_attn_processor``) and restores the UNet's own processors afterwards, whatever happens.
"""
from __future__ import annotations

import contextlib
import math
from collections.abc import Hashable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

#: How far each frame in between moves, after every denoising step, onto the straight line between its two
#: ends' latents at its t (0: not at all, 1: onto it; the module docstring, "Latents pulled").
LATENT_PULL = 0.7
#: The colour straightening of every frame in between (:func:`straightened`): how far its low-frequency
#: colour moves onto the ends' cross-fade (0: not at all), and the blur that separates colour from detail
#: (Gaussian sigma as a share of the picture's side).
STRAIGHTEN = 1.0
STRAIGHTEN_BLUR = 1 / 16


@dataclass(frozen=True)
class Row:
    """What one sample of a UNet batch is to the anchoring.

    ``record``: this sample is an end; its attention inputs are kept under this id (plain attention).
    ``ends``: anchor this sample to these two ends' ids at ``t`` (0 = all the first). Neither: plain.
    """

    record: Hashable | None = None
    ends: tuple[Hashable, Hashable] | None = None
    t: float = 0.0


@dataclass
class _Part:
    """Samples of a UNet batch the attention treats alike: the plain ones (``ends`` None), or those anchored
    to the same two ends. ``index``: where they are in the batch (a slice where they lie together)."""

    index: slice | list[int]
    ends: tuple[Hashable, Hashable] | None
    ts: list[float]
    _weights: dict[tuple[torch.device, torch.dtype], torch.Tensor] = field(default_factory=dict)

    def t(self, like: torch.Tensor) -> torch.Tensor:
        """The samples' ``t`` (n x 1 x 1) on ``like``'s device and dtype, made once per batch."""
        key = (like.device, like.dtype)
        if key not in self._weights:
            self._weights[key] = torch.tensor(self.ts, device=like.device, dtype=like.dtype).view(-1, 1, 1)
        return self._weights[key]


class Anchors:
    """The anchoring state of one render: the rows of the current UNet call, the current step, and the
    recorded attention inputs of the ends.

    ``keep``: keep every step's recordings (the cached way) rather than only the current step's (in batch).
    """

    def __init__(self, keep: bool = True):
        self.keep = keep
        self.step = 0
        self.rows: list[Row] = []
        #: The current batch's rows grouped for the attention (:meth:`begin`).
        self.parts: list[_Part] = []
        #: Whether ``parts`` are slices that tile the batch in order (their outputs are just concatenated).
        self.tiled = True
        # (layer, step or None for text, end id) -> attention input of that end (tokens x channels)
        self._store: dict[tuple[str, int | None, Hashable], torch.Tensor] = {}
        # (step, end id) -> that end's latents after that step
        self._latents: dict[tuple[int, Hashable], torch.Tensor] = {}

    # ------------------------------------------------------------------------------------------ driving
    def begin(self, step: int, rows: Sequence[Row]) -> None:
        """Before a UNet call: its step index (0-based) and what each sample of its batch is."""
        if not self.keep and step != self.step:
            self._store = {k: v for k, v in self._store.items() if k[1] is None or k[1] >= step}
            self._latents = {k: v for k, v in self._latents.items() if k[0] >= step}
        self.step = int(step)
        rows = list(rows)
        if rows != self.rows:  # a new batch (every step of one batch has the same rows)
            self.rows = rows
            self._group()

    def _group(self) -> None:
        groups: dict[tuple[Hashable, Hashable] | None, list[int]] = {}
        for i, row in enumerate(self.rows):
            groups.setdefault(row.ends, []).append(i)
        self.parts = []
        for ends, index in sorted(groups.items(), key=lambda item: item[1][0]):
            together = index == list(range(index[0], index[-1] + 1))
            self.parts.append(_Part(slice(index[0], index[-1] + 1) if together else index, ends,
                                    [float(self.rows[i].t) for i in index]))
        starts = [p.index.start if isinstance(p.index, slice) else -1 for p in self.parts]
        stops = [p.index.stop if isinstance(p.index, slice) else -1 for p in self.parts]
        self.tiled = starts == [0] + stops[:-1]

    def clear(self) -> None:
        self._store.clear()
        self._latents.clear()

    def pull(self, step: int, rows: Sequence[Row], latents: torch.Tensor, strength: float) -> torch.Tensor:
        """After denoising step ``step`` of a batch whose samples are ``rows`` (one row per sample of
        ``latents``): keep the ends' latents of this step, and move each anchored sample ``strength`` of the way
        onto the straight line between its two ends' latents at its t (see "Latents pulled"). A strength of 0
        does nothing, not even keep them."""
        if strength <= 0:
            return latents
        for j, row in enumerate(rows):
            if row.record is not None:
                self._latents[(step, row.record)] = latents[j].detach().clone()
        anchored = [j for j, row in enumerate(rows) if row.ends is not None]
        if not anchored:
            return latents
        latents = latents.clone()
        for j in anchored:
            row = rows[j]
            try:
                a, b = (self._latents[(step, end)] for end in row.ends)  # type: ignore[union-attr]
            except KeyError:
                raise RuntimeError(f"anchoring: the latents of an end of {row.ends!r} were not kept at step {step}; "
                                   "an end must be denoised before (or with) the frames anchored to it") from None
            latents[j] += strength * (torch.lerp(a, b, row.t) - latents[j])
        return latents

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
        a = self.anchors
        rows = a.rows
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
                a._put(self.name, cross, row.record, context[i])

        query = attn.to_q(hidden_states)
        outs = []
        whole = len(a.parts) == 1  # one part is the whole batch: no indexing
        for part in a.parts:
            q = _heads(attn, query if whole else query[part.index], norm=attn.norm_q)
            if part.ends is None:  # plain: the samples' own keys/values
                outs.append(_attend(q, *_keys_values(attn, context if whole else context[part.index])))
                continue
            # attention over (1 - t) x end A's keys/values + t x end B's (both ends projected in one call)
            key, value = _keys_values(attn, torch.stack([a._get(self.name, cross, end) for end in part.ends]))
            t = part.t(query).unsqueeze(1)  # n x 1 x 1 x 1
            outs.append(_attend(q, key[:1] + t * (key[1:] - key[:1]), value[:1] + t * (value[1:] - value[:1])))
        if a.tiled:
            out = outs[0] if len(outs) == 1 else torch.cat(outs)
        else:
            out = torch.empty_like(query)
            for part, x in zip(a.parts, outs, strict=True):
                out[part.index] = x

        hidden_states = attn.to_out[0](out)
        hidden_states = attn.to_out[1](hidden_states)
        if input_ndim == 4:
            hidden_states = hidden_states.transpose(-1, -2).reshape(batch, channel, height, width)
        if attn.residual_connection:
            hidden_states = hidden_states + residual
        return hidden_states / attn.rescale_output_factor


def _heads(attn, x: torch.Tensor, norm: Any = None) -> torch.Tensor:
    """b x n x (heads · d) → b x heads x n x d, through the layer's per-head ``norm`` where it has one."""
    x = x.view(x.shape[0], -1, attn.heads, x.shape[-1] // attn.heads).transpose(1, 2)
    return norm(x) if norm is not None else x


def _keys_values(attn, context: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The layer's keys and values of ``context`` (b x m x c), each b x heads x m x d."""
    return _heads(attn, attn.to_k(context), norm=attn.norm_k), _heads(attn, attn.to_v(context))


def _attend(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
    """Multi-head attention (b x heads x n x d queries, b x heads x m x d keys/values); b x n x (heads · d)."""
    x = F.scaled_dot_product_attention(query, key, value, dropout_p=0.0, is_causal=False)
    return x.transpose(1, 2).reshape(query.shape[0], -1, query.shape[1] * query.shape[-1]).to(query.dtype)


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


def straightened(frame: Any, a: Any, b: Any, t: float, strength: float, blur: float) -> Any:
    """``frame`` (a PIL image between ends ``a`` and ``b`` at ``t``) with its low-frequency colour moved
    ``strength`` of the way onto that of the straight cross-fade ``(1 - t) a + t b``; its detail (what a blur
    of ``blur`` x its side removes) stays its own."""
    import numpy as np
    from PIL import Image

    sigma = max(0.5, blur * frame.width)
    r = int(3 * sigma)
    kernel = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma) ** 2)
    kernel /= kernel.sum()

    def low(x: np.ndarray) -> np.ndarray:  # separable Gaussian blur, edges mirrored
        for axis in (0, 1):
            pad = [(0, 0)] * 3
            pad[axis] = (r, r)
            x = np.apply_along_axis(np.convolve, axis, np.pad(x, pad, mode="reflect"), kernel, mode="valid")
        return x

    f, x, y = (np.asarray(im.convert("RGB"), dtype=np.float32) for im in (frame, a, b))
    target = (1 - t) * x + t * y
    out = f + strength * (low(target) - low(f))
    return Image.fromarray(np.clip(out + 0.5, 0, 255).astype(np.uint8))
