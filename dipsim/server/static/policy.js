// 政策参数 (#/policy/<region>): every parameter of the registry by section, with its label, unit, meaning and source
// in the user's language, its default and the region's baseline value (dated values, tables and schedules as small
// tables); a bureau account edits variants (one column each), saves them as the scenario file `dipsim scenarios run`
// reads (POST /regions/{region}/scenario.toml, with the baseline policy.toml beside it), loads one back (a file the
// user picks, read by FileReader, checked by POST /regions/{region}/scenario/parse) and runs them (one run each, linked
// to its 情景对比 page). A hospital account reads the values only. Uses app.js's globals (el, clear, t, api, me, lang,
// boundProblem, ApiError, token); every value is put on the page as text.
"use strict";

Object.assign(T.zh, {
  policyNav: "政策参数", policyTitle: "政策参数", policyReadOnly: "医院账户只能查看参数；保存、载入和运行情景由医保局进行。",
  parameter: "参数", defaultValue: "默认值", baselineValue: "基准值", variantWord: "方案", addVariant: "添加方案",
  removeVariant: "删除此方案", saveScenario: "保存为情景文件", loadScenario: "载入情景文件", downloadPolicy: "下载基准政策 policy.toml",
  runVariants: "运行", scenarioTitle: "情景标题", scenarioText: "情景文件内容", saved: "已保存情景文件",
  loaded: "已载入情景文件", runLinks: "运行结果", openCompare: "情景对比", date: "日期", value: "值", key: "项",
  scoreFrom: "起始分", shareReleased: "返还比例", capFrom: "起点（上限倍数）", capWeight: "点数权重", empty: "（空）", unchanged: "（基准）", tooLarge: "文件过大",
  noVariants: "尚无方案：点击“添加方案”", fixedValue: "文件中的值（只读）", clearValue: "清除", checking: "检查中…",
  sectionOther: "其他", cliHint: "情景文件与 policy.toml 放在同一文件夹，即可用 dipsim scenarios run 运行。",
  notes: "说明", sha: "政策 sha256",
  baselineIgnored: "文件中的 [scenario] baseline = {0} 未读取：方案按本区域的基准政策检查和运行",
  sweepExpanded: "文件中的 [sweep] 已展开为 {0} 个方案",
});
Object.assign(T.en, {
  policyNav: "Policy", policyTitle: "Policy parameters", policyReadOnly: "Hospital accounts read the parameters only; "
    + "the bureau saves, loads and runs scenarios.",
  parameter: "parameter", defaultValue: "default", baselineValue: "baseline", variantWord: "variant",
  addVariant: "Add a variant", removeVariant: "remove this variant", saveScenario: "Save as scenario file",
  loadScenario: "Load a scenario file", downloadPolicy: "Download the baseline policy.toml", runVariants: "Run",
  scenarioTitle: "scenario title", scenarioText: "The scenario file", saved: "scenario file saved",
  loaded: "scenario file loaded", runLinks: "Runs", openCompare: "compare", date: "date", value: "value", key: "key",
  scoreFrom: "score from", shareReleased: "share released", capFrom: "from (x the cap)", capWeight: "weight of a point",
  empty: "(empty)", unchanged: "(baseline)",
  tooLarge: "the file is too large", noVariants: "no variant yet: add one", fixedValue: "value from the file (read only)",
  clearValue: "clear", checking: "checking…", sectionOther: "other",
  cliHint: "Put the scenario file and policy.toml in one folder and run it with dipsim scenarios run.",
  notes: "notes", sha: "policy sha256",
  baselineIgnored: "the file's [scenario] baseline = {0} is not read: the variants are checked and run on this region's baseline",
  sweepExpanded: "the file's [sweep] is expanded into {0} variants",
});

const POLICY_SECTIONS = {
  payment: ["付费方式", "Payment method"], outlier: ["偏差病例", "Outlier cases"],
  coefficient: ["医疗机构系数", "Hospital coefficients"], tcm: ["中医", "TCM"], budget: ["预算与点值", "Budget and point value"],
  bands: ["结余留用、超支分担", "Surplus kept, deficit shared"], cycle: ["预付与清算", "Prepayment and year-end settlement"],
  review: ["特例单议", "Special-case review"], supervision: ["基金监管", "Fund supervision"],
  monitor: ["基金运行监测", "Fund monitoring"],
};
const MAX_SCENARIO_BYTES = 60 * 1024;  // the server takes 64 KB a request, the JSON around the text included
const policyDrafts = {};  // per region: the variants being edited, kept across pages and the language switch

