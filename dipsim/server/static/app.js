// dipsim workbench: plain JavaScript over the HTTP API (no build step, nothing loaded from elsewhere).
// Rules: the bearer token lives in sessionStorage and goes in the Authorization header (no cookies); every value
// from the API is put on the page as text (textContent / text nodes), never as HTML; money is the API's exact string
// of yuan, written with thousands separators by string arithmetic (never a float, never scientific notation).
"use strict";

const TOKEN_KEY = "dipsim.token", USER_KEY = "dipsim.user", LANG_KEY = "dipsim.lang";
// The parameters shown first on 情景对比 (the rest are under "more parameters").
const KEY_PARAMETERS = ["coefficient.tcm_hospital_bonus", "tcm.same_price", "tcm.case_bonus", "outlier.low_ratio",
  "outlier.high_ratio", "budget.reserve_share", "budget.point_value_floor", "budget.point_value_cap"];

const T = {
  zh: {
    title: "dipsim 工作台", overview: "区域概览", compare: "情景对比", hospital: "医院详情", logout: "退出",
    switchTo: "English", login: "登录", username: "用户名", password: "密码", loginFailed: "登录失败",
    bureau: "医保局", hospitalRole: "医院", cases: "病例数", hospitals: "医院数", rejected: "退回记录",
    budget: "预算总额", byLevel: "按医院等级", byType: "按机构类型", pools: "各统筹区（基准方案）",
    level: "医院等级", type: "机构类型", pool: "统筹区-险种", cost: "医疗总费用（元）", budgetCol: "预算（元）",
    available: "可分配预算（元）", pointValue: "结算点值（元/点）", status: "点值状态", fundPayout: "基金支付（元）",
    baselineName: "基准方案", settlementDay: "结算日", params: "政策参数", moreParams: "更多参数",
    variantName: "方案名称", run: "运行", running: "运行中…", runs: "已有方案", chooseRun: "选择方案",
    noRuns: "尚无方案", onlyBureau: "只有医保局账户可以运行方案；下表为医保局已运行的方案。",
    unit: "单位", meaning: "含义", source: "依据", notChanged: "未修改任何参数", pointValues: "点值",
    baseline: "基准", variant: "方案", change: "变化", changeYuan: "变化（元）", changePct: "变化率",
    hospitalId: "医院编码", name: "医院名称", baselinePayout: "基准基金支付（元）", payout: "方案基金支付（元）",
    all: "全部", search: "搜索医院名称", shown: "显示", of: "共", rows: "家", chartTitle: "各医院基金支付变化（元）",
    summary: "汇总", hospitalTable: "各医院", winners: "获益医院数", losers: "受损医院数", moved: "转移金额（元）",
    tcmShare: "中医医院支付占比", group: "病组", payment: "支付（元）", balance: "盈亏（元）",
    ratio: "支付/费用", groupsTitle: "病组盈亏（基准方案，亏损最多的在前）", open: "打开",
    explain: "病例支付过程", caseId: "病例编号", show: "显示", yes: "是", no: "否", problems: "参数有误",
    failed: "运行失败", status_balanced: "平衡", status_capped: "封顶", status_floored: "保底",
    status_fixed: "固定点值", mustBe: "应", atLeast: "不小于", atMost: "不大于", above: "大于", below: "小于",
    notNumber: "不是数字", worstGroups: "亏损最多的病组（元）",
    download: "下载", excel: "Excel", csv: "CSV", downloadFailed: "下载失败", baselinePayoutShort: "基准（元）",
    byLevelRun: "按医院等级（基金支付）", byTypeRun: "按机构类型（基金支付）", poolsRun: "各统筹区基金支付",
    summaryTable: "方案汇总（含特例单议）", scenario: "方案", unchanged: "不变医院数",
    reviewApplied: "特例单议申请例数", reviewApproved: "特例单议核准例数（期望）", reviewAmount: "特例单议核准金额（元）",
    funds: "基金运行监测（基准方案，按统筹区和月份）", month: "月份", claims: "当月基金应付（元）",
    claimsToDate: "累计基金应付（元）", budgetToDate: "序时预算（元）", execution: "预算执行率", monitorLevel: "监测等级",
    projectedValue: "预测年终点值", projectedBalance: "预测年末结余（元）", capacity: "可支付月数",
    fundsChart: "预算执行率（按月）", multiCompare: "多方案对比", multiHint: "勾选两个或以上方案，并排对比",
    compareButton: "对比", multiTitle: "多方案对比", points: "点数", changeOf: "变化", poolValues: "各统筹区点值",
    chain: "支付过程（基准方案）", step: "步骤", item: "项目", amount: "金额（元）", outliers: "异常病例",
    chain_group_points: "1 病组分值", chain_outlier: "2 异常病例调整后", chain_coefficient: "3 医院系数后",
    chain_tcm_bonus: "4 中医加成后", chain_priced: "5 辅助目录后（定价点数）", chain_supervised: "6 监管扣减后",
    chain_reviewed: "7 特例单议后", chain_final: "8 医院增长上限后（最终点数）",
    money_group_payment: "9-10 病组支付（点值×点数＋按项目，按分分配）",
    money_band_adjustment: "10 结算调整", money_payment: "10 支付合计", money_patient_paid: "患者自付",
    money_fund_payout: "10 基金支付", money_prepaid: "11 预付", money_deposit: "11 质量保证金",
    money_deposit_released: "11 保证金返还", money_clearing: "11 年终清算", money_cost: "医疗总费用",
    chainTotal: "各统筹区合计", reviewCases: "特例单议", paidByItem: "按项目付费病例", pointsValue: "点数×点值（未按分分配）",
    outlier_normal: "正常", outlier_low: "低倍率", outlier_high: "高倍率", outlier_extreme: "极端",
  },
  en: {
    title: "dipsim workbench", overview: "Region overview", compare: "Compare scenarios", hospital: "Hospital",
    logout: "Log out", switchTo: "中文", login: "Log in", username: "User name", password: "Password",
    loginFailed: "Log-in failed", bureau: "bureau", hospitalRole: "hospital", cases: "cases", hospitals: "hospitals",
    rejected: "rejected rows", budget: "budget", byLevel: "By hospital level", byType: "By hospital type",
    pools: "Pools (baseline)", level: "level", type: "type", pool: "pool", cost: "cost (yuan)",
    budgetCol: "budget (yuan)", available: "budget available (yuan)", pointValue: "point value (yuan per point)",
    status: "status", fundPayout: "fund payout (yuan)", baselineName: "baseline", settlementDay: "settlement day",
    params: "Policy parameters", moreParams: "more parameters", variantName: "variant name", run: "Run",
    running: "running…", runs: "Runs", chooseRun: "choose a run", noRuns: "no runs yet",
    onlyBureau: "Only bureau accounts run variants; below are the bureau's runs.", unit: "unit",
    meaning: "meaning", source: "source", notChanged: "no parameter changed", pointValues: "Point values",
    baseline: "baseline", variant: "variant", change: "change", changeYuan: "change (yuan)", changePct: "change (%)",
    hospitalId: "hospital", name: "name", baselinePayout: "baseline payout (yuan)", payout: "variant payout (yuan)",
    hospitalTable: "Hospitals", all: "all", search: "search hospital name", shown: "shown", of: "of", rows: "", chartTitle:
    "Change in fund payout by hospital (yuan)", summary: "Summary", winners: "winners", losers: "losers",
    moved: "money moved (yuan)", tcmShare: "TCM hospitals' share", group: "group", payment: "payment (yuan)",
    balance: "balance (yuan)", ratio: "payment / cost", groupsTitle: "Balance by group (baseline, largest loss first)",
    open: "open", explain: "A case's payment chain", caseId: "case id", show: "show", yes: "yes", no: "no",
    problems: "problems", failed: "the run failed", status_balanced: "balanced", status_capped: "capped",
    status_floored: "floored", status_fixed: "fixed", mustBe: "must be", atLeast: ">=", atMost: "<=",
    above: ">", below: "<", notNumber: "not a number", worstGroups: "Largest losses by group (yuan)",
    download: "download", excel: "Excel", csv: "CSV", downloadFailed: "download failed",
    baselinePayoutShort: "baseline (yuan)", byLevelRun: "By hospital level (fund payout)",
    byTypeRun: "By hospital type (fund payout)", poolsRun: "Fund payout by pool",
    summaryTable: "Summary (with special-case review)", scenario: "scenario", unchanged: "unchanged",
    reviewApplied: "review: applied", reviewApproved: "review: approved (expected)",
    reviewAmount: "review: amount (yuan)", funds: "Fund monitoring (baseline, by pool and month)", month: "month",
    claims: "claims (yuan)", claimsToDate: "claims to date (yuan)", budgetToDate: "budget to date (yuan)",
    execution: "execution", monitorLevel: "level", projectedValue: "projected point value",
    projectedBalance: "projected balance (yuan)", capacity: "months of capacity", fundsChart: "Budget execution by month",
    multiCompare: "Compare runs", multiHint: "tick two runs or more to see them side by side",
    compareButton: "compare", multiTitle: "Runs side by side", points: "points", changeOf: "change",
    poolValues: "Point values by pool", chain: "Payment chain (baseline)", step: "step", item: "item",
    amount: "amount (yuan)", outliers: "outliers", chain_group_points: "1 group points",
    chain_outlier: "2 after outliers", chain_coefficient: "3 after the hospital coefficient",
    chain_tcm_bonus: "4 after the TCM bonus", chain_priced: "5 after the auxiliary factor (priced)",
    chain_supervised: "6 after supervision cuts", chain_reviewed: "7 after special-case review",
    chain_final: "8 after the hospital growth cap (final)",
    money_group_payment: "9-10 group payment (value x points + by item, to the fen)",
    money_band_adjustment: "10 band adjustment", money_payment: "10 payment", money_patient_paid: "patient paid",
    money_fund_payout: "10 fund payout", money_prepaid: "11 prepaid", money_deposit: "11 quality deposit",
    money_deposit_released: "11 deposit released", money_clearing: "11 clearing", money_cost: "cost",
    chainTotal: "total over the pools", reviewCases: "special-case review", paidByItem: "cases paid by item",
    pointsValue: "points x point value (before the fen split)", outlier_normal: "normal", outlier_low: "low",
    outlier_high: "high", outlier_extreme: "extreme",
  },
};

