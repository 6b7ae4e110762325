#!/usr/bin/env bash
# The GPU check, on a CUDA host, in under 8 minutes and with no install step: it runs from this working tree
# (PYTHONPATH) on the host's python3, which needs torch, transformers, numpy, onnx and onnxruntime.
#
#   bash benchmarks/gpu_check.sh [OUT_DIR]      (default: $OUT, else benchmarks/results/gpu_check)
#
# 1. precision: every exported encoder and projector at real size (random weights, built locally), the Qwen2.5-VL
#    vision tower included, float16 and bfloat16 against float32 on the GPU, and items/s by batch size
#    (python -m benchmarks.gpu_precision).
# 2. gpu_tests: tests/gpu, where tritonclient is importable (the NGC image); skipped with the reason otherwise.
# 3. served: a short vlm-bench pass against the served tiny ensembles, where the NGC tritonserver and the project's
#    console scripts are installed (the image docker/Dockerfile builds); skipped with the reason otherwise.
# Everything lands flat in OUT_DIR: summary.json (environment, steps, results), precision.json, precision.md,
# gpu_check.log (every step's output) and, when served, served_<workload>.json.
# GPU_CHECK_TINY=1 runs the same steps on the tiny presets on the CPU, in seconds (tests/unit/test_gpu_check.py).
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT" || exit 1
OUT_DIR=${1:-${OUT:-benchmarks/results/gpu_check}}
mkdir -p "$OUT_DIR" && OUT_DIR=$(cd "$OUT_DIR" && pwd)
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
PYTHON=python3
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
STARTED=$(date +%s)
LOG=$OUT_DIR/gpu_check.log
: >"$LOG"
: >"$WORK/steps.tsv"

# Each step's limit in seconds. With KILL_GRACE_S after each they add up to 467, under the 480 the check may take.
declare -A LIMIT=([environment]=20 [precision]=170 [gpu_tests]=60 [checkpoints]=15 [export]=30 [engines]=35
    [server]=50 [bench_clip_image]=20 [bench_llava]=25 [server_stop]=10 [summary]=10)
KILL_GRACE_S=2
PRECISION_ARGS=(--device cuda --budget-s 140)
if [[ ${GPU_CHECK_TINY:-0} == 1 ]]; then
    PRECISION_ARGS=(--device cpu --presets "tiny-clip,tiny-llava,tiny-siglip,tiny-siglip2,tiny-qwen2.5-vl"
        --batch-sizes "1,2" --warmup 1 --min-seconds 0.01 --budget-s 100)
fi

step() { # name command...: runs a command under the step's limit, its output appended to the log
    local name=$1 begin rc
    shift
    begin=$(date +%s)
    printf '\n== %s (limit %s s)\n' "$name" "${LIMIT[$name]}" >>"$LOG"
    timeout -k "$KILL_GRACE_S" "${LIMIT[$name]}" "$@" >>"$LOG" 2>&1
    rc=$?
    printf '%s\t%s\t%s\t%s\n' "$name" "$rc" "$(($(date +%s) - begin))" "" >>"$WORK/steps.tsv"
    return "$rc"
}
skip() { # name reason
    printf '%s\tskipped\t0\t%s\n' "$1" "$2" >>"$WORK/steps.tsv"
}

step environment "$PYTHON" - "$WORK/environment.json" <<'PY'
import json, platform, shutil, subprocess, sys

import torch
import transformers

cuda = torch.cuda.is_available()
environment = {
    "python": platform.python_version(),
    "torch": torch.__version__,
    "cuda": torch.version.cuda,
    "transformers": transformers.__version__,
    "cuda_available": cuda,
    "gpu": torch.cuda.get_device_name() if cuda else None,
}
if shutil.which("nvidia-smi"):
    query = ["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"]
    environment["nvidia_smi"] = subprocess.run(query, capture_output=True, text=True).stdout.strip()
json.dump(environment, open(sys.argv[1], "w"), indent=2)
print(json.dumps(environment))
PY

step precision "$PYTHON" -m benchmarks.gpu_precision --out "$OUT_DIR" --work "$WORK" "${PRECISION_ARGS[@]}"

if "$PYTHON" -c "import tritonclient" 2>/dev/null; then
    step gpu_tests "$PYTHON" -m pytest tests/gpu -q -rs -p no:cacheprovider --junitxml "$WORK/gpu_tests.xml"
else
    skip gpu_tests "tritonclient is not importable here (tests/gpu needs it; the NGC image has it)"
fi

