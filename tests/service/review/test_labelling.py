"""The labelling config comes from the taxonomy: every class (Chinese and English name, colour),
the two verdicts, and box labels that map back to class keys."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from service.review.labelling import (
    BEFORE,
    BEFORE_HTML,
    BOXES,
    IMAGE,
    VERDICT,
    class_of_label,
    label_config,
    label_value,
)
from vision.taxonomy import Taxonomy


def test_every_class_is_a_label_with_its_names_and_colour():
    taxonomy = Taxonomy.default()
    root = ET.fromstring(label_config(taxonomy))
    boxes = root.find(f"RectangleLabels[@name='{BOXES}']")
    assert boxes is not None and boxes.get("toName") == IMAGE
    labels = {label.get("value"): label.get("background") for label in boxes.findall("Label")}
    assert labels == {label_value(spec): spec.colour for spec in taxonomy}
    assert "垃圾堆 Garbage pile" in labels and "秸秆焚烧 Straw burning" in labels
    verdicts = root.find(f"Choices[@name='{VERDICT}']")
    assert verdicts is not None
    assert [c.get("value") for c in verdicts.findall("Choice")] == ["not a violation", "cannot tell"]
    for spec in taxonomy:
        assert class_of_label(taxonomy, label_value(spec)) == spec.key


def test_a_new_class_appears_without_code():
    raw = Taxonomy.default().model_dump(mode="json")
    raw["classes"].append({"key": "sewage_outfall", "name_zh": "排污口", "name_en": "Sewage outfall (pipe)",
                           "colour": "#00AA55"})
    taxonomy = Taxonomy.from_mapping(raw)
    config = label_config(taxonomy)
    assert 'value="排污口 Sewage outfall" background="#00AA55"' in config
    assert class_of_label(taxonomy, "排污口 Sewage outfall") == "sewage_outfall"
    with pytest.raises(KeyError, match="no class of the taxonomy"):
        class_of_label(taxonomy, "Sewage outfall")


def test_the_earlier_survey_shows_above_the_image_from_the_tasks_html():
    """A change candidate's earlier crop: a HyperText of the task's before_html ("" for other
    tasks, which Label Studio renders as nothing), above the image the boxes are drawn on."""
    root = ET.fromstring(label_config(Taxonomy.default()))
    tags = [child.tag for child in root]
    (before,) = root.findall(f"HyperText[@name='{BEFORE}']")
    assert before.get("value") == f"${BEFORE_HTML}" and before.get("inline") == "true"
    assert tags.index("HyperText") < tags.index("Image")
    # no tag points its labels at the before block: boxes and verdicts stay on the later image
    assert {t.get("toName") for t in root if t.get("toName")} == {IMAGE}
