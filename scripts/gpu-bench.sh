#!/usr/bin/env bash
# Runs the benchmark suite on a GPU: builds reslab (Release) against the CUDA libtorch of a PyTorch
# install, then `reslab bench suite` on CUDA into results/gpu-bench/<date>/ (bench.json, bench.md).
#
#   scripts/gpu-bench.sh                      # every measurement at GPT-2-small size
#   scripts/gpu-bench.sh --tiny               # tiny sizes: a quick check of the setup
#   scripts/gpu-bench.sh --steps 50 --rounds 5
#   PYTHON=~/venv/bin/python scripts/gpu-bench.sh
#
# Extra arguments go to `reslab bench suite` (see `reslab bench suite --help`). Needs the .NET 10 SDK
# and a Python with a CUDA build of PyTorch (python3, or $PYTHON): reslab loads that PyTorch's libtorch,
# and the PyTorch twins run with it.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="$(command -v "${PYTHON:-python3}")" || { echo "gpu-bench: ${PYTHON:-python3} not found; set PYTHON to a Python with a CUDA PyTorch" >&2; exit 2; }
torch_lib="$("$python" -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')"
bin="$root/artifacts/gpu-bench/reslab" # its own folder: a CPU build's libtorch must not sit next to it
out="$root/results/gpu-bench/$(date +%Y-%m-%d-%H%M%S)"

dotnet build "$root/src/ResidualLab.Cli" -c Release -p:TorchBackend=external -o "$bin"
LD_LIBRARY_PATH="$torch_lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" \
  dotnet "$bin/reslab.dll" bench suite --out "$out" --python "$python" "$@"
