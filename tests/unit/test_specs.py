"""export.specs: the model specs reject inconsistent definitions when they are built."""

from __future__ import annotations

import pytest

from export.specs import (
    DynamicAxis,
    EnsembleSpec,
    EnsembleStep,
    ModelSpec,
    OnnxComponentSpec,
    PythonModelSpec,
    QueuePolicy,
    Resources,
    TensorSpec,
    Tolerance,
)

PIXELS = TensorSpec("pixel_values", "float32", (3, "image_size", "image_size"))
EMBEDS = TensorSpec("image_embeds", "float32", ("embed_dim",))


# TensorSpec


def test_a_tensor_with_fixed_free_and_named_dims_is_valid() -> None:
    spec = TensorSpec("input_ids", "int64", (-1, 77, "seq"))
    assert spec.dims == (-1, 77, "seq")


@pytest.mark.parametrize("name", ["", "pixel-values", "pixel values", "a/b", "a.b", "_"])
def test_a_tensor_name_that_is_not_an_identifier_is_rejected(name: str) -> None:
    with pytest.raises(ValueError, match="tensor name must be a non-empty identifier"):
        TensorSpec(name, "float32", (1,))


def test_an_unknown_dtype_is_rejected_naming_the_tensor() -> None:
    with pytest.raises(ValueError, match=r"tensor pixel_values: dtype must be one of .* got 'float64'"):
        TensorSpec("pixel_values", "float64", (3,))


@pytest.mark.parametrize("dim", [0, -2, -100])
def test_zero_and_negative_dims_other_than_minus_one_are_rejected(dim: int) -> None:
    with pytest.raises(ValueError, match=f"tensor x: dims must be positive, -1 or a name, got {dim}"):
        TensorSpec("x", "float32", (3, dim))


def test_resolve_substitutes_named_dims_and_keeps_fixed_and_free_ones() -> None:
    spec = TensorSpec("pixel_values", "float32", (-1, 3, "image_size", "image_size"))
    assert spec.resolve({"image_size": 224, "embed_dim": 512}) == (-1, 3, 224, 224)


def test_resolve_of_a_spec_without_names_is_its_dims() -> None:
    assert TensorSpec("x", "int32", (2, 5)).resolve({}) == (2, 5)


def test_resolve_with_a_missing_size_fails_naming_it() -> None:
    with pytest.raises(KeyError, match="embed_dim"):
        EMBEDS.resolve({"image_size": 224})


# Tolerance and Resources


@pytest.mark.parametrize(
    ("max_abs_diff", "min_cosine"),
    [
        (0.0, 0.99),
        (-1e-4, 0.99),
        (1e-4, 0.0),
        (1e-4, -0.5),
        (1e-4, 1.0001),
        (1e-4, float("nan")),
        pytest.param(float("nan"), 0.99, id="nan-max-abs-diff"),
    ],
)
def test_a_tolerance_outside_its_range_is_rejected(max_abs_diff: float, min_cosine: float) -> None:
    with pytest.raises(ValueError, match="tolerance"):
        Tolerance(max_abs_diff, min_cosine)


def test_a_tolerance_with_min_cosine_of_exactly_one_is_valid() -> None:
    assert Tolerance(1e-3, 1.0).min_cosine == 1.0


@pytest.mark.parametrize("field", ["instance_count", "intra_op_threads", "inter_op_threads"])
def test_resources_reject_a_count_below_one(field: str) -> None:
    with pytest.raises(ValueError, match="must be >= 1"):
        Resources(**{field: 0})


def test_default_resources_are_one_instance_and_one_thread_each() -> None:
    assert Resources() == Resources(1, 1, 1)


# ModelSpec


@pytest.mark.parametrize("name", ["", "clip vision", "../clip", "-clip", "clip/vision", "_clip"])
def test_a_model_name_that_is_not_a_folder_name_is_rejected(name: str) -> None:
    with pytest.raises(ValueError, match="model name must be letters, digits"):
        ModelSpec(name, (PIXELS,), (EMBEDS,))


@pytest.mark.parametrize("name", ["clip_vision", "clip-b_vision", "clip-b.2_vision"])
def test_a_named_checkpoints_model_names_may_hold_dashes_and_dots(name: str) -> None:
    assert ModelSpec(name, (PIXELS,), (EMBEDS,)).name == name


