#!/usr/bin/env bash
# Start triton-vlm in its image: the GPU one (docker/Dockerfile, NGC's vLLM image of Triton; target gpu) or the CPU
# one (docker/Dockerfile.cpu, the pytriton wheel's tritonserver; VLM_TARGET=embedded). First start: make the
# checkpoints (presets, unless VLM_CHECKPOINTS names mounted ones), export them to ONNX (`vlm-export model` reads
# each one's family from its config.json; NAME=FOLDER exports it under that name) and, for the gpu target, build
# TensorRT engines, all into the /cache volume. Every start: regenerate the configs of every model the repository
# holds, keep what is current, rebuild what is stale (a newer image brings a newer TensorRT), then serve the target
# (default gpu) under vlm-serve. Extra arguments go to tritonserver.
set -euo pipefail

CACHE=${VLM_CACHE:-/cache}
REPOSITORY=${VLM_REPOSITORY:-$CACHE/model_repository}
# The checkpoint folders to serve, space-separated; NAME=FOLDER serves one under that name (`vlm-export model --name`:
# several checkpoints, of one family too, share the repository), a bare FOLDER under its family's name (clip, llava,
# ...). CLIP_CHECKPOINT and LLAVA_CHECKPOINT, the variables of earlier releases, still set the default pair.
read -r -a CHECKPOINTS <<<"${VLM_CHECKPOINTS:-${CLIP_CHECKPOINT:-$CACHE/checkpoints/tiny-clip} ${LLAVA_CHECKPOINT:-$CACHE/checkpoints/tiny-llava}}"
TARGET=${VLM_TARGET:-gpu}
PRECISION=${ENGINE_PRECISION:-fp16}
# int8 and fp8 engines are built from QDQ models that the export makes and checks (`--runtime tensorrt`).
EXPORT_PRECISION=()
if [[ $TARGET == gpu && ($PRECISION == int8 || $PRECISION == fp8) ]]; then
    EXPORT_PRECISION=(--runtime tensorrt --precision "$PRECISION" --timing-cache "$CACHE/tensorrt/timing.cache")
fi

say() { echo "vlm-entrypoint: $*" >&2; }

# A checkpoint folder without config.json is made from the preset of the same name (tiny-clip, ...).
ensure_checkpoint() {
    local folder=$1
    if [[ ! -f $folder/config.json ]]; then
        say "making the $(basename "$folder") preset in $folder"
        vlm-checkpoint make --preset "$(basename "$folder")" --out "$folder"
    fi
}

# NAME=FOLDER -> FOLDER; FOLDER -> FOLDER.
folder_of() { echo "${1#*=}"; }

# Export every checkpoint when the list differs from the one last exported into the repository (a checkpoint
# exported again under a name it had replaces its models, so a changed list is exported whole, in order).
ensure_exports() {
    local marker=$REPOSITORY/.exported wanted entry name
    wanted=$(printf '%s\n' "$@" "${EXPORT_PRECISION[@]}")  # a QDQ precision asked for later is exported again
    if [[ "$(cat "$marker" 2>/dev/null || true)" != "$wanted" ]]; then
        rm -f "$marker"
        for entry in "$@"; do
            name=()
            [[ $entry == *=* ]] && name=(--name "${entry%%=*}")
            say "exporting $(folder_of "$entry")${name:+ as ${entry%%=*}}"
            vlm-export model --checkpoint "$(folder_of "$entry")" --repository "$REPOSITORY" "${name[@]}" \
                "${EXPORT_PRECISION[@]}"
        done
        echo "$wanted" >"$marker"
    fi
}

# The python TensorRT that builds engines must be the TensorRT the server loads them with.
check_tensorrt_versions() {
    local library python_version server_version
    library=$(ldconfig -p | awk '/libnvinfer\.so\.[0-9]+ /{print $NF; exit}')
    [[ -n $library ]] || return 0
    server_version=$(basename "$(readlink -f "$library")" | sed 's/^libnvinfer\.so\.//')
    python_version=$(python3 -c 'import tensorrt; print(tensorrt.__version__)')
    if [[ $server_version != "$python_version"* && $python_version != "$server_version"* ]]; then
        say "the server's TensorRT is $server_version but the TensorRT Python package is $python_version;"
        say "rebuild the image: docker/Dockerfile installs the TensorRT Python package of the server's version"
        exit 1
    fi
}

mkdir -p "$REPOSITORY" "$CACHE/tensorrt" "$CACHE/ort-tensorrt"
vlm-export repository --repository "$REPOSITORY"
for entry in "${CHECKPOINTS[@]}"; do
    ensure_checkpoint "$(folder_of "$entry")"
done
# Before the exports: an int8 or fp8 export builds its engines too.
[[ $TARGET == gpu ]] && check_tensorrt_versions
ensure_exports "${CHECKPOINTS[@]}"
if [[ $TARGET == gpu ]]; then
    vlm-export engine --repository "$REPOSITORY" --precision "$PRECISION" --timing-cache "$CACHE/tensorrt/timing.cache"
fi
# An init container (deploy/k8s) only fills the repository volume; the server container then starts at once.
if [[ ${VLM_PREPARE_ONLY:-0} == 1 ]]; then
    say "the repository $REPOSITORY is ready"
    exit 0
fi

# vlm-serve runs tritonserver with the control APIs behind the operator's key (kept in the cache volume, or
# the file VLM_CONTROL_KEY_FILE names: mount a secret there), restarts it if it dies and reloads a model whose
# python stub dies. Triton's HTTP endpoint listens inside the container only (one deeply nested JSON body kills
# tritonserver 2.51's HTTP frontend): clients use gRPC, the public front door is the gateway. What is served is read
# from the repository's configs: every model it holds, or those VLM_MODELS names (space-separated names, e.g.
# "clip llava team-b") and those of the families VLM_FAMILIES names (e.g. "clip llava"); vlm-probe reads both too,
# and finds the repository through VLM_REPOSITORY.
picked=()
for family in ${VLM_FAMILIES:-}; do
    picked+=(--family "$family")
done
for model in ${VLM_MODELS:-}; do
    picked+=(--model "$model")
done
exec vlm-serve \
    --repository "$REPOSITORY" \
    --target "$TARGET" \
    --host 0.0.0.0 --http-host 127.0.0.1 --http-port 8000 --grpc-port 8001 --metrics-port 8002 \
    --cache-size "${RESPONSE_CACHE_BYTES:-268435456}" \
    --exit-timeout "${EXIT_TIMEOUT_SECONDS:-25}" \
    --startup-timeout "${STARTUP_TIMEOUT_SECONDS:-3600}" \
    --control-key-file "${VLM_CONTROL_KEY_FILE:-$CACHE/control-key}" \
    --log-file /dev/stdout \
    "${picked[@]}" \
    -- "$@"
