#!/usr/bin/env bash
# GPU checks for sdpg on one CUDA machine with NO network, in < 9 minutes on one H200:
#   1. the CUDA tests (pytest -m gpu),
#   2. benchmarks/kl_head.py in bf16 at N = 8k and 32k tokens vs naive (Qwen2.5-0.5B head, 896 x 151,936),
#   3. benchmarks/train_step.py at the Qwen2.5-0.5B shape (random init from a config), SDPG vs GRPO, bf16 mixed,
#      then at a long-prompt size (MATH + reference solution, or synthetic references without ../shared/data)
#      with issue 18's optimisations off (*_plain) and without shared prefixes (sdpg_noshare),
#   4. benchmarks/memory.py at the Qwen2.5-0.5B shape: gradient-checkpointing and LoRA memory on CUDA,
#   5. benchmarks/gpu_train_run.py: a 30-step bf16 mixed-precision + gradient-checkpointing SDPG run,
#   6. benchmarks/sampler.py at the Qwen2.5-0.5B shape: the fast sampler vs HF generate (tokens/s, ratio, and
#      whether the tokens were identical: on GPU they may diverge after a last-bit logit difference).
# Every benchmark prints JSON lines; they are collected in $OUT/gpu_check.jsonl (or ./gpu_check.jsonl), all
# output in gpu_check.log beside it.
# Python packages missing on the machine (gymnasium, farama-notifications) are installed from wheels in .whl/
# when present (see docs/benchmarks.md, "GPU check"). Usage: scripts/gpu_check.sh [--quick]
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
py=${PYTHON:-python3}
quick=${1:-}
out_dir=${OUT:-.}
log="$out_dir/gpu_check.jsonl"
: >"$log"
say() { printf '[gpu_check %s] %s\n' "$(date +%T)" "$*"; }

if ! $py -c 'import gymnasium' 2>/dev/null; then
  if ls .whl/*.whl >/dev/null 2>&1; then
    say "installing carried wheels: $(ls .whl | tr '\n' ' ')"
    $py -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/sdpg-site .whl/*.whl \
      || { say "wheel install failed"; exit 2; }
    export PYTHONPATH="/tmp/sdpg-site:${PYTHONPATH:-}"
  else
    say "gymnasium is missing and there is no .whl/ folder; see docs/benchmarks.md (GPU check)"; exit 2
  fi
fi
export PYTHONPATH="$PWD:${PYTHONPATH:-}"
$py - <<'PY' || exit 2
import torch, transformers
print(f"[gpu_check] torch {torch.__version__} cuda {torch.version.cuda} transformers {transformers.__version__} "
      f"device {torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'NONE'}")
assert torch.cuda.is_available(), "no CUDA device"
PY

status=0
full_log="$out_dir/gpu_check.log"  # two files in all ($OUT brings back at most 8)
: >"$full_log"
run() {  # run NAME TIMEOUT CMD...: keep its JSON lines, never stop the whole script
  local name=$1 limit=$2; shift 2
  say "$name: $*" | tee -a "$full_log"
  local t0=$SECONDS tmp
  tmp=$(mktemp)
  timeout "$limit" "$@" >"$tmp" 2>&1
  local rc=$?
  cat "$tmp" >>"$full_log"
  grep '^{' "$tmp" >>"$log"
  say "$name: rc=$rc in $((SECONDS - t0)) s" | tee -a "$full_log"
  [ "$rc" = 0 ] || { status=1; tail -n 25 "$tmp"; }
  rm -f "$tmp"
}

steps=20; n="8192 32768"
[ "$quick" = --quick ] && { steps=5; n="8192"; }
run cuda_tests 90 $py -m pytest -m gpu tests/sdpg_train -q -p no:cacheprovider -x
run kl_head 90 $py benchmarks/kl_head.py --device cuda --dtype bfloat16 --n $n --chunk-size 4096
run train_step 150 $py benchmarks/train_step.py --device cuda --preset qwen2.5-0.5b --dtype bfloat16 --length 512 \
  --repeats 3 --micro-tokens 65536 --variants sdpg,grpo,grpo_ref,sdpg_noref,sdpg_plain,grpo_plain
run train_step_long 150 $py benchmarks/train_step.py --device cuda --preset qwen2.5-0.5b --dtype bfloat16 --length 512 \
  --repeats 3 --micro-tokens 65536 --long-prompt --variants sdpg,grpo,grpo_ref,sdpg_plain,grpo_plain,sdpg_noshare
run memory 75 $py benchmarks/memory.py --device cuda --preset qwen2.5-0.5b --dtype bfloat16 --n 8 --length 1024
run train_run 210 $py benchmarks/gpu_train_run.py --device cuda --steps "$steps"
run sampler 120 $py benchmarks/sampler.py --device cuda --preset qwen2.5-0.5b demo --dtype bfloat16 --repeats 2 \
  --threads 0
say "figures ($log):"
cat "$log"
say "done, status $status"
exit $status
