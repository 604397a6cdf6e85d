"""Prompts into conditioning: exactly as the diffusers pipelines encode a prompt that fits, and, for
longer prompts and weighted ones, in 77-token chunks as A1111 and ComfyUI do.

A prompt that fits one chunk with weighting ``none`` takes the pipelines' own path, bit for bit.
Otherwise the prompt is tokenized into chunks of 75 tokens (plus start and end, padded to 77),
each chunk is encoded on its own and the chunks are concatenated along the tokens; the pooled
embedding (SDXL) is the first chunk's. Token weights from the attention syntax
(nodes/prompt_syntax.py) are applied as the chosen tool does:

- ``a1111`` (A1111's ``sd_hijack_clip``): each token's embedding is multiplied by its weight, then
  the whole chunk is rescaled so its mean is what it was before weighting;
- ``comfy`` (ComfyUI's default token normalisation): a weighted token's embedding moves away from
  the embedding the empty prompt has at that position, ``empty + (z - empty) * weight``;
- ``none``: brackets are plain text, as diffusers reads them.
"""

from __future__ import annotations

from typing import Any

from .embeddings import Embedding, EmbeddingToken, split_references
from .prompt_syntax import Fragment, parse
from .values import ClipModel, Conditioning, TextEncoder

WEIGHTINGS = ("none", "comfy", "a1111")
COMMA_BACKTRACK = 20  # A1111: a full chunk breaks after a comma this close to its end


def tokenize_prompt(tokenizer, text: str):
    """(input_ids [1, max_length], attention_mask, dropped text) exactly as
    StableDiffusionPipeline.encode_prompt tokenizes. The pipeline calls the tokenizer twice per
    prompt (padded + truncated, then untruncated to report what was cut), host time in front of
    every run's GPU work; a prompt that fits needs only the untruncated call."""
    import torch

    limit = tokenizer.model_max_length
    full = tokenizer(text).input_ids  # BOS + tokens + EOS, nothing cut
    dropped = tokenizer.decode(full[limit - 1:-1]) if len(full) > limit else ""
    if dropped or tokenizer.padding_side != "right":  # rare: the tokenizer's own truncation
        ids = tokenizer(text, padding="max_length", max_length=limit, truncation=True, return_tensors="pt")
        return ids.input_ids, ids.attention_mask, dropped
    pad = limit - len(full)
    return (torch.tensor([full + [tokenizer.pad_token_id] * pad]),
            torch.tensor([[1] * len(full) + [0] * pad]), dropped)


def chunk_tokens(tokenizer, fragments: list[Fragment], weighting: str,
                 settings: dict[str, Any] | None = None) -> list[list[tuple[Any, float]]]:
    """The prompt's (token, weight) pairs in chunks of at most ``model_max_length - 2`` tokens:
    a1111 breaks a full chunk after a comma among its last 20 tokens; comfy keeps a word's tokens
    in one chunk; BREAK always starts a new chunk. With ``settings``, embeddings the text names
    take one EmbeddingToken per vector."""
    size = tokenizer.model_max_length - 2
    comma = tokenizer.convert_tokens_to_ids(",</w>")
    chunks: list[list[tuple[int, float]]] = []
    current: list[tuple[int, float]] = []

    def close() -> None:
        nonlocal current
        chunks.append(current)
        current = []

    for fragment in fragments:
        if fragment.chunk_break:
            if current:
                close()
            continue
        words: list[str | Embedding] = []
        for part in split_references(fragment.text, settings) if settings is not None else [fragment.text]:
            words += part.split() if weighting == "comfy" and isinstance(part, str) else [part]
        for word in words:
            ids = ([EmbeddingToken(word, i) for i in range(word.count)] if isinstance(word, Embedding)
                   else tokenizer(word, add_special_tokens=False).input_ids)
            tokens = [(t, fragment.weight) for t in ids]
            if weighting == "comfy" and current and len(tokens) <= size and len(current) + len(tokens) > size:
                close()  # the word moves whole to the next chunk
            for token in tokens:
                if len(current) == size:
                    commas = [i for i, (t, _) in enumerate(current) if t == comma]
                    if weighting == "a1111" and commas and size - commas[-1] - 1 <= COMMA_BACKTRACK:
                        moved = current[commas[-1] + 1:]
                        current = current[:commas[-1] + 1]
                        close()
                        current = moved
                    else:
                        close()
                current.append(token)
    if current or not chunks:
        close()
    return chunks


# An embedding's vectors replace the embeddings of tokens with this id: "!" (id 0) is never the
# end token nor the highest id, so the pooled output still comes from the end token.
PLACEHOLDER = 0


def _chunk_ids(tokenizer, chunk: list[tuple[Any, float]]):
    """[BOS] + tokens + [EOS], padded to 77 the way the family's tokenizer pads, and the weights."""
    length = tokenizer.model_max_length
    ids = [tokenizer.bos_token_id] + [PLACEHOLDER if isinstance(t, EmbeddingToken) else t for t, _ in chunk]
    ids.append(tokenizer.eos_token_id)
    weights = [1.0] + [w for _, w in chunk] + [1.0]
    mask = [1] * len(ids) + [0] * (length - len(ids))
    return ids + [tokenizer.pad_token_id] * (length - len(ids)), weights + [1.0] * (length - len(weights)), mask


