#!/usr/bin/env bash
# Fetch the wheels that bench/device_check.sh installs on the device machine into .whl
# (git-ignored locally): the device image has torch, transformers and accelerate but not
# diffusers. Run here, in the repository root, before the device call; then name ".whl" in the
# call's carry. Pins match the versions of docs/benchmarks.md's H100 tables.
#
#   bash bench/device_wheels.sh && ls .whl
set -euo pipefail
cd "$(dirname "$0")/.."
grep -qx '/.whl/' .git/info/exclude 2> /dev/null || echo /.whl/ >> .git/info/exclude
rm -rf .whl
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    -d .whl "diffusers==${DIFFUSERS_VERSION:-0.42.1}" importlib_metadata
ls .whl
