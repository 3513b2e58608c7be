// Display words for states, moves and source kinds (the API speaks English keys).
export const STATES = {
  candidate: { zh: "待审核", colour: "#9E9E9E" },
  confirmed: { zh: "已确认", colour: "#F57C00" },
  rejected: { zh: "已驳回", colour: "#212121" },
  dispatched: { zh: "已派发", colour: "#7B1FA2" },
  rectified: { zh: "已整改", colour: "#1976D2" },
  verified: { zh: "已核验", colour: "#388E3C" },
  closed: { zh: "已销号", colour: "#00796B" },
  rebound: { zh: "反弹", colour: "#D50000" },
};
export const MOVES = {
  confirmed: "确认 confirm",
  rejected: "驳回 reject",
  dispatched: "派发 dispatch",
  rectified: "已整改 rectified",
  verified: "核验 verify",
  closed: "销号 close",
  rebound: "反弹 rebound",
};
export const SOURCES = { citizen: "随手拍 citizen", drone: "无人机 drone", camera: "高空瞭望 camera", orthomosaic: "正射影像 orthomosaic" };
// States whose evidence is shown as before (first detection) and after (latest evidence).
export const BEFORE_AFTER = new Set(["rectified", "verified", "closed", "rebound"]);

export const stateLabel = (s) => `${STATES[s]?.zh ?? s} ${s}`;
export const when = (iso) => (iso ? new Date(iso).toLocaleString("zh-CN", { hour12: false }) : "");
