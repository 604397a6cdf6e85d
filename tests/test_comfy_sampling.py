"""The ComfyUI-compatible sampling mode (a Noise node's comfyui method, a Scheduler's ComfyUI
schedule): its sigma schedules, noise and sampling against ComfyUI's published formulas, written
out here from ComfyUI's source (comfy/samplers.py, comfy/k_diffusion/sampling.py,
comfy/model_sampling.py, comfy/sample.py), never computed by the code under test."""

import math

import numpy as np
import pytest
import torch
from PIL import Image

import nodes  # noqa: F401
from graphs import Executor
from nodes.recipes import img2img_graph, txt2img_graph

SD1 = {"beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear", "num_train_timesteps": 1000}


# ----- ComfyUI's formulas, written out -------------------------------------------------------
def comfy_table(config=SD1):
    """ModelSamplingDiscrete: betas (ComfyUI's "linear" = diffusers' scaled_linear) in float64,
    sigmas = sqrt((1 - alphas_cumprod) / alphas_cumprod), kept in float32, logs taken before the cast."""
    n = config["num_train_timesteps"]
    betas = np.linspace(config["beta_start"] ** 0.5, config["beta_end"] ** 0.5, n, dtype=np.float64) ** 2
    alphas_cumprod = np.cumprod(1.0 - betas)
    sigmas = np.sqrt((1 - alphas_cumprod) / alphas_cumprod)
    return sigmas.astype(np.float32), np.log(sigmas).astype(np.float32)


def comfy_sigma(t, log_sigmas):
    """ModelSamplingDiscrete.sigma: log-linear interpolation at a fractional timestep."""
    t = min(max(float(t), 0.0), len(log_sigmas) - 1)
    low, high = math.floor(t), math.ceil(t)
    w = t - low
    return math.exp((1 - w) * float(log_sigmas[low]) + w * float(log_sigmas[high]))


def comfy_timestep(sigma, log_sigmas):
    """ModelSamplingDiscrete.timestep: the index of the nearest log sigma."""
    return int(np.abs(np.float32(np.log(np.float32(sigma))) - log_sigmas).argmin())