let lang = localStorage.getItem(LANG_KEY) === "en" ? "en" : "zh";
let labels = null;  // GET /api/labels
const charts = [];

function t(key) { return T[lang][key] ?? key; }

// ------------------------------------------------------------------ elements (text only, never HTML)

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? "" : String(v));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function clear(node) { while (node.firstChild) node.removeChild(node.firstChild); return node; }

// ------------------------------------------------------------------ numbers (the rules of report/present.py)

function groupDigits(digits) { return digits.replace(/\B(?=(\d{3})+(?!\d))/g, ","); }

// The API's money "-1234567.8" / "12.34" -> "-1,234,567.80": exact, by string.
function yuan(text) {
  if (text === null || text === undefined || text === "") return "—";
  let s = String(text).trim(), sign = "";
  if (s.startsWith("-")) { sign = "-"; s = s.slice(1); }
  let [whole, frac = ""] = s.split(".");
  if (!/^\d+$/.test(whole) || !/^\d*$/.test(frac)) return String(text);
  frac = (frac + "00").slice(0, 2);  // the API gives exactly 2 decimals
  whole = whole.replace(/^0+(?=\d)/, "");
  if (/^0+$/.test(whole) && frac === "00") sign = "";
  return `${sign}${groupDigits(whole)}.${frac}`;
}

// Fen of the API's money string, as a BigInt (sorting and sums without floats).
function fen(text) {
  if (text === null || text === undefined) return null;
  let s = String(text), sign = 1n;
  if (s.startsWith("-")) { sign = -1n; s = s.slice(1); }
  const [whole, frac = ""] = s.split(".");
  return sign * (BigInt(whole) * 100n + BigInt((frac + "00").slice(0, 2)));
}

// 万元 / 亿元 for large totals (present.money_compact): on whole fen, half away from zero.
function yuanCompact(text) {
  const f = fen(text);
  if (f === null) return "—";
  const abs = f < 0n ? -f : f, sign = f < 0n ? "-" : "";
  const scaled = (units) => {  // abs fen / units, to 2 decimals, half up
    const hundredths = (abs * 100n * 2n / units + 1n) / 2n;
    return `${sign}${groupDigits((hundredths / 100n).toString())}.${(hundredths % 100n).toString().padStart(2, "0")}`;
  };
  if (abs >= 1000000n) {  // 10,000.00 yuan
    const wan = scaled(1000000n);
    if (abs < 10000000000n && wan.replace(/[-,]/g, "") !== "10000.00") return `${wan} ${lang === "zh" ? "万元" : "×10k yuan"}`;
    return `${scaled(10000000000n)} ${lang === "zh" ? "亿元" : "×100M yuan"}`;
  }
  return `${yuan(text)} ${lang === "zh" ? "元" : "yuan"}`;
}

function fixed(value, digits) {  // a plain number with separators, never an exponent
  if (value === null || value === undefined || !Number.isFinite(Number(value))) return "—";
  const v = Number(value);
  if (Math.abs(v) >= 1e21) return groupDigits(BigInt(Math.round(v)).toString());
  let s = Math.abs(v).toFixed(digits);
  if (Number(s) === 0) return (0).toFixed(digits);
  const [whole, frac] = s.split(".");
  return `${v < 0 ? "-" : ""}${groupDigits(whole)}${frac !== undefined ? "." + frac : ""}`;
}

function count(value) { return fixed(value, 0); }

function signedPct(value) {  // change_pct (already x100) -> "+1.23%"
  if (value === null || value === undefined) return "—";
  const s = fixed(value, 2);
  return `${!s.startsWith("-") && Number(value.toFixed(2)) !== 0 ? "+" : ""}${s}%`;
}

function share(value) { return value === null || value === undefined ? "—" : `${fixed(value * 100, 2)}%`; }

function levelRank(level) {
  if (!labels) return 0;
  const l = labels.level_aliases[level] || level;
  const i = labels.levels.indexOf(l);
  return i >= 0 ? i : labels.levels.length;
}

function compareLevels(a, b) {
  const d = levelRank(a) - levelRank(b);
  return d !== 0 ? d : String(a ?? "").localeCompare(String(b ?? ""), "zh");
}

function statusLabel(status) { return T[lang]["status_" + status] ?? status; }

// ------------------------------------------------------------------ the API

function token() { return sessionStorage.getItem(TOKEN_KEY); }
function me() { try { return JSON.parse(sessionStorage.getItem(USER_KEY)); } catch { return null; } }

class ApiError extends Error {
  constructor(status, detail) {
    super(typeof detail === "string" ? detail : (detail && detail.message) || `HTTP ${status}`);
    this.status = status; this.detail = detail;
  }
}

