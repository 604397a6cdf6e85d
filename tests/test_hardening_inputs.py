"""Issue 25, hostile input and caches: bounded PNG metadata reads, images and model sources
refused quickly with the path named, CPU allocation failures handled like CUDA out-of-memory,
non-UTF-8 --set refused, and caches that reload when files change on disk."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import zlib
from pathlib import Path

import pytest

from graphs import Executor, Graph, pngmeta

ROOT = Path(__file__).resolve().parent.parent
TXT2IMG = ROOT / "resources" / "workflows" / "txt2img.json"


def _chunk(kind: bytes, body: bytes) -> bytes:
    import struct

    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _peak_rss_mb(code: str, *args: str, timeout: int = 120) -> tuple[subprocess.CompletedProcess, float]:
    script = code + textwrap.dedent("""
        # VmHWM, not ru_maxrss: Linux carries the parent's (pytest's) peak across exec
        print("RSS", next(int(l.split()[1]) for l in open("/proc/self/status")
                          if l.startswith("VmHWM")) / 1024)
    """)
    proc = subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True,
                          cwd=ROOT, timeout=timeout)
    rss = float(proc.stdout.split("RSS")[-1]) if "RSS" in proc.stdout else float("nan")
    return proc, rss


# ----- PNG metadata ----------------------------------------------------------------------------
def test_png_text_bomb_is_refused_with_bounded_memory(tmp_path):
    """30 zTXt chunks of 64 MB each in a 2 MB file: refused, well under 2 GB."""
    bomb = zlib.compress(b"\0" * (64 * 1024 * 1024), 9)
    path = tmp_path / "bomb.png"
    path.write_bytes(pngmeta.PNG_SIGNATURE + b"".join(
        _chunk(b"zTXt", f"k{i}".encode() + b"\0\0" + bomb) for i in range(30))
        + _chunk(b"IEND", b""))
    assert path.stat().st_size < 3 * 1024 * 1024
    proc, rss = _peak_rss_mb(textwrap.dedent("""
        import sys
        from graphs import pngmeta
        try:
            pngmeta.read_text_chunks(sys.argv[1])
        except ValueError as exc:
            print("refused:", exc)
    """), str(path))
    assert "refused:" in proc.stdout and "more than 33,554,432 bytes" in proc.stdout, proc.stderr
    assert rss < 400, f"peak RSS {rss:.0f} MB"


def test_png_text_limit_counts_all_chunks_together(tmp_path):
    text = zlib.compress(b"x" * (20 * 1024 * 1024))
    path = tmp_path / "many.png"
    path.write_bytes(pngmeta.PNG_SIGNATURE + b"".join(
        _chunk(b"zTXt", f"k{i}".encode() + b"\0\0" + text) for i in range(4)) + _chunk(b"IEND", b""))
    with pytest.raises(ValueError, match="in all"):
        pngmeta.read_text_chunks(path)


def test_png_signature_then_2gb_of_zeros_stops_at_once(tmp_path):
    path = tmp_path / "zeros.png"
    with open(path, "wb") as handle:
        handle.write(pngmeta.PNG_SIGNATURE)
        handle.truncate(2 * 1024**3)  # sparse: 2 GB of zeros without the disk space
    proc, rss = _peak_rss_mb(textwrap.dedent("""
        import sys
        from graphs import pngmeta
        print("chunks", pngmeta.read_text_chunks(sys.argv[1]))
    """), str(path), timeout=30)
    assert "chunks {}" in proc.stdout, proc.stderr
    assert rss < 200


def test_png_reader_stops_at_the_first_malformed_chunk(tmp_path):
    path = tmp_path / "mixed.png"
    path.write_bytes(pngmeta.PNG_SIGNATURE + _chunk(b"tEXt", b"first\0kept")
                     + b"\0\0\0\x05\x01\x02\x03\x04junk" + _chunk(b"tEXt", b"after\0never"))
    assert pngmeta.read_text_chunks(path) == {"first": "kept"}
    bad_crc = bytearray(pngmeta.PNG_SIGNATURE + _chunk(b"tEXt", b"a\0b") + _chunk(b"tEXt", b"c\0d"))
    bad_crc[-1] ^= 0xFF
    path.write_bytes(bytes(bad_crc))
    assert pngmeta.read_text_chunks(path) == {"a": "b"}


@pytest.mark.parametrize("kind", ["fifo", "dir", "dev"])
def test_png_reader_refuses_what_is_not_a_file(tmp_path, kind):
    path = {"fifo": tmp_path / "x.png", "dir": tmp_path, "dev": Path("/dev/zero")}[kind]
    if kind == "fifo":
        os.mkfifo(path)
    expected = {"fifo": "is a FIFO", "dir": "is a directory", "dev": "is a character device"}
    with pytest.raises(ValueError, match=expected[kind]):
        pngmeta.read_text_chunks(path)


# ----- Load image ------------------------------------------------------------------------------
def _load_image(path) -> tuple:
    import nodes  # noqa: F401

    graph = Graph()
    load = graph.add_node(graph.create_node("image.load", params={"path": str(path)}))
    result = Executor().run(graph, targets=[load.id])
    return result, load.id


def test_load_image_refuses_a_huge_palette_png_before_decoding(tmp_path):
    from PIL import Image

    path = tmp_path / "huge.png"
    Image.new("P", (12000, 12000)).save(path, optimize=True)
    assert path.stat().st_size < 1024 * 1024
    result, _ = _load_image(path)
    assert result.status == "failed"
    assert "12000x12000" in result.error.message and "8192x8192" in result.error.message
    assert str(path) in result.error.message


def _expected_rgb(array):
    import numpy as np

    return np.repeat(array[:, :, None], 3, axis=2) if array.ndim == 2 else array


@pytest.mark.parametrize("mode", ["I;16", "I", "F", "L", "LA", "RGBA", "P+transparency", "CMYK",
                                  "1"])
def test_load_image_converts_every_mode_faithfully(tmp_path, mode):
    import numpy as np
    from PIL import Image

    ramp16 = (np.arange(64 * 64, dtype=np.uint32).reshape(64, 64) * 16).astype(np.uint16)
    if mode == "I;16":
        image, path = Image.fromarray(ramp16), tmp_path / "x.png"  # mode I;16
        expected = _expected_rgb(ramp16 / 65535.0)
    elif mode == "I":
        image, path = Image.fromarray(ramp16.astype(np.int32), "I"), tmp_path / "x.tif"
        expected = _expected_rgb(ramp16 / 65535.0)
    elif mode == "F":
        floats = (ramp16 / 65535.0).astype(np.float32)
        image, path, expected = Image.fromarray(floats, "F"), tmp_path / "x.tif", _expected_rgb(floats)
    elif mode == "L":
        grey = (np.arange(64 * 64).reshape(64, 64) % 256).astype(np.uint8)
        image, path, expected = Image.fromarray(grey, "L"), tmp_path / "x.png", _expected_rgb(grey / 255)
    elif mode == "LA":
        grey = (np.arange(64 * 64).reshape(64, 64) % 256).astype(np.uint8)
        la = np.stack([grey, np.full_like(grey, 0)], axis=2)  # fully transparent: colour kept
        image, path, expected = Image.fromarray(la, "LA"), tmp_path / "x.png", _expected_rgb(grey / 255)
    elif mode == "RGBA":
        rgba = np.random.default_rng(0).integers(0, 256, (64, 64, 4), dtype=np.uint8)
        image, path, expected = Image.fromarray(rgba, "RGBA"), tmp_path / "x.png", rgba[..., :3] / 255
    elif mode == "P+transparency":
        image = Image.new("P", (64, 64), 1)
        image.putpalette([0, 0, 0, 200, 100, 50] + [0] * 762)
        image.info["transparency"] = 1
        path = tmp_path / "x.png"
        expected = np.broadcast_to(np.array([200, 100, 50]) / 255, (64, 64, 3))
    elif mode == "CMYK":
        image, path = Image.new("CMYK", (64, 64), (0, 255, 255, 0)), tmp_path / "x.tif"
        expected = np.broadcast_to(np.array([1.0, 0.0, 0.0]), (64, 64, 3))
    else:
        image = Image.new("1", (64, 64), 1)
        path, expected = tmp_path / "x.png", np.ones((64, 64, 3))
    image.save(path)
    result, load = _load_image(path)
    assert result.status == "finished", result.error
    got = result.outputs[load]["image"][0].permute(1, 2, 0).numpy()
    assert got.shape == (64, 64, 3)
    assert np.abs(got - expected).max() < 1e-4


def test_load_image_keeps_16_bit_greys_unsaturated(tmp_path):
    import numpy as np
    from PIL import Image

    values = np.linspace(0, 4095 * 16, 4096).reshape(64, 64).astype(np.uint16)
    Image.fromarray(values).save(tmp_path / "g16.png")
    assert Image.open(tmp_path / "g16.png").mode in ("I;16", "I")
    result, load = _load_image(tmp_path / "g16.png")
    got = result.outputs[load]["image"]
    assert float((got >= 0.999).float().mean()) < 0.01  # was 4080 of 4096 pixels white


def test_load_image_refuses_an_f_image_outside_0_1(tmp_path):
    import numpy as np
    from PIL import Image

    Image.fromarray(np.full((8, 8), 200.0, np.float32), "F").save(tmp_path / "f.tif")
    result, _ = _load_image(tmp_path / "f.tif")
    assert result.status == "failed" and "outside 0..1" in result.error.message


@pytest.mark.parametrize("kind", ["fifo", "dir", "dev", "missing"])
def test_load_image_says_what_a_path_is(tmp_path, kind):
    path = {"fifo": tmp_path / "x.png", "dir": tmp_path, "dev": Path("/dev/zero"),
            "missing": tmp_path / "nope.png"}[kind]
    if kind == "fifo":
        os.mkfifo(path)
    result, _ = _load_image(path)
    assert result.status == "failed"
    expected = {"fifo": "is a FIFO", "dir": "is a directory", "dev": "is a character device",
                "missing": "image not found"}[kind]
    assert expected in result.error.message and str(path) in result.error.message


def test_load_image_sees_a_same_size_rewrite_with_its_mtime_restored(tmp_path):
    from PIL import Image

    import nodes  # noqa: F401

    path = tmp_path / "in.bmp"  # uncompressed: both versions are the same size
    Image.new("RGB", (8, 8), (255, 0, 0)).save(path)
    info = path.stat()
    graph = Graph()
    load = graph.add_node(graph.create_node("image.load", params={"path": str(path)}))
    executor = Executor()
    first = executor.run(graph, targets=[load.id]).outputs[load.id]["image"]
    Image.new("RGB", (8, 8), (0, 0, 255)).save(path)
    os.utime(path, ns=(info.st_atime_ns, info.st_mtime_ns))
    assert path.stat().st_size == info.st_size and path.stat().st_mtime_ns == info.st_mtime_ns
    result = executor.run(graph, targets=[load.id])
    assert load.id in result.executed
    second = result.outputs[load.id]["image"]
    assert float(first[0, 0, 0, 0]) == 1.0 and float(second[0, 2, 0, 0]) == 1.0
    assert load.id in executor.run(graph, targets=[load.id]).cached  # unchanged: cached


# ----- Load model ------------------------------------------------------------------------------
def _load_model(source: str, executor: Executor | None = None):
    import nodes  # noqa: F401

    graph = Graph()
    load = graph.add_node(graph.create_node("sd.load_model", params={"source": source}))
    executor = executor or Executor()
    return executor.run(graph, targets=[load.id]), load.id


def test_model_source_root_is_refused_at_once_naming_it():
    result, _ = _load_model("/")
    assert result.status == "failed"
    assert result.error.message.startswith("/ is not a diffusers model folder (no model_index.json)")


def test_model_source_fifo_named_safetensors_is_refused_without_hanging(tmp_path):
    fifo = tmp_path / "model.safetensors"
    os.mkfifo(fifo)
    result, _ = _load_model(str(fifo))
    assert result.status == "failed" and f"{fifo}: is a FIFO, not a model file" in result.error.message


@pytest.mark.parametrize("content, message", [
    ('{"rows": []}', "'matrix' must be 4 rows"),
    ('{"matrix": [[1, 2, 3]]}', "'matrix' must be 4 rows"),
    ('{"matrix": [[1, 2, 3], [1, 2, 3], [1, 2, 3], [1, 2, "x"]]}', "of 3 finite numbers"),
    ('{"matrix": [[1, 2, 3], [1, 2, 3], [1, 2, 3], [1, 2, 3]], "bias": [1]}', "'bias' must be 3"),
    ("{not json", "not a readable JSON file"),
])
def test_bad_latent_rgb_json_is_a_clear_refusal(tiny_sd, tmp_path, content, message):
    folder = tmp_path / "model"
    shutil.copytree(tiny_sd, folder)
    (folder / "latent_rgb.json").write_text(content)
    result, _ = _load_model(str(folder))
    assert result.status == "failed"
    assert str(folder / "latent_rgb.json") in result.error.message and message in result.error.message
    assert "KeyError" not in result.error.error_type


def test_model_cache_reloads_weights_changed_on_disk(tiny_sd, tmp_path):
    import torch
    from safetensors.torch import load_file, save_file

    import nodes  # noqa: F401

    folder = tmp_path / "model"
    shutil.copytree(tiny_sd, folder)
    graph = Graph()
    load = graph.add_node(graph.create_node("sd.load_model", params={"source": str(folder)})).id
    executor = Executor()
    result = executor.run(graph, targets=[load])
    before = result.outputs[load]["model"].unet.conv_in.weight.detach().clone()
    weights_file = folder / "unet" / "diffusion_pytorch_model.safetensors"
    info = weights_file.stat()
    weights = load_file(str(weights_file))
    weights["conv_in.weight"] = torch.full_like(weights["conv_in.weight"], 0.25)
    save_file(weights, str(weights_file), metadata={"format": "pt"})
    os.utime(weights_file, ns=(info.st_atime_ns, info.st_mtime_ns))  # even with mtime put back
    result = executor.run(graph, targets=[load])
    assert load in result.executed
    after = result.outputs[load]["model"].unet.conv_in.weight
    assert not torch.equal(before, after) and bool((after == 0.25).all())
    # a fresh Executor (another run in this process) gets the new copy from the model cache
    result = Executor().run(graph, targets=[load])
    assert bool((result.outputs[load]["model"].unet.conv_in.weight == 0.25).all())


# ----- out of memory on the CPU ----------------------------------------------------------------
_OOM = textwrap.dedent("""
    import resource, sys
    sys.path.insert(0, "tests")
    import nodes
    from graphs import Executor
    from nodes.models import MODEL_CACHE
    from nodes.recipes import txt2img_graph
    graph, ids = txt2img_graph(sys.argv[1], steps=1, size=64)
    executor = Executor()
    executor.release_hooks.append(nodes.release_models)
    assert executor.run(graph).status == "finished"
    vm = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmSize")) * 1024
    resource.setrlimit(resource.RLIMIT_AS, (vm + 1024**3, resource.RLIM_INFINITY))
    graph.set_param(ids["empty"], "width", 8192)
    graph.set_param(ids["empty"], "height", 8192)
    result = executor.run(graph)
    print("STATUS", result.status, result.error.title, "|", result.error.message)
    print("CACHES", len(MODEL_CACHE), len(executor.cache))
