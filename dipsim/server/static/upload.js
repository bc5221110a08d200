// 数据上传 (bureau only): claims files and a hospitals table (and optionally a policy TOML) sent to the server, one
// file per request (XMLHttpRequest, for its upload progress), then processed through the command line's loader while
// its step is polled; then the counts (read = accepted + rejected), the warnings, the loader's messages, the first
// rejected rows with their downloads, and a link to the new region's 区域概览. Uses app.js's globals (el, t, api,
// table, count, clear, token); every value is put on the page as text.
"use strict";

Object.assign(T.zh, {
  upload: "数据上传", uploadTitle: "区域名称", claimsFiles: "病例数据（CSV UTF-8/GB18030、Excel .xlsx、Parquet；多个文件须均为 Parquet）",
  hospitalsFile: "医院信息表（CSV、Excel .xlsx、Parquet：hospital_id、level、type 列）",
  policyFile: "政策文件（可选，TOML）", policyNote: "未上传政策文件时使用内置 DIP 基准方案，预算按医疗总费用的 60% 假定。",
  send: "上传并处理", sending: "正在上传", processing: "正在处理", uploadDone: "处理完成", uploadFailed: "处理失败",
  rowsRead: "读取行数", accepted: "接受", rejectedRows: "退回", atSettlement: "其中结算时退回（无统筹区或医院）",
  warnings: "提示", rejectsTable: "退回记录（前 100 条）", rejectsAll: "退回记录", file: "文件", rowNo: "行号",
  field: "字段", value: "值", reason: "原因", openRegion: "打开新区域的区域概览", needFiles: "请选择病例数据和医院信息表",
  step_queued: "排队中", step_hospitals: "检查医院信息表", step_validate: "读取并校验病例",
  step_settle: "检查统筹区与医院", step_policy: "政策与预算", step_catalog: "生成病种目录", step_load: "分组并计算基准方案",
  step_done: "完成", noRejects: "没有退回记录", downloadCsv: "下载 CSV", downloadXlsx: "下载 Excel",
});
Object.assign(T.en, {
  upload: "Upload", uploadTitle: "region name",
  claimsFiles: "claims (CSV in UTF-8/GB18030, Excel .xlsx, Parquet; several files must all be Parquet)",
  hospitalsFile: "hospitals table (CSV, Excel .xlsx, Parquet: columns hospital_id, level, type)",
  policyFile: "policy (optional, TOML)",
  policyNote: "Without a policy file the shipped DIP baseline is used, with budgets assumed at 60% of the billed cost.",
  send: "Upload and process", sending: "uploading", processing: "processing", uploadDone: "done",
  uploadFailed: "failed", rowsRead: "rows read", accepted: "accepted", rejectedRows: "rejected",
  atSettlement: "of which at settlement (no pool or hospital)", warnings: "Warnings",
  rejectsTable: "Rejected rows (first 100)", rejectsAll: "rejects", file: "file", rowNo: "row", field: "field",
  value: "value", reason: "reason", openRegion: "open the new region's overview",
  needFiles: "choose the claims and the hospitals table", step_queued: "queued",
  step_hospitals: "checking the hospitals table", step_validate: "reading and validating the claims",
  step_settle: "checking pools and hospitals", step_policy: "policy and budgets", step_catalog: "building the catalogue",
  step_load: "grouping and the baseline", step_done: "done", noRejects: "no rejected rows",
  downloadCsv: "download CSV", downloadXlsx: "download Excel",
});

const UPLOAD_STEPS = ["hospitals", "validate", "settle", "policy", "catalog", "load"];
const SHOWN_CHARS = 200;  // a rejected value is cut to this on the page (the downloads hold it whole)

// One file as the raw body of PUT /api/uploads/{id}/files/{slot}; `progress(loaded)` as its bytes go.
function sendFile(uploadId, slot, file, progress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("PUT", `/api/uploads/${encodeURIComponent(uploadId)}/files/${slot}?name=${encodeURIComponent(file.name)}`);
    xhr.setRequestHeader("Authorization", `Bearer ${token()}`);
    xhr.setRequestHeader("Content-Type", "application/octet-stream");
    xhr.upload.addEventListener("progress", (e) => { if (e.lengthComputable) progress(e.loaded); });
    xhr.addEventListener("load", () => {
      let body = null;
      try { body = JSON.parse(xhr.responseText); } catch { body = null; }
      if (xhr.status >= 200 && xhr.status < 300) resolve(body);
      else reject(new ApiError(xhr.status, (body && body.detail) || `HTTP ${xhr.status}`));
    });
    xhr.addEventListener("error", () => reject(new Error(`${file.name}: network error`)));
    xhr.send(file);
  });
}

// A download link of a bearer-token route: fetched, then saved from a blob (a plain link carries no token).
function uploadDownload(path, file, label, id) {
  const note = el("span", { class: "error" });
  const link = el("a", { href: "#", id, class: "download", text: label });
  link.addEventListener("click", async (event) => {
    event.preventDefault();
    note.textContent = "";
    try {
      const response = await apiFetch(path, {}, "*/*");
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      saveBlob(await response.blob(), file);
    } catch (e) { note.textContent = e.message; }
  });
  return el("span", {}, link, " ", note);
}

function stepLabel(step) { return step ? t("step_" + step) : t("step_queued"); }

