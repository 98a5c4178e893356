#!/usr/bin/env bash
# Issue 11's benchmark program (not a test): the real OpenFold3 PairFormerBlock at OpenFold3's widths, of3c
# against PyTorch eager, torch.compile and OpenFold3's own chunk 64 + LMA path, same weights and inputs, one
# lease. Phases, so that each fits one device call (MLX's CUDA build arrives in three parts; see
# docs/notes/GPU.md "Rerunning"):
#
#   scripts/gpu/bench_block.sh peers    export the block (openfold3 package, .whl/site) unless GEN has it, then
#                                       PyTorch: eager + chunk/LMA at NS_EAGER, torch.compile at NS_COMPILE,
#                                       chunk/LMA only (it writes the fp32 reference) at NS_LMA
#   scripts/gpu/bench_block.sh of3c     of3c at NS x PRECS, compiled for each length (--buckets N: the lean GPU
#                                       plan), --report JSON each, accuracy against the fp32 reference, the
#                                       unplanned artifact at WHOLE_NS, and the budgeted runs BUDGETS (N:SIZE ...)
#   scripts/gpu/bench_block.sh probe    variants (PROBES, PROFILES) for finding where time and memory go
#   scripts/gpu/bench_block.sh kernels  every kernel of one lean-plan run (KERNELS="PREC:N ..."), timed by Nsight
#                                       Compute, summarised per kernel family (scripts/gpu/kernel_summary.py)
#   scripts/gpu/bench_block.sh table    the markdown table (scripts/gpu/bench_table.py) of everything in WORK
#
# Knobs: NS_EAGER=512,1024,1536 NS_COMPILE=1024 NS_LMA=2048,3072 NS=512,1024,2048,3072 WHOLE_NS=1024 PRECS="fp32 bf16"
#        REPEAT=3 BUDGETS="2048:8GiB 2048:12GiB" WORK=/tmp/gpu GEN=/tmp/gen OF3C=bin/of3c TMO=540
set -uo pipefail
cd "$(dirname "$0")/../.."
WORK=${WORK:-/tmp/gpu}
GEN=${GEN:-/tmp/gen}
REPEAT=${REPEAT:-3}
OF3C=${OF3C:-bin/of3c}
MODEL=$GEN/testdata/pairformer_block_of3_torchscript/model.onnx
mkdir -p "$WORK"
run() { echo "+ $*"; local t0=$(date +%s%N); timeout "${TMO:-540}" "$@"; local rc=$?; echo "  rc=$rc wall=$(( ($(date +%s%N) - t0) / 1000000 )) ms"; return $rc; }

