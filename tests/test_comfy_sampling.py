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


def comfy_ksampler_sigmas(name, steps, denoise=1.0, discard_penultimate=False):
    """KSampler.set_steps: below denoise 1, the last steps + 1 of a schedule of int(steps / denoise);
    for dpm_2, dpm_2_ancestral and uni_pc a schedule one step longer without its penultimate sigma."""
    def full(count):
        if discard_penultimate:
            sigmas = comfy_schedule(name, count + 1)
            return np.concatenate([sigmas[:-2], sigmas[-1:]])
        return comfy_schedule(name, count)

    if denoise > 0.9999:
        return full(steps)
    return full(int(steps / denoise))[-(steps + 1):]


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


def comfy_model(pipe, prompt, negative, cfg):
    """ComfyUI's EPS model under CFG, as a k-diffusion denoiser: model input x / sqrt(sigma^2 + 1) at the
    nearest-log-sigma timestep, denoised = x - eps * sigma for each prompt, cfg applied to the denoised."""
    _, logs = comfy_table(dict(pipe.scheduler.config))
    cond, uncond = pipe.encode_prompt(prompt, "cpu", 1, True, negative)
    embeds = torch.cat([uncond, cond])

    def model(x, sigma):
        sigma = torch.tensor(float(sigma), dtype=torch.float32)
        model_input = torch.cat([x, x]) / (sigma ** 2 + 1) ** 0.5
        t = torch.tensor(float(comfy_timestep(float(sigma), logs)))
        with torch.no_grad():
            eps_uncond, eps_cond = pipe.unet(model_input, t, encoder_hidden_states=embeds).sample.chunk(2)
        denoised_uncond, denoised_cond = x - eps_uncond * sigma, x - eps_cond * sigma
        return denoised_uncond + (denoised_cond - denoised_uncond) * cfg
    return model


def comfy_euler(pipe, x, sigmas, prompt, negative, cfg):
    """sample_euler: x += (x - denoised) / sigma * (sigma_next - sigma)."""
    model = comfy_model(pipe, prompt, negative, cfg)
    sigmas = torch.tensor(sigmas, dtype=torch.float32)
    for i in range(len(sigmas) - 1):
        denoised = model(x, sigmas[i])
        x = x + (x - denoised) / sigmas[i] * (sigmas[i + 1] - sigmas[i])
    return x


def ancestral_step(sigma_from, sigma_to):
    """get_ancestral_step, eta 1: (sigma_down, sigma_up)."""
    up = min(sigma_to, (sigma_to ** 2 * (sigma_from ** 2 - sigma_to ** 2) / sigma_from ** 2) ** 0.5)
    return (sigma_to ** 2 - up ** 2) ** 0.5, up


def lms_coefficient(order, sigmas, i, j):
    """linear_multistep_coeff: the integral from sigmas[i] to sigmas[i + 1] of the Lagrange basis
    polynomial j over sigmas[i], sigmas[i - 1], ..., by quadrature."""
    from scipy import integrate

    def basis(tau):
        return math.prod((tau - sigmas[i - k]) / (sigmas[i - j] - sigmas[i - k]) for k in range(order) if k != j)
    return integrate.quad(basis, sigmas[i], sigmas[i + 1], epsrel=1e-4)[0]


def comfy_sampler(kind, model, x, sigmas, seed):
    """ComfyUI's k-diffusion samplers (comfy/k_diffusion/sampling.py), over float32 sigmas."""
    s = torch.tensor(sigmas, dtype=torch.float32)
    generator = torch.Generator("cpu").manual_seed(seed + 1)  # default_noise_sampler: seed + 1 on the CPU

    def noise():
        return torch.randn(x.shape, dtype=torch.float32, generator=generator)

    old, ds = None, []
    for i in range(len(s) - 1):
        denoised = model(x, s[i])
        d = (x - denoised) / s[i]
        if kind == "heun":
            dt = s[i + 1] - s[i]
            if s[i + 1] == 0:
                x = x + d * dt
            else:
                x_2 = x + d * dt
                d_2 = (x_2 - model(x_2, s[i + 1])) / s[i + 1]
                x = x + (d + d_2) / 2 * dt
        elif kind == "dpm_2":
            if s[i + 1] == 0:
                x = x + d * (s[i + 1] - s[i])
            else:
                mid = s[i].log().lerp(s[i + 1].log(), 0.5).exp()
                x_2 = x + d * (mid - s[i])
                x = x + (x_2 - model(x_2, mid)) / mid * (s[i + 1] - s[i])
        elif kind == "dpm_2_ancestral":
            down, up = ancestral_step(s[i], s[i + 1])
            if down == 0:
                x = x + d * (down - s[i])
            else:
                mid = s[i].log().lerp(down.log(), 0.5).exp()
                x_2 = x + d * (mid - s[i])
                x = x + (x_2 - model(x_2, mid)) / mid * (down - s[i])
                x = x + noise() * up
        elif kind == "euler_ancestral":
            down, up = ancestral_step(s[i], s[i + 1])
            x = denoised if down == 0 else x + d * (down - s[i])
            if s[i + 1] > 0:
                x = x + noise() * up
        elif kind == "lms":  # linear multistep, order 4
            ds = (ds + [d])[-4:]
            order = min(i + 1, 4)
            x = x + sum(lms_coefficient(order, s.numpy(), i, j) * dj for j, dj in enumerate(reversed(ds)))
        elif kind == "dpmpp_2m":  # in t = -log sigma
            t, t_next = -s[i].log(), -s[i + 1].log()
            h = t_next - t
            if old is None or s[i + 1] == 0:
                x = ((-t_next).exp() / (-t).exp()) * x - (-h).expm1() * denoised
            else:
                r = (t + s[i - 1].log()) / h
                blended = (1 + 1 / (2 * r)) * denoised - (1 / (2 * r)) * old
                x = ((-t_next).exp() / (-t).exp()) * x - (-h).expm1() * blended
            old = denoised
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


