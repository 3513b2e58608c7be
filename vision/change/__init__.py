"""Change detection between two surveys of the same area (issue #14 part 4): what is new.

- `epochs`: both epochs' rasters read on the earlier one's grid over their overlap, window by window.
- `registration`: the shift between epochs measured by phase correlation, bounded.
- `detector`: new structures (height gain with DSMs; appearance change and new blue roofs
  without) as `illegal_structure` findings with before/after crops.
"""
