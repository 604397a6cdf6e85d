"""Prompt weighting and long prompts: the attention syntax, chunking with hand-counted tokens, the
published A1111/ComfyUI weighting formulas applied to the text encoder's own outputs, and long
prompts through the graph against the pipeline given the chunk embeddings."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from test_nodes_exactness import graph_image, reference_scheduler

import nodes  # noqa: F401
from graphs import Executor
from nodes.prompt_syntax import Fragment, parse
from nodes.prompts import chunk_tokens
from nodes.recipes import txt2img_graph


def weights(prompt):
    return [(f.text, round(f.weight, 4), f.chunk_break) for f in parse(prompt)]


@pytest.mark.parametrize(("prompt", "expected"), [
    ("a (red:1.3) cat", [("a ", 1.0, False), ("red", 1.3, False), (" cat", 1.0, False)]),
    ("((big)) [small]", [("big", 1.21, False), (" ", 1.0, False), ("small", 0.9091, False)]),
    ("(a (b:1.5) c)", [("a ", 1.1, False), ("b", 1.65, False), (" c", 1.1, False)]),
    (r"\(literal\) and \[too\]", [("(literal) and [too]", 1.0, False)]),
    ("(unclosed and ] stray", [("(unclosed and ] stray", 1.0, False)]),
    ("(a:b)", [("a:b", 1.1, False)]),  # not a number: the colon is text
    ("(x:0.5:2)", [("x:0.5", 2.0, False)]),  # the last colon gives the weight
    ("one BREAK two", [("one", 1.0, False), ("", 1.0, True), ("two", 1.0, False)]),
    ("BREAKFAST", [("BREAKFAST", 1.0, False)]),
    ("", []),
])
def test_attention_syntax(prompt, expected):
    assert weights(prompt) == expected


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="ab :.1(()[])\\ BREAK", max_size=60))
def test_the_parser_never_fails_and_keeps_every_letter(prompt):
    fragments = parse(prompt)
    assert all(f.weight > 0 for f in fragments)
    letters = "".join(f.text for f in fragments)
    assert [c for c in letters if c in "ab"] == [c for c in prompt if c in "ab"] or "BREAK" in prompt


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet="ab (", max_size=30) | st.text(alphabet="ab )]", max_size=30))
def test_unbalanced_brackets_are_text(prompt):
    assert "".join(f.text for f in parse(prompt)) == prompt
    assert all(f.weight == 1.0 for f in parse(prompt))


@pytest.fixture(scope="module")
def tokenizer():
    from nodes.models import bundled_tokenizer

    return bundled_tokenizer("<|endoftext|>")  # OpenAI CLIP's vocabulary, 77 tokens


def test_chunk_tokens_by_hand(tokenizer):
    red, cat, comma = 736, 2368, 267
    assert tokenizer("red cat,", add_special_tokens=False).input_ids == [red, cat, comma]
    assert chunk_tokens(tokenizer, parse("(red:1.5) cat"), "a1111") == [[(red, 1.5), (cat, 1.0)]]
    # 80 tokens: 75 in the first chunk, 5 in the second
    long = [Fragment("cat " * 80)]
    assert [len(c) for c in chunk_tokens(tokenizer, long, "none")] == [75, 5]
    # A1111 moves what follows the last comma among a full chunk's last 20 tokens to the next
    text = [Fragment("cat " * 70 + ", " + "red " * 10)]
    assert [len(c) for c in chunk_tokens(tokenizer, text, "a1111")] == [71, 10]
    assert [len(c) for c in chunk_tokens(tokenizer, text, "none")] == [75, 6]
    # ComfyUI keeps a word whole: "photorealistic" is several tokens and will not be split
    word = tokenizer("photorealistic", add_special_tokens=False).input_ids
    assert len(word) > 1
    text = [Fragment("cat " * (75 - len(word) + 1) + "photorealistic")]
    assert [len(c) for c in chunk_tokens(tokenizer, text, "comfy")] == [75 - len(word) + 1, len(word)]
    assert [len(c) for c in chunk_tokens(tokenizer, parse("red BREAK cat"), "comfy")] == [1, 1]


@pytest.fixture(scope="module")
def pipe(tiny_sd):
    from diffusers import StableDiffusionPipeline

    pipe = StableDiffusionPipeline.from_pretrained(str(tiny_sd), local_files_only=True, safety_checker=None,
                                                   requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def conditioning(tiny_sd, prompt, weighting):
    graph, ids = txt2img_graph(str(tiny_sd), prompt=prompt, steps=2)
    graph.set_param(ids["positive"], "weighting", weighting)
    result = Executor().run(graph, targets=[ids["positive"]])
    assert result.status == "finished", result.error and result.error.message
    return result.outputs[ids["positive"]]["conditioning"].embeds


def encoder_states(pipe, ids):
    with torch.no_grad():
        return pipe.text_encoder(torch.tensor([ids]))[0][0]


def chunk(pipe, tokens):
    tok = pipe.tokenizer
    ids = [tok.bos_token_id] + tokens + [tok.eos_token_id]
    return ids + [tok.pad_token_id] * (tok.model_max_length - len(ids))


def test_a1111_and_comfy_weights_follow_their_published_formulas(tiny_sd, pipe):
    tokens = pipe.tokenizer("red star", add_special_tokens=False).input_ids
    red = len(pipe.tokenizer("red", add_special_tokens=False).input_ids)
    z = encoder_states(pipe, chunk(pipe, tokens))
    empty = encoder_states(pipe, chunk(pipe, []))
    w = torch.ones(z.shape[0])
    w[1:1 + red] = 1.5  # the tokens of "red" (after the start token)
    a1111 = z * w[:, None]
    a1111 = a1111 * (z.mean() / a1111.mean())
    comfy = empty + (z - empty) * w[:, None]
    assert torch.allclose(conditioning(tiny_sd, "(red:1.5) star", "a1111")[0], a1111, atol=1e-5)
    assert torch.allclose(conditioning(tiny_sd, "(red:1.5) star", "comfy")[0], comfy, atol=1e-5)


def image(tiny_sd, prompt, weighting, negative=""):
    graph, ids = txt2img_graph(str(tiny_sd), prompt=prompt, negative=negative, seed=4, steps=3)
    graph.set_param(ids["positive"], "weighting", weighting)
    graph.set_param(ids["negative"], "weighting", weighting)
    result = Executor().run(graph)
    assert result.status == "finished", result.error and result.error.message
    return graph_image(result, ids["preview"])


@pytest.mark.parametrize("weighting", ["comfy", "a1111"])
def test_weight_one_is_the_plain_prompt_and_a_weight_changes_the_image(tiny_sd, weighting):
    plain = image(tiny_sd, "red star", "none")
    assert np.array_equal(image(tiny_sd, "(red:1.0) star", weighting), plain)
    assert np.abs(image(tiny_sd, "(red:3) star", weighting) - plain).max() > 4


def test_a_long_prompt_is_chunked_and_the_negative_padded_as_a1111_does(tiny_sd, pipe):
    """The tiny tokenizer's chunks hold 22 tokens; 30 letters make two chunks. The pipeline is
    given the two chunks' encodings, concatenated, and the empty prompt's chunk twice."""
    prompt = "abcdefghijklmnopqrstuvwxyzabcd"
    tokens = pipe.tokenizer(prompt, add_special_tokens=False).input_ids
    size = pipe.tokenizer.model_max_length - 2
    assert len(tokens) == 30 > size
    embeds = torch.cat([encoder_states(pipe, chunk(pipe, tokens[:size])),
                        encoder_states(pipe, chunk(pipe, tokens[size:]))])[None]
    empty = encoder_states(pipe, chunk(pipe, []))[None]
    pipe.scheduler = reference_scheduler("Euler", dict(pipe.scheduler.config), 4)
    expected = pipe(prompt_embeds=embeds, negative_prompt_embeds=torch.cat([empty, empty], dim=1),
                    height=32, width=32, num_inference_steps=3, guidance_scale=7.5,
                    generator=torch.Generator("cpu").manual_seed(4)).images[0]
    got = image(tiny_sd, prompt, "none")
    assert np.abs(got - np.asarray(expected).astype(int)).max() <= 1
    truncated = image(tiny_sd, prompt[:size], "none")
    assert np.abs(got - truncated).max() > 2  # the second chunk is heard


def test_a_long_sdxl_prompt_chunks_both_encoders_and_pools_the_first_chunk(tiny_sdxl):
    """SDXL: each chunk through both encoders (penultimate states, side by side), the pooled
    embedding of the first chunk; an empty negative is zeros, as the pipeline's absent one."""
    from diffusers import StableDiffusionXLPipeline

    pipe = StableDiffusionXLPipeline.from_pretrained(str(tiny_sdxl), local_files_only=True, add_watermarker=False)
    pipe.set_progress_bar_config(disable=True)
    prompt = "abcdefghijklmnopqrstuvwxyzabcd"
    states, pooled = [], None
    for tokenizer, encoder in ((pipe.tokenizer, pipe.text_encoder), (pipe.tokenizer_2, pipe.text_encoder_2)):
        tokens = tokenizer(prompt, add_special_tokens=False).input_ids
        size = tokenizer.model_max_length - 2
        chunks = []
        for part in (tokens[:size], tokens[size:]):
            ids = [tokenizer.bos_token_id] + part + [tokenizer.eos_token_id]
            ids += [tokenizer.pad_token_id] * (tokenizer.model_max_length - len(ids))
            with torch.no_grad():
                out = encoder(torch.tensor([ids]), output_hidden_states=True)
            chunks.append(out.hidden_states[-2])
            if encoder is pipe.text_encoder_2 and pooled is None:
                pooled = out[0]
        states.append(torch.cat(chunks, dim=1))
    embeds = torch.cat(states, dim=-1)
    pipe.scheduler = reference_scheduler("Euler", dict(pipe.scheduler.config), 4)
    expected = pipe(prompt_embeds=embeds, pooled_prompt_embeds=pooled,
                    negative_prompt_embeds=torch.zeros_like(embeds), negative_pooled_prompt_embeds=torch.zeros_like(pooled),
                    height=32, width=32, num_inference_steps=3, guidance_scale=7.5,
                    generator=torch.Generator("cpu").manual_seed(4)).images[0]
    assert np.abs(image(tiny_sdxl, prompt, "none") - np.asarray(expected).astype(int)).max() <= 1