# The served pass: the tiny checkpoints, exported (with TensorRT engines where they build), served and measured.
served_missing() {
    [[ -x /opt/tritonserver/bin/tritonserver ]] || { echo "no NGC tritonserver at /opt/tritonserver" && return; }
    for tool in vlm-checkpoint vlm-export vlm-serve vlm-bench; do
        command -v "$tool" >/dev/null || { echo "the project is not installed ($tool is missing)" && return; }
    done
}
SERVED_MISSING=$(served_missing)
SERVED_STEPS=(checkpoints export engines server bench_clip_image bench_llava server_stop)
if [[ -n $SERVED_MISSING ]]; then
    for name in "${SERVED_STEPS[@]}"; do skip "$name" "$SERVED_MISSING"; done
else
    step checkpoints bash -c "vlm-checkpoint make --preset tiny-clip --out '$WORK/tiny-clip' &&
        vlm-checkpoint make --preset tiny-llava --out '$WORK/tiny-llava'"
    step export bash -c "vlm-export clip --checkpoint '$WORK/tiny-clip' --repository '$WORK/repository' &&
        vlm-export llava --checkpoint '$WORK/tiny-llava' --repository '$WORK/repository'"
    TARGET=gpu-onnxruntime
    step engines vlm-export engine --repository "$WORK/repository" --timing-cache "$WORK/timing.cache" && TARGET=gpu
    PORTS=(--http-port 18000 --grpc-port 18001 --metrics-port 18002)
    vlm-serve --repository "$WORK/repository" --target "$TARGET" --host 127.0.0.1 "${PORTS[@]}" \
        --log-file "$WORK/tritonserver.log" --startup-timeout "${LIMIT[server]}" >>"$LOG" 2>&1 &
    SERVER=$!
    # shellcheck disable=SC2016 # expanded by the inner bash
    step server bash -c 'until curl -sf localhost:18000/v2/health/ready >/dev/null; do
        kill -0 "$1" 2>/dev/null || exit 1; sleep 1; done' _ "$SERVER"
    BENCH=(--url localhost:18001 --protocol grpc --concurrency "1,8" --window-seconds 2 --max-windows 2
        --warmup-requests 4 --no-baselines --results "$WORK/bench")
    step bench_clip_image vlm-bench clip-image "${BENCH[@]}" --name clip_image
    step bench_llava vlm-bench llava "${BENCH[@]}" --output-tokens 16 --name llava
    for name in clip_image llava; do
        [[ -f $WORK/bench/$name/report.json ]] && cp "$WORK/bench/$name/report.json" "$OUT_DIR/served_$name.json"
    done
    kill -TERM "$SERVER" 2>/dev/null
    # shellcheck disable=SC2016
    step server_stop bash -c 'while kill -0 "$1" 2>/dev/null; do sleep 0.5; done' _ "$SERVER" || kill -KILL "$SERVER"
    tail -n 200 "$WORK/tritonserver.log" >>"$LOG" 2>/dev/null
fi

TOTAL_LIMIT_S=$(( $(IFS=+; echo "${LIMIT[*]}") + ${#LIMIT[@]} * KILL_GRACE_S ))
timeout -k "$KILL_GRACE_S" "${LIMIT[summary]}" "$PYTHON" - "$OUT_DIR" "$WORK" "$STARTED" "$TOTAL_LIMIT_S" \
    "${SERVED_MISSING:-}" "${TARGET:-}" <<'PY'
import json
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

out, work, started, total_limit_s, served_missing, target = sys.argv[1:]
out, work = Path(out), Path(work)
steps = {}
for line in (work / "steps.tsv").read_text().splitlines():
    name, code, seconds, reason = line.split("\t")
    if code == "skipped":
        steps[name] = {"status": "skipped", "reason": reason}
    else:
        status = {"0": "passed", "124": "timed out", "137": "timed out"}.get(code, "failed")
        steps[name] = {"status": status, "exit_code": int(code), "seconds": int(seconds)}
summary = {
    "environment": json.loads((work / "environment.json").read_text()) if (work / "environment.json").is_file() else None,
    "steps": steps,
    "passed": all(step["status"] in ("passed", "skipped") for step in steps.values())
    and steps["precision"]["status"] == "passed",
}
precision = out / "precision.json"
if precision.is_file():
    result = json.loads(precision.read_text())
    summary["precision"] = {
        "results": precision.name,
        "table": "precision.md",
        **{key: result.get(key) for key in ("complete", "within_budget", "seconds")},
    }
junit = work / "gpu_tests.xml"
if junit.is_file():
    suite = ET.parse(junit).getroot().find("testsuite")
    tests = {key: int(suite.get(key, 0)) for key in ("tests", "failures", "errors", "skipped")}
    summary["gpu_tests"] = {**tests, "skip_reasons": sorted({s.get("message", "") for s in suite.iter("skipped")})}
summary["served"] = (
    {"skipped": served_missing}
    if served_missing
    else {"target": target, "reports": sorted(p.name for p in out.glob("served_*.json"))}
)
summary["limits_s"] = int(total_limit_s)
summary["seconds"] = int(time.time()) - int(started)
(out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
print(out / "summary.json")
sys.exit(0 if summary["passed"] else 1)
PY
