// The issue panel: evidence (crop, frame with the box, before/after), history, and the moves
// the signed-in role may make. The buttons are a convenience; the API decides.
import { api } from "./api.js";
import { BEFORE_AFTER, MOVES, SOURCES, stateLabel, when } from "./labels.js";

const SVG = "http://www.w3.org/2000/svg";

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v;
    else if (k.startsWith("data-")) node.setAttribute(k, v);
    else node[k] = v;
  }
  for (const child of children) if (child != null) node.append(child);
  return node;
}

async function image(path, alt) {
  const img = el("img", { alt, className: "evidence-img" });
  img.src = await api.imageUrl(path);
  return img;
}

// The whole frame with the detection's box drawn over it (an SVG in frame pixels).
async function frameWithBox(item, colour, label) {
  const figure = el("div", { class: "frame" });
  figure.append(await image(item.frame_url, `frame ${item.n}`));
  if (item.box_xyxy) {
    const [w, h] = item.frame_wh;
    const [x1, y1, x2, y2] = item.box_xyxy;
    const svg = document.createElementNS(SVG, "svg");
    svg.setAttribute("viewBox", `0 0 ${w} ${h}`);
    svg.setAttribute("class", "box-overlay");
    const rect = document.createElementNS(SVG, "rect");
    Object.entries({ x: x1, y: y1, width: x2 - x1, height: y2 - y1, stroke: colour, fill: "none",
      "stroke-width": Math.max(2, w / 200) }).forEach(([k, v]) => rect.setAttribute(k, v));
    const text = document.createElementNS(SVG, "text");
    Object.entries({ x: x1, y: Math.max(y1 - w / 150, w / 40), fill: colour, "font-size": Math.max(12, w / 40) })
      .forEach(([k, v]) => text.setAttribute(k, v));
    text.textContent = label;
    svg.append(rect, text);
    figure.append(svg);
  }
  return figure;
}

async function evidenceCard(title, item, colour, label) {
  const source = `${SOURCES[item.source_kind] ?? item.source_kind} · ${item.source_name}`;
  const card = el("section", { class: `evidence evidence-${item.kind}`, "data-n": item.n },
    el("h4", {}, `${title} · ${when(item.captured_at)}`),
    el("div", { class: "muted" }, `${source}${item.score != null ? ` · score ${item.score}` : " · 复查无发现 clear pass"}`));
  const images = el("div", { class: "images" });
  if (item.before_url) {
    // A change between surveys: the same ground in the earlier survey, beside the later crop.
    images.append(
      el("figure", { class: "crop before" }, await image(item.before_url, `before ${item.n}`),
        el("figcaption", {}, "前一期 earlier survey")),
      el("figure", { class: "crop after" }, await image(item.crop_url, `crop ${item.n}`),
        el("figcaption", {}, "本期 later survey")));
  } else if (item.crop_url) {
    images.append(el("div", { class: "crop" }, await image(item.crop_url, `crop ${item.n}`)));
  }
  images.append(await frameWithBox(item, colour, label));
  card.append(images);
  return card;
}

export class IssuePanel {
  constructor(element, { colours, myMoves, onChange }) {
    this.element = element;
    this.colours = colours;
    this.myMoves = myMoves; // Set of "from>to"
    this.onChange = onChange;
  }

  close() {
    this.element.hidden = true;
    this.element.replaceChildren();
  }

  async open(id) {
    this.element.hidden = false;
    this.element.replaceChildren(el("p", { class: "muted" }, `#${id} …`));
    try {
      await this.render(await api.issue(id));
    } catch (error) {
      this.element.replaceChildren(el("p", { class: "error" }, error.message));
    }
  }

  async render(issue) {
    const p = issue.properties;
    const colour = this.colours[p.class_key] ?? "#FF0000";
    const closeButton = el("button", { class: "close", title: "close", onclick: () => this.close() }, "×");
    const where = [p.village, p.grid].filter(Boolean).join(" / ") || "区域外 outside the regions";
    const head = el("header", {},
      closeButton,
      el("h3", {}, el("span", { class: "swatch", style: `background:${colour}` }), ` #${p.id} ${p.name_zh} ${p.name_en}`),
      el("div", { id: "issue-state", class: `state state-${p.state}`, "data-state": p.state }, stateLabel(p.state)),
      el("div", { class: "muted" }, `${where} · ${p.observation_count} 次发现 from ${p.source_count} source(s)` +
        (p.area_m2 != null ? ` · ${p.area_m2.toFixed(1)} m²` : "") + ` · 首次拍摄 ${when(p.first_seen_at)}`));
    const body = [head, this.moves(issue)];

    const detections = p.evidence.filter((e) => e.kind === "detection");
    const label = p.name_zh;
    if (BEFORE_AFTER.has(p.state) && p.evidence.length > 1) {
      body.push(await evidenceCard("整改前 before", detections[0] ?? p.evidence[0], colour, label));
      body.push(await evidenceCard("最新 after", p.evidence[p.evidence.length - 1], colour, label));
    } else if (p.evidence.length) {
      body.push(await evidenceCard("证据 evidence", detections[detections.length - 1] ?? p.evidence[0], colour, label));
    }
    if (p.evidence.length > 1) {
      body.push(el("details", {}, el("summary", {}, `全部证据 all evidence (${p.evidence.length})`),
        el("ol", {}, ...p.evidence.map((e) => el("li", {},
          `${when(e.captured_at)} · ${SOURCES[e.source_kind] ?? e.source_kind} · ${e.kind}${e.score != null ? ` ${e.score}` : ""}`)))));
    }
    body.push(el("h4", {}, "历史 history"), el("ol", { id: "history" }, ...p.history.map((e) =>
      el("li", { "data-kind": e.kind, "data-to": e.to_state ?? "" },
        `${when(e.at)} · ${e.kind}${e.to_state ? ` ${e.from_state ?? "∅"} → ${e.to_state}` : ""} · ${e.actor}`
        + (e.reason ? ` · ${e.reason}` : "")))));
    this.element.replaceChildren(...body);
  }

  // Buttons for the moves that exist from this state AND that this role may make; none otherwise.
  moves(issue) {
    const p = issue.properties;
    const mine = p.allowed_transitions.filter((to) => this.myMoves.has(`${p.state}>${to}`));
    if (!mine.length) return el("div", { id: "moves", class: "muted" }, "此角色无可用操作 no moves for your role");
    const reason = el("input", { id: "reason", placeholder: "理由 reason", maxLength: 1000 });
    const message = el("div", { id: "move-message", class: "error" });
    const buttons = mine.map((to) => el("button", {
      "data-move": to,
      onclick: async () => {
        try {
          const updated = await api.move(p.id, to, reason.value);
          this.onChange(updated);
          await this.render(updated);
        } catch (error) {
          message.textContent = error.message;
        }
      },
    }, MOVES[to] ?? to));
    return el("div", { id: "moves" }, reason, ...buttons, message);
  }
}