// A request to the API with the tab's token (no cookie is ever sent); `options.body` goes as JSON. The Response.
function apiFetch(path, options = {}, accept = "application/json") {
  const headers = { "Accept": accept };
  if (token()) headers["Authorization"] = `Bearer ${token()}`;
  if (options.body !== undefined) headers["Content-Type"] = "application/json";
  return fetch(`/api${path}`, { method: options.method || "GET", headers, cache: "no-store",
    credentials: "omit", body: options.body !== undefined ? JSON.stringify(options.body) : undefined });
}

async function api(path, options = {}) {
  const response = await apiFetch(path, options);
  let body = null;
  try { body = await response.json(); } catch { body = null; }
  if (response.status === 401 && path !== "/login") {
    sessionStorage.removeItem(TOKEN_KEY); sessionStorage.removeItem(USER_KEY);
    location.hash = "#/login";
  }
  if (!response.ok) throw new ApiError(response.status, body && body.detail);
  return body;
}

// ------------------------------------------------------------------ layout

function setActive(page) {
  for (const a of document.querySelectorAll("#nav a")) a.classList.toggle("active", a.dataset.page === page);
}

async function firstRegion() {
  const regions = (await api("/regions")).regions;
  return regions.length ? regions[0].id : null;
}

function renderChrome() {
  document.title = t("title");
  document.documentElement.lang = lang === "zh" ? "zh-CN" : "en";
  document.getElementById("lang-switch").textContent = t("switchTo");
  const logout = document.getElementById("logout");
  logout.textContent = t("logout");
  const user = me(), nav = clear(document.getElementById("nav")), who = clear(document.getElementById("who"));
  logout.hidden = !user;
  if (!user) return;
  const region = currentRegion;
  const ownHospital = user.role === "hospital" ? user.hospital_id : null;
  nav.append(el("a", { href: `#/region/${region}`, "data-page": "overview", text: t("overview") }),
    el("a", { href: `#/compare/${region}`, "data-page": "compare", text: t("compare") }),
    el("a", { href: `#/policy/${region}`, "data-page": "policy", text: t("policyNav") }),
    el("a", { href: `#/projection/${region}`, "data-page": "projection", text: t("projectionNav") }),
    el("a", { href: `#/hospital/${region}/${ownHospital || ""}`, "data-page": "hospital", text: t("hospital") }),
    ...(user.role === "bureau" ? [el("a", { href: "#/upload", "data-page": "upload", text: t("upload") })] : []));
  who.textContent = `${user.name}（${user.role === "bureau" ? t("bureau") : t("hospitalRole") + " " + user.hospital_id}）`;
}

let currentRegion = null;

function disposeCharts() { while (charts.length) { const c = charts.pop(); try { c.dispose(); } catch { /* gone */ } } }

function table(columns, rows, attrs = {}) {
  // columns: [{key, label, kind: money|count|number4|pct|text|share, value(row)}]
  const head = el("tr", {}, columns.map((c) => el("th", { "data-col": c.key, text: c.label })));
  const body = el("tbody", {}, rows.map((r) => row(columns, r)));
  return el("table", attrs, el("thead", {}, head), body);
}

// Save a blob as a file through a hidden blob: link (a download the page fetched itself, or text it holds).
function saveBlob(blob, file) {
  const url = URL.createObjectURL(blob);
  const a = el("a", { href: url, download: file, hidden: true });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

// A run followed until it is done or failed: polled often at first (a variant takes ~0.1 s server-side), then
// every 150 ms; `onProgress(state)` on each answer still going. Gives the run's last state. `path`: "/projections"
// for a projection.
async function waitForRun(run, onProgress, path = "/runs") {
  let state = run, delay = 20;
  while (state.status === "queued" || state.status === "running") {
    if (onProgress) onProgress(state);
    await new Promise((r) => setTimeout(r, delay));
    delay = Math.min(delay * 2, 150);
    state = await api(`${path}/${encodeURIComponent(run.id)}`);
  }
  return state;
}

// Download links of a table: the file comes through fetch with the bearer token (there is no cookie) and is
// saved from a Blob link. `path`: the API path without its extension ("/runs/x.../hospitals"), `query`: "?runs=..".
function downloads(path, name, query = "") {
  const box = el("span", { class: "downloads", "data-download": name });
  const note = el("span", { class: "error" });
  for (const [ext, label] of [["xlsx", t("excel")], ["csv", t("csv")]]) {
    const link = el("a", { href: "#", class: "download", "data-ext": ext, "data-download": `${name}.${ext}`,
      text: `${t("download")} ${label}` });
    link.addEventListener("click", async (event) => {
      event.preventDefault();
      note.textContent = "";
      try {
        const sep = query ? "&" : "?";
        const response = await apiFetch(`${path}.${ext}${query}${sep}lang=${lang}`, {}, "*/*");
        if (!response.ok) throw new Error(`HTTP ${response.status}`);
        const disposition = response.headers.get("Content-Disposition") || "";
        saveBlob(await response.blob(), (disposition.match(/filename="([^"]+)"/) || [])[1] || `${name}.${ext}`);
      } catch (e) { note.textContent = `${t("downloadFailed")}: ${e.message}`; }
    });
    box.append(link, " ");
  }
  box.append(note);
  return box;
}

// A heading with the table's download links beside it.
function heading(text, path, name, query) {
  return el("h2", { class: "with-downloads" }, el("span", { text }), path ? downloads(path, name, query) : null);
}

function cellText(kind, v) {
  if (kind === "money") return yuan(v);
  if (kind === "count") return count(v);
  if (kind === "number4") return fixed(v, 4);
  if (kind === "number2") return fixed(v, 2);
  if (kind === "pct") return signedPct(v);
  if (kind === "share") return share(v);
  return v === null || v === undefined ? "" : String(v);
}

function row(columns, r) {
  return el("tr", {}, columns.map((c) => {
    const v = c.value ? c.value(r) : r[c.key];
    const numeric = c.kind && c.kind !== "text";
    let cls = numeric ? "num" : "";
    if (c.signed && v !== null && v !== undefined) {
      const sgn = c.kind === "money" ? fen(v) : Number(v);
      if (sgn > 0) cls += " pos"; else if (sgn < 0) cls += " neg";
    }
    const td = el("td", { class: cls || null, "data-col": c.key, text: cellText(c.kind, v) });
    if (c.link) { const target = c.link(r); if (target) { clear(td); td.append(el("a", { href: target, text: cellText(c.kind, v) })); } }
    return td;
  }));
}

// ------------------------------------------------------------------ pages

async function pageLogin(main) {
  const error = el("p", { class: "error", id: "login-error" });
  const user = el("input", { id: "login-user", autocomplete: "username", required: true, maxlength: 64 });
  const password = el("input", { id: "login-password", type: "password", autocomplete: "current-password",
    required: true, maxlength: 256 });
  const form = el("form", { class: "login", id: "login-form" }, el("h1", { text: t("title") }),
    el("label", { for: "login-user", text: t("username") }), user,
    el("label", { for: "login-password", text: t("password") }), password,
    el("button", { type: "submit", id: "login-submit", text: t("login") }), error);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.textContent = "";
    try {
      const answer = await api("/login", { method: "POST", body: { username: user.value, password: password.value } });
      sessionStorage.setItem(TOKEN_KEY, answer.token);
      sessionStorage.setItem(USER_KEY, JSON.stringify(answer.user));
      const region = await firstRegion();
      const target = region ? `#/region/${region}` : "#/";
      if (location.hash === target) route(); else location.hash = target;
    } catch (e) {
      error.textContent = `${t("loginFailed")}: ${e.message}`;
    }
  });
  main.append(form);
  user.focus();
}

