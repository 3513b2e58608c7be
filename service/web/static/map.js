// The map: regions (villages, grids) and issues as circle markers, clustered at low zoom.
// No basemap unless the settings name one; positions are WGS-84, shifted to GCJ-02 only
// when the basemap is drawn in it.
import { wgs84ToGcj02 } from "./gcj02.js";
import { STATES } from "./labels.js";

const L = window.L;
const DEFAULT_VIEW = { center: [30.0, 120.0], zoom: 12 };

export class LedgerMap {
  constructor(element, config, onIssue) {
    this.shift = config.basemap_crs === "gcj02" ? wgs84ToGcj02 : (lon, lat) => [lon, lat];
    this.map = L.map(element, { maxZoom: 19 } /* markercluster needs a maxZoom */).setView(DEFAULT_VIEW.center, DEFAULT_VIEW.zoom);
    this.basemap = config.basemap_url
      ? L.tileLayer(config.basemap_url, { attribution: config.basemap_attribution, maxZoom: 20, className: "basemap" }).addTo(this.map)
      : null;
    this.regions = L.geoJSON(null, {
      coordsToLatLng: (c) => this.latLng(c[0], c[1]),
      style: (f) => (f.properties.kind === "village"
        ? { color: "#37474F", weight: 2, fillOpacity: 0.04 }
        : { color: "#607D8B", weight: 1, dashArray: "4 4", fillOpacity: 0 }),
      onEachFeature: (f, layer) => layer.bindTooltip(f.properties.name, { sticky: true }),
    }).addTo(this.map);
    this.cluster = L.markerClusterGroup({ chunkedLoading: true, disableClusteringAtZoom: 17, maxClusterRadius: 50 });
    this.cluster.addTo(this.map);
    this.markers = new Map();
    this.colours = {};
    this.onIssue = onIssue;
  }

  // The layer switch: the basemap (when the settings name one) and each survey's orthomosaic
  // (shifted like the markers over a GCJ-02 basemap: ortho.js).
  addLayerSwitch(orthomosaics) {
    const overlays = { ...orthomosaics };
    if (this.basemap) overlays["底图 basemap"] = this.basemap;
    if (Object.keys(overlays).length) L.control.layers(null, overlays, { collapsed: false, autoZIndex: false /* keep each layer's own: surveys over the basemap */ }).addTo(this.map);
  }

  latLng(lon, lat) {
    const [x, y] = this.shift(lon, lat);
    return L.latLng(y, x);
  }

  showRegions(collection) {
    this.regions.clearLayers();
    this.regions.addData(collection);
  }

  style(props) {
    const state = STATES[props.state] ?? { colour: "#000" };
    return {
      radius: 8,
      fillColor: this.colours[props.class_key] ?? "#FF0000",
      fillOpacity: props.state === "rejected" || props.state === "closed" ? 0.35 : 0.9,
      color: state.colour, // the ring says the state, the fill the class
      weight: 3,
      className: `issue issue-${props.id} state-${props.state} class-${props.class_key}`,
    };
  }

  showIssues(features, fit) {
    this.cluster.clearLayers();
    this.markers.clear();
    const layers = [];
    for (const f of features) {
      if (!f.geometry) continue; // needs_location: listed, not mapped
      const [lon, lat] = f.geometry.coordinates;
      const marker = L.circleMarker(this.latLng(lon, lat), this.style(f.properties));
      marker.bindTooltip(`#${f.id} ${f.properties.name_zh}`);
      marker.on("click", () => this.onIssue(f.id));
      this.markers.set(f.id, marker);
      layers.push(marker);
    }
    this.cluster.addLayers(layers);
    // bounds of the markers themselves: with chunkedLoading the cluster layer fills in later
    const bounds = L.latLngBounds(layers.map((m) => m.getLatLng()));
    if (fit && layers.length) this.map.fitBounds(bounds, { padding: [30, 30], maxZoom: 16 });
    else if (fit && this.regions.getLayers().length) this.map.fitBounds(this.regions.getBounds());
  }

  // A state change: restyle the marker in place (its class names carry the state for tests and CSS).
  update(props) {
    const marker = this.markers.get(props.id);
    if (!marker) return;
    const style = this.style(props);
    marker.setStyle(style);
    const path = marker.getElement?.();
    if (path) path.setAttribute("class", `${style.className} leaflet-interactive`);
  }

  focus(id) {
    const marker = this.markers.get(id);
    if (marker) this.cluster.zoomToShowLayer(marker, () => marker.openTooltip());
  }
}
