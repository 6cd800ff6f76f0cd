#!/usr/bin/env bash
# GPU check, for a machine with an NVIDIA GPU and the CUDA toolkit (nvcc + cuBLAS): builds the CUDA backend for this
# GPU's architecture only (one arch: minutes instead of the hours of every arch), runs the GPU subset of the tests
# (test/gpu/parity.test.ts: images, videos, changed-blocks encoding, prompts and an evicting stream on CUDA0 against
# the CPU; test/api/backends.test.ts), then the encoder and prefill speed on the GPU against the CPU in the same run,
# and prints one report. Run from a clone that `npm ci` has set up:  bash scripts/gpu-check.sh
# Options (environment): GPU_CHECK_BUILD_DIR (default build-cuda), GPU_CHECK_SKIP_BUILD=1 (reuse the build),
# GPU_CHECK_ARCH=90 (instead of nvidia-smi's compute capability).
set -uo pipefail
cd "$(dirname "$0")/.."
build_dir=${GPU_CHECK_BUILD_DIR:-build-cuda}
report=$(mktemp)
note() { echo "$*" | tee -a "$report"; }
fail() { note "FAIL: $*"; echo; echo "==== report"; cat "$report"; exit 1; }

note "gpu-check $(date -u +%FT%TZ) on $(hostname)"
command -v nvidia-smi >/dev/null || fail "no nvidia-smi: this script needs an NVIDIA GPU and its driver"
gpu=$(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | head -1)
arch=${GPU_CHECK_ARCH:-$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader | head -1 | tr -d '.')}
note "gpu: $gpu; architecture sm_$arch"
command -v nvcc >/dev/null || fail "no nvcc on PATH (install the CUDA toolkit, or add its bin/ to PATH)"
note "nvcc: $(nvcc --version | tail -1)"
cublas=$(ls "$(dirname "$(dirname "$(command -v nvcc)")")"/{lib64,lib,targets/*/lib}/libcublas.so* 2>/dev/null | head -1)
[ -n "$cublas" ] || fail "nvcc is installed but cuBLAS is not (libcublas.so not found next to it): install the toolkit's cuBLAS development package"
[ -d node_modules ] || fail "node_modules missing: run npm ci first"

addon="$build_dir/addon/vidllama.node"
if [ "${GPU_CHECK_SKIP_BUILD:-0}" != 1 ]; then
    started=$(date +%s)
    # --native: one CPU module for this machine besides CUDA (the CPU baseline of the speed comparison; the 14
    # portable variants are the CPU builds' business, not this check's).
    VIDLLAMA_CMAKE_ARGS="-DCMAKE_CUDA_ARCHITECTURES=$arch ${VIDLLAMA_CMAKE_ARGS:-}" \
        node scripts/build-native.mjs --gpu cuda --native --build-dir "$build_dir" --jobs "$(nproc)" >"$build_dir.log" 2>&1 \
        || { tail -40 "$build_dir.log"; fail "the CUDA build failed (log: $build_dir.log)"; }
    note "build: $(( $(date +%s) - started )) s (CUDA sm_$arch + one native CPU module), $(tail -1 "$build_dir.log")"
fi
[ -f "$addon" ] || fail "no $addon"
export VIDLLAMA_ADDON_PATH="$PWD/$addon"
npm run build:ts >/dev/null 2>&1 || fail "npm run build:ts failed"

note ""
note "== vidllama info"
node dist/cli/index.js info | tee -a "$report"
node dist/cli/index.js info | grep -q '^gpu "auto": CUDA' || fail 'gpu "auto" did not choose a CUDA device (see vidllama info above)'

note ""
note "== GPU tests: CUDA0 against the CPU"
started=$(date +%s)
if VIDLLAMA_TEST_GPU=cuda npx vitest run test/gpu/parity.test.ts test/api/backends.test.ts >gpu-tests.log 2>&1; then
    note "tests: passed in $(( $(date +%s) - started )) s ($(grep -E 'Tests +[0-9]' gpu-tests.log | tail -1 | sed 's/\x1b\[[0-9;]*m//g' | xargs))"
else
    tail -60 gpu-tests.log
    note "tests: FAILED after $(( $(date +%s) - started )) s (log: gpu-tests.log)"
    tests_failed=1
fi

note ""
note "== speed: the same work on CUDA0 and on the CPU, same run (random weights of the real 2B shapes)"
npm run bench:build >/dev/null 2>&1 || fail "npm run bench:build failed"
for where in cuda cpu; do
    node bench/.models/js/bench/vision-encoder.js --sizes 448x448 --reps 3 --no-llama-cpp --gpu "$where" 2>&1 | tee -a "$report" | tail -3 || note "vision-encoder bench on $where failed"
    node bench/.models/js/bench/llm.js --quick --no-llama-cpp --gpu "$where" 2>&1 | tee -a "$report" | tail -3 || note "llm bench on $where failed"
done

echo; echo "==== report"; cat "$report"
[ -z "${tests_failed:-}" ] || exit 1