async function pageOverview(main, region) {
  const o = await api(`/regions/${encodeURIComponent(region)}`);
  const card = (k, v, id) => el("div", { class: "card", id }, el("div", { class: "k", text: k }), el("div", { class: "v", text: v }));
  main.append(el("h1", { id: "page-title", text: `${t("overview")}：${o.title || o.id}` }),
    el("div", { class: "cards" }, card(t("cases"), count(o.cases), "card-cases"),
      card(t("hospitals"), count(o.hospitals), "card-hospitals"), card(t("budget"), yuanCompact(o.budget), "card-budget"),
      card(t("rejected"), count(o.rejected), "card-rejected"),
      card(t("settlementDay"), o.baseline.settlement_day || "—", "card-day")),
    el("p", { class: "note", text: `${t("baselineName")}: ${o.baseline.name}` }));
  const byLevel = [...o.by_level].sort((a, b) => compareLevels(a.level, b.level));
  const base = `/regions/${encodeURIComponent(region)}`;
  main.append(heading(t("byLevel"), `${base}/by_level`, "overview-by-level"),
    table([{ key: "level", label: t("level") }, { key: "hospitals", label: t("hospitals"), kind: "count" },
      { key: "cases", label: t("cases"), kind: "count" }], byLevel, { id: "by-level" }),
    heading(t("byType"), `${base}/by_type`, "overview-by-type"),
    table([{ key: "type", label: t("type") }, { key: "hospitals", label: t("hospitals"), kind: "count" },
      { key: "cases", label: t("cases"), kind: "count" }], o.by_type, { id: "by-type" }),
    heading(t("pools"), `${base}/pools`, "overview-pools"),
    table([{ key: "pool", label: t("pool") }, { key: "cases", label: t("cases"), kind: "count" },
      { key: "cost", label: t("cost"), kind: "money" }, { key: "budget", label: t("budgetCol"), kind: "money" },
      { key: "budget_available", label: t("available"), kind: "money" },
      { key: "point_value", label: t("pointValue"), kind: "number4" },
      { key: "status", label: t("status"), value: (r) => statusLabel(r.status) },
      { key: "fund_payout", label: t("fundPayout"), kind: "money" }], o.pools, { id: "pools" }));
  const chartBox = el("div", { class: "chart", id: "level-chart" });
  main.append(el("h2", { text: `${t("byLevel")}：${t("cases")}` }), chartBox);
  drawBars(chartBox, byLevel.map((r) => r.level), byLevel.map((r) => r.cases), t("cases"), false);
  if (me().role === "bureau") await showFunds(main, region);
}

// 基金运行监测: the baseline's fund monitoring by pool and month (bureau only), a table and the execution by month.
async function showFunds(main, region) {
  const rows = (await api(`/regions/${encodeURIComponent(region)}/funds`)).funds;
  if (!rows.length) return;
  const fundsChart = el("div", { class: "chart", id: "funds-chart" });
  main.append(heading(t("funds"), `/regions/${encodeURIComponent(region)}/funds`, "funds"),
    el("div", { class: "scroll" }, table([{ key: "pool", label: t("pool") }, { key: "month", label: t("month") },
      { key: "cases", label: t("cases"), kind: "count" }, { key: "claims", label: t("claims"), kind: "money" },
      { key: "claims_to_date", label: t("claimsToDate"), kind: "money" },
      { key: "budget_to_date", label: t("budgetToDate"), kind: "money" },
      { key: "execution", label: t("execution"), kind: "share" }, { key: "level", label: t("monitorLevel") },
      { key: "projected_point_value", label: t("projectedValue"), kind: "number4" },
      { key: "projected_balance", label: t("projectedBalance"), kind: "money", signed: true },
      { key: "months_of_capacity", label: t("capacity"), kind: "number2" }], rows, { id: "funds-table" })),
    el("h2", { text: t("fundsChart") }), fundsChart);
  if (typeof echarts === "undefined") return;
  const months = [...new Set(rows.map((r) => r.month))].sort();
  const pools = [...new Set(rows.map((r) => r.pool))];
  const chart = echarts.init(fundsChart, null, { renderer: "canvas" });
  charts.push(chart);
  const encode = echarts.format.encodeHTML;
  chart.setOption({
    animation: false, legend: { top: 0 }, grid: { left: 60, right: 20, top: 40, bottom: 60 },
    tooltip: { trigger: "axis", formatter: (items) => items.map((i) => `${encode(String(i.seriesName))} ${
      encode(String(i.name))}: ${encode(share(i.value))}`).join("<br>") },
    xAxis: { type: "category", data: months }, yAxis: { type: "value", axisLabel: { formatter: (v) => share(v) } },
    dataZoom: [{ type: "inside" }, { type: "slider", height: 16, bottom: 8 }],
    series: pools.map((p) => ({ name: p, type: "line", data: months.map((m) => {
      const r = rows.find((x) => x.pool === p && x.month === m);
      return r ? r.execution : null;
    }) })),
  });
}

const UNIT_ZH = {
  "LOS / the group's median LOS": "住院天数 / 病组住院天数中位数", "[score from, share released]": "[起始分, 返还比例]",
  cases: "例", "cost / group standard cost": "费用 / 病种标准费用", "cost / the group's median cost": "费用 / 病组费用中位数",
  day: "天", days: "天", factor: "系数", hours: "小时", "observed / expected": "实际 / 预期",
  "per mille of the hospital's cases": "占本院病例数的千分比", "points per RW": "点 / 权重", "points per flagged case": "点 / 例",
  q: "q（支付 / 费用）", "share above the budget to date": "超序时预算的比例", "share added": "加成比例", share: "比例",
  "standard score of ln(mortality)": "ln(死亡率) 标准分", "standard score": "标准分", "x budget point value": "× 预算点值",
  "x budget.total": "× 预算总额", "yuan per point": "元 / 点", yuan: "元",
};
// a registry parameter's label, meaning and unit in the page's language
function policyLabel(p) { return lang === "zh" ? (p.label || p.path) : (p.label_en || p.label || p.path); }
function policyDoc(p) { return lang === "zh" ? (p.doc_zh || p.doc) : (p.doc || p.doc_zh); }
function policyUnit(p) { return lang === "zh" ? (UNIT_ZH[p.unit] || p.unit) : p.unit; }

function parameterInput(p) {
  const id = `param-${p.path}`;
  const value = p.value;
  if (p.type === "bool") {
    return el("select", { id, "data-path": p.path }, el("option", { value: "true", text: t("yes"), selected: value === true }),
      el("option", { value: "false", text: t("no"), selected: value === false }));
  }
  if (p.type === "str" && p.choices.length) {
    return el("select", { id, "data-path": p.path }, p.choices.map((c) => el("option", { value: c, text: c, selected: c === value })));
  }
  if ((p.type === "float" || p.type === "int") && typeof value === "number") {
    return el("input", { id, "data-path": p.path, type: "number", step: "any", value: String(value) });
  }
  return null;  // tables, schedules and dated values: shown, not edited here
}

function boundProblem(p, x) {
  if (!Number.isFinite(x)) return t("notNumber");
  if (p.type === "int" && !Number.isInteger(x)) return `${t("mustBe")} int`;
  if (p.min !== null && x < p.min) return `${t("mustBe")} ${t("atLeast")} ${p.min}`;
  if (p.max !== null && x > p.max) return `${t("mustBe")} ${t("atMost")} ${p.max}`;
  if (p.above !== null && x <= p.above) return `${t("mustBe")} ${t("above")} ${p.above}`;
  if (p.below !== null && x >= p.below) return `${t("mustBe")} ${t("below")} ${p.below}`;
  return null;
}

