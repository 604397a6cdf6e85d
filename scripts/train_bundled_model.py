#!/usr/bin/env python
"""Train the bundled "latentgraph-shapes" text-to-image model from scratch (CPU friendly).

Produces a folder in Stable Diffusion's exact layout (CLIPTokenizer + CLIPTextModel,
AutoencoderKL, UNet2DConditionModel, EulerDiscreteScheduler, model_index.json) that loads
offline with ``StableDiffusionPipeline.from_pretrained(folder)``, plus ``latent_rgb.json``
(latent -> RGB preview fit) and ``latentgraph.json`` (recommended defaults).

Phases (``--phase``):
  vae     train the AutoencoderKL on rendered scenes (MSE + L1 + tiny KL)
  encode  render a fixed caption/image dataset and encode it to latents, measure scaling_factor
  unet    train UNet2DConditionModel + CLIPTextModel jointly from scratch (v-prediction, raw
          weights exported, an EMA kept for comparison,
          extra loss weight on latent cells along object outlines, a word-margin loss that
          keeps the text encoder from merging two caption words)
  decoder fine-tune only the VAE decoder (encoder frozen), outline pixels weighted, for sharper
          corners and star points
  export  write the pipeline folder
  all     everything in order (default)

Intermediate state lives in ``--work`` so phases can be rerun separately. Everything is
seeded. Run it alone on the machine, e.g. ``OMP_WAIT_POLICY=PASSIVE python
scripts/train_bundled_model.py``: with two threads and another busy process, OpenMP's
spin-waiting makes torch many times slower unless waits are passive.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(1, str(ROOT))  # graphs.safe_io, when the package is not installed

import numpy as np  # noqa: E402
import shapes_world as W  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from graphs import safe_io  # noqa: E402

MAX_TOKENS = 24
SPECIALS = ["<|startoftext|>", "<|endoftext|>"]

# ----------------------------------------------------------------------------- model configs

def vae_factor(args) -> int:
    return 2 ** (len(args.vae_blocks) - 1)


def vae_config(args) -> dict:
    n = len(args.vae_blocks)
    return dict(in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * n,
                up_block_types=("UpDecoderBlock2D",) * n, block_out_channels=tuple(args.vae_blocks),
                layers_per_block=1, latent_channels=args.latent_channels, norm_num_groups=8,
                sample_size=W.IMAGE_SIZE, mid_block_add_attention=False)


def unet_config(args) -> dict:
    """Cross-attention on every level but the last (lowest resolution), as in SD."""
    n = len(args.unet_blocks)
    return dict(sample_size=W.IMAGE_SIZE // vae_factor(args), in_channels=args.latent_channels,
                out_channels=args.latent_channels, block_out_channels=tuple(args.unet_blocks),
                layers_per_block=1,
                down_block_types=("CrossAttnDownBlock2D",) * (n - 1) + ("DownBlock2D",),
                up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * (n - 1),
                mid_block_type="UNetMidBlock2DCrossAttn",
                cross_attention_dim=TEXT_CONFIG["hidden_size"], attention_head_dim=args.unet_heads,
                norm_num_groups=8,
                **(dict(addition_embed_type="text", addition_embed_type_num_heads=4)
                   if args.text_time_embed else {}))


TEXT_CONFIG = dict(hidden_size=128, intermediate_size=512, num_hidden_layers=2, num_attention_heads=4,
                   max_position_embeddings=MAX_TOKENS, hidden_act="quick_gelu")
SCHED_CONFIG = dict(num_train_timesteps=1000, beta_start=0.0001, beta_end=0.02, beta_schedule="linear",
                    prediction_type="v_prediction", steps_offset=1)
# Keys SD's own scheduler configs carry for the other samplers: the Scheduler node builds
# DDIM/PNDM/... from the exported config, and DDIM's default clip_sample=True wrecks these latents.
SAMPLER_CONFIG = dict(clip_sample=False, set_alpha_to_one=False, skip_prk_steps=True)

DEFAULTS = {
    "scheduler": "EulerDiscreteScheduler",
    "timestep_spacing": "trailing",
    "steps": 20,
    "cfg": 2.5,
    "width": 64,
    "height": 64,
    "default_prompt": "a red circle and a blue square on a white background",
    "negative_prompt": "",
    "dtype": "fp32",
}


# Training convolutions run faster channels-last on CPU (2 threads, AMD EPYC: a VAE step 0.52 s
# against 0.58 s, a UNet step 0.61 s against 0.64 s; docs/benchmarks.md, "A word-margin loss").
TRAIN_LAYOUT = torch.channels_last


def log(*a):
    print(time.strftime("%H:%M:%S"), *a, flush=True)


# ----------------------------------------------------------------------------- tokenizer

def _bpe(word: str, ranks: dict[tuple[str, str], int]) -> list[str]:
    toks = list(word[:-1]) + [word[-1] + "</w>"]
    while len(toks) > 1:
        pairs = [(ranks.get((a, b), math.inf), i) for i, (a, b) in enumerate(zip(toks, toks[1:]))]
        r, i = min(pairs)
        if r == math.inf:
            break
        a, b = toks[i], toks[i + 1]
        out, j = [], 0
        while j < len(toks):
            if j < len(toks) - 1 and toks[j] == a and toks[j + 1] == b:
                out.append(a + b)
                j += 2
            else:
                out.append(toks[j])
                j += 1
        toks = out
    return toks


def build_tokenizer(words: list[str]):
    """CLIP BPE tokenizer where every caption word is exactly one token."""
    from transformers import CLIPTokenizer

    chars = [chr(c) for c in range(ord("a"), ord("z") + 1)] + list("0123456789.,!?'-")
    vocab: dict[str, int] = {}
    for t in SPECIALS + chars + [c + "</w>" for c in chars]:
        vocab.setdefault(t, len(vocab))
    merges: list[tuple[str, str]] = []
    ranks: dict[tuple[str, str], int] = {}
    for w in words:
        while True:
            toks = _bpe(w, ranks)
            if len(toks) == 1:
                break
            pair = (toks[0], toks[1])
            ranks[pair] = len(merges)
            merges.append(pair)
            vocab.setdefault(pair[0] + pair[1], len(vocab))
    tok = CLIPTokenizer(vocab=vocab, merges=merges, unk_token="<|endoftext|>", bos_token="<|startoftext|>",
                        eos_token="<|endoftext|>", pad_token="<|endoftext|>", model_max_length=MAX_TOKENS)
    for w in words:
        ids = tok(w, add_special_tokens=False).input_ids
        assert len(ids) == 1, (w, ids, tok.convert_ids_to_tokens(ids))
    return tok


def tokenize(tok, captions: list[str]) -> torch.Tensor:
    return tok(captions, padding="max_length", max_length=MAX_TOKENS, truncation=True,
               return_tensors="pt").input_ids


def contrast_ids(tok, pairs=None) -> torch.Tensor:
    """Token ids of ``pairs`` (default ``shapes_world.contrast_captions()``), the two captions of
    each pair in turn."""
    return tokenize(tok, [c for p in (pairs or W.contrast_captions()) for c in p[3:]])


def pair_contrast(text, ids: torch.Tensor) -> torch.Tensor:
    """Per caption pair (rows 2i, 2i+1 of ``ids``): the largest relative change of a token's
    hidden state, ||h_a - h_b|| / ||h_a||. Differentiable, so training can hold it up."""
    h = text(ids)[0]
    ha, hb = h[0::2], h[1::2]
    return ((ha - hb).norm(dim=-1) / ha.norm(dim=-1).clamp_min(1e-8)).amax(dim=-1)


def word_margin_loss(text, ids: torch.Tensor, margin: float) -> torch.Tensor:
    """How far the caption pairs of ``ids`` (``contrast_ids``) fall short of ``margin`` in
    ``pair_contrast``, summed: zero for an encoder that tells every pair apart by the margin, so
    it only acts on words that are merging."""
    return F.relu(margin - pair_contrast(text, ids)).sum()


# A text encoder that drew positions right gave top/bottom captions 1.15 apart; the one that
# drew half of them upside down 0.06 (docs/benchmarks.md).
WORD_CONTRAST_WARN = 0.3


@torch.no_grad()
def word_contrast(tok, text) -> dict[str, dict]:
    """How far apart the text encoder puts captions that differ in one word, per kind of word
    (``shapes_world.contrast_captions``): the weakest pair of each kind, as the largest relative
    change of a token's hidden state, ||h_a - h_b|| / ||h_a||. Near 0 means the two words are
    one word to the UNet."""
    was_training = text.training
    text.eval()
    pairs = W.contrast_captions()
    device = next(text.parameters()).device
    rel = pair_contrast(text, contrast_ids(tok, pairs).to(device)).float().cpu()
    text.train(was_training)
    weakest: dict[str, dict] = {}
    for (kind, a, b, _, _), r in zip(pairs, rel.tolist()):
        if kind not in weakest or r < weakest[kind]["contrast"]:
            weakest[kind] = {"contrast": round(r, 4), "words": [a, b]}
    return weakest


def log_word_contrast(tok, text, when: str) -> None:
    weakest = word_contrast(tok, text)
    log(f"{when} word contrast (weakest pair per kind): "
        + ", ".join(f"{k} {v['contrast']:.2f} ({'/'.join(v['words'])})" for k, v in weakest.items()))
    low = [k for k, v in weakest.items() if v["contrast"] < WORD_CONTRAST_WARN]
    if low:
        log(f"WARNING: the text encoder barely tells apart {', '.join('/'.join(weakest[k]['words']) for k in low)} "
            f"(contrast < {WORD_CONTRAST_WARN}): expect those words to be drawn alike")


# ----------------------------------------------------------------------------- helpers

def set_seed(seed: int):
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def render_tensor(scenes) -> torch.Tensor:
    return torch.from_numpy(W.to_tensor_range(W.render_batch(scenes)))


def n_params(m) -> int:
    return sum(p.numel() for p in m.parameters())


def lr_at(step: int, total: int, peak: float, warmup: int, floor: float = 0.1) -> float:
    if step < warmup:
        return peak * (step + 1) / warmup
    p = (step - warmup) / max(1, total - warmup)
    return peak * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * p)))


# ----------------------------------------------------------------------------- phases

def _fit_autoencoder(vae, params, args, rng, steps: int, lr: float, device, tag: str,
                     train_encoder: bool, outline_weight: float) -> None:
    """The shared VAE loop. With the encoder trained: posterior samples and the KL term; frozen:
    decode posterior means, the latents the UNet learns to produce. ``outline_weight`` > 0 weights
    the pixels next to colour edges 1 + ``outline_weight``: star points and corners are a few
    pixels of the image, a small share of a plain mean."""
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    t0 = time.time()
    for step in range(steps):
        for g in opt.param_groups:
            g["lr"] = lr_at(step, steps, lr, 50)
        x = render_tensor([W.sample_scene(rng) for _ in range(args.vae_batch)]).to(device, memory_format=TRAIN_LAYOUT)
        if train_encoder:
            post = vae.encode(x).latent_dist
            z = post.sample()
        else:
            with torch.no_grad():
                z = vae.encode(x).latent_dist.mean
        rec = vae.decode(z).sample
        mse = F.mse_loss(rec, x)
        if outline_weight > 0:
            err = (rec - x) ** 2 + args.vae_l1 * (rec - x).abs()
            loss = outline_weighted_mean(err, outline_mask(x, 1), outline_weight)
        else:
            loss = mse + args.vae_l1 * (rec - x).abs().mean()
        if train_encoder:
            kl = post.kl().mean()
            loss = loss + args.vae_kl * kl
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step % 200 == 0 or step == steps - 1:
            extra = f" kl {kl.item():.1f}" if train_encoder else ""
            log(f"{tag} step {step} mse {mse.item():.5f}{extra} ({time.time() - t0:.0f}s)")
    log(f"{tag} phase done in {time.time() - t0:.0f}s")


def phase_vae(args, work: Path, device):
    """AutoencoderKL on freshly rendered scenes: MSE + L1 (sharp edges and star points) and a
    tiny KL (KL is summed over latent elements, the pixel losses averaged, so even 1e-6 makes
    the posterior noisy and the decoder blurry)."""
    from diffusers import AutoencoderKL

    set_seed(args.seed)
    vae = AutoencoderKL(**vae_config(args)).to(device, memory_format=TRAIN_LAYOUT)
    log(f"VAE params {n_params(vae) / 1e6:.3f}M, latent {args.latent_channels}x"
        f"{W.IMAGE_SIZE // vae_factor(args)}^2")
    _fit_autoencoder(vae, list(vae.parameters()), args, random.Random(args.seed), args.vae_steps,
                     args.vae_lr, device, "vae", train_encoder=True, outline_weight=args.vae_outline_weight)
    vae.save_pretrained(work / "vae")


def phase_decoder(args, work: Path, device):
    """Encoder frozen (latents, scaling_factor and the UNet are unaffected): fine-tune only the
    decoder for sharper shapes. The latents keep more of the shape than a plainly trained decoder
    draws: weighting the outline pixels (``--dec-outline-weight``, 1,000 steps) lifted
    encode-decode shape accuracy on the benchmark scenes from 0.84 to 0.95, stars 0.48 -> 0.83.
    (Also training it on the latents the sampler's last steps end on did not help: fab7b40 and
    docs/benchmarks.md.)"""
    from diffusers import AutoencoderKL

    set_seed(args.seed + 20)
    vae = AutoencoderKL.from_pretrained(work / "vae").to(device, memory_format=TRAIN_LAYOUT)
    vae.encoder.requires_grad_(False)
    vae.quant_conv.requires_grad_(False)
    params = list(vae.decoder.parameters()) + list(vae.post_quant_conv.parameters())
    _fit_autoencoder(vae, params, args, random.Random(args.seed + 20), args.dec_steps, args.dec_lr,
                     device, "decoder", train_encoder=False, outline_weight=args.dec_outline_weight)
    vae.save_pretrained(work / "vae_dec")


def outline_mask(x: torch.Tensor, factor: int) -> torch.Tensor:
    """Cells of ``factor`` x ``factor`` pixels (N, 1, H/factor, W/factor) within one cell of a colour
    edge of the image: where the shape of an object is decided."""
    dy = (x[:, :, 1:] - x[:, :, :-1]).abs().amax(1, keepdim=True)
    dx = (x[..., 1:] - x[..., :-1]).abs().amax(1, keepdim=True)
    edge = F.pad(dy, (0, 0, 0, 1)).maximum(F.pad(dx, (0, 1))) > 0.1
    cells = F.max_pool2d(edge.float(), factor)
    return F.max_pool2d(cells, 3, stride=1, padding=1).bool()


def outline_weighted_mean(err: torch.Tensor, outlines: torch.Tensor, weight: float) -> torch.Tensor:
    """Mean of ``err`` with the outline cells weighted 1 + ``weight``, normalised to mean weight 1
    so the learning rate means the same with and without it."""
    w = 1.0 + weight * outlines.float()
    return (err * w).mean() / w.mean()


@torch.no_grad()
def phase_encode(args, work: Path, device):
    from diffusers import AutoencoderKL

    set_seed(args.seed + 1)
    rng = random.Random(args.seed + 1)
    vae = AutoencoderKL.from_pretrained(work / "vae").to(device).eval()
    t0 = time.time()
    lat, caps, rgb_small, outlines = [], [], [], []
    bs = 100
    factor = vae_factor(args)
    for i in range(0, args.dataset_size, bs):
        scenes = [W.sample_scene(rng) for _ in range(min(bs, args.dataset_size - i))]
        x = render_tensor(scenes).to(device)
        lat.append(vae.encode(x).latent_dist.mean.cpu())
        outlines.append(outline_mask(x, factor).cpu())
        caps.extend(s.caption for s in scenes)
        if i < 4000:
            rgb_small.append(F.avg_pool2d(x, factor).cpu())
    lat = torch.cat(lat)
    std = lat.std().item()
    scaling = 1.0 / std
    log(f"encoded {len(caps)} images in {time.time() - t0:.0f}s; latent mean {lat.mean():.4f} std {std:.4f} "
        f"-> scaling_factor {scaling:.5f}")
    # preview fit: scaled latents (as the UNet sees them) -> RGB in [-1, 1]
    n = sum(r.shape[0] for r in rgb_small)
    channels = lat.shape[1]
    z = (lat[:n] * scaling).permute(0, 2, 3, 1).reshape(-1, channels).double()
    y = torch.cat(rgb_small).permute(0, 2, 3, 1).reshape(-1, 3).double()
    A = torch.cat([z, torch.ones(len(z), 1, dtype=torch.float64)], 1)
    sol = torch.linalg.lstsq(A, y).solution
    pred = (A @ sol).clamp(-1, 1)
    log(f"latent_rgb fit rmse {((pred - y) ** 2).mean().sqrt().item():.4f}")
    latent_rgb = {"latent_space": "scaled", "matrix": sol[:channels].tolist(), "bias": sol[channels].tolist(),
                  "note": "preview_rgb = clamp(latent^T . matrix + bias, -1, 1); latent as the UNet sees it "
                          "(already multiplied by vae.config.scaling_factor)"}
    outlines = torch.cat(outlines)
    log(f"outline cells: {outlines.float().mean().item():.1%} of the latent")
    torch.save({"latents": lat, "captions": caps, "scaling_factor": scaling, "outlines": outlines},
               work / "dataset.pt")
    (work / "latent_rgb.json").write_text(json.dumps(latent_rgb, indent=2))


class Ema:
    def __init__(self, modules, decay):
        self.decay = decay
        self.src = modules
        self.shadow = [copy.deepcopy(m).eval().requires_grad_(False) for m in modules]
        self.n = 0

    @torch.no_grad()
    def update(self):
        self.n += 1
        d = min(self.decay, (1 + self.n) / (10 + self.n))
        shadow = [p for s in self.shadow for p in s.parameters()]
        source = [p.detach() for m in self.src for p in m.parameters()]
        torch._foreach_lerp_(shadow, source, 1 - d)  # one fused call instead of one per tensor


def sample_timesteps(n: int, g: torch.Generator, split: int, low_share: float | None,
                     lognormal: tuple[float, float, float] | None = None,
                     sigmas: torch.Tensor | None = None) -> torch.Tensor:
    """Training timesteps in [0, 1000): uniform (``low_share`` None, the default and the draws of
    every shipped model), or a ``low_share`` of them below ``split``, the rest above, uniform
    within each part.
    The shape of an object is lost below t ~ 500 (scripts/probe_sampler_endings.py), colour and
    layout are decided above and already right, hence the option; 0.65 together with outline
    weight 12 scored worse than the shipped recipe (docs/benchmarks.md).

    ``lognormal`` = (share, mean, std): that share of the draws instead takes the timestep whose
    noise level sigma = sqrt((1 - alpha_bar) / alpha_bar) (``sigmas``, increasing in t) is nearest
    above exp(N(mean, std^2)), EDM's log-normal noise distribution. Uniform t spends half the
    samples at sigma > 3.4, where only colour and layout are decided, and 10 % on 0.17 < sigma
    < 0.52, the steps that round the squares' corners. Half the draws log-normal (0.5, -0.5, 1.2)
    scored worse: shape 0.742 and position 0.55, the layout is learnt at high noise (docs/benchmarks.md)."""
    if lognormal is not None:
        share, mean, std = lognormal
        uniform = torch.randint(0, 1000, (n,), generator=g)
        sigma = (mean + std * torch.randn(n, generator=g)).exp()
        t = torch.searchsorted(sigmas.cpu().float().contiguous(), sigma).clamp_(0, 999)
        return torch.where(torch.rand(n, generator=g) < share, t, uniform)
    if low_share is None:
        return torch.randint(0, 1000, (n,), generator=g)
    low = torch.rand(n, generator=g) < low_share
    u = torch.rand(n, generator=g)
    t = torch.where(low, u * split, split + u * (1000 - split))
    return t.long().clamp_(0, 999)


def phase_unet(args, work: Path, device):
    """UNet + text encoder from scratch, jointly, with v-prediction.

    v-prediction rather than epsilon: with this (near zero terminal SNR) linear schedule the
    epsilon loss barely rewards getting the layout and background from the text at high noise
    (eps-loss = SNR * x0-loss); the v loss weights those errors ~1.

    Outline weighting: a circle and a square of the same size and colour differ in a few latent
    cells at their corners, a small share of a plain MSE, so shape is learned last (the same
    run without it: squares drawn round, stars never). Weighting the cells within one cell of
    an object's outline (1 + ``--outline-weight``, about a quarter of the latent) raised shape
    accuracy from 0.48 to 0.64 with weight 4, and stars from 0.33 to 0.61 with weight 8, at the
    same cost (docs/benchmarks.md).

    Word margin: the text encoder is learnt from scratch with the UNet, and one run merged "top"
    and "bottom" (both words pull the same way, "an object off the centre") and drew half its
    positions upside down. A hinge (``word_margin_loss``) on the caption pairs of
    ``shapes_world.contrast_captions()`` keeps every pair at least ``--word-margin`` apart; it is
    zero while the encoder tells the words apart, so it only acts on words that are merging.
    """
    from diffusers import DDPMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    set_seed(args.seed + 2)
    data = torch.load(work / "dataset.pt", weights_only=True)
    lat = data["latents"] * data["scaling_factor"]
    caps = data["captions"]
    outlines = None
    if args.outline_weight > 0:
        if "outlines" not in data:
            raise SystemExit(f"{work / 'dataset.pt'} has no outline masks (made before --outline-weight): "
                             "rerun --phase encode")
        outlines = data["outlines"]
    tok = build_tokenizer(W.all_caption_words())
    ids_all = tokenize(tok, caps)
    empty_ids = tokenize(tok, [""])[0]
    tcfg = CLIPTextConfig(vocab_size=len(tok), bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                          pad_token_id=tok.pad_token_id, **TEXT_CONFIG)
    text = CLIPTextModel(tcfg).to(device)
    unet = UNet2DConditionModel(**unet_config(args)).to(device, memory_format=TRAIN_LAYOUT)
    log(f"UNet params {n_params(unet) / 1e6:.3f}M, text encoder params {n_params(text) / 1e6:.3f}M, "
        f"dataset {len(caps)}")
    acp = DDPMScheduler(**SCHED_CONFIG).alphas_cumprod.to(device)
    sigmas = ((1 - acp) / acp).sqrt()
    params = list(unet.parameters()) + list(text.parameters())
    opt = torch.optim.AdamW(params, lr=args.unet_lr, weight_decay=0.01)
    ema = Ema([unet, text], args.ema)
    g = torch.Generator().manual_seed(args.seed + 3)
    pair_ids = contrast_ids(tok).to(device)
    t0 = time.time()
    run_loss = run_margin = 0.0
    for step in range(args.unet_steps):
        for gr in opt.param_groups:
            gr["lr"] = lr_at(step, args.unet_steps, args.unet_lr, 200, args.unet_lr_floor)
        idx = torch.randint(0, len(caps), (args.unet_batch,), generator=g)
        x0 = lat[idx].to(device)
        ids = ids_all[idx].clone()
        drop = torch.rand(args.unet_batch, generator=g) < args.p_uncond
        ids[drop] = empty_ids
        noise = torch.randn(x0.shape, generator=g).to(device)
        t = sample_timesteps(args.unet_batch, g, args.t_split, args.t_low_share, args.t_lognormal,
                             sigmas).to(device)
        a = acp[t].view(-1, 1, 1, 1)
        xt = (a.sqrt() * x0 + (1 - a).sqrt() * noise).contiguous(memory_format=TRAIN_LAYOUT)
        target = a.sqrt() * noise - (1 - a).sqrt() * x0
        pred = unet(xt, t, text(ids.to(device))[0]).sample
        if outlines is None:
            v_loss = F.mse_loss(pred, target)
        else:
            v_loss = outline_weighted_mean((pred - target) ** 2, outlines[idx].to(device), args.outline_weight)
        loss = v_loss
        if args.word_margin > 0 and step % args.word_margin_every == 0:
            # The pairs' forward and backward cost ~12 % of a step, and words merge over hundreds
            # of steps: every few steps, weighted up to the same mean pull, costs ~1.5 %.
            margin = word_margin_loss(text, pair_ids, args.word_margin)
            run_margin += margin.item()
            loss = loss + args.word_margin_every * margin
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        ema.update()
        run_loss += v_loss.item()
        if (step + 1) % 200 == 0 or step == args.unet_steps - 1:
            el = time.time() - t0
            log(f"unet step {step + 1}/{args.unet_steps} v-loss {run_loss / 200:.4f} "
                f"word-margin loss {run_margin / (200 / args.word_margin_every):.4f} ({el:.0f}s, "
                f"eta {el / (step + 1) * (args.unet_steps - step - 1) / 60:.1f} min)")
            run_loss = run_margin = 0.0
        if (step + 1) % 1000 == 0 or step == args.unet_steps - 1:
            # Raw weights are what export ships by default (with the LR decayed to a tenth they beat
            # the EMA, docs/benchmarks.md); the EMA stays for comparison (--unet-weights ema).
            unet.save_pretrained(work / "unet_raw")
            text.save_pretrained(work / "text_raw")
            ema.shadow[0].save_pretrained(work / "unet_ema")
            ema.shadow[1].save_pretrained(work / "text_ema")
            tok.save_pretrained(work / "tokenizer")
            log_word_contrast(tok, text, f"step {step + 1}")
    log(f"UNet phase done in {time.time() - t0:.0f}s")


def phase_export(args, work: Path, out: Path):
    from diffusers import AutoencoderKL, EulerDiscreteScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTokenizer

    # Check every input before writing: --out is usually the shipped folder, and a half-written
    # one would mix two models.
    for name in ("dataset.pt", "latent_rgb.json"):
        if not (work / name).is_file():
            raise SystemExit(f"{work / name} is missing: rerun --phase encode")
    for part in ("unet", "text"):
        if not (work / f"{part}_{args.unet_weights}").is_dir():
            raise SystemExit(f"{work / f'{part}_{args.unet_weights}'} is missing: rerun --phase unet "
                             f"(work folders from before 2026-11-27 hold only the EMA: --unet-weights ema)")
    data = torch.load(work / "dataset.pt", weights_only=True)
    vae = AutoencoderKL.from_pretrained(work / ("vae_dec" if (work / "vae_dec").exists() else "vae"))
    vae.register_to_config(scaling_factor=float(data["scaling_factor"]))
    unet = UNet2DConditionModel.from_pretrained(work / f"unet_{args.unet_weights}")
    text = CLIPTextModel.from_pretrained(work / f"text_{args.unet_weights}")
    tok = CLIPTokenizer.from_pretrained(work / "tokenizer")
    sched = EulerDiscreteScheduler(**SCHED_CONFIG, timestep_spacing=DEFAULTS["timestep_spacing"])
    sched.register_to_config(**SAMPLER_CONFIG)
    if args.half_weights:  # diffusers upcasts UNet/VAE on load; the small text encoder stays fp32
        unet, vae = unet.half(), vae.half()
    pipe = StableDiffusionPipeline(vae=vae, text_encoder=text, tokenizer=tok, unet=unet, scheduler=sched,
                                   safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    # Written beside --out and swapped in whole, so a failure part-way (disk full, interrupt) never
    # leaves a folder that mixes two models.
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        pipe.save_pretrained(staging, safe_serialization=True)
        safe_io.write_text_atomic(staging / "latent_rgb.json", (work / "latent_rgb.json").read_text())
        safe_io.write_text_atomic(staging / "latentgraph.json", json.dumps(DEFAULTS, indent=2) + "\n")
        safe_io.replace_dir(staging, out)  # the folder keeps the old one's mode, or the umask's
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    log(f"exported to {out} ({size / 1e6:.2f} MB)")


def _ints(text: str) -> list[int]:
    return [int(v) for v in text.split(",")]


def _floats(text: str) -> tuple[float, ...]:
    return tuple(float(v) for v in text.split(","))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=str(ROOT / "resources/models/latentgraph-shapes"))
    ap.add_argument("--work", default="/tmp/latentgraph-shapes-work")
    ap.add_argument("--phase", default="all", choices=["all", "vae", "encode", "unet", "decoder", "export"])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--vae-blocks", type=_ints, default=[32, 64, 64],
                    help="AutoencoderKL block widths; n blocks downsample by 2^(n-1)")
    ap.add_argument("--latent-channels", type=int, default=4)
    ap.add_argument("--vae-steps", type=int, default=2000,
                    help="1500 (with --dec-steps 800) saves ~6 min but the autoencoder then loses stars: "
                         "encode-decode shape 0.932, stars 0.77, against 0.984 / 0.95 (docs/benchmarks.md)")
    ap.add_argument("--vae-batch", type=int, default=16)
    ap.add_argument("--vae-lr", type=float, default=1e-3)
    ap.add_argument("--vae-l1", type=float, default=0.5)
    ap.add_argument("--vae-kl", type=float, default=1e-7)
    ap.add_argument("--vae-outline-weight", type=float, default=0.0,
                    help="extra VAE loss weight on pixels next to colour edges (experimental)")
    ap.add_argument("--dec-steps", type=int, default=1000)
    ap.add_argument("--dec-outline-weight", type=float, default=4.0,
                    help="extra decoder fine-tune loss weight on pixels next to colour edges")
    ap.add_argument("--dec-lr", type=float, default=3e-4)
    ap.add_argument("--dataset-size", type=int, default=24000)
    ap.add_argument("--unet-blocks", type=_ints, default=[32, 64, 128])
    ap.add_argument("--unet-heads", type=int, default=2,
                    help="attention heads per transformer block (diffusers calls it attention_head_dim); "
                         "2 heads of 16-64 channels: a CPU training step 0.62 s against 0.73 s with 4 "
                         "heads of 8-32 (2 threads, docs/benchmarks.md)")
    ap.add_argument("--unet-steps", type=int, default=5400)
    ap.add_argument("--unet-batch", type=int, default=48)
    ap.add_argument("--unet-lr", type=float, default=1.2e-3,
                    help="peak UNet learning rate (8e-4 until 2026-11-27: shape 0.796 against 0.844 raw, first world)")
    ap.add_argument("--unet-lr-floor", type=float, default=0.1,
                    help="the cosine UNet LR decays to this fraction of the peak; tried 0.02: shape "
                         "0.662/0.694 against 0.844/0.864 on the first world, stars blobs (docs/benchmarks.md)")
    ap.add_argument("--outline-weight", type=float, default=8.0,
                    help="extra UNet loss weight on latent cells next to object outlines")
    ap.add_argument("--t-split", type=int, default=500)
    ap.add_argument("--t-low-share", type=float, default=None,
                    help="share of UNet training timesteps drawn below --t-split (default: plain uniform)")
    ap.add_argument("--t-lognormal", type=_floats, default=None, metavar="SHARE,MEAN,STD",
                    help="draw SHARE of the UNet training timesteps from a log-normal noise level "
                         "(ln sigma ~ N(MEAN, STD^2)), the rest uniform (default: plain uniform)")
    ap.add_argument("--text-time-embed", action="store_true",
                    help="UNet adds the attention-pooled text embedding to its time embedding "
                         "(diffusers' addition_embed_type='text'): every ResNet block sees the caption; "
                         "tried: shape 0.768, position 0.78, worse than without (docs/benchmarks.md)")
    ap.add_argument("--word-margin", type=float, default=0.4,
                    help="hinge loss holding the word contrast of every caption pair of "
                         "shapes_world.contrast_captions() at or above this, each pair below adding its "
                         "shortfall (0: off, as before 2026-11-27, when one run merged 'top' and 'bottom')")
    ap.add_argument("--word-margin-every", type=int, default=8,
                    help="apply the word-margin loss every this many steps, weighted by it")
    ap.add_argument("--p-uncond", type=float, default=0.12)
    ap.add_argument("--ema", type=float, default=0.999)
    ap.add_argument("--unet-weights", default="raw", choices=["ema", "raw"],
                    help="export the last raw UNet/text encoder weights (default) or their EMA; the LR "
                         "decays to a tenth, and the EMA (--ema) lags: shape 0.824/0.838 against "
                         "0.844/0.864 raw on the first world (docs/benchmarks.md)")
    ap.add_argument("--half-weights", action="store_true", help="store UNet and VAE weights in fp16")
    args = ap.parse_args()
    if args.word_margin_every < 1:
        ap.error("--word-margin-every must be at least 1")
    if args.t_low_share is not None and args.t_lognormal is not None:
        ap.error("--t-low-share and --t-lognormal are two timestep distributions; give one")

    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    out = Path(args.out)
    phases = ["vae", "encode", "unet", "decoder", "export"] if args.phase == "all" else [args.phase]
    times = {}
    t_all = time.time()
    for ph in phases:
        t0 = time.time()
        if ph == "vae":
            phase_vae(args, work, device)
        elif ph == "encode":
            phase_encode(args, work, device)
        elif ph == "unet":
            phase_unet(args, work, device)
        elif ph == "decoder":
            phase_decoder(args, work, device)
        else:
            phase_export(args, work, out)
        times[ph] = round(time.time() - t0, 1)
        log(f"phase {ph} wall {times[ph]}s (threads={args.threads})")
    times["total"] = round(time.time() - t_all, 1)
    log("phase times:", json.dumps(times))


if __name__ == "__main__":
    main()
