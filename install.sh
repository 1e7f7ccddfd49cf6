#!/usr/bin/env bash
# Set up srcockpit in a virtual environment (.venv beside this file, or $SRCOCKPIT_VENV).
#
# The order matters, which is why this script exists rather than a bare `pip install -e .`:
#  1. torch/torchvision first. A torch already in the venv (your own CUDA build) is kept;
#     TORCH_SPEC picks another one, e.g. TORCH_SPEC="torch==2.5.1 torchvision==0.20.1".
#  2. basicsr 1.4.2 is an sdist whose setup.py imports torch: built without isolation it uses the
#     torch from step 1 (seconds) instead of pulling a second multi-GB torch into a build env.
#  3. realesrgan 0.3.0 declares facexlib/gfpgan/numba, which training never imports; --no-deps
#     keeps them out of this step (the project install below still satisfies its metadata).
#  4. the project itself, editable, with the test tools.
set -euo pipefail
cd "$(dirname "$0")"
venv=${SRCOCKPIT_VENV:-.venv}
[ -x "$venv/bin/python" ] || "${PYTHON:-python3}" -m venv "$venv"
py="$venv/bin/python"
pip=("$py" -m pip install --quiet --disable-pip-version-check)
"${pip[@]}" --upgrade pip setuptools wheel
if [ -n "${TORCH_SPEC:-}" ] || ! "$py" -c "import torch, torchvision" 2>/dev/null; then
  # shellcheck disable=SC2086
  "${pip[@]}" ${TORCH_SPEC:-torch torchvision}
fi
"$py" -m pip show basicsr >/dev/null 2>&1 || "${pip[@]}" --no-build-isolation "basicsr==1.4.2"
"$py" -m pip show realesrgan >/dev/null 2>&1 || "${pip[@]}" --no-deps "realesrgan==0.3.0"
"${pip[@]}" -e ".[test]"
echo "srcockpit is installed in $venv: run $venv/bin/srcockpit (or activate $venv)"