function sectionLabel(s) { const l = POLICY_SECTIONS[s]; return l ? l[lang === "zh" ? 0 : 1] : s || t("sectionOther"); }

function isDatedValue(v) {
  if (v === null || typeof v !== "object" || Array.isArray(v)) return false;
  const keys = Object.keys(v);
  return keys.length > 0 && keys.every((k) => /^\d{4}-\d{2}-\d{2}$/.test(k));
}

function isEditable(p) { return ["float", "int", "bool", "str"].includes(p.type); }

// A value as a short text (numbers as JSON writes them: never rounded here, the user sets them to the digit).
function scalarText(v) {
  if (v === true) return t("yes");
  if (v === false) return t("no");
  if (v === "") return "\"\"";
  return String(v);
}

// A value on the page: a scalar as text (yuan with thousands separators); a dated value, a table (map) or a
// schedule as a small table.
function valueView(p, v) {
  if (v === null || v === undefined) return el("span", { class: "note", text: "—" });
  if (typeof v === "number" && p.unit === "yuan") return el("span", { class: "value", text: fixed(v, 2) });
  const mini = (heads, rows) => el("table", { class: "mini" }, el("thead", {}, el("tr", {}, heads.map((h) => el("th", { text: h })))),
    el("tbody", {}, rows.map(([a, b]) => el("tr", {}, el("td", { text: a }), el("td", { class: "num" }, b)))));
  if (isDatedValue(v)) {
    return mini([t("date"), t("value")], Object.keys(v).sort().map((d) => [d, valueView(p, v[d])]));
  }
  if (Array.isArray(v)) {
    if (!v.length) return el("span", { class: "note", text: t("empty") });
    const heads = p.path === "budget.hospital_cap_tiers" ? [t("capFrom"), t("capWeight")]
      : p.type === "schedule" ? [t("scoreFrom"), t("shareReleased")] : [t("key"), t("value")];
    return mini(heads, v.map((pair) => Array.isArray(pair) ? [scalarText(pair[0]), scalarText(pair[1])] : [scalarText(pair), ""]));
  }
  if (typeof v === "object") {
    const keys = Object.keys(v);
    if (!keys.length) return el("span", { class: "note", text: t("empty") });
    return mini([t("key"), t("value")], keys.map((k) => [k, valueView(p, v[k])]));
  }
  return el("span", { class: "value", text: scalarText(v) });
}

// A variant of the form: its name, the raw text of each edited input ({path: "0.12" | "true" | "dip"}) and the
// values a loaded file set that the form does not edit (tables, schedules, dated values), kept as they are.
function newVariant(name) { return { name, inputs: {}, fixed: {} }; }

function variantOf(byPath, name, set) {
  const v = newVariant(name);
  for (const [path, value] of Object.entries(set || {})) {
    const p = byPath[path];
    const plain = p && isEditable(p) && (
      ((p.type === "float" || p.type === "int") && typeof value === "number")
      || (p.type === "bool" && typeof value === "boolean") || (p.type === "str" && typeof value === "string"));
    if (plain) v.inputs[path] = String(value);
    else v.fixed[path] = value;
  }
  return v;
}

// Why an input's text is not a value of the parameter (null when it is): the page's bound checks (boundProblem);
// the server's check, with the command line's messages, is the final one.
function inputProblem(p, raw) {
  if (raw === undefined || raw === "") return null;
  if (p.type === "float" || p.type === "int") {
    if (!/^\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*$/.test(raw)) return t("notNumber");
    return boundProblem(p, Number(raw));
  }
  if (p.type === "str" && p.choices.length && !p.choices.includes(raw)) return `${t("mustBe")} ${p.choices.join(" / ")}`;
  return null;
}

