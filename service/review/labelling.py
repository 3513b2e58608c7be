"""The labelling config, generated from the taxonomy: a new class appears in the UI without code.

One RectangleLabels tag (a label per class: Chinese and English name, the class's colour) and
one per-task Choices tag for the verdicts that are no box ("not a violation", "cannot tell").
Above the image, a HyperText block shows a change candidate's earlier-survey crop (the task's
`before_html`, made by service/review/tasks.py); for any other task that value is empty and
Label Studio draws nothing there (a second <Image> with no URL would show a loading error).
A label's value is what Label Studio stores in annotations, so `class_of_label` maps it back.
"""

from __future__ import annotations

from enum import StrEnum
from xml.sax.saxutils import quoteattr

from vision.taxonomy import ClassSpec, Taxonomy

IMAGE = "image"  # the task's data key and the Image tag's name
BOXES = "label"  # from_name of every box (predictions must use the same, or they are silently not shown)
VERDICT = "verdict"
BEFORE = "before"  # the HyperText tag's name
BEFORE_HTML = "before_html"  # its task data key: "" when the task has no earlier crop


class Verdict(StrEnum):
    not_a_violation = "not a violation"
    cannot_tell = "cannot tell"


def label_value(spec: ClassSpec) -> str:
    """Chinese name and the English name's head ("Straw burning", not its parenthesised gloss)."""
    english = spec.name_en.split(" (", 1)[0].strip()
    return f"{spec.name_zh} {english}" if english else spec.name_zh


def class_of_label(taxonomy: Taxonomy, value: str) -> str:
    """The class key of a label value; KeyError naming the known values when it is none of them."""
    by_value = {label_value(spec): spec.key for spec in taxonomy}
    try:
        return by_value[value]
    except KeyError:
        raise KeyError(f"label {value!r} is no class of the taxonomy; known: {sorted(by_value)}") from None


def label_config(taxonomy: Taxonomy) -> str:
    labels = "\n".join(
        f"    <Label value={quoteattr(label_value(spec))} background={quoteattr(spec.colour)}"
        f" hint={quoteattr(f'{spec.name_en} [{spec.key}]')}/>"
        for spec in taxonomy
    )
    choices = "\n".join(f"    <Choice value={quoteattr(v.value)}/>" for v in Verdict)
    return (
        "<View>\n"
        f'  <HyperText name="{BEFORE}" value="${BEFORE_HTML}" inline="true"/>\n'
        f'  <Image name="{IMAGE}" value="${IMAGE}" zoom="true"/>\n'
        f'  <RectangleLabels name="{BOXES}" toName="{IMAGE}" strokeWidth="3">\n'
        f"{labels}\n  </RectangleLabels>\n"
        '  <Header value="No box applies?"/>\n'
        f'  <Choices name="{VERDICT}" toName="{IMAGE}" choice="single" showInLine="true">\n'
        f"{choices}\n  </Choices>\n"
        "</View>\n"
    )