""")


def test_a_cpu_allocation_failure_is_reported_like_cuda_oom(tiny_sd):
    """An 8192² latent with 1 GB of headroom: the allocator fails for real (RLIMIT_AS)."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", _OOM, str(tiny_sd)], capture_output=True,
                          text=True, cwd=ROOT, env=env, timeout=600)
    assert "STATUS failed" in proc.stdout, proc.stdout + proc.stderr
    assert "out of memory; cached outputs and models were freed" in proc.stdout
    assert "CACHES 0 0" in proc.stdout


# ----- command-line arguments -------------------------------------------------------------------
def test_set_value_that_is_not_utf8_is_refused_at_parsing():
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, "-m", "nodeeditor.cli", "run", str(TXT2IMG), "--set",
                           os.fsencode("Positive prompt.text=caf") + b"\xe9"],
                          capture_output=True, env=env, cwd=ROOT, timeout=120)
    stderr = proc.stderr.decode("utf-8", "replace")
    assert proc.returncode == 2, stderr
    assert stderr.startswith("error: --set ") and "not UTF-8" in stderr and "\\xe9" in stderr
    assert "Load model" not in stderr and "Traceback" not in stderr


def test_saved_parameters_chunk_is_json(tmp_path):
    """The readable parameters chunk Save image writes parses back (what the soak bench reads)."""
    from PIL import Image

    import nodes  # noqa: F401

    Image.new("RGB", (8, 8)).save(tmp_path / "in.png")
    graph = Graph()
    load = graph.add_node(graph.create_node("image.load", params={"path": str(tmp_path / "in.png")}))
    save = graph.add_node(graph.create_node("image.save"))
    graph.connect(load.id, "image", save.id, "image")
    result = Executor(settings={"output_dir": str(tmp_path / "out")}).run(graph)
    (path,) = result.outputs[save.id]["paths"]
    assert json.loads(pngmeta.read_text_chunks(path)[pngmeta.PARAMETERS_KEY])["batch_index"] == 0