function inputValue(p, raw) {
  if (p.type === "float" || p.type === "int") return Number(raw);
  if (p.type === "bool") return raw === "true";
  return raw;
}

// {set, problems} of a variant: the edited inputs (an empty one: the baseline's value) and the kept values.
function variantSet(byPath, v, index) {
  const set = {}, problems = [];
  for (const [path, raw] of Object.entries(v.inputs)) {
    const p = byPath[path];
    if (!p || raw === "") continue;
    const why = inputProblem(p, raw);
    if (why) problems.push(`${v.name || `${t("variantWord")} ${index + 1}`} · ${policyLabel(p)}（${path}）: ${why}`);
    else set[path] = inputValue(p, raw);
  }
  return { set: { ...v.fixed, ...set }, problems };
}

function variantInput(p, v, index, onChange) {
  const raw = v.inputs[p.path] ?? "";
  const attrs = { id: `v${index}-${p.path}`, "data-variant": String(index), "data-path": p.path };
  let input;
  if (p.type === "bool" || (p.type === "str" && p.choices.length)) {
    const options = p.type === "bool" ? [["true", t("yes")], ["false", t("no")]] : p.choices.map((c) => [c, c]);
    input = el("select", attrs, el("option", { value: "", text: t("unchanged") }),
      options.map(([value, text]) => el("option", { value, text, selected: value === raw })));
  } else {
    const base = typeof p.value === "object" && p.value !== null ? "" : scalarText(p.value);
    input = el("input", { ...attrs, type: "text", inputmode: p.type === "str" ? null : "decimal", value: raw,
      placeholder: base, size: p.type === "str" ? 18 : 8, maxlength: 200, spellcheck: "false" });
  }
  const problem = el("div", { class: "problem", "data-problem": `${index}-${p.path}` });
  const cell = el("td", { class: "variant-cell" }, input, problem);
  const update = () => {
    v.inputs[p.path] = input.value.trim();
    const why = inputProblem(p, v.inputs[p.path]);
    problem.textContent = why || "";
    cell.classList.toggle("changed", v.inputs[p.path] !== "");
    cell.classList.toggle("bad", !!why);
    onChange();
  };
  input.addEventListener("input", update);
  input.addEventListener("change", update);
  cell.classList.toggle("changed", raw !== "");
  const why = inputProblem(p, raw);
  if (why) { problem.textContent = why; cell.classList.add("bad"); }
  return cell;
}

function fixedCell(p, v, redraw) {
  if (!(p.path in v.fixed)) return el("td", { class: "variant-cell note", text: isEditable(p) ? "" : "—" });
  const clearButton = el("button", { type: "button", class: "small", text: t("clearValue") });
  clearButton.addEventListener("click", () => { delete v.fixed[p.path]; redraw(); });
  return el("td", { class: "variant-cell changed", title: t("fixedValue") }, valueView(p, v.fixed[p.path]), clearButton);
}

// A download of text the page holds, as a file (a blob: URL, no request).
function downloadText(text, filename, type) { saveBlob(new Blob([text], { type }), filename); }

// A route that answers a file (TOML text): the text, or ApiError with the API's detail.
async function apiText(path, options = {}) {
  const response = await apiFetch(path, options, "application/toml, application/json");
  if (!response.ok) {
    let detail = null;
    try { detail = (await response.json()).detail; } catch { detail = null; }
    throw new ApiError(response.status, detail);
  }
  return response.text();
}

function problemText(e) {
  const list = e.detail && e.detail.problems;
  return list ? `${t("problems")}:\n${list.join("\n")}` : e.message;
}

