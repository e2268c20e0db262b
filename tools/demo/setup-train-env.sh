#!/bin/bash
# The demo model's training stack: a venv over Debian's Python packages with PyTorch 2.5.1 and the
# pinned PyPI packages of tools/requirements.txt. Usage: tools/demo/setup-train-env.sh [VENV]
# (default .venv-train), then VENV/bin/python tools/demo/train.py ... (docs/demo-model.md).
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
venv=${1:-$here/.venv-train}
/usr/bin/python3 -m venv --system-site-packages "$venv"
# the pinned packages, and the commented torch/torchvision pins of the training stack (the other
# commented pins belong to other tools' venvs)
pins=$( (grep -E '^(transformers|timm|tokenizers|safetensors)==' "$here/tools/requirements.txt"
        grep -E '^# ?(torch|torchvision)==' "$here/tools/requirements.txt" | sed 's/^# *//') )
# shellcheck disable=SC2086
"$venv/bin/pip" install --quiet $pins
"$venv/bin/python" -c 'import torch, torchvision, transformers, timm; print("torch", torch.__version__,
      "torchvision", torchvision.__version__, "transformers", transformers.__version__, "timm", timm.__version__)'
