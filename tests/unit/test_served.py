"""serving.served: what a repository serves, read back from the configs the export writes."""

from __future__ import annotations

from pathlib import Path

import pytest

from export.families import FAMILIES
from export.families.base import ExportOptions
from export.repository import write_repository
from export.specs import EnsembleSpec
from serving.served import PROBE_PARAMETER, PROBE_TASKS, Probe, RepositoryError, select, served_families
from tests.conftest import REPO_ROOT

CHECKED_IN = REPO_ROOT / "model_repository"


def test_the_checked_in_repository_serves_clip_and_llava_with_their_entry_ensembles_and_probes() -> None:
    served = served_families(CHECKED_IN)
    assert list(served) == ["clip", "llava"]
    assert served["clip"].models == ("clip_image_embed", "clip_rank", "clip_text_embed")
    assert served["clip"].probes == (Probe("clip_rank", "rank"),)
    assert served["llava"].models == ("llava",) and served["llava"].probes == (Probe("llava", "chat"),)


def test_every_registered_family_is_read_back_with_the_probe_its_specs_tag(tmp_path: Path) -> None:
    for family in FAMILIES:
        write_repository(tmp_path, family.models(ExportOptions()))
    served = served_families(tmp_path)
    assert set(served) == {family.name for family in FAMILIES}
    for family in FAMILIES:
        tagged = [
            Probe(spec.name, spec.parameters[PROBE_PARAMETER])
            for spec in family.models(ExportOptions())
            if isinstance(spec, EnsembleSpec) and PROBE_PARAMETER in spec.parameters
        ]
        assert served[family.name].probes == tuple(tagged) and len(tagged) == 1
        assert tagged[0].task in PROBE_TASKS


def test_selecting_a_family_the_repository_lacks_names_the_ones_it_holds() -> None:
    assert [family.name for family in select(CHECKED_IN, ["llava", "clip", "llava"])] == ["llava", "clip"]
    assert select(CHECKED_IN, []) == []
    with pytest.raises(RepositoryError, match=r"holds no family 'siglip'; it holds: clip, llava$"):
        select(CHECKED_IN, ["clip", "siglip"])


def test_a_repository_without_tags_says_how_to_write_them(tmp_path: Path) -> None:
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "config.pbtxt").write_text('name: "old"\nplatform: "ensemble"\n')
    with pytest.raises(RepositoryError, match=r"it holds: none .*run vlm-export repository"):
        select(tmp_path, ["clip"])


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ('parameters { key: "vlm_family" value { string_value: "x" } }\nnot a field {', "not a readable"),
        (
            'parameters { key: "vlm_family" value { string_value: "x" } }\n'
            'parameters { key: "vlm_probe" value { string_value: "dance" } }',
            "vlm_probe is 'dance', not one of rank, chat",
        ),
    ],
)
def test_a_bad_config_is_named(tmp_path: Path, config: str, message: str) -> None:
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "config.pbtxt").write_text(config)
    with pytest.raises(RepositoryError, match=message):
        served_families(tmp_path)