async function pagePolicy(main, region) {
  const user = me();
  const isBureau = user.role === "bureau";
  const where = encodeURIComponent(region);
  const answer = await api(`/regions/${where}/parameters`);
  const params = answer.parameters;
  const byPath = Object.fromEntries(params.map((p) => [p.path, p]));
  main.append(el("h1", { id: "page-title", text: t("policyTitle") }),
    el("p", { class: "note", id: "policy-baseline",
      text: `${t("baselineName")}: ${answer.baseline} · ${t("sha")} ${String(answer.policy_sha256).slice(0, 12)}…` }));
  if (!isBureau) main.append(el("p", { class: "note", id: "policy-read-only", text: t("policyReadOnly") }));
  const draft = policyDrafts[region] || (policyDrafts[region] = { title: "", variants: isBureau ? [newVariant(`${t("variantWord")} 1`)] : [] });
  const status = el("div", { id: "policy-status", class: "note" });
  const say = (text, error = false) => { status.className = error ? "error" : "note"; status.textContent = text; };
  const preview = el("pre", { id: "scenario-text", class: "explain" });
  const links = el("ul", { id: "run-links" });
  const sections = el("div", { id: "policy-sections" });

  if (isBureau) {
    const title = el("input", { id: "scenario-title", maxlength: 200, value: draft.title, placeholder: t("scenarioTitle") });
    title.addEventListener("input", () => { draft.title = title.value; });
    const add = el("button", { type: "button", id: "add-variant", text: t("addVariant") });
    add.addEventListener("click", () => { draft.variants.push(newVariant(`${t("variantWord")} ${draft.variants.length + 1}`)); draw(); });
    const save = el("button", { type: "button", id: "save-scenario", text: t("saveScenario") });
    const policyButton = el("button", { type: "button", id: "download-policy", text: t("downloadPolicy") });
    const file = el("input", { type: "file", id: "load-scenario", accept: ".toml,text/plain,application/toml" });
    const fileLabel = el("label", { class: "file", for: "load-scenario" }, `${t("loadScenario")}: `, file);
    const run = el("button", { type: "button", id: "run-variants", text: t("runVariants") });
    main.append(el("div", { class: "filters policy-tools" }, title, add, save, policyButton, fileLabel, run), status,
      el("p", { class: "note", text: t("cliHint") }));

    const collect = () => {
      const variants = [], problems = [];
      draft.variants.forEach((v, i) => {
        const r = variantSet(byPath, v, i);
        problems.push(...r.problems);
        variants.push({ ...(v.name.trim() ? { name: v.name.trim() } : {}), set: r.set });
      });
      return { variants, problems };
    };
    save.addEventListener("click", async () => {
      const { variants, problems } = collect();
      if (problems.length) { say(`${t("problems")}:\n${problems.join("\n")}`, true); return; }
      say(t("checking"));
      try {
        const text = await apiText(`/regions/${where}/scenario.toml`, { method: "POST",
          body: { ...(draft.title.trim() ? { title: draft.title.trim() } : {}), variants } });
        preview.textContent = text;
        downloadText(text, `scenario_${region}.toml`, "application/toml");
        say(`${t("saved")}: scenario_${region}.toml`);
      } catch (e) { say(problemText(e), true); }
    });
    policyButton.addEventListener("click", async () => {
      try { downloadText(await apiText(`/regions/${where}/policy.toml`), "policy.toml", "application/toml"); }
      catch (e) { say(problemText(e), true); }
    });
    file.addEventListener("change", () => {
      const picked = file.files && file.files[0];
      file.value = "";  // the same file may be picked again
      if (!picked) return;
      if (picked.size > MAX_SCENARIO_BYTES) { say(`${t("tooLarge")}: ${count(picked.size)} B > ${count(MAX_SCENARIO_BYTES)} B`, true); return; }
      const reader = new FileReader();
      reader.addEventListener("load", async () => {
        say(t("checking"));
        try {
          const parsed = await api(`/regions/${where}/scenario/parse`, { method: "POST", body: { text: String(reader.result) } });
          draft.title = typeof parsed.title === "string" ? parsed.title : "";
          title.value = draft.title;
          draft.variants = parsed.variants.map((v) => variantOf(byPath, String(v.name), v.set));
          preview.textContent = String(reader.result);
          draw();
          const notes = [`${t("loaded")}: ${picked.name}`];
          if (parsed.baseline_ignored !== null && parsed.baseline_ignored !== undefined) {
            notes.push(t("baselineIgnored").replace("{0}", JSON.stringify(parsed.baseline_ignored)));
          }
          if (parsed.sweep_variants) notes.push(t("sweepExpanded").replace("{0}", String(parsed.sweep_variants)));
          say(notes.join("\n"));
        } catch (e) { say(problemText(e), true); }
      });
      reader.addEventListener("error", () => say(String(reader.error), true));
      reader.readAsText(picked, "utf-8");
    });
    run.addEventListener("click", async () => {
      const { variants, problems } = collect();
      if (problems.length) { say(`${t("problems")}:\n${problems.join("\n")}`, true); return; }
      if (!variants.length) { say(t("noVariants"), true); return; }
      run.disabled = true;
      clear(links);
      const started = [], failures = [];
      try {
        for (const v of variants) {
          try { started.push(await api(`/regions/${where}/runs`, { method: "POST", body: v })); }
          catch (e) { failures.push(`${v.name || JSON.stringify(v.set)}: ${problemText(e)}`); }
        }
        for (const r of started) {
          const state = await waitForRun(r, (s) => say(`${t("running")} ${s.name} ${s.progress.done}/${s.progress.total}`));
          links.append(el("li", { "data-run": r.id }, `${state.name}: `,
            state.status === "done" ? el("a", { href: `#/compare/${region}/${r.id}`, text: `${t("openCompare")} →` })
              : el("span", { class: "error", text: `${t("failed")}: ${state.error || state.status}` })));
        }
        say(failures.join("\n"), failures.length > 0);
      } catch (e) { say(problemText(e), true); } finally { run.disabled = false; }
    });
  }
  main.append(sections);
  if (isBureau) {
    main.append(el("h2", { text: t("runLinks") }), links,
      el("details", { id: "scenario-preview" }, el("summary", { text: t("scenarioText") }), preview));
  }

  function draw() {
    clear(sections);
    const bySection = new Map();
    for (const p of params) {
      const s = p.section || p.path.split(".")[0];
      if (!bySection.has(s)) bySection.set(s, []);
      bySection.get(s).push(p);
    }
    if (isBureau && !draft.variants.length) sections.append(el("p", { class: "note", text: t("noVariants") }));
    const heads = () => {
      const cells = [el("th", { text: t("parameter") }), el("th", { text: t("defaultValue") }), el("th", { text: t("baselineValue") })];
      draft.variants.forEach((v, i) => {
        const name = el("input", { id: `variant-name-${i}`, "data-variant": String(i), class: "variant-name",
          maxlength: 100, value: v.name, placeholder: `${t("variantWord")} ${i + 1}` });
        name.addEventListener("input", () => { v.name = name.value; });
        const remove = el("button", { type: "button", class: "small", title: t("removeVariant"), text: "×",
          "data-remove": String(i) });
        remove.addEventListener("click", () => { draft.variants.splice(i, 1); draw(); });
        cells.push(el("th", { class: "variant-head" }, name, " ", remove));
      });
      return el("tr", {}, cells);
    };
    for (const [section, list] of bySection) {
      const body = el("tbody");
      for (const p of list) {
        const meta = [p.path, p.unit ? `${t("unit")}: ${policyUnit(p)}` : null].filter(Boolean).join(" · ");
        const info = el("td", { class: "param-info" },
          el("div", { class: "label", text: policyLabel(p) }), el("div", { class: "meta", text: meta }),
          el("div", { class: "doc", text: policyDoc(p) }),
          p.source ? el("details", { class: "source" }, el("summary", { text: t("source") }), el("div", { text: p.source })) : null);
        const cells = [info, el("td", { class: "value-cell" }, valueView(p, p.default)),
          el("td", { class: "value-cell baseline" }, valueView(p, p.value))];
        draft.variants.forEach((v, i) => {
          cells.push(isEditable(p) && !(p.path in v.fixed) ? variantInput(p, v, i, () => {}) : fixedCell(p, v, draw));
        });
        body.append(el("tr", { "data-param": p.path }, cells));
      }
      sections.append(el("h2", { id: `section-${section}`, text: `${sectionLabel(section)}（${section}.）` }),
        el("div", { class: "scroll-x" }, el("table", { class: "policy-table", "data-section": section },
          el("thead", {}, isBureau ? heads() : el("tr", {}, el("th", { text: t("parameter") }),
            el("th", { text: t("defaultValue") }), el("th", { text: t("baselineValue") }))), body)));
    }
  }
  draw();
}