# ----- workflow files --------------------------------------------------------------------------
def _validate(path, timeout=60):
    return subprocess.run([sys.executable, "-m", "nodeeditor.cli", "validate", str(path)], capture_output=True,
                          text=True, cwd=ROOT, timeout=timeout, env={**os.environ, "HF_HUB_OFFLINE": "1"})


@pytest.mark.parametrize("kind,says", [("dev", "character device"), ("fifo", "FIFO"), ("dir", "directory")])
def test_validate_refuses_what_is_not_a_regular_file_at_once(tmp_path, kind, says):
    path = {"dev": Path("/dev/zero"), "fifo": tmp_path / "w.json", "dir": tmp_path}[kind]
    if kind == "fifo":
        os.mkfifo(path)
    proc = _validate(path, timeout=30)  # /dev/zero used to grow without bound, a FIFO to hang
    assert proc.returncode == 2, proc.stderr
    assert says in proc.stderr and str(path) in proc.stderr and "Traceback" not in proc.stderr


def test_validate_refuses_duplicate_keys_and_bad_type_versions(tmp_path):
    text = TXT2IMG.read_text()
    dup = tmp_path / "dup.json"
    dup.write_text(text.replace('"format": "latentgraph"', '"format": "latentgraph", "format": "latentgraph"', 1))
    proc = _validate(dup)
    assert proc.returncode == 2 and "duplicate key 'format'" in proc.stderr, proc.stderr
    data = json.loads(text)
    for version in (-1, 0):
        data["nodes"][0]["type_version"] = version
        bad = tmp_path / f"v{version}.json"
        bad.write_text(json.dumps(data))
        proc = _validate(bad)
        assert proc.returncode == 2 and "nodes[0].type_version" in proc.stderr, proc.stderr