def _encode_chunks(text_encoder: TextEncoder, chunks, device, clip_skip: int):
    """Hidden states ``[chunks, 77, dim]`` and the pooled output of each chunk (or None)."""
    import torch

    tokenizer = text_encoder.tokenizer
    rows = [_chunk_ids(tokenizer, chunk) for chunk in chunks]
    width = text_encoder.encoder.get_input_embeddings().embedding_dim
    vectors = [{1 + i: t.embedding.for_encoder(text_encoder.spec.subfolder, width)[t.index]
                for i, (t, _) in enumerate(chunk) if isinstance(t, EmbeddingToken)} for chunk in chunks]
    ids = torch.tensor([r[0] for r in rows], device=device)
    use_mask = not text_encoder.spec.penultimate and getattr(text_encoder.encoder.config, "use_attention_mask", False)
    mask = torch.tensor([r[2] for r in rows], device=device) if use_mask else None
    states, pooled = [], []
    for i in range(len(rows)):  # one at a time: the pipelines' batch of one, CUDA graphs included
        hidden, pool = text_encoder.encode(ids[i:i + 1], None if mask is None else mask[i:i + 1], clip_skip,
                                           vectors[i])
        states.append(hidden)
        pooled.append(pool)
    weights = torch.tensor([r[1] for r in rows], device=device, dtype=torch.float32)
    return torch.cat(states), pooled, weights


def _weighted(states, weights, weighting: str, empty):
    import torch

    if weighting == "none" or bool((weights == 1.0).all()):
        return states
    z = states.float()
    if weighting == "a1111":
        out = []
        for chunk, w in zip(z, weights):
            before = chunk.mean()
            chunk = chunk * w[:, None]
            out.append(chunk * (before / chunk.mean()))
        return torch.stack(out).to(states.dtype)
    # comfy
    empty = empty.float()
    return (empty + (z - empty) * weights[..., None]).to(states.dtype)


def encode_prompt(clip: ClipModel, text: str, clip_skip: int = 0, weighting: str = "none",
                  settings: dict[str, Any] | None = None) -> Conditioning:
    """The prompt's conditioning for this CLIP (one or two text encoders, as the family says);
    ``settings`` (the run's) say where embeddings are found."""
    import torch

    if weighting not in WEIGHTINGS:
        raise ValueError(f"weighting {weighting!r}: expected one of {', '.join(WEIGHTINGS)}")
    with torch.inference_mode():
        fragments = parse(text) if weighting != "none" else [Fragment(text)]
        tokenizer = clip.encoders[0].tokenizer
        chunks = chunk_tokens(tokenizer, fragments, weighting, settings or {})
        uses_embeddings = any(isinstance(t, EmbeddingToken) for chunk in chunks for t, _ in chunk)
        if weighting == "none" and len(chunks) == 1 and not uses_embeddings:
            return _pipeline_encode(clip, text, clip_skip)
        hidden, pooled, pads = [], None, []
        for text_encoder in clip.encoders:
            states, pools, weights = _encode_chunks(text_encoder, chunks, clip.device, clip_skip)
            empty_states, _, _ = _encode_chunks(text_encoder, [[]], clip.device, clip_skip)
            hidden.append(_weighted(states, weights, weighting, empty_states))
            pads.append(empty_states)
            if text_encoder.spec.pooled:
                pooled = pools[0]
        dtype = clip.encoders[-1].encoder.dtype
        embeds = torch.cat(hidden, dim=-1).reshape(1, -1, sum(h.shape[-1] for h in hidden))
        pad = torch.cat(pads, dim=-1)
    return Conditioning(embeds.to(dtype=dtype), text, pooled=pooled, pad_chunk=pad.to(dtype=dtype))


def _pipeline_encode(clip: ClipModel, text: str, clip_skip: int) -> Conditioning:
    """Tokenize and encode exactly as the family's pipeline does (``encode_prompt``): SD 1.x/2.x
    the last hidden state of their one encoder; SDXL the penultimate hidden states of both,
    concatenated, and the pooled output of the second."""
    import torch

    hidden, pooled = [], None
    for text_encoder in clip.encoders:
        input_ids, attention_mask, _ = tokenize_prompt(text_encoder.tokenizer, text)
        mask = None
        if not text_encoder.spec.penultimate and getattr(text_encoder.encoder.config, "use_attention_mask", False):
            mask = attention_mask.to(clip.device)
        states, pooled_out = text_encoder.encode(input_ids.to(clip.device), mask, clip_skip)
        hidden.append(states)
        if text_encoder.spec.pooled:
            pooled = pooled_out
    embeds = hidden[0] if len(hidden) == 1 else torch.cat(hidden, dim=-1)
    # The pipelines cast to the last encoder's dtype (SD: its only one; SDXL: text_encoder_2).
    return Conditioning(embeds.to(dtype=clip.encoders[-1].encoder.dtype), text, pooled=pooled)


def pad_to_same_length(cond, uncond, pad_chunk: Any):
    """Positive and negative embeddings of different chunk counts, the shorter padded with the
    empty prompt's chunk (as A1111 does) so both go through the UNet in one batch."""
    import torch

    if cond.shape[1] == uncond.shape[1]:
        return cond, uncond
    if pad_chunk is None:
        raise ValueError("the positive and negative prompts have different lengths and neither knows "
                         "its empty chunk; encode both with the same CLIP")
    length = max(cond.shape[1], uncond.shape[1])

    def pad(embeds):
        missing = (length - embeds.shape[1]) // pad_chunk.shape[1]
        if missing * pad_chunk.shape[1] != length - embeds.shape[1]:
            raise ValueError(f"prompt lengths {cond.shape[1]} and {uncond.shape[1]} tokens are not whole chunks")
        filler = pad_chunk.to(device=embeds.device, dtype=embeds.dtype).repeat(embeds.shape[0], missing, 1)
        return torch.cat([embeds, filler], dim=1)
    return pad(cond), pad(uncond)