def comfy_schedule(name, steps, config=SD1):
    sigmas, logs = comfy_table(config)
    sigma_min, sigma_max = float(sigmas[0]), float(sigmas[-1])
    if name == "normal":  # timesteps evenly from timestep(sigma_max) to timestep(sigma_min)
        out = [comfy_sigma(t, logs) for t in np.linspace(999, 0, steps)]
    elif name == "sgm_uniform":  # the same over steps + 1 points, the last left out
        out = [comfy_sigma(t, logs) for t in np.linspace(999, 0, steps + 1)[:-1]]
    elif name == "karras":  # get_sigmas_karras, rho 7
        ramp = np.linspace(0, 1, steps)
        lo, hi = sigma_min ** (1 / 7), sigma_max ** (1 / 7)
        out = list((hi + ramp * (lo - hi)) ** 7)
    elif name == "exponential":  # get_sigmas_exponential
        out = list(np.exp(np.linspace(math.log(sigma_max), math.log(sigma_min), steps)))
    elif name == "simple":  # every len/steps-th sigma from the top
        out = [float(sigmas[-(1 + int(x * (len(sigmas) / steps)))]) for x in range(steps)]
    elif name == "ddim_uniform":  # sigmas[1], sigmas[1 + len // steps], ... reversed
        out = [float(s) for s in sigmas[1::max(len(sigmas) // steps, 1)]][::-1]
    elif name == "beta":  # timesteps at Beta(0.6, 0.6) quantiles, rounded, repeats dropped
        from scipy import stats

        times = np.rint(stats.beta.ppf(1 - np.linspace(0, 1, steps, endpoint=False), 0.6, 0.6) * (len(sigmas) - 1))
        out, last = [], -1
        for t in times:
            if t != last:
                out.append(float(sigmas[int(t)]))
            last = t
    return np.array(out + [0.0])


def comfy_ksampler_sigmas(name, steps, denoise=1.0):
    """KSampler.set_steps: below denoise 1, the last steps + 1 of a schedule of int(steps / denoise)."""
    if denoise > 0.9999:
        return comfy_schedule(name, steps)
    return comfy_schedule(name, int(steps / denoise))[-(steps + 1):]


# ----- (a) schedules ------------------------------------------------------------------------
SCHEDULES = ("normal", "karras", "exponential", "simple", "sgm_uniform", "ddim_uniform", "beta")


@pytest.mark.parametrize("steps", [1, 7, 10, 20])
@pytest.mark.parametrize("name", SCHEDULES)
def test_schedules_match_comfyui(name, steps):
    from nodes.comfy_sigmas import discrete_sigmas, schedule_sigmas

    ours = schedule_sigmas(name, steps, discrete_sigmas(SD1))
    expected = comfy_schedule(name, steps)
    assert ours.dtype == torch.float32
    assert ours.shape == expected.shape
    np.testing.assert_allclose(ours.numpy(), expected, rtol=2e-6, atol=0)


def test_schedule_anchors():
    """SD 1.x's sigma range, and step counts that follow the table rather than ``steps``."""
    from nodes.comfy_sigmas import discrete_sigmas, schedule_sigmas

    table = discrete_sigmas(SD1)
    assert table.sigma_max == pytest.approx(14.6146, abs=1e-4) and table.sigma_min == pytest.approx(0.0292, abs=1e-4)
    assert len(schedule_sigmas("ddim_uniform", 7, table)) == 9  # 1, 143, ..., 995: eight steps for seven
    assert len(schedule_sigmas("beta", 200, table)) < 201  # repeated rounded timesteps are dropped
    karras = schedule_sigmas("karras", 20, table)
    assert float(karras[0]) == pytest.approx(table.sigma_max) and float(karras[-2]) == pytest.approx(table.sigma_min)


def test_timesteps_are_comfyuis_nearest_log_sigma():
    from nodes.comfy_sigmas import discrete_sigmas, schedule_sigmas

    table = discrete_sigmas(SD1)
    _, logs = comfy_table()
    for name in ("karras", "exponential", "normal"):
        sigmas = schedule_sigmas(name, 10, table)[:-1]
        expected = [comfy_timestep(s, logs) for s in sigmas.tolist()]
        assert table.timestep(sigmas).tolist() == [float(t) for t in expected]
    # diffusers' Euler interpolates between table entries where ComfyUI takes the nearest
    from diffusers import EulerDiscreteScheduler

    euler = EulerDiscreteScheduler(**SD1)
    sigmas = schedule_sigmas("karras", 10, table)
    euler.set_timesteps(sigmas=sigmas.tolist())
    assert not np.allclose(euler.timesteps.numpy(), table.timestep(sigmas[:-1]).numpy())


@pytest.mark.parametrize("name", ["normal", "karras", "simple"])
@pytest.mark.parametrize("steps,denoise", [(6, 0.6), (20, 0.75), (10, 0.33)])
def test_denoise_keeps_the_tail_of_a_longer_schedule(name, steps, denoise):
    from nodes.comfy_sigmas import discrete_sigmas, ksampler_sigmas

    ours = ksampler_sigmas(name, steps, discrete_sigmas(SD1), denoise)
    expected = comfy_ksampler_sigmas(name, steps, denoise)
    assert len(ours) == steps + 1
    np.testing.assert_allclose(ours.numpy(), expected, rtol=2e-6, atol=0)
    assert len(ksampler_sigmas(name, steps, discrete_sigmas(SD1), 0.0)) == 0


def test_advanced_start_end_and_leftover_noise():
    """KSamplerAdvanced: sigmas[:end + 1] (last set to 0 unless the noise is returned), then [start:]."""
    from nodes.comfy_sigmas import sampled_window

    sigmas = torch.tensor(comfy_schedule("normal", 10), dtype=torch.float32)
    np.testing.assert_array_equal(sampled_window(sigmas, 3, 7).numpy(), sigmas[3:8].numpy())
    forced = sampled_window(sigmas, 3, 7, force_full_denoise=True)
    np.testing.assert_array_equal(forced[:-1].numpy(), sigmas[3:7].numpy())
    assert float(forced[-1]) == 0.0
    np.testing.assert_array_equal(sampled_window(sigmas, 0, 10000, True).numpy(), sigmas.numpy())
    assert sampled_window(sigmas, 10, None) is None and sampled_window(sigmas, 5, 5) is None


# ----- (b) noise ----------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_comfyui_noise_is_prepare_noise(dtype):
    from nodes.values import NoiseSource

    shape = (2, 4, 8, 6)
    seed = 2**63 + 12345
    with torch.random.fork_rng(devices=[]):
        generator = torch.manual_seed(seed)  # prepare_noise: the global CPU generator, seeded
        expected = torch.randn(shape, dtype=torch.float32, generator=generator, device="cpu").to(dtype)
    ours = NoiseSource(seed, "device", "comfyui").initial_noise(shape, None, "cpu", dtype)
    assert ours.dtype == dtype and torch.equal(ours, expected)


# ----- (c) end to end on the tiny model ---------------------------------------------------
@pytest.fixture(scope="module")
def pipe(tiny_sd):
    from diffusers import StableDiffusionPipeline

    pipe = StableDiffusionPipeline.from_pretrained(str(tiny_sd), safety_checker=None, requires_safety_checker=False,
                                                   local_files_only=True)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def comfy_euler(pipe, x, sigmas, prompt, negative, cfg):
    """ComfyUI's sample_euler over its EPS model: model input x / sqrt(sigma^2 + 1) at the nearest-log-sigma
    timestep, denoised = x - eps * sigma for each prompt, cfg on the denoised, then x += (x - denoised) / sigma
    * (sigma_next - sigma)."""
    _, logs = comfy_table(dict(pipe.scheduler.config))
    cond, uncond = pipe.encode_prompt(prompt, "cpu", 1, True, negative)
    embeds = torch.cat([uncond, cond])
    sigmas = [float(s) for s in sigmas]
    with torch.no_grad():
        for sigma, sigma_next in zip(sigmas[:-1], sigmas[1:], strict=True):
            model_input = torch.cat([x, x]) / (sigma ** 2 + 1) ** 0.5
            t = torch.tensor(float(comfy_timestep(sigma, logs)))
            eps_uncond, eps_cond = pipe.unet(model_input, t, encoder_hidden_states=embeds).sample.chunk(2)
            denoised_uncond, denoised_cond = x - eps_uncond * sigma, x - eps_cond * sigma
            denoised = denoised_uncond + (denoised_cond - denoised_uncond) * cfg
            x = x + (x - denoised) / sigma * (sigma_next - sigma)
    return x


def decoded(pipe, latents):
    with torch.no_grad():
        image = pipe.vae.decode(latents / pipe.vae.config.scaling_factor).sample
    return (pipe.image_processor.postprocess(image, output_type="np")[0] * 255).round().astype(int)


def comfy_graph(graph, ids, schedule="normal"):
    graph.set_param(ids["scheduler"], "schedule", schedule)
    graph.set_param(ids["noise"], "method", "comfyui")
    return graph, ids


def run_image(graph, node_id):
    result = Executor().run(graph)
    assert result.status == "finished", result.error and result.error.traceback
    return np.asarray(result.outputs[node_id]["images"][0]).astype(int)


def run_comfy(graph, ids, pipe, expected_latents):
    """The graph's image within a level of the reference's, and its latents (which a tiny random
    model's decoder would hide small differences in) close to the reference's."""
    result = Executor().run(graph)
    assert result.status == "finished", result.error and result.error.traceback
    image = np.asarray(result.outputs[ids["preview"]]["images"][0]).astype(int)
    assert np.abs(image - decoded(pipe, expected_latents)).max() <= 1
    latents = result.outputs[ids["unet"]]["latent"].samples
    torch.testing.assert_close(latents, expected_latents, rtol=1e-4, atol=1e-4)
    return result


def latent_shape(pipe, size=32):
    side = size // pipe.vae_scale_factor
    return (1, pipe.unet.config.in_channels, side, side)


def prepare_noise(seed, shape):
    with torch.random.fork_rng(devices=[]):
        return torch.randn(shape, dtype=torch.float32, generator=torch.manual_seed(seed))


@pytest.mark.parametrize("schedule", ["normal", "karras"])
def test_txt2img_matches_comfyui_euler(tiny_sd, pipe, schedule):
    graph, ids = comfy_graph(*txt2img_graph(str(tiny_sd), prompt="a blue star", negative="blurry", seed=7,
                                            steps=6, cfg=6.5), schedule)
    sigmas = comfy_ksampler_sigmas(schedule, 6)
    # sigmas[0] is the model's largest: KSampler scales the noise by sqrt(1 + sigma^2) (max_denoise)
    x = prepare_noise(7, latent_shape(pipe)) * (1 + sigmas[0] ** 2) ** 0.5
    result = run_comfy(graph, ids, pipe, comfy_euler(pipe, x, sigmas, "a blue star", "blurry", 6.5))
    _, logs = comfy_table()
    assert result.outputs[ids["unet"]]["trace"].timesteps == [comfy_timestep(s, logs) for s in sigmas[:-1]]


def test_img2img_denoise_matches_comfyui(tiny_sd, pipe, tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "input.png"
    Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(path)
    graph, ids = comfy_graph(*img2img_graph(str(tiny_sd), str(path), strength=0.6, seed=11, steps=6))

    pixels = torch.from_numpy(np.asarray(Image.open(path).convert("RGB"))).permute(2, 0, 1)[None].float() / 255
    with torch.no_grad():  # ComfyUI's VAEEncode keeps the distribution's mode
        latent = pipe.vae.encode(pixels * 2 - 1).latent_dist.mean * pipe.vae.config.scaling_factor
    sigmas = comfy_ksampler_sigmas("normal", 6, 0.6)  # the last 7 of a 10-step schedule
    assert len(sigmas) == 7 and sigmas[0] < comfy_schedule("normal", 10)[0]
    x = latent + prepare_noise(11, tuple(latent.shape)) * sigmas[0]  # noise_scaling below the top sigma
    run_comfy(graph, ids, pipe, comfy_euler(pipe, x, sigmas, "a red circle", "", 7.5))


def test_end_step_without_leftover_noise_matches_comfyui(tiny_sd, pipe):
    """KSamplerAdvanced with end_at_step 3 of 8 and return_with_leftover_noise off: the last of the
    four sigmas it runs is 0."""
    graph, ids = comfy_graph(*txt2img_graph(str(tiny_sd), seed=5, steps=8), "simple")
    graph.set_param(ids["unet"], "end_step", 3)
    graph.set_param(ids["unet"], "leftover_noise", False)
    sigmas = comfy_ksampler_sigmas("simple", 8)[:4]
    sigmas[-1] = 0.0
    x = prepare_noise(5, latent_shape(pipe)) * (1 + sigmas[0] ** 2) ** 0.5
    run_comfy(graph, ids, pipe, comfy_euler(pipe, x, sigmas, "a red circle", "", 7.5))


def test_a_split_run_equals_the_whole_run(tiny_sd):
    """KSamplerAdvanced's hand-over: steps 0-3 with the noise left, then 3-end with add_noise off,
    give the one-run image (Euler keeps no history between steps)."""
    whole, ids = comfy_graph(*txt2img_graph(str(tiny_sd), seed=9, steps=7), "karras")
    expected = run_image(whole, ids["preview"])
    split, ids = comfy_graph(*txt2img_graph(str(tiny_sd), seed=9, steps=7), "karras")
    split.set_param(ids["unet"], "end_step", 3)
    second = split.add_node(split.create_node("sd.unet_denoise", title="second", params={
        "start_step": 3, "add_noise": False}))
    for name in ("model", "positive", "negative", "noise", "scheduler"):
        link = split.inbound(ids["unet"], name)
        split.connect(link.src_node, link.src_output, second.id, name)
    split.connect(ids["unet"], "latent", second.id, "latent")
    split.connect(second.id, "latent", ids["decode"], "latent")
    assert np.abs(run_image(split, ids["preview"]) - expected).max() <= 1


def test_a_scheduler_without_custom_sigmas_is_refused(tiny_sd):
    graph, ids = comfy_graph(*txt2img_graph(str(tiny_sd), scheduler="DPM++ 2M", steps=4), "karras")
    result = Executor().run(graph)
    assert result.status == "failed"
    error = result.error
    assert error.node_id == ids["scheduler"]
    assert "DPM++ 2M" in error.message and "'karras'" in error.message and "Euler" in error.message


def test_which_schedulers_take_custom_sigmas():
    from nodes.schedulers import SCHEDULERS, comfy_schedule_problem, takes_custom_sigmas

    assert takes_custom_sigmas("Euler")
    assert not takes_custom_sigmas("UniPC")  # its sigmas= is for flow-matching models only
    for name in SCHEDULERS:
        assert (comfy_schedule_problem(name, "normal") is None) == takes_custom_sigmas(name)
        assert comfy_schedule_problem(name, "model default") is None
