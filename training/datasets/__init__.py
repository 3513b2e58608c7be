"""Dataset assembly: declarative specs (datasets/*.yaml) built into YOLO datasets with a card.

- `spec`: the pydantic `DatasetSpec` read from a YAML definition.
- `labels`: YOLO box and polygon label lines, with file:line issues for malformed ones.
- `split`: train/val/test fixed by a hash of each image's content (or of its group).
- `yolo`: reading a YOLO folder layout or `data.yaml` into images with boxes.
- `build`: spec -> `OUT/images`, `OUT/labels`, `OUT/data.yaml`, `OUT/dataset_card.json`.
- `card`: the dataset card (counts, label map, hash of the whole) and its Markdown.

Nothing here imports torch or ultralytics.
"""
