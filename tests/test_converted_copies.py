"""A single file stored in fp16 and loaded in fp32 is converted once; later loads map its converted
copy (nodes/converted_copies.py): the same weights, read from the page cache, and never the copy of
a file that has changed since."""

from __future__ import annotations

import os

import pytest
import torch
from safetensors.torch import save_file

import nodes  # noqa: F401
from nodes import converted_copies
from nodes.ldm_export import folder_to_ldm, sdxl_folder_to_sgm
from nodes.model_cache import ModelCache
from nodes.models import load_models
from nodes.tiny_models import make_tiny_sd


@pytest.fixture
def copies(tmp_path, monkeypatch):
    monkeypatch.setenv(converted_copies.DIR_ENV, str(tmp_path / "copies"))
    monkeypatch.delenv(converted_copies.BUDGET_ENV, raising=False)
    return tmp_path / "copies"


def write_fp16(folder, file, convert=folder_to_ldm):
    """The folder's weights as one original-layout file in fp16, as checkpoints are shipped."""
    tensors = {key: value.half() if value.is_floating_point() else value for key, value in convert(folder).items()}
    save_file(tensors, str(file))
    return file


def fresh_load(file, config):
    """A load in a new cache, as a new process does it."""
    return ModelCache(load_models).get(str(file), "cpu", "fp32", config=str(config))


def weights(loaded) -> dict[str, torch.Tensor]:
    out = {f"unet.{k}": v for k, v in loaded.unet.unet.state_dict().items()}
    out.update({f"vae.{k}": v for k, v in loaded.vae.vae.state_dict().items()})
    for index, encoder in enumerate(loaded.clip.encoders):
        out.update({f"encoder{index}.{k}": v for k, v in encoder.encoder.state_dict().items()})
    return out


