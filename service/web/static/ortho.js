// The office's orthomosaics (GET /v1/tiles) as map layers, one switch per survey.
// The tiles are behind the key, and an <img src> cannot send an Authorization header, so each
// tile is fetched through the api helper and shown through a blob: URL (the page's CSP allows
// img-src blob:), revoked when Leaflet unloads the tile so a long session does not pile up blobs.
import { api } from "./api.js";

const L = window.L;

// The tile URL template as a path on this server: the TileJSON's absolute URL names the host the
// service saw, which behind a proxy may not be the one the browser talks to.
function pathTemplate(tilejson) {
  return new URL(tilejson.tiles[0], location.origin).pathname.replaceAll("%7B", "{").replaceAll("%7D", "}");
}

// Over a GCJ-02 basemap the page draws the ledger shifted onto that datum (map.js); a survey's
// WGS-84 tiles must move with it, or the dots sit a few hundred metres off the imagery they were
// found in. The shift is not one translation: it drifts by up to about 0.5 m per 100 m
// (measured over China with vision.geo.gcj02), so each tile is moved by the shift at its own
// centre (`shift`: lon, lat -> [lon, lat]); neighbours then meet within a pixel or two.
const OrthoLayer = L.GridLayer.extend({
  initialize(tilejson, options) {
    this.template = pathTemplate(tilejson);
    L.GridLayer.prototype.initialize.call(this, options);
    this.on("tileunload", ({ tile }) => {
      tile.abort?.abort(); // a tile scrolled away before its response came: drop the request
      if (tile.src.startsWith("blob:")) URL.revokeObjectURL(tile.src);
    });
  },

  // The shift at `latLng` in pixels at `zoom`.
  shiftPx(latLng, zoom) {
    const [lon, lat] = this.options.shift(latLng.lng, latLng.lat);
    return this._map.project([lat, lon], zoom).subtract(this._map.project(latLng, zoom));
  },

  shiftedBounds() {
    const b = this.options.bounds;
    const corner = (ll) => { const [lon, lat] = this.options.shift(ll.lng, ll.lat); return L.latLng(lat, lon); };
    return L.latLngBounds(corner(b.getSouthWest()), corner(b.getNorthEast()));
  },

  _getTilePos(coords) {
    const centre = this._tileCoordsToBounds(coords).getCenter();
    return L.GridLayer.prototype._getTilePos.call(this, coords).add(this.shiftPx(centre, coords.z).round());
  },

  // The tiles to load are those under the view once moved: the view moved back by the shift.
  _getTiledPixelBounds(center) {
    const bounds = L.GridLayer.prototype._getTiledPixelBounds.call(this, center);
    const offset = this.shiftPx(this.options.bounds.getCenter(), this._tileZoom);
    return L.bounds(bounds.min.subtract(offset), bounds.max.subtract(offset));
  },

  createTile(coords, done) {
    const tile = document.createElement("img");
    tile.alt = "";
    tile.abort = new AbortController();
    const path = L.Util.template(this.template, { z: coords.z, x: coords.x, y: coords.y });
    api.imageUrl(path, { signal: tile.abort.signal }).then(
      (url) => {
        if (tile.abort.signal.aborted) { URL.revokeObjectURL(url); return; } // unloaded meanwhile
        tile.onload = () => done(null, tile);
        tile.onerror = () => done(new Error(`tile ${path} is not an image`), tile);
        tile.src = url;
      },
      (error) => { if (!tile.abort.signal.aborted) done(error, tile); }, // 404 at the raster's edge: empty tile
    );
    return tile;
  },
});

function layerFor(tilejson, shift) {
  const [west, south, east, north] = tilejson.bounds;
  return new OrthoLayer(tilejson, {
    shift,
    tileSize: tilejson.tileSize,
    bounds: L.latLngBounds([south, west], [north, east]), // no request for tiles outside the survey
    minNativeZoom: tilejson.minzoom,
    maxNativeZoom: tilejson.maxzoom,
    // no minZoom: Leaflet's layer switch disables a layer outside its zoom range, and a survey must
    // be switchable from the township view; further out it is drawn from its coarsest tiles, scaled
    maxZoom: 22,
    zIndex: 10, // over the basemap, under the outlines and markers (other panes)
    className: "ortho-layer",
  });
}

function label(survey) {
  const day = survey.created_at.slice(0, 10);
  return `正射影像 ${survey.note} · ${day} · ${survey.job_id.slice(0, 6)}`; // the id: two flights may share a note
}

// A survey's switch: its TileJSON (the GeoTIFF opened on the server) is asked for only when the
// layer is first switched on, so an office with hundreds of surveys loads the page as fast as one
// with none. Switching on shows the survey's extent; a survey whose GeoTIFF cannot be read (404)
// switches itself off again and says why on the console.
function surveyLayer(map, survey, shift) {
  const group = L.layerGroup();
  let ortho = null;
  group.on("add", async () => {
    try {
      ortho ??= layerFor(await api.json(new URL(survey.tilejson, location.origin).pathname), shift);
    } catch (error) {
      console.warn(`orthomosaic ${survey.job_id}: ${error.message}`);
      map.removeLayer(group);
      return;
    }
    if (!map.hasLayer(group)) return; // switched off while the TileJSON came
    group.addLayer(ortho);
    map.setMaxZoom(Math.max(map.getMaxZoom(), ortho.options.maxNativeZoom));
    map.fitBounds(ortho.shiftedBounds());
  });
  return group;
}

// Each survey's layer for the layer switch, off until switched on, by label.
export async function orthoLayers(map, shift) {
  const surveys = await api.json("/v1/tiles");
  return Object.fromEntries(surveys.map((survey) => [label(survey), surveyLayer(map, survey, shift)]));
}