function parameterBlock(p) {
  const input = parameterInput(p);
  const problem = el("div", { class: "problem" });
  const block = el("div", { class: "param", "data-param": p.path },
    el("div", { class: "label", text: policyLabel(p) }),
    el("div", { class: "meta", text: `${p.path}${p.unit ? " · " + t("unit") + ": " + policyUnit(p) : ""}` }),
    input || el("div", { class: "meta", text: JSON.stringify(p.value) }),
    el("div", { class: "meta", text: `${t("meaning")}: ${policyDoc(p)}`, title: p.source ? `${t("source")}: ${p.source}` : null }),
    problem);
  if (input) {
    input.addEventListener("input", () => {
      const v = readInput(p, input);
      block.classList.toggle("changed", v.changed);
      problem.textContent = v.problem || "";
    });
    input.addEventListener("change", () => input.dispatchEvent(new Event("input")));
  }
  return { block, input, p, problem };
}

function readInput(p, input) {
  if (p.type === "bool") { const v = input.value === "true"; return { value: v, changed: v !== p.value }; }
  if (p.type === "str") return { value: input.value, changed: input.value !== p.value };
  const x = Number(input.value);
  if (input.value.trim() === "") return { value: null, changed: true, problem: t("notNumber") };
  return { value: p.type === "int" ? x : x, changed: x !== p.value, problem: boundProblem(p, x) };
}

async function pageCompare(main, region, runId) {
  const user = me();
  const isBureau = user.role === "bureau";
  main.append(el("h1", { id: "page-title", text: t("compare") }));
  const layout = el("div", { class: "layout" });
  const left = el("div", { class: "params" }), right = el("div", { class: "results", id: "results" });
  layout.append(left, right);
  main.append(layout);
  const runs = (await api(`/regions/${encodeURIComponent(region)}/runs`)).runs.filter((r) => r.status === "done");
  const select = el("select", { id: "run-select" }, el("option", { value: "", text: runs.length ? t("chooseRun") : t("noRuns") }),
    runs.map((r) => el("option", { value: r.id, text: `${r.name} · ${r.created}`, selected: r.id === runId })));
  select.addEventListener("change", () => { if (select.value) location.hash = `#/compare/${region}/${select.value}`; });
  left.append(el("h2", { text: t("runs") }), select);
  const chosen = new Set((runId || "").split(",").filter((r) => r && runId.includes(",")));
  if (runs.length >= 2) {
    const ticks = runs.map((r) => el("label", { class: "tick" }, el("input", { type: "checkbox", value: r.id,
      "data-run": r.id, checked: chosen.has(r.id) }), ` ${r.name} · ${r.created}`));
    const go = el("button", { type: "button", id: "multi-button", text: t("compareButton") });
    go.addEventListener("click", () => {
      const ids = ticks.map((l) => l.firstChild).filter((i) => i.checked).map((i) => i.value);
      if (ids.length >= 2) location.hash = `#/compare/${region}/${ids.join(",")}`;
    });
    left.append(el("h2", { text: t("multiCompare") }), el("p", { class: "note", text: t("multiHint") }),
      el("div", { id: "multi-runs", class: "ticks" }, ticks), go);
  }
  if (isBureau) {
    const params = (await api(`/regions/${encodeURIComponent(region)}/parameters`)).parameters;
    const byPath = Object.fromEntries(params.map((p) => [p.path, p]));
    const blocks = [];
    left.append(el("h2", { text: t("params") }));
    for (const path of KEY_PARAMETERS) if (byPath[path]) { const b = parameterBlock(byPath[path]); blocks.push(b); left.append(b.block); }
    const more = el("details", { id: "more-params" }, el("summary", { text: t("moreParams") }));
    for (const p of params) if (!KEY_PARAMETERS.includes(p.path)) { const b = parameterBlock(p); blocks.push(b); more.append(b.block); }
    left.append(more);
    const name = el("input", { id: "variant-name", maxlength: 100, placeholder: t("variantName") });
    const status = el("div", { id: "run-status", class: "note" });
    const button = el("button", { type: "button", id: "run-button", text: t("run") });
    left.append(el("h2", { text: t("variantName") }), name, " ", button, status);
    button.addEventListener("click", async () => {
      const set = {};
      const problems = [];
      for (const b of blocks) {
        if (!b.input) continue;
        const v = readInput(b.p, b.input);
        if (!v.changed) continue;
        if (v.problem) problems.push(`${policyLabel(b.p)}: ${v.problem}`);
        set[b.p.path] = v.value;
      }
      status.className = "note"; status.textContent = "";
      if (problems.length) { status.className = "error"; status.textContent = `${t("problems")}:\n${problems.join("\n")}`; return; }
      if (!Object.keys(set).length) { status.textContent = t("notChanged"); return; }
      button.disabled = true; status.textContent = t("running");
      try {
        const body = { set };
        if (name.value.trim()) body.name = name.value.trim();
        const run = await api(`/regions/${encodeURIComponent(region)}/runs`, { method: "POST", body });
        const state = await waitForRun(run, (s) => {
          status.textContent = `${t("running")} ${s.progress.done}/${s.progress.total}`;
        });
        if (state.status !== "done") throw new ApiError(500, `${t("failed")}: ${state.error || state.status}`);
        location.hash = `#/compare/${region}/${run.id}`;
      } catch (e) {
        status.className = "error";
        const problemsList = e.detail && e.detail.problems;
        status.textContent = problemsList ? `${t("problems")}:\n${problemsList.join("\n")}` : e.message;
      } finally { button.disabled = false; }
    });
  } else {
    left.append(el("p", { class: "note", text: t("onlyBureau") }));
  }
  if (runId && runId.includes(",")) await showMulti(right, region, runId.split(","));
  else if (runId) await showRun(right, region, runId);
}

