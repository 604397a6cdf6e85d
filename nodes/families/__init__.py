"""Stable Diffusion model families (SD 1.x, SD 2.x, SDXL base, SDXL refiner): what each one is and how
to recognise it from a checkpoint's header without loading its weights."""
