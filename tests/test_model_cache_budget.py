"""The model cache keeps models within a memory budget (never a count), least recently used out
first; the budget comes from LATENTGRAPH_MODEL_CACHE_GB, the CLI's --model-cache-gb or the
editor's settings."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from nodes.model_cache import BUDGET_ENV, GIB, ModelCache, budget_bytes, model_bytes, set_budget_gb


def fake_cache(budget: int, sizes: dict[str, int]):
    loaded = []

    def load(path, key, device, dtype, config, compile, offload):
        loaded.append(path.name)
        return SimpleNamespace(nbytes=sizes[path.name], name=path.name)

    return ModelCache(load, budget=lambda: budget), loaded


@pytest.fixture
def files(tmp_path):
    out = {}
    for name in "abc":
        (tmp_path / name).write_bytes(name.encode())
        out[name] = str(tmp_path / name)
    return out


def test_evicts_least_recently_used_until_within_budget(files):
    cache, loaded = fake_cache(13, {"a": 6, "b": 6, "c": 6})
    cache.get(files["a"], "cpu")
    cache.get(files["b"], "cpu")
    assert cache.bytes == 12 and cache.evictions == 0
    cache.get(files["a"], "cpu")  # a used last: b is now the least recently used
    cache.get(files["c"], "cpu")
    assert [key[0].rsplit("/", 1)[-1] for key in cache.keys()] == ["a", "c"]
    assert cache.evictions == 1 and loaded == ["a", "b", "c"]
    cache.get(files["b"], "cpu")  # evicted: read again
    assert loaded == ["a", "b", "c", "b"]


def test_budget_is_bytes_not_a_count(files):
    cache, loaded = fake_cache(100, {"a": 1, "b": 1, "c": 1})
    for name in "abc":
        cache.get(files[name], "cpu")
    assert len(cache) == 3 and cache.evictions == 0


def test_the_newest_model_stays_even_alone_over_budget(files):
    cache, loaded = fake_cache(5, {"a": 6, "b": 7, "c": 1})
    assert cache.get(files["a"], "cpu").name == "a"
    assert cache.get(files["b"], "cpu").name == "b"
    assert len(cache) == 1 and cache.keys()[0][0].endswith("b")
    assert cache.get(files["b"], "cpu").name == "b" and loaded == ["a", "b"]


def test_budget_from_the_environment(monkeypatch):
    monkeypatch.setenv(BUDGET_ENV, "2.5")
    assert budget_bytes() == int(2.5 * GIB)
    monkeypatch.setenv(BUDGET_ENV, "nonsense")  # ignored: the default
    assert budget_bytes() > 0
    for bad in ("0", "-1", "inf", "nan", "x"):
        with pytest.raises(ValueError, match="GiB"):
            set_budget_gb(bad)
    set_budget_gb("0.25")
    assert budget_bytes() == GIB // 4


def test_tiny_models_evicted_by_their_weight_bytes(tmp_path):
    import torch

    from nodes.models import load_models
    from nodes.tiny_models import make_tiny_sd

    first, second = make_tiny_sd(tmp_path / "one", seed=0), make_tiny_sd(tmp_path / "two", seed=1)
    budget = {"bytes": 1 << 40}
    cache = ModelCache(load_models, budget=lambda: budget["bytes"])
    one = cache.get(str(first), "cpu", "fp32")
    size = model_bytes(one)
    modules = (one.unet.unet, one.vae.vae, *(e.encoder for e in one.clip.encoders))
    assert size == sum(t.numel() * 4 for m in modules for t in (*m.parameters(), *m.buffers())
                       if t.dtype == torch.float32) + sum(
        t.numel() * t.element_size() for m in modules for t in m.buffers() if t.dtype != torch.float32)
    budget["bytes"] = int(size * 1.5)  # room for one of the two
    cache.get(str(second), "cpu", "fp32")
    assert len(cache) == 1 and cache.evictions == 1 and cache.bytes == model_bytes(cache.get(str(second), "cpu", "fp32"))
    assert cache.get(str(first), "cpu", "fp32") is not one and cache.loads == 3


def test_a_model_that_will_not_fit_evicts_before_it_is_read(files):
    """Its size known from its header, the models it replaces go first, so it is not read while
    memory still holds them."""
    sizes = {"a": 6, "b": 6, "c": 6}
    cached_while_loading = []

    def load(path, key, device, dtype, config, compile, offload):
        cached_while_loading.append([key[0].rsplit("/", 1)[-1] for key in cache.keys()])
        return SimpleNamespace(nbytes=sizes[path.name])

    cache = ModelCache(load, budget=lambda: 13, estimate=lambda path, dtype: sizes[path.name])
    for name in "abc":
        cache.get(files[name], "cpu")
    assert cached_while_loading == [[], ["a"], ["b"]] and cache.evictions == 1


def test_the_estimate_from_headers_is_the_loaded_size(tmp_path):
    """For a folder in its own dtype and for an fp16 single file loaded in fp32 (within what the
    models build themselves, such as CLIP's position ids)."""
    import torch
    from safetensors.torch import save_file

    from nodes.ldm_export import folder_to_ldm
    from nodes.model_cache import estimated_bytes
    from nodes.models import load_models
    from nodes.tiny_models import make_tiny_sd

    folder = make_tiny_sd(tmp_path / "tiny")
    cache = ModelCache(load_models)
    assert estimated_bytes(folder, torch.float32) == pytest.approx(
        model_bytes(cache.get(str(folder), "cpu", "fp32")), rel=1e-3)
    file = tmp_path / "tiny-fp16.safetensors"
    save_file({k: v.half() if v.is_floating_point() else v for k, v in folder_to_ldm(folder).items()}, str(file))
    loaded = cache.get(str(file), "cpu", "fp32", config=str(folder))
    assert estimated_bytes(file, torch.float32) == pytest.approx(model_bytes(loaded), rel=1e-3)
    assert estimated_bytes(file, torch.float16) == pytest.approx(model_bytes(loaded) / 2, rel=1e-2)
    assert estimated_bytes(tmp_path / "missing.safetensors", torch.float32) == 0


def test_cli_flag_parsed_and_applied(monkeypatch, tmp_path):
    from nodeeditor.cli import build_parser
    from nodeeditor.cli_common import BadInput, apply_model_folder_args

    monkeypatch.delenv(BUDGET_ENV, raising=False)
    args = build_parser().parse_args(["run", "wf.json", "--model-cache-gb", "3.5"])
    assert args.model_cache_gb == "3.5"
    apply_model_folder_args(args)
    assert budget_bytes() == int(3.5 * GIB)
    with pytest.raises(BadInput, match="--model-cache-gb"):
        apply_model_folder_args(build_parser().parse_args(["run", "wf.json", "--model-cache-gb", "-2"]))


def test_cli_refuses_a_bad_budget_before_running(monkeypatch, tmp_path, capsys):
    from nodeeditor.cli import EXIT_BAD_INPUT, main

    monkeypatch.delenv(BUDGET_ENV, raising=False)
    assert main(["run", str(tmp_path / "missing.json"), "--model-cache-gb", "lots"]) == EXIT_BAD_INPUT
    assert "--model-cache-gb" in capsys.readouterr().err


def test_editor_reads_its_budget_from_settings(monkeypatch):
    pytest.importorskip("PySide6")
    from PySide6.QtCore import QSettings, QStandardPaths

    from nodeeditor.cli import CACHE_SETTING, apply_cache_setting
    from nodeeditor.document import APP_NAME

    QStandardPaths.setTestModeEnabled(True)
    settings = QSettings(APP_NAME, APP_NAME)
    try:
        settings.setValue(CACHE_SETTING, "6")
        settings.sync()
        monkeypatch.delenv(BUDGET_ENV, raising=False)
        apply_cache_setting()
        assert budget_bytes() == 6 * GIB
        monkeypatch.setenv(BUDGET_ENV, "2")  # the environment (or the CLI flag) wins
        apply_cache_setting()
        assert budget_bytes() == 2 * GIB
    finally:
        settings.remove(CACHE_SETTING)
        settings.sync()