def test_validate_names_a_path_param_holding_a_nul_byte(tmp_path):
    data = json.loads((ROOT / "resources" / "workflows" / "img2img.json").read_text())
    index = next(i for i, n in enumerate(data["nodes"]) if n["type"] == "image.load")
    data["nodes"][index]["params"]["path"] = "in\0put.png"
    bad = tmp_path / "nul.json"
    bad.write_text(json.dumps(data))
    proc = _validate(bad)
    assert proc.returncode == 2, proc.stderr
    assert f"nodes[{index}].params.path" in proc.stderr and "NUL" in proc.stderr


def _reroute_chain_file(path: Path, length: int, into: tuple[str, str, str]) -> Path:
    """Empty latent -> ``length`` reroutes -> node ``into`` = (type, id, input), written as a file
    (not through Graph.connect, so the test does not depend on what it checks)."""
    nodes = [{"id": "src", "type": "sd.empty_latent", "pos": [0, 0]},
             {"id": into[1], "type": into[0], "pos": [0, 100]}]
    nodes += [{"id": f"r{i}", "type": "graph.reroute", "pos": [i, 0]} for i in range(length)]
    ends = [("src", "latent")] + [(f"r{i}", "out") for i in range(length)]
    links = [{"from": list(ends[i]), "to": [f"r{i}", "in"]} for i in range(length)]
    links.append({"from": list(ends[-1]), "to": [into[1], into[2]]})
    path.write_text(json.dumps({"format": "latentgraph", "version": 1, "nodes": nodes, "links": links}))
    return path


