// The monthly report (红黑榜) for the key signed in on the map page (sessionStorage `patrol.key`).
// Everything comes through api.js with the key in the Authorization header: the report's HTML is
// fetched and shown here, and CSV and PDF are fetched and handed over as blob: URLs, so no link
// ever carries the key.
import { api, ApiError, session } from "./api.js";

const $ = (id) => document.getElementById(id);
const REPORT = "/v1/reports/monthly";

// "YYYY-MM" now in the office's time zone: the server counts months there, by capture time.
function thisMonth(timezone) {
  const parts = new Intl.DateTimeFormat("en-CA", { timeZone: timezone, year: "numeric", month: "2-digit" })
    .formatToParts(new Date());
  return `${parts.find((p) => p.type === "year").value}-${parts.find((p) => p.type === "month").value}`;
}

async function show(month) {
  $("report-status").textContent = "…";
  const html = await api.text(REPORT, { params: { month, format: "html" } });
  const doc = new DOMParser().parseFromString(html, "text/html");
  const host = $("report");
  // A shadow root keeps the report's stylesheet (written for print and the PDF) off the page's header.
  const root = host.shadowRoot ?? host.attachShadow({ mode: "open" });
  root.replaceChildren(...doc.head.querySelectorAll("style"), ...doc.body.childNodes);
  $("report-status").textContent = "";
  document.body.dataset.month = month;
}

const TOTALS = "/v1/reports/totals";

// The month's report as CSV or PDF; or, for "totals", the year's totals (counts and m² per month,
// region and class: service/totals.py) from January to the month picked.
async function download(format) {
  const month = $("month").value;
  const from = `${month.slice(0, 4)}-01`;
  const [path, params, name] = format === "totals"
    ? [TOTALS, { from, to: month, format: "csv" }, `totals-${from}-${month}.csv`]
    : [REPORT, { month, format }, `report-${month}.${format}`];
  const url = URL.createObjectURL(await api.blob(path, { params }));
  const link = Object.assign(document.createElement("a"), { href: url, download: name });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}

function failed(error) {
  $("report-status").textContent = "";
  $("sign-in-error").textContent = error instanceof ApiError && error.status === 403
    ? `此密钥的角色不能查看月报 this key's role may not read the report (${error.detail})`
    : error.message || String(error);
}

async function start() {
  if (!session.key) {
    $("sign-in-error").innerHTML = '请先在<a href="/">地图页</a>登录 sign in on the <a href="/">map page</a> first';
    return;
  }
  try {
    const [me, config] = await Promise.all([api.me(), (await fetch("/web/config.json")).json()]);
    $("who").textContent = `${me.name} (${me.role})`;
    document.body.classList.add("signed-in");
    $("month").value = thisMonth(config.timezone);
    $("month").addEventListener("change", () => $("month").value && show($("month").value).catch(failed));
    $("download-csv").addEventListener("click", () => download("csv").catch(failed));
    $("download-pdf").addEventListener("click", () => download("pdf").catch(failed));
    $("download-totals").addEventListener("click", () => download("totals").catch(failed));
    await show($("month").value);
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) session.key = null;
    failed(error);
  }
}

start();
