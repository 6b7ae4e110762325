"""The config parameters that tell serving and the gateway what an ensemble serves (client/catalog.py reads them):
every family tags each ensemble a client calls with them, so nothing downstream looks a model up by a default name."""

from __future__ import annotations

from client.catalog import (
    FAMILY_PARAMETER,
    KIND_OF_TASK,
    KIND_PARAMETER,
    MODEL_PARAMETER,
    PROBE_PARAMETER,
    TASK_PARAMETER,
    TEXT_MODEL_PARAMETER,
    ProbeTask,
    Task,
)


def served_tags(
    family: str, name: str, task: Task, probe: ProbeTask | None = None, text_model: str | None = None
) -> dict[str, str]:
    """The parameters of the ensemble that does ``task`` for the checkpoint ``name`` of ``family``; ``probe`` on
    the one ensemble per checkpoint that ``vlm-probe`` sends its request to."""
    tags = {
        FAMILY_PARAMETER: family,
        MODEL_PARAMETER: name,
        KIND_PARAMETER: KIND_OF_TASK[task],
        TASK_PARAMETER: task,
    }
    if text_model is not None:
        tags[TEXT_MODEL_PARAMETER] = text_model
    if probe is not None:
        tags[PROBE_PARAMETER] = probe
    return tags
