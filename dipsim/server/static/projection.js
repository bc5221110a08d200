// 多年预测 (#/projection/<region>[/<projection id>]): a projection of the region several years on (issue 20), run by
// the server through dipsim.project (each year settled by the one payment chain). A bureau account chooses the
// shipped example projection file or pastes / picks one (sent as text: the server reads it as data only and never
// opens the policy it names: the region's own policy is used), sets the years (1-10) and the Monte Carlo draws, runs
// it in the background (progress, cancel) and reads: the point value path per pool with the draws' 10-90% band, the
// fund balance path with its band, the payouts by hospital level per year, the years table and the hospitals table,
// with downloads. A hospital account reads the bureau's projections scoped as the other pages are: the point values
// (published), its own hospital's payout path and rows. A `scenario` column (lever scenarios) gives one line per
// scenario and pool; boxes choose the scenarios and pools the charts and the by-level table show (the baseline and
// the first lever at first). Uses app.js's globals; every value is put on the page as text (tooltips: escaped).
"use strict";

Object.assign(T.zh, {
  projectionNav: "多年预测", projectionTitle: "多年预测", projectionExample: "示例预测文件（随程序发布）",
  projectionOwn: "粘贴或选择预测文件（TOML）", projectionYears: "预测年数（1-10）", projectionDraws: "蒙特卡洛抽样次数",
  projectionRun: "运行预测", projectionCancel: "取消", projectionProgress: "进度", projectionChoose: "已有预测",
  projectionNone: "尚无预测", projectionReadOnly: "只有医保局账户可以运行预测；下面是医保局已运行的预测。",
  projectionPick: "选择文件", projectionCancelled: "已取消", projectionFailed: "预测失败", year: "年度",
  pvChart: "各统筹区结算点值（阴影：抽样 10%-90% 区间）", balanceChart: "基金结余（元；阴影：抽样 10%-90% 区间）",
  payoutLevelChart: "各医院等级基金支付（元，按年度）", payoutOwnChart: "本院基金支付（元，按年度；阴影：10%-90%）",
  yearsTable: "各年度统筹区", byLevelTable: "各年度按医院等级", bandsTable: "抽样区间（10%-90%）", income: "基金收入（元）",
  fundBalance: "基金结余（元）", cmi: "CMI", drifted: "编码升级病例数", draws: "抽样次数", band: "10%-90% 区间",
  projectionDone: "完成，用时", seconds: "秒", projectionNotes: "说明", pstatus_queued: "排队中",
  pstatus_running: "运行中", pstatus_done: "完成", pstatus_failed: "失败", pstatus_cancelled: "已取消",
  scenariosShown: "显示的方案", poolsShown: "显示的统筹区",
});
Object.assign(T.en, {
  projectionNav: "Projection", projectionTitle: "Projection over several years",
  projectionExample: "the shipped example projection file", projectionOwn: "paste or pick a projection file (TOML)",
  projectionYears: "years (1-10)", projectionDraws: "Monte Carlo draws", projectionRun: "Run the projection",
  projectionCancel: "cancel", projectionProgress: "progress", projectionChoose: "projections",
  projectionNone: "no projection yet", projectionReadOnly: "Only bureau accounts run projections; below are the bureau's.",
  projectionPick: "pick a file", projectionCancelled: "cancelled", projectionFailed: "the projection failed",
  year: "year", pvChart: "Point value by pool (shaded: the draws' 10-90% band)",
  balanceChart: "Fund balance (yuan; shaded: the draws' 10-90% band)",
  payoutLevelChart: "Fund payout by hospital level (yuan, by year)",
  payoutOwnChart: "This hospital's fund payout (yuan, by year; shaded: 10-90%)", yearsTable: "Years by pool",
  byLevelTable: "Years by hospital level", bandsTable: "Bands of the draws (10-90%)", income: "fund income (yuan)",
  fundBalance: "fund balance (yuan)", cmi: "CMI", drifted: "drifted cases", draws: "draws", band: "10-90% band",
  projectionDone: "done in", seconds: "s", projectionNotes: "notes", pstatus_queued: "queued",
  pstatus_running: "running", pstatus_done: "done", pstatus_failed: "failed", pstatus_cancelled: "cancelled",
  scenariosShown: "scenarios shown", poolsShown: "pools shown",
});

