#!/usr/bin/env bash
# The GPU check, on a CUDA host (best inside the image docker/Dockerfile builds): the GPU tests, then a short
# vlm-bench pass against the served ensembles, in at most 8 minutes, written up as one JSON summary.
#
#   benchmarks/gpu_check.sh [OUT_DIR]      (default benchmarks/results/gpu_check; prints the summary's path)
#
# The served target is the best this host has: `gpu` (TensorRT engines; needs TensorRT and the NGC server),
# else `gpu-onnxruntime` (the NGC server without TensorRT's Python package), else `embedded` (the
# pytriton wheel's server: encoders on ONNX Runtime, the decoder on CUDA). The summary says which.
# vlm-bench's interface: vlm-bench {clip-image|clip-text|clip-rank|llava} --url --protocol --concurrency
# --no-baselines --name --results (see `vlm-bench --help`).
set -uo pipefail

cd "$(dirname "$0")/.."
OUT=${1:-benchmarks/results/gpu_check}
BIN=$([[ -x .venv/bin/python ]] && echo .venv/bin || dirname "$(command -v python3)")
WORK=$OUT/work
HTTP_PORT=${GPU_CHECK_HTTP_PORT:-18000}
GRPC_PORT=${GPU_CHECK_GRPC_PORT:-18001}
METRICS_PORT=${GPU_CHECK_METRICS_PORT:-18002}
STARTED=$(date +%s)
mkdir -p "$WORK"
: >"$OUT/steps.tsv"

step() { # name timeout_s command...: run one step under its time limit, recording its exit code and seconds
    local name=$1 limit=$2 begin rc
    shift 2
    begin=$(date +%s)
    timeout "$limit" "$@" >"$OUT/$name.log" 2>&1
    rc=$?
    printf '%s\t%s\t%s\n' "$name" "$rc" "$(($(date +%s) - begin))" >>"$OUT/steps.tsv"
    return "$rc"
}

# 1. The GPU tests (each skips, with its reason, where the host lacks what it needs).
step gpu_tests 240 "$BIN/python" -m pytest tests/gpu -q -rs -p no:cacheprovider --junitxml "$OUT/gpu_tests.xml"

# 2. A repository of the tiny checkpoints, with engines when this host can build them.
step checkpoints 60 bash -c "'$BIN/vlm-checkpoint' make --preset tiny-clip --out '$WORK/tiny-clip' &&
    '$BIN/vlm-checkpoint' make --preset tiny-llava --out '$WORK/tiny-llava'"
step export 90 bash -c "'$BIN/vlm-export' clip --checkpoint '$WORK/tiny-clip' --repository '$WORK/repository' &&
    '$BIN/vlm-export' llava --checkpoint '$WORK/tiny-llava' --repository '$WORK/repository'"
if [[ -x /opt/tritonserver/bin/tritonserver ]]; then
    TARGET=gpu-onnxruntime
    step engines 90 "$BIN/vlm-export" engine --repository "$WORK/repository" --timing-cache "$WORK/timing.cache" &&
        TARGET=gpu
else
    TARGET=embedded
fi

# 3. Serve it and measure: closed-loop concurrency 1, 2, 4, 8 on CLIP images and LLaVA, short windows.
"$BIN/vlm-serve" --repository "$WORK/repository" --target "$TARGET" --host 127.0.0.1 --http-port "$HTTP_PORT" \
    --grpc-port "$GRPC_PORT" --metrics-port "$METRICS_PORT" --log-file "$OUT/tritonserver.log" \
    --startup-timeout 120 >"$OUT/serve.log" 2>&1 &
SERVER=$!
for _ in $(seq 120); do
    curl -sf "localhost:$HTTP_PORT/v2/health/ready" >/dev/null && break
    kill -0 "$SERVER" 2>/dev/null || break
    sleep 1
done
BENCH=(--url "localhost:$GRPC_PORT" --protocol grpc --concurrency 1,2,4,8 --window-seconds 2 --max-windows 3
    --warmup-requests 4 --no-baselines --results "$OUT")
step bench_clip_image 60 "$BIN/vlm-bench" clip-image "${BENCH[@]}" --name bench_clip_image
step bench_llava 90 "$BIN/vlm-bench" llava "${BENCH[@]}" --output-tokens 16 --name bench_llava
kill -TERM "$SERVER" 2>/dev/null
wait "$SERVER" 2>/dev/null

# 4. One JSON summary.
"$BIN/python" - "$OUT" "$TARGET" "$STARTED" <<'PY'
import json
import shutil
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

out, target, started = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
steps = {}
for line in (out / "steps.tsv").read_text().splitlines():
    name, rc, seconds = line.split("\t")
    steps[name] = {"exit_code": int(rc), "seconds": int(seconds), "log": f"{name}.log"}
tests = {}
if (out / "gpu_tests.xml").is_file():
    suite = ET.parse(out / "gpu_tests.xml").getroot().find("testsuite")
    tests = {key: int(suite.get(key, 0)) for key in ("tests", "failures", "errors", "skipped")}
    tests["skip_reasons"] = sorted({s.get("message", "") for s in suite.iter("skipped")})
gpu = None
if shutil.which("nvidia-smi"):
    query = ["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"]
    gpu = subprocess.run(query, capture_output=True, text=True).stdout.strip() or None
bench = {}
for name in ("bench_clip_image", "bench_llava"):
    report = out / name / "report.json"
    bench[name] = str(report.relative_to(out)) if report.is_file() else None
summary = {
    "gpu": gpu,
    "served_target": target,
    "steps": steps,
    "gpu_tests": tests,
    "bench_reports": bench,
    "passed": all(step["exit_code"] == 0 for step in steps.values()),
    "seconds": int(time.time()) - started,
}
(out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
print(out / "summary.json")
PY