// Several runs side by side: point values per pool and each hospital's payout and change under each run.
async function showMulti(box, region, ids) {
  const query = `?runs=${ids.map(encodeURIComponent).join(",")}`;
  const base = `/regions/${encodeURIComponent(region)}`;
  const v = await api(`${base}/compare${query}`);
  box.append(el("h2", { id: "multi-title", text: `${t("multiTitle")}：${v.runs.map((r) => r.name).join(" ／ ")}` }));
  box.append(heading(t("poolValues"), `${base}/compare_point_values`, "compare-point-values", query),
    table([{ key: "pool", label: t("pool") }, { key: "baseline", label: `${t("baseline")} ${t("pointValue")}`, kind: "number4" },
      ...v.runs.map((r, i) => ({ key: `run_${i}`, label: `${r.name}`, kind: "number4", value: (row) => row.runs[i] }))],
    v.point_values, { id: "multi-values" }));
  const columns = [
    { key: "hospital_id", label: t("hospitalId"), link: (r) => `#/hospital/${region}/${encodeURIComponent(r.hospital_id)}` },
    { key: "name", label: t("name") }, { key: "level", label: t("level") }, { key: "type", label: t("type") },
    { key: "pool", label: t("pool") }, { key: "baseline_payout", label: t("baselinePayoutShort"), kind: "money" }];
  v.runs.forEach((r, i) => {
    columns.push({ key: `payout_${i}`, label: `${r.name}（元）`, kind: "money", value: (row) => row.runs[i].payout },
      { key: `change_${i}`, label: `${r.name} ${t("changeYuan")}`, kind: "money", signed: true, value: (row) => row.runs[i].change },
      { key: `change_pct_${i}`, label: `${r.name} ${t("changePct")}`, kind: "pct", signed: true, value: (row) => row.runs[i].change_pct });
  });
  const rows = [...v.hospitals].sort((a, b) => compareLevels(a.level, b.level) || String(a.hospital_id).localeCompare(String(b.hospital_id)));
  const multi = hospitalTable(columns, rows, { id: "multi-table", sort: "level", isBureau: me().role === "bureau" });
  box.append(heading(t("hospitalTable"), `${base}/compare`, "compare", query), multi.filters,
    el("div", { class: "scroll" }, multi.table));
  multi.draw();
  const chartBox = el("div", { class: "chart", id: "multi-chart" });
  box.append(el("h2", { text: t("chartTitle") }), chartBox);
  if (typeof echarts === "undefined") return;
  const manyPools = new Set(rows.map((r) => r.pool)).size > 1;
  const names = rows.map((r) => `${r.name || r.hospital_id}${manyPools ? " · " + r.pool : ""}`);
  box.style.minWidth = "0";
  chartBox.style.height = `${Math.min(Math.max(rows.length * 14 * v.runs.length + 80, 300), 900)}px`;
  const chart = echarts.init(chartBox, null, { renderer: "canvas" });
  charts.push(chart);
  const encode = echarts.format.encodeHTML;
  chart.setOption({
    animation: false, legend: { top: 0 }, grid: { left: 10, right: 30, top: 30, bottom: 30, containLabel: true },
    tooltip: { trigger: "axis", axisPointer: { type: "shadow" }, formatter: (items) => `${encode(String(items[0].name))}<br>${
      items.map((i) => `${encode(String(i.seriesName))}: ${encode(yuan(rows[i.dataIndex].runs[i.seriesIndex].change))}`).join("<br>")}` },
    yAxis: { type: "category", data: names, inverse: true, axisLabel: { interval: 0, width: 220, overflow: "truncate" } },
    xAxis: { type: "value", axisLabel: { formatter: (x) => fixed(x, 0) } },
    dataZoom: [{ type: "inside", yAxisIndex: 0, zoomOnMouseWheel: false, moveOnMouseWheel: true }],
    series: v.runs.map((r, i) => ({ name: r.name, type: "bar", data: rows.map((row) => Number(row.runs[i].change)) })),
  });
}

async function showRun(box, region, runId) {
  const run = await api(`/runs/${encodeURIComponent(runId)}`);
  const data = await api(`/runs/${encodeURIComponent(runId)}/hospitals`);
  const registry = (await api(`/regions/${encodeURIComponent(region)}/parameters`)).parameters;
  const label = Object.fromEntries(registry.map((p) => [p.path, policyLabel(p)]));
  box.append(el("h2", { id: "run-title", "data-run": runId, text: `${t("variant")}：${run.name}` }),
    el("p", { class: "note", id: "run-set", text: Object.entries(run.set).map(([k, v]) =>
      `${label[k] || k}（${k}）= ${typeof v === "boolean" ? (v ? t("yes") : t("no")) : JSON.stringify(v)}`).join("；") }));
  const runPath = `/runs/${encodeURIComponent(runId)}`;
  box.append(heading(t("pointValues"), `${runPath}/point_values`, "point-values"),
    table([{ key: "pool", label: t("pool") }, { key: "baseline", label: `${t("baseline")} ${t("pointValue")}`, kind: "number4" },
      { key: "variant", label: `${t("variant")} ${t("pointValue")}`, kind: "number4" },
      { key: "change", label: t("changePct"), kind: "pct", signed: true,
        value: (r) => (r.baseline ? (r.variant / r.baseline - 1) * 100 : null) },
      { key: "status", label: t("status"), value: (r) => statusLabel(r.status) }], run.point_values, { id: "point-values" }));
  if (run.summary && run.summary.variant) {
    const s = run.summary.variant;
    box.append(el("div", { class: "cards", id: "summary" },
      ...[[t("winners"), count(s.winners)], [t("losers"), count(s.losers)], [t("moved"), yuan(s.moved)],
        [t("tcmShare"), share(s.tcm_hospital_share)], [t("reviewApplied"), count(s.review_applied)],
        [t("reviewAmount"), yuan(s.review_amount)]].map(([k, v]) =>
        el("div", { class: "card" }, el("div", { class: "k", text: k }), el("div", { class: "v", text: v })))));
    const summaryRows = ["baseline", "variant"].filter((k) => run.summary[k]).map((k) => ({ ...run.summary[k],
      scenario: k === "baseline" ? t("baseline") : run.name }));
    const aggregate = (key, label) => [{ key, label }, { key: "hospitals", label: t("hospitals"), kind: "count" },
      { key: "baseline_payout", label: t("baselinePayout"), kind: "money" }, { key: "payout", label: t("payout"), kind: "money" },
      { key: "change", label: t("changeYuan"), kind: "money", signed: true },
      { key: "change_pct", label: t("changePct"), kind: "pct", signed: true }];
    box.append(heading(t("summaryTable"), `${runPath}/summary`, "summary"),
      table([{ key: "scenario", label: t("scenario") }, { key: "fund_payout", label: t("fundPayout"), kind: "money" },
        { key: "winners", label: t("winners"), kind: "count" }, { key: "losers", label: t("losers"), kind: "count" },
        { key: "unchanged", label: t("unchanged"), kind: "count" }, { key: "moved", label: t("moved"), kind: "money" },
        { key: "tcm_hospital_share", label: t("tcmShare"), kind: "share" },
        { key: "review_applied", label: t("reviewApplied"), kind: "count" },
        { key: "review_approved", label: t("reviewApproved"), kind: "number2" },
        { key: "review_amount", label: t("reviewAmount"), kind: "money" }], summaryRows, { id: "summary-table" }),
      heading(t("byLevelRun"), `${runPath}/by_level`, "by-level"),
      table(aggregate("level", t("level")), [...run.by_level].sort((a, b) => compareLevels(a.level, b.level)), { id: "run-by-level" }),
      heading(t("byTypeRun"), `${runPath}/by_type`, "by-type"),
      table(aggregate("type", t("type")), run.by_type, { id: "run-by-type" }),
      heading(t("poolsRun"), `${runPath}/pools`, "pools"),
      table([{ key: "pool", label: t("pool") }, { key: "baseline_fund_payout", label: t("baselinePayout"), kind: "money" },
        { key: "fund_payout", label: t("payout"), kind: "money" },
        { key: "change", label: t("changeYuan"), kind: "money", signed: true }], run.pools, { id: "run-pools" }));
  }
  const rows = data.hospitals;
  const isBureau = me().role === "bureau";
  const manyPools = new Set(rows.map((r) => r.pool)).size > 1;
  const chartName = (r) => `${r.name || r.hospital_id}${manyPools ? " · " + r.pool : ""}`;
  const columns = [
    { key: "hospital_id", label: t("hospitalId"), link: (r) => `#/hospital/${region}/${encodeURIComponent(r.hospital_id)}` },
    { key: "name", label: t("name") }, { key: "level", label: t("level") }, { key: "type", label: t("type") },
    { key: "pool", label: t("pool") }, { key: "baseline_payout", label: t("baselinePayout"), kind: "money" },
    { key: "payout", label: t("payout"), kind: "money" }, { key: "change", label: t("changeYuan"), kind: "money", signed: true },
    { key: "change_pct", label: t("changePct"), kind: "pct", signed: true }];
  const chartBox = el("div", { class: "chart", id: "change-chart" });
  const hospitals = hospitalTable(columns, rows, { id: "hospital-table", sort: "change", isBureau, ids: true,
    onDraw: (shown) => {
      const byChange = [...shown].sort((a, b) => (fen(a.change) < fen(b.change) ? -1 : fen(a.change) > fen(b.change) ? 1 : 0));
      drawBars(chartBox, byChange.map((r) => chartName(r)), byChange.map((r) => Number(r.change)), t("changeYuan"),
        true, byChange.map((r) => r.change));
    } });
  box.append(heading(t("hospitalTable"), `${runPath}/hospitals`, "hospitals"), hospitals.filters, hospitals.table,
    el("h2", { text: t("chartTitle") }), chartBox);
  hospitals.draw();
}

