"""What a model source is — family, prediction, inpainting, default size — read from its configs
or its safetensors header, without loading weights (``latentgraph model PATH``). Load model
reports the same on its node once it has loaded."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .families.catalog import FAMILIES, family_for_folder
from .families.detect import CheckpointError, detect, predicts_v, read_header
from .model_sources import ModelLoadError, read_json, resolve_source


def probe(source: str) -> dict[str, Any]:
    """A description of ``source`` ('bundled', a diffusers folder or a single file); raises
    ModelLoadError naming the path for anything that is not a model we can load."""
    path = resolve_source(source)
    if path.is_dir():
        return _probe_folder(path)
    if path.suffix.lower() != ".safetensors":
        return {"source": str(path), "format": "pickle checkpoint", "family": None,
                "note": "a .ckpt cannot be recognised without loading it: set Load model's 'config'"}
    try:
        detected = detect(read_header(path), path.name)
    except CheckpointError as exc:
        raise ModelLoadError(str(exc)) from None
    family = FAMILIES[detected.family]
    v = predicts_v(path, detected)
    # The bundled SD 2.x config is the 768 v-prediction model's; a 512 epsilon file is SD 2.x base.
    size = 512 if family.id == "sd2" and not v else family.default_size
    return {"source": str(path), "format": "single file", "family": family.id, "title": detected.title,
            "prediction": "v_prediction" if v else "epsilon", "inpainting": detected.inpainting,
            "default_size": size, "evidence": detected.evidence}


def _probe_folder(folder: Path) -> dict[str, Any]:
    def config(*parts: str) -> dict:
        file = folder.joinpath(*parts)
        data = read_json(file) if file.is_file() else {}
        if not isinstance(data, dict):
            raise ModelLoadError(f"{file}: expected a JSON object")
        return data

    index, unet, vae = config("model_index.json"), config("unet", "config.json"), config("vae", "config.json")
    family = family_for_folder(index, unet)
    prediction = config("scheduler", "scheduler_config.json").get("prediction_type", "epsilon")
    scale = 2 ** (len(vae.get("block_out_channels", (0, 0, 0, 0))) - 1)
    inpainting = unet.get("in_channels") == 9
    return {"source": str(folder), "format": "diffusers folder", "family": family.id,
            "title": family.title + (" inpainting" if inpainting else ""), "prediction": prediction,
            "inpainting": inpainting, "default_size": int(unet.get("sample_size", 64)) * scale,
            "evidence": f"context dim {unet.get('cross_attention_dim')}, {unet.get('in_channels')} input channels"}


def families() -> list[dict[str, Any]]:
    """The families Load model recognises, for ``latentgraph nodes --json``."""
    return [{"id": f.id, "title": f.title, "pipeline": f.pipeline, "default_size": f.default_size,
             "prediction": f.prediction, "text_encoders": len(f.text_encoders)} for f in FAMILIES.values()]