def folder_weights_through_fp16(folder, encoders) -> dict[str, torch.Tensor]:
    """The reference: diffusers' and transformers' own loads of the folder, rounded through fp16
    as the file stores them, then widened back to fp32."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTextModelWithProjection

    def rounded(state):
        return {k: v.half().float() if v.is_floating_point() else v for k, v in state.items()}

    unet = UNet2DConditionModel.from_pretrained(folder, subfolder="unet")
    out = {f"unet.{k}": v for k, v in rounded(unet.state_dict()).items()}
    vae = AutoencoderKL.from_pretrained(folder, subfolder="vae")
    out.update({f"vae.{k}": v for k, v in rounded(vae.state_dict()).items()})
    for index, (sub, cls) in enumerate(encoders):
        cls = CLIPTextModelWithProjection if cls == "projection" else CLIPTextModel
        out.update({f"encoder{index}.{k}": v for k, v in rounded(cls.from_pretrained(folder / sub).state_dict()).items()})
    return out


def assert_same(ours: dict, reference: dict) -> None:
    missing = set(reference) - set(ours)
    assert not missing, sorted(missing)[:5]
    for key, value in reference.items():
        assert ours[key].dtype == torch.float32, key
        assert torch.equal(ours[key], value), key


def mapped_from(folder) -> bool:
    """Whether this process maps a file under ``folder`` (its weights are the page cache's pages)."""
    with open("/proc/self/maps") as maps:
        return any(str(folder) in line for line in maps)


def test_the_second_load_maps_the_converted_copy_with_the_same_weights(tiny_sd, tmp_path, copies):
    file = write_fp16(tiny_sd, tmp_path / "tiny-fp16.safetensors")
    hits = converted_copies.hits
    first = fresh_load(file, tiny_sd)
    converted_copies.wait_for_copies()
    assert converted_copies.hits == hits  # converted from the file
    (copy, size, _), = converted_copies.copies()
    assert copy.parent == copies and size == sum(v.numel() * v.element_size() for v in weights(first).values())

    second = fresh_load(file, tiny_sd)
    assert converted_copies.hits == hits + 1
    assert first.note.startswith("converted from float16 to float32; a converted copy is being kept in")
    assert second.note == "float32 from its converted copy"
    reference = folder_weights_through_fp16(tiny_sd, [("text_encoder", "plain")])
    assert_same(weights(first), reference)
    assert_same(weights(second), reference)
    assert dict(second.unet.scheduler_config) == dict(first.unet.scheduler_config)
    if os.path.exists("/proc/self/maps"):
        assert mapped_from(copy)


@pytest.mark.parametrize("kind", ["base", "refiner"])
def test_an_sdxl_file_copy_keeps_its_text_encoders_and_family(tiny_sdxl, tiny_sdxl_refiner, tmp_path, copies, kind):
    folder = tiny_sdxl if kind == "base" else tiny_sdxl_refiner
    file = write_fp16(folder, tmp_path / f"tiny-xl-{kind}-fp16.safetensors", sdxl_folder_to_sgm)
    first = fresh_load(file, folder)
    converted_copies.wait_for_copies()
    hits = converted_copies.hits
    loaded = fresh_load(file, folder)
    assert converted_copies.hits == hits + 1 and loaded.family.id == first.family.id == f"sdxl_{kind}"
    encoders = [("text_encoder", "plain"), ("text_encoder_2", "projection")][0 if kind == "base" else 1:]
    assert_same(weights(loaded), folder_weights_through_fp16(folder, encoders))


def test_a_changed_file_is_never_served_from_its_old_copy(tiny_sd, tmp_path, copies):
    """Rewritten in place with other weights of the same size, its mtime put back: the copy of the
    old weights stays on disk but is not used."""
    file = write_fp16(tiny_sd, tmp_path / "tiny-fp16.safetensors")
    fresh_load(file, tiny_sd)
    converted_copies.wait_for_copies()
    assert len(converted_copies.copies()) == 1
    before = os.stat(file)
    other = make_tiny_sd(tmp_path / "other", seed=7)
    write_fp16(other, tmp_path / "other.safetensors")
    with open(tmp_path / "other.safetensors", "rb") as new, open(file, "r+b") as old:
        old.write(new.read())
    os.utime(file, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert os.stat(file).st_size == before.st_size and os.stat(file).st_mtime_ns == before.st_mtime_ns

    hits = converted_copies.hits
    loaded = fresh_load(file, tiny_sd)
    assert converted_copies.hits == hits
    assert_same(weights(loaded), folder_weights_through_fp16(other, [("text_encoder", "plain")]))
    converted_copies.wait_for_copies()
    assert len(converted_copies.copies()) == 2  # the new weights' copy beside the old one


def test_a_budget_of_zero_writes_no_copy(tiny_sd, tmp_path, copies, monkeypatch):
    monkeypatch.setenv(converted_copies.BUDGET_ENV, "0")
    file = write_fp16(tiny_sd, tmp_path / "tiny-fp16.safetensors")
    assert "converted copies are off" in fresh_load(file, tiny_sd).note
    converted_copies.wait_for_copies()
    assert converted_copies.copies() == [] and not copies.exists()


def test_a_copy_over_the_budget_is_not_written_and_the_node_says_why(tiny_sd, tmp_path, copies, monkeypatch):
    monkeypatch.setenv(converted_copies.BUDGET_ENV, "0.0001")  # 105 kB: less than the tiny model
    file = write_fp16(tiny_sd, tmp_path / "tiny-fp16.safetensors")
    note = fresh_load(file, tiny_sd).note
    converted_copies.wait_for_copies()
    assert "no converted copy kept" in note and "over their budget" in note
    assert converted_copies.copies() == []


def test_the_least_recently_used_copy_goes_when_the_budget_is_full(tiny_sd, tmp_path, copies, monkeypatch):
    files = [write_fp16(make_tiny_sd(tmp_path / f"m{seed}", seed=seed), tmp_path / f"m{seed}.safetensors")
             for seed in (1, 2)]
    fresh_load(files[0], tmp_path / "m1")
    converted_copies.wait_for_copies()
    (first, size, _), = converted_copies.copies()
    monkeypatch.setenv(converted_copies.BUDGET_ENV, repr(1.5 * size / converted_copies.GIB))
    (copies / "1234.part-999999999-1").mkdir()  # an unfinished copy of a process that is gone
    fresh_load(files[1], tmp_path / "m2")
    converted_copies.wait_for_copies()
    (kept, _, _), = converted_copies.copies()
    assert kept != first and not first.exists()
    assert not (copies / "1234.part-999999999-1").exists()


def test_remove_all_frees_the_copies(tiny_sd, tmp_path, copies):
    file = write_fp16(tiny_sd, tmp_path / "tiny-fp16.safetensors")
    fresh_load(file, tiny_sd)
    converted_copies.wait_for_copies()
    (folder, size, _), = converted_copies.copies()
    assert converted_copies.remove_all() == size and not folder.exists() and converted_copies.copies() == []


def test_a_file_stored_in_the_dtype_it_loads_in_needs_no_copy(tiny_sd, tmp_path, copies):
    file = tmp_path / "tiny-fp32.safetensors"
    save_file(folder_to_ldm(tiny_sd), str(file))
    fresh_load(file, tiny_sd)
    converted_copies.wait_for_copies()
    assert converted_copies.copies() == []


def test_leaving_while_a_copy_is_written_stops_it_cleanly(tiny_sd, tmp_path, copies):
    """The app closed mid-write: the process exits normally (a writer thread left inside torch
    while the interpreter finalizes aborts it) and leaves no unfinished copy behind."""
    import subprocess
    import sys
    import textwrap

    file = write_fp16(tiny_sd, tmp_path / "tiny-fp16.safetensors")
    script = textwrap.dedent(f"""
        import time
        import nodes
        from nodes import converted_copies
        from nodes.model_cache import ModelCache
        from nodes.models import load_models

        widen = converted_copies._widened
        def slow_widen(tensor, dtype):  # a real-size write: seconds, not milliseconds
            time.sleep(0.02)
            return widen(tensor, dtype)
        converted_copies._widened = slow_widen
        ModelCache(load_models).get({str(file)!r}, "cpu", "fp32", config={str(tiny_sd)!r})
        assert any(t.is_alive() for t in converted_copies._writers.values())
        print("left while writing")
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                          env={**os.environ, converted_copies.DIR_ENV: str(copies)})
    assert done.returncode == 0, done.stderr[-2000:]
    assert "left while writing" in done.stdout and "terminate called" not in done.stderr
    assert converted_copies.copies() == [] and not list(copies.glob("*.part-*"))


def test_the_cli_run_leaves_a_finished_copy_for_the_next_run(tiny_sd, tmp_path, copies):
    """`latentgraph run` exits without the interpreter's teardown, but only once the copy is written;
    the next run reads it (Load model says so)."""
    import subprocess
    import sys

    from nodes.recipes import txt2img_graph

    file = write_fp16(tiny_sd, tmp_path / "tiny-fp16.safetensors")
    graph, ids = txt2img_graph(str(file), steps=2, size=16)
    graph.set_param(ids["load"], "config", str(tiny_sd))
    workflow = tmp_path / "wf.json"
    from graphs import workflow as workflow_file

    workflow_file.save(graph, str(workflow))
    env = {**os.environ, converted_copies.DIR_ENV: str(copies)}
    run = ["run", str(workflow), "--output-dir", str(tmp_path / "out")]
    slow_writer = (  # a real-size copy takes seconds to write: still writing when the run ends
        "import sys, time\n"
        "from nodes import converted_copies\n"
        "widen = converted_copies._widened\n"
        "converted_copies._widened = lambda t, d: (time.sleep(0.01), widen(t, d))[1]\n"
        f"sys.argv = ['latentgraph'] + {run!r}\n"
        "from nodeeditor.cli import entry\n"
        "entry()\n")
    first = subprocess.run([sys.executable, "-c", slow_writer], capture_output=True, text=True, timeout=300, env=env)
    assert first.returncode == 0, first.stderr[-2000:]
    assert "converted from float16 to float32" in first.stderr and "finishing a checkpoint's converted copy" in first.stderr
    assert len(converted_copies.copies()) == 1 and not list(copies.glob("*.part-*"))
    second = subprocess.run([sys.executable, "-m", "nodeeditor.cli", *run], capture_output=True, text=True,
                            timeout=300, env=env)
    assert second.returncode == 0 and "float32 from its converted copy" in second.stderr


def test_a_damaged_copy_is_replaced_by_a_sound_one(tiny_sd, tmp_path, copies):
    file = write_fp16(tiny_sd, tmp_path / "tiny-fp16.safetensors")
    fresh_load(file, tiny_sd)
    converted_copies.wait_for_copies()
    (copy, _, _), = converted_copies.copies()
    weights_file = copy / "unet" / "diffusion_pytorch_model.safetensors"
    weights_file.write_bytes(weights_file.read_bytes()[:1000])  # cut short, as by a full disk
    hits = converted_copies.hits
    loaded = fresh_load(file, tiny_sd)
    assert converted_copies.hits == hits and loaded.note.startswith("converted from float16")
    converted_copies.wait_for_copies()
    assert converted_copies.copies() and fresh_load(file, tiny_sd).note == "float32 from its converted copy"
    assert_same(weights(loaded), folder_weights_through_fp16(tiny_sd, [("text_encoder", "plain")]))