// A hospital table with filters by level, type and pool, a search by name or id, and sorting by any column (a click
// on its header; again: the other way). `onDraw(shown)` after each draw (a chart of the rows shown). `ids`: the
// filters' and counter's element ids (one such table on a page); `third`: the third filter's { key, label } instead of
// the pool's (a projection's year). Gives { filters, table, draw }.
function hospitalTable(columns, rows, { id, sort: sortFirst, isBureau, onDraw, ids, third }) {
  const idOf = (name) => (ids ? name : null);
  const select = (name, label, values) => el("select", { id: idOf(`filter-${name}`) },
    el("option", { value: "", text: `${label}：${t("all")}` }), values.map((l) => el("option", { value: l, text: l })));
  const levelFilter = select("level", t("level"), [...new Set(rows.map((r) => r.level))].sort(compareLevels));
  const typeFilter = select("type", t("type"), [...new Set(rows.map((r) => r.type))]
    .sort((a, b) => labels.types.indexOf(a) - labels.types.indexOf(b)));
  const thirdKey = third ? third.key : "pool";
  const poolFilter = select(thirdKey, third ? third.label : t("pool"), [...new Set(rows.map((r) => String(r[thirdKey])))]
    .sort((a, b) => a.localeCompare(b, undefined, { numeric: true })));
  const search = el("input", { id: idOf("filter-name"), type: "search", placeholder: t("search") });
  const counter = el("span", { class: "note", id: idOf("row-count") });
  let sort = { key: sortFirst, dir: 1 };
  const headRow = el("tr", {}, columns.map((c) => {
    const th = el("th", { class: "sortable", "data-col": c.key, text: c.label });
    th.addEventListener("click", () => { sort = { key: c.key, dir: sort.key === c.key ? -sort.dir : 1 }; draw(); });
    return th;
  }));
  const body = el("tbody");
  const value = (r, key) => {
    if (key === "level") return levelRank(r.level);
    const c = columns.find((x) => x.key === key);
    const v = c.value ? c.value(r) : r[key];
    return c.kind === "money" && v !== null && v !== undefined ? fen(v) : v;
  };
  function draw() {
    const q = search.value.trim().toLowerCase();
    const shown = rows.filter((r) => (!levelFilter.value || r.level === levelFilter.value)
      && (!typeFilter.value || r.type === typeFilter.value) && (!poolFilter.value || String(r[thirdKey]) === poolFilter.value)
      && (!q || String(r.name || "").toLowerCase().includes(q) || String(r.hospital_id).toLowerCase().includes(q)));
    shown.sort((a, b) => {
      const x = value(a, sort.key), y = value(b, sort.key);
      if (x === y) return String(a.hospital_id).localeCompare(String(b.hospital_id));
      if (x === null || x === undefined) return 1;
      if (y === null || y === undefined) return -1;
      return (x < y ? -1 : 1) * sort.dir;
    });
    clear(body).append(...shown.map((r) => {
      const tr = row(columns, r);
      tr.setAttribute("data-hospital", r.hospital_id);
      return tr;
    }));
    for (const th of headRow.children) {
      th.classList.toggle("sorted-asc", th.dataset.col === sort.key && sort.dir === 1);
      th.classList.toggle("sorted-desc", th.dataset.col === sort.key && sort.dir === -1);
    }
    counter.textContent = `${t("shown")} ${shown.length} / ${t("of")} ${rows.length} ${t("rows")}`;
    if (onDraw) onDraw(shown);
  }
  for (const input of [levelFilter, typeFilter, poolFilter]) input.addEventListener("change", draw);
  search.addEventListener("input", draw);
  search.addEventListener("change", draw);
  if (!isBureau) levelFilter.disabled = typeFilter.disabled = rows.length <= 1;
  return { filters: el("div", { class: "filters" }, levelFilter, typeFilter, poolFilter, search, counter),
    table: el("table", { id }, el("thead", {}, headRow), body), draw };
}

// An ECharts bar chart: hover shows the exact yuan (from the API's string), the axis reads 万 / 亿 (no exponent).
// Many bars (hospitals, groups) lie on their side, names on the left, the box as tall as they need (up to a limit,
// then a scroll bar).
function drawBars(box, names, values, seriesName, money, exact) {
  if (typeof echarts === "undefined") return;
  const flat = names.length > 8;
  box.style.height = flat ? `${Math.min(Math.max(names.length * 22 + 70, 300), 720)}px` : "";
  let chart = echarts.getInstanceByDom(box);
  if (!chart) { chart = echarts.init(box, null, { renderer: "canvas" }); charts.push(chart); }
  chart.resize();
  const encode = echarts.format.encodeHTML;
  const valueLabel = (v) => {
    const a = Math.abs(v);
    if (money && a >= 1e8) return `${fixed(v / 1e8, 2)}${lang === "zh" ? "亿" : "×100M"}`;
    if (money && a >= 1e4) return `${fixed(v / 1e4, 1)}${lang === "zh" ? "万" : "×10k"}`;
    return fixed(v, 0);
  };
  const category = { type: "category", data: names, inverse: flat,
    axisLabel: { interval: 0, width: 220, overflow: "truncate" } };
  const value = { type: "value", axisLabel: { formatter: valueLabel } };
  const fits = Math.floor((720 - 70) / 22);
  chart.setOption({
    animation: false,
    grid: flat ? { left: 10, right: 40, top: 10, bottom: 30, containLabel: true }
      : { left: 80, right: 20, top: 20, bottom: 60 },
    tooltip: { trigger: "axis", axisPointer: { type: "shadow" },
      // the tooltip is HTML: every value from the API is escaped here
      formatter: (items) => items.map((i) => `${encode(String(i.name))}<br>${encode(seriesName)}: ${
        encode(money && exact ? yuan(exact[i.dataIndex]) : fixed(i.value, money ? 2 : 0))}`).join("<br>") },
    xAxis: flat ? value : category,
    yAxis: flat ? category : value,
    dataZoom: flat
      ? [{ type: "inside", yAxisIndex: 0, zoomOnMouseWheel: false, moveOnMouseWheel: true },
        ...(names.length > fits ? [{ type: "slider", yAxisIndex: 0, right: 4, width: 14, startValue: 0,
          endValue: fits - 1 }] : [])]
      : [{ type: "inside" }],
    series: [{ name: seriesName, type: "bar", data: values.map((v) => ({ value: v,
      itemStyle: { color: v < 0 ? "#c62828" : "#2e7d32" } })) }],
  }, true);
}