function projectionOption(p) {
  return `${p.title || p.name}（${p.years} ${t("year")}，${t("pstatus_" + p.status)}，${p.created}）`;
}

const PROJECTION_TEXT_LIMIT = 32 * 1024;  // the server's MAX_PROJECTION_TEXT (characters)

async function pageProjection(main, region, projectionId) {
  const user = me();
  main.append(el("h1", { id: "page-title", text: t("projectionTitle") }));
  const listed = (await api(`/regions/${encodeURIComponent(region)}/projections`)).projections;
  const select = el("select", { id: "projection-select" },
    el("option", { value: "", text: listed.length ? t("projectionChoose") : t("projectionNone") }),
    listed.map((p) => el("option", { value: p.id, text: projectionOption(p) })));
  select.value = projectionId || "";
  select.addEventListener("change", () => { if (select.value) location.hash = `#/projection/${region}/${select.value}`; });
  if (user.role === "bureau") main.append(projectionForm(region));
  else main.append(el("p", { class: "note", text: t("projectionReadOnly") }));
  main.append(el("div", { class: "filters" }, select));
  const box = el("div", { id: "projection-result" });
  main.append(box);
  if (projectionId) await showProjection(box, projectionId);
}

// The bureau's form: the example or a file's text, years, draws; run (then the page of the new projection).
function projectionForm(region) {
  const example = el("input", { type: "radio", name: "projection-source", id: "projection-example", checked: true });
  const own = el("input", { type: "radio", name: "projection-source", id: "projection-own" });
  // no maxlength: a longer text would be cut silently; it is refused below, with a message
  const text = el("textarea", { id: "projection-text", rows: 12, cols: 90, spellcheck: "false" });
  const file = el("input", { type: "file", id: "projection-file", accept: ".toml,text/plain" });
  const years = el("input", { type: "number", id: "projection-years", min: 1, max: 10, step: 1, value: 5 });
  const draws = el("input", { type: "number", id: "projection-draws", min: 0, max: 200, step: 1, value: 20 });
  const run = el("button", { type: "button", id: "projection-run", text: t("projectionRun") });
  const problems = el("div", { class: "error", id: "projection-problems" });
  api("/projection_example").then((e) => { if (!text.value) text.value = e.text; }).catch(() => {});
  text.addEventListener("input", () => { own.checked = true; });
  file.addEventListener("change", () => {
    const picked = file.files[0];
    if (!picked) return;
    if (picked.size > PROJECTION_TEXT_LIMIT * 4) { problems.textContent = t("tooLarge"); return; }
    const reader = new FileReader();
    reader.onload = () => { text.value = String(reader.result); own.checked = true; };
    reader.readAsText(picked);
  });
  run.addEventListener("click", async () => {
    problems.textContent = "";
    const body = { years: Number(years.value), draws: Number(draws.value) };
    if (example.checked) body.example = true; else body.text = text.value;
    if (!Number.isInteger(body.years) || body.years < 1 || body.years > 10) {
      problems.textContent = `${t("projectionYears")}: 1-10`; return;
    }
    if (!Number.isInteger(body.draws) || body.draws < 0) { problems.textContent = `${t("projectionDraws")}: >= 0`; return; }
    if (body.text !== undefined && body.text.length > PROJECTION_TEXT_LIMIT) { problems.textContent = t("tooLarge"); return; }
    run.disabled = true;
    try {
      const started = await api(`/regions/${encodeURIComponent(region)}/projections`, { method: "POST", body });
      location.hash = `#/projection/${region}/${started.id}`;
    } catch (e) {
      const d = e.detail;
      problems.textContent = d && d.problems ? `${t("problems")}:\n${d.problems.join("\n")}` : e.message;
    } finally { run.disabled = false; }
  });
  return el("div", { class: "params projection-form", id: "projection-form" },
    el("div", { class: "param" }, el("label", {}, example, " ", t("projectionExample"))),
    el("div", { class: "param" }, el("label", {}, own, " ", t("projectionOwn")), " ", file),
    text,
    el("div", { class: "filters" }, el("label", {}, `${t("projectionYears")} `, years),
      el("label", {}, `${t("projectionDraws")} `, draws), run),
    problems);
}