@pytest.mark.parametrize("name,kind", [("Heun", "heun"), ("DPM2", "dpm_2"), ("DPM2 a", "dpm_2_ancestral"),
                                       ("LMS", "lms"), ("DPM++ 2M", "dpmpp_2m"), ("Euler a", "euler_ancestral")])
def test_comfyuis_own_samplers_match_comfyui(tiny_sd, pipe, name, kind):
    """Schedulers whose diffusers class takes no custom sigmas step as ComfyUI's samplers; the
    ancestral ones draw their per-step noise as ComfyUI's default noise sampler does."""
    graph, ids = comfy_graph(*txt2img_graph(str(tiny_sd), prompt="a blue star", negative="blurry", seed=7,
                                            scheduler=name, steps=5, cfg=6.5), "karras")
    sigmas = comfy_ksampler_sigmas("karras", 5, discard_penultimate=kind.startswith("dpm_2"))
    x = prepare_noise(7, latent_shape(pipe)) * (1 + sigmas[0] ** 2) ** 0.5
    model = comfy_model(pipe, "a blue star", "blurry", 6.5)
    run_comfy(graph, ids, pipe, comfy_sampler(kind, model, x, sigmas, 7))


@pytest.mark.parametrize("name,kind", [("DPM++ 2M", "dpmpp_2m"), ("Heun", "heun")])
def test_comfyuis_samplers_with_denoise_and_a_window(tiny_sd, pipe, tmp_path, name, kind):
    """img2img at denoise 0.5, then KSamplerAdvanced's steps 2 to 5 of it with the noise left."""
    path = tmp_path / "input.png"
    Image.fromarray(np.random.default_rng(1).integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(path)
    graph, ids = comfy_graph(*img2img_graph(str(tiny_sd), str(path), strength=0.5, seed=3, steps=6,
                                            scheduler=name), "normal")
    graph.set_param(ids["unet"], "start_step", 2)
    graph.set_param(ids["unet"], "end_step", 5)
    pixels = torch.from_numpy(np.asarray(Image.open(path).convert("RGB"))).permute(2, 0, 1)[None].float() / 255
    with torch.no_grad():
        latent = pipe.vae.encode(pixels * 2 - 1).latent_dist.mean * pipe.vae.config.scaling_factor
    sigmas = comfy_ksampler_sigmas("normal", 6, 0.5)[2:6]
    x = latent + prepare_noise(3, tuple(latent.shape)) * sigmas[0]
    run_comfy(graph, ids, pipe, comfy_sampler(kind, comfy_model(pipe, "a red circle", "", 7.5), x, sigmas, 3))


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
    graph, ids = comfy_graph(*txt2img_graph(str(tiny_sd), scheduler="UniPC", steps=4), "karras")
    result = Executor().run(graph)
    assert result.status == "failed"
    error = result.error
    assert error.node_id == ids["scheduler"]
    assert "UniPC" in error.message and "'karras'" in error.message and "Euler" in error.message


def test_which_schedulers_run_comfyui_schedules():
    from nodes.comfy_samplers import STEPPERS
    from nodes.schedulers import SCHEDULERS, comfy_schedule_problem, takes_custom_sigmas

    assert takes_custom_sigmas("Euler")
    assert not takes_custom_sigmas("UniPC")  # its sigmas= is for flow-matching models only
    refused = {name for name in SCHEDULERS if comfy_schedule_problem(name, "normal")}
    assert refused == {"DDIM", "DPM++ 2M SDE", "DPM++ 2M SDE Karras", "DPM++ SDE", "DPM++ SDE Karras", "UniPC",
                       "DEIS", "PNDM", "DDPM"}
    for name in SCHEDULERS:
        assert (name in refused) == (not takes_custom_sigmas(name) and name not in STEPPERS)
        assert comfy_schedule_problem(name, "model default") is None
