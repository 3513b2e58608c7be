"""service.jobs.ortho_tiles: the zoom range bounds what one tile may read; a damaged file is a 404."""

from __future__ import annotations

from pathlib import Path

import morecantile
import numpy as np
import pytest
from pyproj import Transformer
from rasterio.transform import from_origin

from service.errors import NotFoundError
from service.jobs.ortho_tiles import MAX_DECIMATION_LEVELS, layer_info, render_tile
from tests.service.images import BASE_LAT, BASE_LON
from tests.service.jobs.surveys import UTM50N
from tests.vision.geo.conftest import write_raster

# More than 4 halvings above 256 px on its short side: rio-tiler's own minzoom (the raster in about
# one tile) lies further out than the cap allows without overviews.
SIDE_PX = 4200


def square(path: Path, *, overviews: tuple[int, ...] = ()) -> Path:
    x0, y0 = Transformer.from_crs("EPSG:4326", UTM50N, always_xy=True).transform(BASE_LON, BASE_LAT)
    write_raster(
        path, np.full((1, SIDE_PX, SIDE_PX), 120, np.uint8), UTM50N, from_origin(x0, y0, 0.1, 0.1),
        tiled=True, blockxsize=256, blockysize=256, compress="deflate",
    )
    if overviews:
        import rasterio
        from rasterio.enums import Resampling

        with rasterio.open(path, "r+") as dst:
            dst.build_overviews(list(overviews), Resampling.average)
    return path


def test_without_overviews_a_tile_never_reads_more_than_the_cap(tmp_path):
    layer = layer_info(square(tmp_path / "plain.tif"))
    assert layer.maxzoom - layer.minzoom == MAX_DECIMATION_LEVELS


def test_overviews_open_the_lower_zooms(tmp_path):
    plain = layer_info(square(tmp_path / "plain.tif"))
    with_overviews = layer_info(square(tmp_path / "ovr.tif", overviews=(2, 4, 8)))
    assert with_overviews.maxzoom == plain.maxzoom
    assert with_overviews.minzoom < plain.minzoom  # rio-tiler's own minzoom: the raster in about one tile
    lon, lat = with_overviews.center[:2]
    tile = morecantile.tms.get("WebMercatorQuad").tile(lon, lat, with_overviews.minzoom)
    assert render_tile(tmp_path / "ovr.tif", tile.z, tile.x, tile.y).startswith(b"\x89PNG")


def test_a_damaged_file_is_not_found_not_a_500(tmp_path):
    whole = square(tmp_path / "whole.tif")
    layer = layer_info(whole)
    cut = tmp_path / "cut.tif"  # the header survives, the pixel blocks do not
    cut.write_bytes(whole.read_bytes()[:4000])
    tile = morecantile.tms.get("WebMercatorQuad").tile(*layer.center[:2], layer.maxzoom)
    with pytest.raises(NotFoundError, match="cannot be read"):
        render_tile(cut, tile.z, tile.x, tile.y)
    garbage = tmp_path / "garbage.tif"
    garbage.write_bytes(b"II*\x00\x08\x00\x00\x00" + b"\x01" * 200)
    with pytest.raises(NotFoundError, match="cannot be read"):
        layer_info(garbage)