async function showProjection(box, projectionId) {
  const path = `/projections/${encodeURIComponent(projectionId)}`;
  let p = await api(path);
  const title = el("h2", { id: "projection-title", "data-projection": projectionId,
    text: `${p.title || p.name}（${p.years} ${t("year")}，${t("draws")} ${p.draws}）` });
  const progress = el("p", { id: "projection-progress", class: "note" });
  box.append(title, progress);
  if (p.notes && p.notes.length) box.append(el("p", { class: "note", id: "projection-notes-shown", text: p.notes.join("；") }));
  if (p.status === "queued" || p.status === "running") {
    const cancel = el("button", { type: "button", id: "projection-cancel", text: t("projectionCancel") });
    cancel.addEventListener("click", async () => {
      cancel.disabled = true;
      try { await api(`${path}/cancel`, { method: "POST" }); } catch (e) { progress.textContent = e.message; }
    });
    if (me().role === "bureau") box.append(cancel);
    p = await waitForRun(p, (s) => { progress.textContent = `${t("projectionProgress")} ${s.progress.done} / ${s.progress.total}`; },
      "/projections");
    cancel.remove();
    const option = document.querySelector(`#projection-select option[value="${CSS.escape(projectionId)}"]`);
    if (option) option.textContent = projectionOption(p);
  }
  if (p.status === "cancelled") { progress.textContent = t("projectionCancelled"); return; }
  if (p.status !== "done") {
    box.append(el("p", { class: "error", id: "projection-error", text: `${t("projectionFailed")}: ${p.error || p.status}` }));
    return;
  }
  progress.textContent = `${t("projectionDone")} ${fixed(p.elapsed_s || 0, 1)} ${t("seconds")}`;
  const isBureau = me().role === "bureau";
  const scenarioOf = (r) => (r.scenario === undefined || r.scenario === null ? "" : `${r.scenario} · `);
  const bandsOf = (what, measure, match) => p.bands.filter((b) => b.what === what && b.measure === measure && match(b));
  // which scenarios and pools the charts and the by-level table show: scenario x pool lines crowd a chart, so
  // beyond two scenarios the baseline and the first other are shown at first, and boxes add the others
  const scenarios = (p.scenarios && p.scenarios.length ? p.scenarios
    : [...new Set(p.years_table.map((r) => r.scenario).filter((s) => s !== undefined && s !== null))]
      .map((name) => ({ name, title: name })));
  const poolNames = [...new Set(p.years_table.map((r) => r.pool))];
  const chosen = { scenario: new Set(scenarios.slice(0, 2).map((s) => s.name)), pool: new Set(poolNames) };
  const shown = (r) => (r.scenario === undefined || r.scenario === null || chosen.scenario.has(r.scenario))
    && (r.pool === undefined || chosen.pool.has(r.pool));
  const ticks = (what, label, items) => el("div", { class: "ticks", id: `projection-${what}-picker` },
    el("strong", { text: label }), items.map((item) => {
      const input = el("input", { type: "checkbox", "data-name": item.name, checked: chosen[what].has(item.name) });
      input.addEventListener("change", () => {
        if (input.checked) chosen[what].add(item.name); else chosen[what].delete(item.name);
        drawCharts();
      });
      return el("label", { class: "tick" }, input, ` ${item.title && item.title !== item.name ? `${item.name}（${item.title}）` : item.name}`);
    }));
  if (scenarios.length > 1) box.append(ticks("scenario", t("scenariosShown"), scenarios));
  if (poolNames.length > 1) box.append(ticks("pool", t("poolsShown"), poolNames.map((name) => ({ name }))));
  const pvChart = el("div", { class: "chart", id: "pv-chart" });
  box.append(el("h2", { text: t("pvChart") }), pvChart);
  const balanceChart = el("div", { class: "chart", id: "balance-chart" });
  const payoutChart = el("div", { class: "chart", id: "payout-chart" });
  box.append(...(isBureau ? [el("h2", { text: t("balanceChart") }), balanceChart] : []),
    el("h2", { text: t(isBureau ? "payoutLevelChart" : "payoutOwnChart") }), payoutChart);
  const levelTable = el("div", { class: "scroll" });
  const sameLine = (rows) => (b) => (b.scenario ?? null) === (rows[0].scenario ?? null);
  function drawCharts() {
    for (const chartBox of [pvChart, balanceChart, payoutChart]) {  // drawn afresh with the boxes' choice
      const old = typeof echarts === "undefined" ? null : echarts.getInstanceByDom(chartBox);
      if (old) { charts.splice(charts.indexOf(old), 1); old.dispose(); }
    }
    const pools = groupRows(p.years_table.filter(shown), (r) => `${scenarioOf(r)}${r.pool}`);
    drawPaths(pvChart, [...pools].map(([name, rows]) => ({ name, rows, value: (r) => r.point_value,
      band: bandsOf("pool", "point_value", (b) => b.pool === rows[0].pool && sameLine(rows)(b)) })), false);
    if (isBureau) {
      drawPaths(balanceChart, [...pools].filter(([, rows]) => rows.some((r) => r.balance !== null)).map(([name, rows]) => ({
        name, rows, value: (r) => (r.balance === null ? null : Number(r.balance)), exact: (r) => r.balance,
        band: bandsOf("pool", "balance", (b) => b.pool === rows[0].pool && sameLine(rows)(b)) })), true);
      const levels = [...groupRows(p.by_level.filter(shown), (r) => `${scenarioOf(r)}${r.level}`)]
        .sort(([, a], [, b]) => compareLevels(a[0].level, b[0].level));
      drawPaths(payoutChart, levels.map(([name, rows]) => ({ name, rows, value: (r) => Number(r.fund_payout),
        exact: (r) => r.fund_payout, band: [] })), true);
      levelTable.replaceChildren(table([...scenarioColumn, { key: "year", label: t("year"), kind: "count" },
        { key: "level", label: t("level") }, { key: "hospitals", label: t("hospitals"), kind: "count" },
        { key: "cases", label: t("cases"), kind: "count" }, { key: "payment", label: t("payment"), kind: "money" },
        { key: "fund_payout", label: t("fundPayout"), kind: "money" }], p.by_level.filter(shown),
      { id: "projection-by-level-table" }));
    } else {
      const own = groupRows(p.hospitals.filter(shown), (r) => `${scenarioOf(r)}${r.name || r.hospital_id}`);
      drawPaths(payoutChart, [...own].map(([name, rows]) => ({ name, rows, value: (r) => Number(r.fund_payout),
        exact: (r) => r.fund_payout,
        band: bandsOf("hospital", "fund_payout", (b) => b.hospital_id === rows[0].hospital_id && sameLine(rows)(b)) })),
      true);
    }
  }
  const hasScenario = p.years_table.some((r) => r.scenario !== undefined);
  const scenarioColumn = hasScenario ? [{ key: "scenario", label: t("scenario") }] : [];
  drawCharts();
  const yearColumns = [...scenarioColumn, { key: "year", label: t("year"), kind: "count" },
    { key: "settlement_day", label: t("settlementDay") }, { key: "pool", label: t("pool") },
    ...(isBureau ? [{ key: "cases", label: t("cases"), kind: "count" }, { key: "points", label: t("points"), kind: "number2" }] : []),
    { key: "point_value", label: t("pointValue"), kind: "number4" },
    { key: "status", label: t("status"), value: (r) => statusLabel(r.status) },
    ...(isBureau ? [{ key: "budget", label: t("budgetCol"), kind: "money" }, { key: "income", label: t("income"), kind: "money" },
      { key: "fund_payout", label: t("fundPayout"), kind: "money" }, { key: "balance", label: t("fundBalance"), kind: "money", signed: true },
      { key: "months_of_capacity", label: t("capacity"), kind: "number2" }] : [])];
  box.append(heading(t("yearsTable"), `${path}/years`, "projection-years"),
    el("div", { class: "scroll" }, table(yearColumns, p.years_table, { id: "projection-years-table" })));
  if (isBureau) {
    box.append(heading(t("byLevelTable"), `${path}/by_level`, "projection-by-level"), levelTable);
  }
  const columns = [...scenarioColumn, { key: "year", label: t("year"), kind: "count" },
    { key: "hospital_id", label: t("hospitalId") }, { key: "name", label: t("name") }, { key: "level", label: t("level") },
    { key: "type", label: t("type") }, { key: "cases", label: t("cases"), kind: "count" },
    { key: "cmi", label: t("cmi"), kind: "number2" }, { key: "drifted", label: t("drifted"), kind: "count" },
    { key: "points", label: t("points"), kind: "number2" }, { key: "cost", label: t("cost"), kind: "money" },
    { key: "payment", label: t("payment"), kind: "money" }, { key: "fund_payout", label: t("fundPayout"), kind: "money" },
    { key: "payment_ratio", label: t("ratio"), kind: "number4" }];
  const hospitals = hospitalTable(columns, p.hospitals, { id: "hospital-table", sort: "hospital_id", isBureau, ids: true,
    third: { key: "year", label: t("year") } });
  box.append(heading(t("hospitalTable"), `${path}/hospitals`, "projection-hospitals"), hospitals.filters,
    el("div", { class: "scroll" }, hospitals.table));
  hospitals.draw();
  if (p.draws) box.append(heading(t("bandsTable"), `${path}/bands`, "projection-bands"));
}