def test_a_negative_max_batch_size_is_rejected() -> None:
    with pytest.raises(ValueError, match="clip_vision: max_batch_size must be >= 0"):
        ModelSpec("clip_vision", (PIXELS,), (EMBEDS,), max_batch_size=-1)


def test_a_tensor_name_shared_by_an_input_and_an_output_is_rejected() -> None:
    clash = TensorSpec("pixel_values", "float32", (4,))
    with pytest.raises(ValueError, match="tensor names must be unique"):
        ModelSpec("clip_vision", (PIXELS,), (clash,))


def test_two_inputs_with_the_same_name_are_rejected() -> None:
    with pytest.raises(ValueError, match="tensor names must be unique"):
        ModelSpec("clip_vision", (PIXELS, PIXELS), (EMBEDS,))


# OnnxComponentSpec


def test_an_exported_encoder_without_batching_is_rejected() -> None:
    with pytest.raises(ValueError, match="clip_vision: an exported encoder must batch"):
        OnnxComponentSpec("clip_vision", (PIXELS,), (EMBEDS,), max_batch_size=0)


def test_an_exported_encoder_that_batches_gets_the_default_tolerance_and_resources() -> None:
    spec = OnnxComponentSpec("clip_vision", (PIXELS,), (EMBEDS,), max_batch_size=8)
    assert spec.tolerance == Tolerance(1e-4, 0.9999)
    assert spec.resources == Resources()


def test_an_exported_encoder_still_gets_the_base_checks() -> None:
    with pytest.raises(ValueError, match="tensor names must be unique"):
        OnnxComponentSpec("clip_vision", (PIXELS,), (PIXELS,), max_batch_size=8)


IDS = TensorSpec("input_ids", "int64", ("sequence",), pad_value="pad_token_id")
MASK = TensorSpec("attention_mask", "int64", ("sequence",), pad_value=0)
SEQUENCE = DynamicAxis("sequence", max="context_length", opt=16)


def test_a_dynamic_axis_spans_min_to_the_checkpoint_maximum_with_opt_clamped_inside() -> None:
    assert SEQUENCE.resolve({"context_length": 77}) == (1, 16, 77)
    assert SEQUENCE.resolve({"context_length": 8}) == (1, 8, 8)
    with pytest.raises(ValueError, match="dynamic axis sequence: min must be >= 1"):
        DynamicAxis("sequence", max=77, opt=16, min=0)


def test_item_shapes_vary_only_on_the_dynamic_axis() -> None:
    spec = OnnxComponentSpec("clip_text", (IDS, MASK), (EMBEDS,), max_batch_size=8, dynamic_axes=(SEQUENCE,))
    sizes = {"context_length": 77, "pad_token_id": 1}
    assert spec.item_shapes(IDS, sizes) == ((1,), (16,), (77,))
    assert spec.has_dynamic_axis(IDS) and not spec.has_dynamic_axis(EMBEDS)
    assert (IDS.resolve_pad(sizes), MASK.resolve_pad(sizes)) == (1, 0)


def test_an_input_with_a_dynamic_axis_needs_a_pad_value() -> None:
    unpadded = TensorSpec("input_ids", "int64", ("sequence",))
    with pytest.raises(ValueError, match="input input_ids has the dynamic axis sequence, so needs a pad_value"):
        OnnxComponentSpec("clip_text", (unpadded,), (EMBEDS,), max_batch_size=8, dynamic_axes=(SEQUENCE,))


def test_a_dynamic_axis_no_input_has_or_an_output_has_is_rejected() -> None:
    with pytest.raises(ValueError, match="dynamic axis sequence is no input's dim"):
        OnnxComponentSpec("clip_vision", (PIXELS,), (EMBEDS,), max_batch_size=8, dynamic_axes=(SEQUENCE,))
    per_token = TensorSpec("hidden", "float32", ("sequence", "embed_dim"))
    with pytest.raises(ValueError, match="output hidden may not have a dynamic axis"):
        OnnxComponentSpec("clip_text", (IDS,), (per_token,), max_batch_size=8, dynamic_axes=(SEQUENCE,))