async function pageHospital(main, region, hospitalId) {
  const user = me();
  const hospital = hospitalId || (user.role === "hospital" ? user.hospital_id : "");
  main.append(el("h1", { id: "page-title", text: t("hospital") }));
  if (user.role === "bureau") {
    const input = el("input", { id: "hospital-input", value: hospital, placeholder: t("hospitalId") });
    const go = el("button", { type: "button", text: t("open") });
    go.addEventListener("click", () => { location.hash = `#/hospital/${region}/${encodeURIComponent(input.value.trim())}`; });
    main.append(el("div", { class: "filters" }, input, go));
  }
  if (!hospital) return;
  const h = await api(`/regions/${encodeURIComponent(region)}/hospitals/${encodeURIComponent(hospital)}`);
  const card = (k, v, id) => el("div", { class: "card", id }, el("div", { class: "k", text: k }), el("div", { class: "v", text: v }));
  main.append(el("h2", { id: "hospital-name", text: `${h.name || h.hospital_id}（${h.hospital_id}）` }),
    el("div", { class: "cards" }, card(t("level"), h.level || "—"), card(t("type"), h.type || "—"),
      card(t("cases"), count(h.cases)), card(t("cost"), yuan(h.cost)), card(t("payment"), yuan(h.payment)),
      card(t("balance"), yuan(h.balance), "hospital-balance")));
  const hospitalPath = `/regions/${encodeURIComponent(region)}/hospitals/${encodeURIComponent(hospital)}`;
  const worst = h.groups.filter((g) => fen(g.balance) < 0n).slice(0, 20);
  const chartBox = el("div", { class: "chart", id: "groups-chart" });
  main.append(heading(`${t("groupsTitle")}（${count(h.groups.length)}）`, `${hospitalPath}/groups`, "groups"), el("div", { class: "scroll" },
    table([{ key: "group", label: t("group") }, { key: "cases", label: t("cases"), kind: "count" },
      { key: "cost", label: t("cost"), kind: "money" }, { key: "payment", label: t("payment"), kind: "money" },
      { key: "balance", label: t("balance"), kind: "money", signed: true },
      { key: "payment_ratio", label: t("ratio"), kind: "number2" }], h.groups, { id: "groups-table" })),
    el("h2", { text: t("worstGroups") }), chartBox);
  drawBars(chartBox, worst.map((g) => g.group), worst.map((g) => Number(g.balance)), t("balance"), true,
    worst.map((g) => g.balance));
  await showChain(main, hospitalPath);
  const caseInput = el("input", { id: "case-input", placeholder: t("caseId"), maxlength: 64 });
  const show = el("button", { type: "button", id: "case-show", text: t("show") });
  const out = el("pre", { class: "explain", id: "case-explain" });
  show.addEventListener("click", async () => {
    try { out.textContent = (await api(`/regions/${encodeURIComponent(region)}/cases/${encodeURIComponent(caseInput.value.trim())}/explain`)).text; }
    catch (e) { out.textContent = e.message; }
  });
  main.append(el("h2", { text: t("explain") }), el("div", { class: "filters" }, caseInput, show), out);
}

// 支付过程: the hospital's money from cost to payout under the baseline, per pool: the points after each case step
// of the payment chain, the special-case review, the point value and the settlement's amounts (to the fen).
async function showChain(main, hospitalPath) {
  const c = await api(`${hospitalPath}/chain`);
  main.append(heading(t("chain"), `${hospitalPath}/chain`, "chain"));
  const box = el("div", { id: "chain", class: "chain" });
  main.append(box);
  for (const p of c.pools) {
    const outliers = Object.entries(p.outliers).map(([k, n]) => `${t("outlier_" + k)} ${count(n)}`).join("，");
    const points = p.points.map((s, i) => ({ step: t("chain_" + s.step), points: s.points,
      change: i ? s.points - p.points[i - 1].points : null }));
    const review = p.review;
    const money = Object.keys(p.money).map((k) => ({ item: t("money_" + k), key: k, amount: p.money[k] }));
    const moneyTable = table([{ key: "item", label: t("item") }, { key: "amount", label: t("amount"), kind: "money" }],
      money, { class: "chain-money", "data-pool": p.pool });
    [...moneyTable.tBodies[0].rows].forEach((tr, i) => tr.setAttribute("data-item", money[i].key));
    box.append(el("h3", { text: `${t("pool")}：${p.pool}（${t("cases")} ${count(p.cases)}；${t("outliers")}：${outliers}）` }),
      el("div", { class: "layout" },
        table([{ key: "step", label: t("step") }, { key: "points", label: t("points"), kind: "number4" },
          { key: "change", label: t("changeOf"), kind: "number4", signed: true }], points, { class: "chain-points", "data-pool": p.pool }),
        el("div", {},
          table([{ key: "item", label: t("item") }, { key: "value", label: "" }], [
            { item: t("reviewApplied"), value: count(review.applied) },
            { item: t("reviewApproved"), value: fixed(review.approved, 2) },
            { item: t("paidByItem"), value: count(p.paid_by_item) },
            { item: `${t("pointValue")}（${statusLabel(p.point_value_status)}）`, value: fixed(p.point_value, 6) },
            { item: t("pointsValue"), value: yuan(p.points_value) }], { class: "chain-review" }),
          moneyTable)));
  }
  if (c.pools.length > 1) {  // the hospital's money over its pools
    const total = Object.keys(c.total).map((k) => ({ item: t("money_" + k), key: k, amount: c.total[k] }));
    const totalTable = table([{ key: "item", label: t("item") }, { key: "amount", label: t("amount"), kind: "money" }],
      total, { id: "chain-total" });
    [...totalTable.tBodies[0].rows].forEach((tr, i) => tr.setAttribute("data-item", total[i].key));
    box.append(el("h3", { text: t("chainTotal") }), totalTable);
  }
}

// ------------------------------------------------------------------ router

async function route() {
  disposeCharts();
  // each visit draws into a new box: a page still loading from an earlier visit draws into its own, detached box
  const main = el("div", { class: "page" });
  clear(document.getElementById("main")).append(main);
  const parts = location.hash.replace(/^#\/?/, "").split("/").map(decodeURIComponent);
  if (!token()) { renderChrome(); return pageLogin(main); }
  try {
    if (!labels) labels = await api("/labels");
    currentRegion = parts[1] || currentRegion || await firstRegion();
    renderChrome();
    const page = parts[0] || "region";
    if (page === "login") { renderChrome(); return pageLogin(main); }
    if (page === "compare") { setActive("compare"); return await pageCompare(main, currentRegion, parts[2]); }
    if (page === "hospital") { setActive("hospital"); return await pageHospital(main, currentRegion, parts[2]); }
    if (page === "policy") { setActive("policy"); return await pagePolicy(main, currentRegion); }
    if (page === "projection") { setActive("projection"); return await pageProjection(main, currentRegion, parts[2]); }
    if (page === "upload") { setActive("upload"); return await pageUpload(main); }
    setActive("overview");
    return await pageOverview(main, currentRegion);
  } catch (e) {
    main.append(el("p", { class: "error", id: "page-error", text: e.message }));
  }
}

document.getElementById("lang-switch").addEventListener("click", () => {
  lang = lang === "zh" ? "en" : "zh";
  localStorage.setItem(LANG_KEY, lang);
  route();
});
document.getElementById("logout").addEventListener("click", async () => {
  try { await api("/logout", { method: "POST" }); } catch { /* the token may have expired */ }
  sessionStorage.removeItem(TOKEN_KEY); sessionStorage.removeItem(USER_KEY);
  location.hash = "#/login";
});
window.addEventListener("hashchange", route);
window.addEventListener("resize", () => charts.forEach((c) => c.resize()));
route();