async function showUploadResult(box, view) {
  clear(box);
  const c = view.counts;
  if (c) {
    const card = (k, v, id) => el("div", { class: "card", id }, el("div", { class: "k", text: k }),
      el("div", { class: "v", text: v }));
    box.append(el("div", { class: "cards" }, card(t("rowsRead"), count(c.read), "upload-read"),
      card(t("accepted"), count(c.accepted), "upload-accepted"), card(t("rejectedRows"), count(c.rejected), "upload-rejected")));
    if (c.rejected_at_settlement) box.append(el("p", { class: "note", text: `${t("atSettlement")}: ${count(c.rejected_at_settlement)}` }));
  }
  if (view.error) {
    box.append(el("div", { class: "error", id: "upload-error" }, el("p", { text: view.error.message }),
      view.error.problems && view.error.problems.length > 1 ? el("ul", {}, view.error.problems.map((p) => el("li", { text: p }))) : null));
  }
  if (view.warnings && view.warnings.length) {
    box.append(el("h2", { text: t("warnings") }), el("ul", { id: "upload-warnings", class: "warnings" },
      view.warnings.map((w) => el("li", { text: w }))));
  }
  if (view.status === "done" && view.region) {
    box.append(el("p", {}, el("a", { href: `#/region/${encodeURIComponent(view.region)}`, id: "upload-region-link",
      text: `${t("openRegion")}：${view.title}` })));
  }
  if (c) {
    const id = encodeURIComponent(view.id);
    const rejects = await api(`/uploads/${id}/rejects?limit=100`);
    const head = el("h2", { text: t("rejectsTable") });
    box.append(head);
    if (!rejects.total_lines) { box.append(el("p", { class: "note", id: "upload-no-rejects", text: t("noRejects") })); return; }
    box.append(el("p", { class: "downloads" },
      uploadDownload(`/uploads/${id}/rejects.xlsx`, `rejects_${view.id}.xlsx`, t("downloadXlsx"), "upload-rejects-xlsx"), " ",
      uploadDownload(`/uploads/${id}/rejects.csv`, `rejects_${view.id}.csv`, t("downloadCsv"), "upload-rejects-csv")));
    const cut = (v) => (v === null || v === undefined ? "" : String(v).length > SHOWN_CHARS ? String(v).slice(0, SHOWN_CHARS) + "…" : String(v));
    box.append(el("div", { class: "scroll" }, table([{ key: "file", label: t("file") }, { key: "row", label: t("rowNo"), kind: "count" },
      { key: "case_id", label: t("caseId"), value: (r) => cut(r.case_id) }, { key: "field", label: t("field") },
      { key: "value", label: t("value"), value: (r) => cut(r.value) }, { key: "reason", label: t("reason") }],
    rejects.rows, { id: "upload-rejects" })));
  }
}

async function pageUpload(main) {
  const user = me();
  main.append(el("h1", { id: "page-title", text: t("upload") }));
  if (!user || user.role !== "bureau") { main.append(el("p", { class: "error", text: "bureau accounts only" })); return; }
  const title = el("input", { id: "upload-title", maxlength: 100, value: "" });
  const claims = el("input", { id: "upload-claims", type: "file", multiple: true, accept: ".csv,.txt,.tsv,.xlsx,.xlsm,.parquet,.pq" });
  const hospitals = el("input", { id: "upload-hospitals", type: "file", accept: ".csv,.txt,.xlsx,.xlsm,.parquet,.pq" });
  const policy = el("input", { id: "upload-policy", type: "file", accept: ".toml" });
  const send = el("button", { type: "submit", id: "upload-submit", text: t("send") });
  const bar = el("progress", { id: "upload-progress", max: 100, value: 0 });
  const status = el("span", { id: "upload-status", class: "note" });
  const problem = el("p", { class: "error", id: "upload-problem" });
  const result = el("div", { id: "upload-result" });
  const field = (label, input) => el("div", { class: "param" }, el("label", { class: "label", for: input.id, text: label }), el("div", {}, input));
  const form = el("form", { id: "upload-form", class: "params upload-form" }, field(t("uploadTitle"), title),
    field(t("claimsFiles"), claims), field(t("hospitalsFile"), hospitals), field(t("policyFile"), policy),
    el("p", { class: "note", text: t("policyNote") }), send);
  main.append(form, el("p", {}, bar, " ", status), problem, result);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    problem.textContent = ""; clear(result);
    if (!claims.files.length || !hospitals.files.length) { problem.textContent = t("needFiles"); return; }
    const files = [...[...claims.files].map((f) => ["claims", f]), ["hospitals", hospitals.files[0]],
      ...(policy.files.length ? [["policy", policy.files[0]]] : [])];
    const total = files.reduce((s, [, f]) => s + f.size, 0) || 1;
    send.disabled = true;
    try {
      const made = await api("/uploads", { method: "POST", body: { title: title.value } });
      let done = 0;
      for (const [slot, file] of files) {
        status.textContent = `${t("sending")}：${file.name}`;
        await sendFile(made.id, slot, file, (loaded) => { bar.value = Math.round(((done + loaded) / total) * 100); });
        done += file.size;
        bar.value = Math.round((done / total) * 100);
      }
      let view = await api(`/uploads/${encodeURIComponent(made.id)}/process`, { method: "POST" });
      bar.value = 0;
      while (view.status === "queued" || view.status === "processing") {
        const at = UPLOAD_STEPS.indexOf(view.step);
        bar.value = Math.round(((at < 0 ? 0 : at) / UPLOAD_STEPS.length) * 100);
        status.textContent = `${t("processing")}：${stepLabel(view.step)}` +
          (view.rows_read_so_far ? `（${t("rowsRead")} ${count(view.rows_read_so_far)}）` : "");
        await new Promise((r) => setTimeout(r, 500));
        view = await api(`/uploads/${encodeURIComponent(made.id)}`);
      }
      bar.value = 100;
      status.textContent = view.status === "done" ? t("uploadDone") : t("uploadFailed");
      status.dataset.status = view.status;
      await showUploadResult(result, view);
    } catch (e) {
      problem.textContent = e.message;
      status.dataset.status = "error";
    } finally {
      send.disabled = false;
    }
  });
}
