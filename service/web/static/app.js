// The office's page: sign in with an API key, then the ledger on a map with filters and an issue panel.
import { api, ApiError, session } from "./api.js";
import { LedgerMap } from "./map.js";
import { orthoLayers } from "./ortho.js";
import { IssuePanel } from "./panel.js";
import { SOURCES, STATES, stateLabel } from "./labels.js";

const $ = (id) => document.getElementById(id);
const LIST_ROWS = 300; // the list beside the map; the map shows them all

function option(value, text) {
  const o = document.createElement("option");
  o.value = value;
  o.textContent = text;
  return o;
}

function filters() {
  return {
    class: $("filter-class").value,
    status: $("filter-state").value,
    month: $("filter-month").value,
    source: $("filter-source").value,
    region: $("filter-region").value,
  };
}

class Page {
  constructor(config) {
    this.config = config;
    this.features = [];
  }

  async start() {
    const me = await api.me();
    $("who").textContent = `${me.name} (${me.role})`;
    document.body.classList.add("signed-in");
    const [taxonomy, regions] = await Promise.all([api.taxonomy(), api.regions()]);
    this.colours = Object.fromEntries(taxonomy.classes.map((c) => [c.key, c.colour]));
    this.fillFilters(taxonomy, regions);
    this.map = new LedgerMap($("map"), this.config, (id) => this.open(id));
    this.map.colours = this.colours;
    this.map.showRegions(regions);
    // The survey layers come in beside the ledger: a slow or failing /v1/tiles does not hold up the issues.
    orthoLayers(this.map.map, this.map.shift).then(
      (layers) => this.map.addLayerSwitch(layers),
      (error) => { console.warn(`orthomosaic layers: ${error.message}`); this.map.addLayerSwitch({}); },
    );
    this.panel = new IssuePanel($("panel"), {
      colours: this.colours,
      myMoves: new Set(me.moves.map((m) => `${m.from_state}>${m.to_state}`)),
      onChange: (updated) => this.changed(updated),
    });
    $("filters").addEventListener("change", () => this.load(false));
    await this.load(true);
  }

  fillFilters(taxonomy, regions) {
    const legend = $("legend");
    for (const c of taxonomy.classes) {
      $("filter-class").append(option(c.key, `${c.name_zh} ${c.name_en}`));
      const row = document.createElement("div");
      row.innerHTML = '<span class="swatch"></span>';
      row.firstChild.style.background = c.colour;
      row.append(` ${c.name_zh}`);
      legend.append(row);
    }
    for (const s of Object.keys(STATES)) $("filter-state").append(option(s, stateLabel(s)));
    for (const [k, text] of Object.entries(SOURCES)) $("filter-source").append(option(k, text));
    const byParent = new Map();
    for (const f of regions.features) {
      const parent = f.properties.parent_id ?? 0;
      byParent.set(parent, [...(byParent.get(parent) ?? []), f]);
    }
    const add = (parent, depth) => {
      for (const f of (byParent.get(parent) ?? []).sort((a, b) => a.properties.name.localeCompare(b.properties.name))) {
        $("filter-region").append(option(f.properties.id, `${"　".repeat(depth)}${f.properties.name}`));
        add(f.properties.id, depth + 1);
      }
    };
    add(0, 0);
  }

  async load(fit) {
    $("issue-count").textContent = "…";
    const started = performance.now();
    const { features, total } = await api.issues(filters());
    this.features = features;
    this.map.showIssues(features, fit);
    this.list(features);
    $("issue-count").textContent = `${total} 条 issues`;
    document.body.dataset.loadedMs = String(Math.round(performance.now() - started));
    document.body.dataset.issues = String(total);
  }

  list(features) {
    const rows = features.slice(0, LIST_ROWS).map((f) => {
      const li = document.createElement("li");
      li.dataset.id = f.id;
      li.dataset.state = f.properties.state;
      li.className = `state-${f.properties.state}`;
      li.textContent = `#${f.id} ${f.properties.name_zh} · ${STATES[f.properties.state]?.zh ?? f.properties.state}` +
        ` · ${f.properties.village ?? ""}${f.properties.grid ? "/" + f.properties.grid : ""}`;
      li.addEventListener("click", () => this.open(f.id));
      return li;
    });
    $("issue-list").replaceChildren(...rows);
  }

  open(id) {
    this.map.focus(id);
    return this.panel.open(id);
  }

  changed(updated) {
    const props = updated.properties;
    this.map.update(props);
    const row = document.querySelector(`#issue-list li[data-id="${props.id}"]`);
    if (row) {
      row.dataset.state = props.state;
      row.className = `state-${props.state}`;
      row.textContent = row.textContent.replace(/·[^·]*·/, `· ${STATES[props.state]?.zh ?? props.state} ·`);
    }
  }
}

async function signIn(event) {
  event.preventDefault();
  const input = $("key-input");
  session.key = input.value.trim();
  input.value = ""; // the key lives in sessionStorage only
  await boot();
}

function signOut() {
  session.key = null;
  location.reload();
}

async function boot() {
  $("sign-in-error").textContent = "";
  if (!session.key) return;
  try {
    const config = await (await fetch("/web/config.json")).json();
    await new Page(config).start();
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) session.key = null;
    document.body.classList.remove("signed-in");
    $("sign-in-error").textContent = error instanceof ApiError && error.status === 403
      ? `此密钥的角色不能查看台账 this key's role may not read the ledger (${error.detail})`
      : error.message || String(error);
    console.error(error);
  }
}

$("sign-in").addEventListener("submit", signIn);
$("sign-out").addEventListener("click", signOut);
boot();