// Rows grouped by a key, in their order: Map key -> rows.
function groupRows(rows, key) {
  const out = new Map();
  for (const r of rows) { const k = key(r); if (!out.has(k)) out.set(k, []); out.get(k).push(r); }
  return out;
}

// Lines by year, one per path ({name, rows, value(row), exact(row): the yuan text, band: rows of p10 / p90}); a band
// is drawn as a transparent base (p10) with the width (p90 - p10) stacked on it, shaded. The tooltip shows each line's
// value (money: the API's exact yuan) and its band.
function drawPaths(box, paths, money) {
  if (typeof echarts === "undefined") return;
  const chart = echarts.init(box, null, { renderer: "canvas" });
  charts.push(chart);
  const years = [...new Set(paths.flatMap((s) => s.rows.map((r) => r.year)))].sort((a, b) => a - b);
  const at = (rows, year) => rows.find((r) => r.year === year);
  const encode = echarts.format.encodeHTML;
  const axis = (v) => (money && Math.abs(v) >= 1e8 ? `${fixed(v / 1e8, 2)}${lang === "zh" ? "亿" : "×100M"}`
    : money && Math.abs(v) >= 1e4 ? `${fixed(v / 1e4, 1)}${lang === "zh" ? "万" : "×10k"}` : fixed(v, money ? 0 : 2));
  const series = [];
  paths.forEach((s, i) => {
    const color = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"][i % 8];
    if (s.band.length) {
      series.push({ name: `${s.name} p10`, type: "line", stack: `band${i}`, stackStrategy: "all", symbol: "none",
        silent: true, lineStyle: { opacity: 0 }, data: years.map((y) => { const b = at(s.band, y); return b ? b.p10 : null; }) });
      series.push({ name: `${s.name} ${t("band")}`, type: "line", stack: `band${i}`, stackStrategy: "all", symbol: "none",
        silent: true, lineStyle: { opacity: 0 }, areaStyle: { color, opacity: 0.18 },
        data: years.map((y) => { const b = at(s.band, y); return b ? b.p90 - b.p10 : null; }) });
    }
    series.push({ name: s.name, type: "line", symbol: "circle", itemStyle: { color }, lineStyle: { color },
      data: years.map((y) => { const r = at(s.rows, y); return r ? s.value(r) : null; }) });
  });
  chart.setOption({
    animation: false,
    legend: { type: "scroll", top: 0, data: paths.map((s) => s.name) },
    grid: { left: 90, right: 30, top: 40, bottom: 40 },
    tooltip: { trigger: "axis", formatter: (items) => {
      const year = years[items[0].dataIndex];
      return [`${encode(t("year"))} ${encode(String(year))}`, ...paths.map((s) => {
        const r = at(s.rows, year), b = at(s.band, year);
        if (!r) return "";
        const v = s.exact ? yuan(s.exact(r)) : fixed(s.value(r), money ? 2 : 6);
        const band = b ? `（${encode(t("band"))} ${encode(fixed(b.p10, money ? 2 : 6))} – ${encode(fixed(b.p90, money ? 2 : 6))}）` : "";
        return `${encode(s.name)}: ${encode(v)}${band}`;
      }).filter(Boolean)].join("<br>");
    } },
    xAxis: { type: "category", name: t("year"), data: years.map(String) },
    yAxis: { type: "value", scale: true, axisLabel: { formatter: axis } },
    series,
  }, true);
}