# PythonModelSpec


@pytest.mark.parametrize("entry_point", ["", "serving.models", ":ClipPreprocess", "serving.models:"])
def test_an_entry_point_that_is_not_module_colon_class_is_rejected(entry_point: str) -> None:
    with pytest.raises(ValueError, match="entry_point must be 'module:Class'"):
        PythonModelSpec("clip_preprocess", (PIXELS,), (EMBEDS,), entry_point=entry_point)


def test_a_module_colon_class_entry_point_is_accepted() -> None:
    spec = PythonModelSpec(
        "clip_preprocess",
        (PIXELS,),
        (EMBEDS,),
        entry_point="serving.triton_models.clip_preprocess:TritonPythonModel",
        parameters={"max_aspect_ratio": "20"},
    )
    assert spec.entry_point.endswith(":TritonPythonModel")
    assert spec.parameters == {"max_aspect_ratio": "20"}


def test_python_model_parameters_are_not_shared_between_specs() -> None:
    first = PythonModelSpec("a", (PIXELS,), (EMBEDS,), entry_point="m:C")
    second = PythonModelSpec("b", (PIXELS,), (EMBEDS,), entry_point="m:C")
    assert first.parameters is not second.parameters


# EnsembleSpec

IMAGE = TensorSpec("image", "bytes", (1,))
TEXT = TensorSpec("text", "bytes", (1,))
PROBS = TensorSpec("probs", "float32", (-1,))
PREPROCESS = EnsembleStep("clip_preprocess", {"image": "image"}, {"pixel_values": "pixels"})
VISION = EnsembleStep("clip_vision", {"pixel_values": "pixels"}, {"image_embeds": "image_embeds"})
SCORE = EnsembleStep("clip_score", {"image_embeds": "image_embeds", "text": "text"}, {"probs": "probs"})


def test_an_ensemble_whose_steps_feed_each_other_in_order_is_valid() -> None:
    spec = EnsembleSpec("clip", (IMAGE, TEXT), (PROBS,), max_batch_size=8, steps=(PREPROCESS, VISION, SCORE))
    assert [step.model for step in spec.steps] == ["clip_preprocess", "clip_vision", "clip_score"]


def test_an_ensemble_without_steps_is_rejected() -> None:
    with pytest.raises(ValueError, match="ensemble clip: needs at least one step"):
        EnsembleSpec("clip", (IMAGE,), (PROBS,))


def test_an_ensemble_step_that_reads_a_tensor_before_it_is_produced_is_rejected() -> None:
    with pytest.raises(ValueError, match=r"step clip_vision reads \['pixels'\] before any step makes it"):
        EnsembleSpec("clip", (IMAGE, TEXT), (PROBS,), steps=(VISION, PREPROCESS, SCORE))


def test_an_ensemble_step_that_reads_a_tensor_nobody_makes_is_rejected() -> None:
    stray = EnsembleStep("clip_vision", {"pixel_values": "nowhere"}, {"image_embeds": "image_embeds"})
    with pytest.raises(ValueError, match=r"reads \['nowhere'\]"):
        EnsembleSpec("clip", (IMAGE,), (TensorSpec("image_embeds", "float32", (4,)),), steps=(stray,))


def test_an_ensemble_output_produced_by_no_step_is_rejected() -> None:
    with pytest.raises(ValueError, match=r"ensemble clip: outputs \['probs'\] are made by no step"):
        EnsembleSpec("clip", (IMAGE, TEXT), (PROBS,), steps=(PREPROCESS, VISION))


# QueuePolicy


@pytest.mark.parametrize(("size", "timeout"), [(0, 0), (-1, 0), (4, -1)])
def test_a_queue_policy_needs_room_for_one_request_and_a_non_negative_timeout(size: int, timeout: int) -> None:
    with pytest.raises(ValueError, match="queue policy"):
        QueuePolicy(size, timeout)


def test_an_ensemble_cannot_have_a_queue_of_its_own() -> None:
    with pytest.raises(ValueError, match="bound its steps instead"):
        EnsembleSpec("clip", (IMAGE, TEXT), (PROBS,), steps=(PREPROCESS, VISION, SCORE), queue=QueuePolicy(4))