case "${1:-}" in
peers)
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv
  export PYTHONPATH="$PWD/models/of3:$PWD/${SITE:-.whl/site}${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
  # Eager at N = 1536 needs ~115 GiB; after the shorter lengths PyTorch's caching allocator held 54 GiB
  # reserved but unallocated and ran out (session 7). Expandable segments let it reuse that memory.
  export PYTORCH_CUDA_ALLOC_CONF=${PYTORCH_CUDA_ALLOC_CONF:-expandable_segments:True}
  if [ ! -f "$MODEL" ]; then
    EXPORT_MODULES=pairformer_block run bash scripts/gpu/run_gpu.sh export && mkdir -p "$GEN" && \
      cp -r models/of3/generated/* "$GEN"/ || exit 1
  fi
  peer() { run python3 scripts/gpu/torch_peer.py --module pairformer_block --work "$WORK" --repeat "$REPEAT" --onnx "$MODEL" "$@" 2>&1 | tee -a "$WORK/peers.log"; }
  [ -n "${NS_EAGER-512,1024,1536}" ] && peer --n "${NS_EAGER-512,1024,1536}" --no-compile
  # torch.compile recompiles per length (minutes each): only at NS_COMPILE; eager and LMA run again there.
  [ -n "${NS_COMPILE-1024}" ] && peer --n "${NS_COMPILE-1024}" --no-lma
  [ -n "${NS_LMA-2048,3072}" ] && peer --n "${NS_LMA-2048,3072}" --lma-only
  true ;;
of3c)
  if [ ! -f /tmp/mlxcuda/mlx/lib/libmlx.so ]; then  # the three staged parts (run_gpu.sh stage), unpacked once
    cat /tmp/mlxcuda_parts/part.* > /tmp/mlxcuda.tar.xz && mkdir -p /tmp/mlxcuda && tar xJf /tmp/mlxcuda.tar.xz -C /tmp/mlxcuda && \
      rm -f /tmp/mlxcuda.tar.xz || exit 1
  fi
  eval "$(bash scripts/gpu/run_gpu.sh env | sed 's/^/export /')"
  "$OF3C" version
  for N in 2048 3072; do  # the GPU memory plans (CPU-only work): no budget, and 8 GiB
    "$OF3C" inspect "$MODEL" --memory N=$N --device gpu 2>&1 | head -12
    "$OF3C" inspect "$MODEL" --memory N=$N --device gpu --budget 8GiB 2>&1 | head -16
  done
  for P in ${PRECS:-fp32 bf16}; do
    # The default GPU compile for a length: --buckets N, no budget, so the plan is lean (regions and row-chunked
    # ops sized to their inputs). At WHOLE_NS also the artifact compiled without buckets (nothing planned).
    run "$OF3C" compile "$MODEL" -o $WORK/pf.$P.whole.of3 --device gpu --precision $P
    for N in $(echo "${NS:-512,1024,2048,3072}" | tr , " "); do
      [ -f $WORK/inputs_$N.npz ] || { echo "no $WORK/inputs_$N.npz (run the peers phase first)"; continue; }
      echo "== of3c $P N=$N"
      run "$OF3C" compile "$MODEL" -o $WORK/pf.$P.$N.of3 --device gpu --precision $P --buckets $N || continue
      run "$OF3C" run $WORK/pf.$P.$N.of3 --device gpu --inputs $WORK/inputs_$N.npz -o $WORK/of3c_${P}_$N.npz \
        --warmup 1 --iterations $REPEAT --report $WORK/of3c_${P}_$N.json && \
        python3 scripts/gpu/torch_peer.py --compare $WORK/torch_fp32_$N.npz $WORK/of3c_${P}_$N.npz 2>&1 | \
          sed "s/^/ACCURACY $P N=$N /" | tee -a $WORK/accuracy.log
      rm -f $WORK/of3c_${P}_$N.npz
      case ",${MMA_NS-1024,2048}," in *",$N,"*) [ $P = bf16 ] && \
        OF3C_GPU_ATTENTION=flash-mma run "$OF3C" compile "$MODEL" -o $WORK/pf.mma.$N.of3 --device gpu --precision $P --buckets $N && \
        OF3C_GPU_ATTENTION=flash-mma run "$OF3C" run $WORK/pf.mma.$N.of3 --device gpu --inputs $WORK/inputs_$N.npz \
          --warmup 1 --iterations $REPEAT --report $WORK/of3c_${P}_${N}_mma.json ;;
      esac
      case ",${WHOLE_NS-1024}," in *",$N,"*)
        run "$OF3C" run $WORK/pf.$P.whole.of3 --device gpu --inputs $WORK/inputs_$N.npz \
          --warmup 1 --iterations $REPEAT --report $WORK/of3c_${P}_${N}_whole.json ;;
      esac
    done
  done
  for B in ${BUDGETS:-2048:8GiB 2048:12GiB}; do
    N=${B%%:*} S=${B##*:}
    run "$OF3C" compile "$MODEL" -o $WORK/pf.budget.of3 --device gpu --memory-budget $S --buckets $N && \
      run "$OF3C" run $WORK/pf.budget.of3 --device gpu --inputs $WORK/inputs_$N.npz --iterations 1 \
        --report $WORK/of3c_budget_${N}_$S.json
  done ;;
probe)
  # Variants of one length, for finding where time and memory go (not the table): PROBES is a ';'-separated
  # list of "PREC N [whole] [VAR=VALUE ...]" (whole: compiled without --buckets, i.e. unplanned; the VAR=VALUE
  # pairs are set for both compile and run), on generated inputs (--shapes N=...). PROFILES ("PREC:N ...")
  # then prints of3bench's per-node eager profile (time and memory rise) of the lean plan at those lengths.
  if [ ! -f /tmp/mlxcuda/mlx/lib/libmlx.so ]; then
    cat /tmp/mlxcuda_parts/part.* > /tmp/mlxcuda.tar.xz && mkdir -p /tmp/mlxcuda && tar xJf /tmp/mlxcuda.tar.xz -C /tmp/mlxcuda && \
      rm -f /tmp/mlxcuda.tar.xz || exit 1
  fi
  eval "$(bash scripts/gpu/run_gpu.sh env | sed 's/^/export /')"
  nvidia-smi --query-gpu=memory.used,memory.free --format=csv
  IFS=';' read -ra specs <<< "${PROBES:-fp32 1024}"
  for spec in "${specs[@]}"; do
    set -- $spec; P=$1 N=$2; shift 2; b="--buckets $N"
    [ "${1:-}" = whole ] && { b=; shift; }
    echo "== probe $P N=$N ${b:+lean }$*"; rm -f $WORK/probe.of3
    run env "$@" "$OF3C" compile "$MODEL" -o $WORK/probe.of3 --device gpu --precision $P $b 2>&1 | grep -E "memory plan|lowering on|rc=|rror" &&
      run env "$@" "$OF3C" run $WORK/probe.of3 --device gpu --shapes N=$N --warmup 1 --iterations $REPEAT 2>&1 | \
        grep -E "median|peak memory|rror"
  done
  for pr in ${PROFILES:-}; do
    run env ${PROFILE_ENV:-} "${OF3BENCH:-bin/of3bench}" -profile "$MODEL" -device gpu -precision ${pr%%:*} -n ${pr##*:}
  done ;;
kernels)
  if [ ! -f /tmp/mlxcuda/mlx/lib/libmlx.so ]; then
    cat /tmp/mlxcuda_parts/part.* > /tmp/mlxcuda.tar.xz && mkdir -p /tmp/mlxcuda && tar xJf /tmp/mlxcuda.tar.xz -C /tmp/mlxcuda && \
      rm -f /tmp/mlxcuda.tar.xz || exit 1
  fi
  eval "$(bash scripts/gpu/run_gpu.sh env | sed 's/^/export /')"
  NCU=$(command -v ncu || ls /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | tail -1)
  [ -n "$NCU" ] || { echo "no ncu on this machine"; exit 1; }
  for spec in ${KERNELS:-bf16:1024}; do
    P=${spec%%:*} N=${spec##*:}
    run "$OF3C" compile "$MODEL" -o $WORK/kern.of3 --device gpu --precision $P --buckets $N 2>&1 | grep -E "rc=|rror"
    # One run, every kernel serialised and timed (--clock-control none: the clocks stay as they run).
    run "$NCU" --clock-control none --metrics gpu__time_duration.sum --csv --page raw \
      "$OF3C" run $WORK/kern.of3 --device gpu --shapes N=$N --warmup 0 --iterations 1 > $WORK/kernels_${P}_$N.csv 2>$WORK/kernels_${P}_$N.err
    tail -3 $WORK/kernels_${P}_$N.err
    python3 scripts/gpu/kernel_summary.py $WORK/kernels_${P}_$N.csv --launches ${LAUNCHES:-60}
  done ;;
table)
  python3 scripts/gpu/bench_table.py "$WORK" ;;
*)
  sed -n 2,17p "$0"; exit 2 ;;
esac
