#!/usr/bin/env bash
# Issue 11: the flash attention path (attention/gpu-flash) on the GPU. Run from a folder holding this
# repository's scripts/, bin/of3c and models/of3/testdata/<fixtures>, after `run_gpu.sh stage` of all
# three library parts (see docs/notes/GPU.md "Rerunning").
#
#   scripts/gpu/flash_bench.sh kernel    standalone nvcc check of the kernel sources (no MLX needed): the FFMA and the
#                                        mma kernels against a float64 reference, then both timed on OF3's shapes
#   scripts/gpu/flash_bench.sh kernel32  the same for the register-tiled f32 kernel (gpu_flash_f32_source.h):
#                                        correctness, then old vs new timings (no MLX needed; F32BIN=path runs a
#                                        binary built elsewhere with the same commands instead of building)
#   scripts/gpu/flash_bench.sh fixtures  --check of the tiny/of3 fixtures with the flash path, fp32 (and bf16 error)
#   scripts/gpu/flash_bench.sh block     the OF3-width PairFormerBlock at NS, PRECS, flash (default paths) and,
#                                        at BEFORE_NS, OF3C_GPU_ATTENTION=noflash (the paths before this change)
#
# Knobs: NS=256,512,768,1024,1536  BEFORE_NS=512,1024  PRECS="fp32 bf16"  REPEAT=10  WORK=/tmp/gpu
#        MODEL=$GEN/testdata/pairformer_block_of3_torchscript/model.onnx (GEN=/tmp/gen: where the export step's
#        models/of3/generated was moved, so it survives the next call replacing the carried folder)
set -uo pipefail
cd "$(dirname "$0")/../.."
WORK=${WORK:-/tmp/gpu}
GEN=${GEN:-/tmp/gen}
REPEAT=${REPEAT:-10}
mkdir -p "$WORK"
setenv() {
  if [ ! -f /tmp/mlxcuda/mlx/lib/libmlx.so ]; then  # run_gpu.sh's unpack, without its step list
    cat /tmp/mlxcuda_parts/part.* > /tmp/mlxcuda.tar.xz && mkdir -p /tmp/mlxcuda && tar xJf /tmp/mlxcuda.tar.xz -C /tmp/mlxcuda && rm -f /tmp/mlxcuda.tar.xz
  fi
  eval "$(bash scripts/gpu/run_gpu.sh env | sed 's/^/export /')"
  export CUDA_PATH=${CUDA_HOME:-}
}
run() { echo "+ $*"; local t0=$(date +%s%N); timeout "${TMO:-300}" "$@"; local rc=$?; echo "  rc=$rc wall=$(( ($(date +%s%N) - t0) / 1000000 )) ms"; return $rc; }

case "${1:-block}" in
kernel)
  g++ -std=c++17 -Iinternal/mlx scripts/gpu/flash_check.cc -o $WORK/flash_gen && $WORK/flash_gen > $WORK/flash_check.cu || exit 1
  NVCC=$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)
  run "$NVCC" -std=c++17 -arch=sm_90 -O2 -Xptxas -v $WORK/flash_check.cu -o $WORK/flash_check 2>&1 | grep -E 'registers|spill|error|rc=' | sort | uniq -c | head -40
  run $WORK/flash_check
  run $WORK/flash_check time ;;
kernel32)
  B=${F32BIN:-}
  if [ -z "$B" ]; then
    g++ -std=c++17 -Iinternal/mlx scripts/gpu/flash_f32_check.cc -o $WORK/flash_f32_gen && $WORK/flash_f32_gen > $WORK/flash_f32_check.cu || exit 1
    NVCC=$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)
    run "$NVCC" -std=c++17 -arch=sm_90 -O3 -Xptxas -v $WORK/flash_f32_check.cu -o $WORK/flash_f32_check 2>&1 | grep -E 'registers|spill|error|rc=' | sort | uniq -c | head -60
    B=$WORK/flash_f32_check
  fi
  nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv,noheader
  run "$B"; run "$B" time ;;
fixtures)
  setenv
  for M in ${FIXTURES:-pairformer_block_tiny_torchscript msa_module_block_tiny_dynamo msa_pair_weighted_avg_tiny_torchscript}; do
    D=models/of3/testdata/$M
    run bin/of3c compile $D/model.onnx -o $WORK/$M.of3 --device gpu
    run bin/of3c run $WORK/$M.of3 --device gpu --inputs $D/test_data_set_0 --check $D/test_data_set_0 --repeat 3
    # bf16: the error is printed, not gated (FIX_BF16=1; its kernels are JIT-compiled by the block step anyway).
    [ "${FIX_BF16:-0}" = 1 ] && run bin/of3c compile $D/model.onnx -o $WORK/$M.bf16.of3 --device gpu --precision bf16 && \
      run bin/of3c run $WORK/$M.bf16.of3 --device gpu --inputs $D/test_data_set_0 --check $D/test_data_set_0 --atol 1e30 --repeat 3
  done ;;
block)
  setenv
  O=${MODEL:-$GEN/testdata/pairformer_block_of3_torchscript/model.onnx}
  for N in 2048 3072; do  # the GPU memory plan (CPU-only work): default and an 8 GiB budget
    bin/of3c inspect $O --memory N=$N --device gpu 2>&1 | head -8
    bin/of3c inspect $O --memory N=$N --device gpu --budget 8GiB 2>&1 | head -12
  done
  for P in ${PRECS:-fp32 bf16}; do
    run bin/of3c compile $O -o $WORK/pf.$P.of3 --device gpu --precision $P
    OF3C_GPU_ATTENTION=noflash run bin/of3c compile $O -o $WORK/pf.$P.noflash.of3 --device gpu --precision $P
    for N in $(echo "${NS:-256,512,768,1024,1536}" | tr , " "); do
      [ -f $WORK/inputs_$N.npz ] || { echo "no $WORK/inputs_$N.npz"; continue; }
      echo "== flash $P N=$N"
      run bin/of3c run $WORK/pf.$P.of3 --device gpu --inputs $WORK/inputs_$N.npz -o $WORK/of3c_${P}_$N.npz --repeat $REPEAT && \
        python3 scripts/gpu/torch_peer.py --compare $WORK/torch_fp32_$N.npz $WORK/of3c_${P}_$N.npz
      case ",${BEFORE_NS:-512,1024}," in *",$N,"*)
        echo "== noflash $P N=$N"
        OF3C_GPU_ATTENTION=noflash run bin/of3c run $WORK/pf.$P.noflash.of3 --device gpu --inputs $WORK/inputs_$N.npz --repeat $REPEAT ;;
      esac
    done
  done ;;
esac
