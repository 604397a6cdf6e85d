"""Models compiled ahead of time with AOTInductor, one package per input signature, kept on disk.

torch.compile re-traces a model with Dynamo in every new process, even when all its kernels come
from the on-disk cache: on an H100 that was 10.6 s of a 13.4 s warm first run (UNet + VAE
decoder, docs/benchmarks.md). An AOTInductor package is the compiled model itself (generated
code and kernels, no weights): a later launch loads it in about a second and traces nothing.

Packages are built on first use of an input signature (shapes, dtypes, strides), like a
torch.compile recompile, and are keyed by everything that shapes the generated code: the
model's structure and weight layout, the inputs, the device and the torch version. Weights are
never written: they are handed from the live model to the loaded package (user-managed, no copy),
so a package cannot carry or leak a model's weights. The packages hold native code that this
program built into the user's own cache folder; nothing from elsewhere is ever loaded.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import platform
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from graphs.executor import current_context

log = logging.getLogger(__name__)

# Part of every package key: bump it when the way packages are built changes.
PACKAGE_FORMAT = "1"
# No weights in a package: none in the library (they come from the live model at load), and no
# small ones (biases and norms of <= 8 values) inlined into the generated code, which inductor
# does by default — a package built from one model would then run others with its values.
PACKAGE_CONFIG = {"aot_inductor.package_constants_in_so": False, "always_keep_tensor_constants": True}


class AotCompiled:
    """``module(*tensors)`` run from AOTInductor packages built (or loaded) per input signature.

    - ``module`` takes tensors positionally and returns a tensor; it stays in eval mode and its
      weights must not be moved or replaced while this object lives (the packages read them in
      place).
    - A failed build disables compilation for this module (``disabled_reason``) and runs it
      eagerly; a package that fails to load is rebuilt once.
    - Thread-safe: one call at a time (the packages run single-threaded, which CUDA graph
      capture needs).
    """

    def __init__(self, module, name: str, folder: Path | None = None, title: str = "") -> None:
        self.module = module
        self.name = name  # names the package files
        self.title = title or name  # names the model in what the user is told
        self.folder = Path(folder) if folder is not None else aot_cache_dir()
        self.disabled_reason: str | None = None
        self.built = 0  # packages compiled in this process (for tests, logs and the benchmark)
        self.loaded = 0  # packages loaded from disk without compiling
        self._runners: dict[tuple, Any] = {}
        self._lock = threading.Lock()
        self._model_key: str | None = None

    def __call__(self, *tensors):
        import torch

        with self._lock:
            if self.disabled_reason is not None:
                return self.module(*tensors)
            signature = input_signature(tensors)
            runner = self._runners.get(signature)
            if runner is None:
                try:
                    runner = self._prepare(tensors)
                except torch.cuda.OutOfMemoryError:
                    raise  # the executor frees cached models and says so
                except Exception as exc:  # an op export cannot trace, a compiler missing, ...
                    self.disabled_reason = f"{type(exc).__name__}: {exc}"[:500]
                    log.warning("AOT compile of %s failed; running it eagerly (%s)", self.name,
                                self.disabled_reason)
                    return self.module(*tensors)
                self._runners[signature] = runner
            return runner(*tensors)

    def package_path(self, tensors) -> Path:
        """Where the package for these inputs lives (whether or not it exists yet)."""
        if self._model_key is None:
            self._model_key = model_key(self.module)
        key = (PACKAGE_FORMAT, sorted(PACKAGE_CONFIG.items()), self._model_key,
               input_signature(tensors), device_key(tensors[0].device))
        digest = hashlib.sha256(repr(key).encode()).hexdigest()
        return self.folder / f"{self.name}-{digest[:24]}.pt2"

    def _prepare(self, tensors):
        path = self.package_path(tensors)
        shapes = ", ".join("x".join(map(str, t.shape)) for t in tensors if t.dim())
        if path.is_file():
            try:
                _report(f"loading the compiled {self.title} ({shapes})")
                runner = self._load(path, tensors[0].device)
                self.loaded += 1
                return runner
            except Exception as exc:  # truncated by a crash, built by another torch, ...
                log.warning("AOT package %s could not be loaded (%s: %s); rebuilding it", path.name,
                            type(exc).__name__, exc)
                path.unlink(missing_ok=True)
        _report(f"compiling the {self.title} for {shapes} (once per size, then kept on disk; "
                f"this takes a while)")
        self._build(path, tensors)
        self.built += 1
        return self._load(path, tensors[0].device)

    def _build(self, path: Path, tensors) -> None:
        import torch
        import torch._inductor

        # Plain example inputs, traced outside inference mode: callers pass inference tensors,
        # which export can only trace inside it (and the packages must not depend on it).
        with torch.inference_mode(False), torch.no_grad():
            examples = tuple(t.detach().clone() for t in tensors)
            exported = torch.export.export(self.module, examples, strict=False)
        path.parent.mkdir(parents=True, exist_ok=True)
        _remove_abandoned_builds(path.parent)
        # Build beside the final name and rename: a second process (or a crash half-way)
        # never sees a half-written package.
        handle, partial = tempfile.mkstemp(prefix=path.stem + ".", suffix=".partial.pt2",
                                           dir=path.parent)
        os.close(handle)
        try:
            torch._inductor.aoti_compile_and_package(
                exported, package_path=partial,
                inductor_configs=dict(PACKAGE_CONFIG))  # a copy: it adds keys to the dict
            os.replace(partial, path)
        finally:
            Path(partial).unlink(missing_ok=True)

    def _load(self, path: Path, device):
        package = _open_package(path, device)
        # Every name a tensor has (a tied weight has two): the package may ask for either.
        tensors = {**dict(self.module.named_parameters(remove_duplicate=False)),
                   **dict(self.module.named_buffers(remove_duplicate=False))}
        needed = package.get_constant_fqns()
        missing = [name for name in needed if name not in tensors]
        if missing:
            raise RuntimeError(f"the package needs tensors the model lacks: {missing[:5]}")
        package.load_constants({name: tensors[name] for name in needed}, check_full_update=True,
                               user_managed=True)
        return package


def _open_package(path: Path, device):
    """The package's runner, loaded the way ``aoti_load_package`` does minus its CPU check.

    That check compares the vector ISA the package was built for with this machine's, only to
    log a warning, and works this machine's out by compiling a test library per ISA and loading
    each in a child Python (which imports torch, on torch <= 2.12): seconds paid once per process,
    so by every launch's first image (docs/benchmarks.md, the AOT section). Our package key
    already names the machine (``device_key``), so the check has nothing to add.
    """
    import torch
    import torch._inductor

    single_threaded = device.type == "cuda"
    index = -1 if device.index is None else device.index
    try:
        from torch._inductor.package.package import AOTICompiledModel

        loader = torch._C._aoti.AOTIModelPackageLoader(str(path), "model", single_threaded, 1, index)
    except (ImportError, AttributeError, TypeError):  # a torch with another loader: its own way
        return torch._inductor.aoti_load_package(str(path), run_single_threaded=single_threaded,
                                                 device_index=index)
    return AOTICompiledModel(loader)


def _remove_abandoned_builds(folder: Path, older_than_s: float = 6 * 3600) -> None:
    """Partial packages left by a process killed while compiling (no build takes hours)."""
    for partial in folder.glob("*.partial.pt2"):
        try:
            if time.time() - partial.stat().st_mtime > older_than_s:
                partial.unlink()
        except OSError:  # another process removed or finished it meanwhile
            pass


def _report(message: str) -> None:
    """Tell the user, on the node that called the model (compiling takes long enough that they
    should know why the node waits); silent outside a run (the inspector panel, scripts)."""
    context = current_context()
    if context is not None:
        context.status(message)


def unet_forward_module(unet):
    """The UNet's noise prediction as a module of three tensors (five for SDXL: its pooled text
    embeddings and time ids), which export can trace."""
    return _module_classes()["unet"](unet).eval()


def aot_decoder(decoder, folder: Path | None = None):
    """A drop-in for ``vae.decoder`` that runs the decoder from AOT packages."""
    return _module_classes()["decoder"](
        decoder, AotCompiled(decoder, "vae_decoder", folder, title="VAE decoder"))


@functools.cache
def _module_classes() -> dict[str, type]:
    import torch

    class UNetForward(torch.nn.Module):
        def __init__(self, unet) -> None:
            super().__init__()
            self.unet = unet

        def forward(self, sample, timestep, embeds, text_embeds=None, time_ids=None):
            from .values import unet_forward

            return unet_forward(self.unet, sample, timestep, embeds, text_embeds, time_ids)

    class AotDecoder(torch.nn.Module):
        """Holds the original decoder (so ``.to``/``.modules`` see it) and its AOT runner."""

        def __init__(self, decoder, runner: AotCompiled) -> None:
            super().__init__()
            self.decoder = decoder
            self.runner = runner

        def forward(self, sample, latent_embeds=None):
            if latent_embeds is not None:  # conditioned decoders (not SD's): eager
                return self.decoder(sample, latent_embeds)
            return self.runner(sample)

    return {"unet": UNetForward, "decoder": AotDecoder}


def aot_cache_dir() -> Path:
    from .compile_cache import compile_cache_dir

    return compile_cache_dir() / "aot"


def input_signature(tensors) -> tuple:
    return tuple((tuple(t.shape), str(t.dtype), tuple(t.stride()), t.device.type) for t in tensors)


def model_key(module) -> str:
    """What of a module shapes its compiled code, not its weights' values: its structure (the
    module tree with every layer's settings), each submodule's and attention processor's plain
    attributes and config (``flip_sin_to_cos``, ``rescale_output_factor``, ... change the code
    without changing the tree), and each weight's name, shape, dtype and layout."""
    parts = [type(module).__qualname__, repr(module)]
    classes = set()
    for name, sub in module.named_modules():
        classes.add(type(sub))
        parts.append(f"{name}:{type(sub).__qualname__}:{_plain_attributes(sub)}")
        config = sub.__dict__.get("_internal_dict")  # a diffusers model's config
        if config is not None:
            # Not the bookkeeping keys: "_name_or_path" is where the model was loaded from,
            # "_use_default_values" a list in set order, which changes between processes.
            settings = sorted((k, v) for k, v in dict(config).items() if not k.startswith("_"))
            parts.append(f"{name}:config:{settings!r}")
        processor = getattr(sub, "processor", None)
        if processor is not None:
            classes.add(type(processor))
            parts.append(f"{name}:{type(processor).__qualname__}:{_plain_attributes(processor)}")
    for name, tensor in [*module.named_parameters(remove_duplicate=False),
                         *module.named_buffers(remove_duplicate=False)]:
        parts.append(f"{name}:{tuple(tensor.shape)}:{tensor.dtype}:{tuple(tensor.stride())}")
    # The forward code itself: the versions of the libraries the classes come from.
    parts.extend(sorted({_library_version(cls) for cls in classes}))
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def _library_version(cls: type) -> str:
    import importlib.metadata

    package = cls.__module__.split(".")[0]
    try:
        return f"{package}=={importlib.metadata.version(package)}"
    except importlib.metadata.PackageNotFoundError:  # a class defined in a test or a script
        return package


def _plain_attributes(obj) -> str:
    def plain(value) -> bool:
        if isinstance(value, (tuple, list)):
            return all(plain(item) for item in value)
        return value is None or isinstance(value, (bool, int, float, str))

    return repr(sorted((k, v) for k, v in vars(obj).items() if plain(v)))


def device_key(device) -> str:
    """The compiler and the hardware the generated code is for."""
    import torch

    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        props = torch.cuda.get_device_properties(index)
        hardware = f"{props.name}:{props.major}.{props.minor}:cuda{torch.version.cuda}"
    else:
        hardware = "cpu"
    # The host code of a CUDA package is compiled for this CPU too. What the CPU reports, not
    # inductor's pick_vec_isa(): that compiles and loads test libraries (seconds per process).
    features = [name for name in ("avx2", "avx512", "vnni", "amx_tile")
                if getattr(torch.cpu, f"_is_{name}_supported", lambda: False)()]
    cpu = f"{platform.machine()}:{torch.backends.cpu.get_cpu_capability()}:{'+'.join(features)}"
    return f"torch{torch.__version__}:{hardware}:{cpu}"