def test_a_10000_reroute_chain_validates_and_its_types_are_checked_end_to_end(tmp_path):
    good = _reroute_chain_file(tmp_path / "good.json", 10_000, ("sd.vae_decode", "dec", "latent"))
    proc = _validate(good)  # a 1,000-reroute chain used to end in a RecursionError
    assert proc.returncode == 0 and "10002 nodes, 10001 links" in proc.stdout, proc.stderr
    bad = _reroute_chain_file(tmp_path / "bad.json", 10_000, ("sd.text_encode", "enc", "clip"))
    proc = _validate(bad)
    assert proc.returncode == 2 and "type mismatch" in proc.stderr and "gives LATENT" in proc.stderr, proc.stderr


def test_a_cycle_through_a_long_reroute_loop_is_refused_at_the_link_that_closes_it(tmp_path):
    path = _reroute_chain_file(tmp_path / "loop.json", 5_000, ("sd.vae_decode", "dec", "latent"))
    data = json.loads(path.read_text())
    data["nodes"].append({"id": "r_last", "type": "graph.reroute", "pos": [0, 0]})
    data["links"][0] = {"from": ["r_last", "out"], "to": ["r0", "in"]}  # r0 <- r_last <- r4999
    data["links"].append({"from": ["r4999", "out"], "to": ["r_last", "in"]})
    path.write_text(json.dumps(data))
    proc = _validate(path)
    assert proc.returncode == 2 and "would create a cycle" in proc.stderr, proc.stderr
    assert f"links[{len(data['links']) - 1}]" in proc.stderr
