#!/usr/bin/env python3
"""What this Python's PyTorch can run, for `reslab bench suite`: its version, whether it has CUDA, the GPU.

Prints one JSON object: torch (version), cuda (a GPU is usable), cuda_version (the CUDA it was built
with, or null), gpu (the first GPU's name, or null), compile (torch.compile exists: PyTorch >= 2.0).
"""
import json

import torch

cuda = torch.cuda.is_available()
print(json.dumps({
    "torch": torch.__version__,
    "cuda": cuda,
    "cuda_version": torch.version.cuda,
    "gpu": torch.cuda.get_device_name(0) if cuda else None,
    "compile": hasattr(torch, "compile"),
}))
