// The serve page: reads /info, builds the form the model's task needs, sends it to /predict (or a task's own
// route), and draws the answer. Plain JS, no framework, no CDN. The API key (when the server has one) stays in
// this tab's sessionStorage and goes out as "Authorization: Bearer KEY".
"use strict";

const $ = (id) => document.getElementById(id);
let info = null;
let drawn = false;

function key() { return sessionStorage.getItem("quicklearn-key") || ""; }
function headers(extra) {
  const h = Object.assign({}, extra || {});
  if (key()) h["Authorization"] = "Bearer " + key();
  return h;
}
function showError(message) { const e = $("error"); e.textContent = message; e.hidden = !message; }
function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") node.className = v; else if (k === "text") node.textContent = v; else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c);
  return node;
}
function fmt(v) {
  if (typeof v === "number") return Number.isInteger(v) ? String(v) : v.toPrecision(4);
  if (v === null || v === undefined) return "";
  return typeof v === "object" ? JSON.stringify(v) : String(v);
}

async function call(path, options) {
  const res = await fetch(path, Object.assign({}, options, { headers: headers((options || {}).headers) }));
  let body = null;
  try { body = await res.json(); } catch (e) { body = { error: res.status + " " + res.statusText }; }
  if (res.status === 401) { $("key-box").hidden = false; }
  if (!res.ok) throw new Error((body && body.error) || ("HTTP " + res.status));
  return body;
}

// ---- the model card ----------------------------------------------------------------------------------------
function drawCard() {
  $("title").textContent = info.task + " model (" + info.model + ")";
  const rows = [["task", info.task + " (" + info.kind + ")"], ["trained", info.trained || "unknown"]];
  if (info.classes) rows.push(["classes", info.classes.length + ": " + info.classes.slice(0, 20).join(", ") + (info.classes.length > 20 ? ", ..." : "")]);
  for (const [k, v] of Object.entries(info.card || {})) if (v !== null && v !== undefined) rows.push([k, fmt(v)]);
  rows.push(["serving", info.backend + ", batches up to " + info.max_batch + " (wait " + info.max_wait_ms + " ms)"]);
  rows.push(["quicklearn", info.quicklearn_version + (info.trained_with ? " (trained with " + info.trained_with + ")" : "")]);
  $("card").replaceChildren(...rows.map(([k, v]) => el("tr", {}, el("th", { text: k }), el("td", { text: v }))));
  const metrics = Object.entries(info.metrics || {});
  $("metrics").replaceChildren(...(metrics.length ? metrics.map(([k, v]) => el("tr", {}, el("th", { text: k }), el("td", { text: fmt(v) })))
    : [el("tr", {}, el("td", { text: "none recorded (no metrics.json)" }))]));
  $("card-box").hidden = false;
}

// ---- inputs --------------------------------------------------------------------------------------------------
function fieldInput(f, prefix) {
  const id = prefix + "-" + f.name;
  let input;
  if (f.choices && f.choices.length) {
    input = el("select", { id, name: f.name });
    for (const c of f.choices) input.append(el("option", { value: String(c), text: String(c) }));
    if (f.example !== null && f.example !== undefined) input.value = String(f.example);
  } else if (f.type === "text") {
    input = el("textarea", { id, name: f.name }); input.value = f.example || "";
  } else if (f.type === "boolean") {
    input = el("input", { id, name: f.name, type: "checkbox" }); input.checked = !!(f.example ?? f.default);
  } else {
    input = el("input", { id, name: f.name, type: (f.type === "number" || f.type === "integer") ? "number" : "text", step: "any" });
    const start = f.example ?? f.default; if (start !== null && start !== undefined) input.value = String(start);
  }
  input.dataset.type = f.type;
  return [el("label", { for: id, text: f.name + (f.help ? " (" + f.help + ")" : "") }), input];
}
function readFields(form, fields) {
  const row = {};
  for (const f of fields) {
    const input = form.querySelector("[name='" + CSS.escape(f.name) + "']");
    let v = input.type === "checkbox" ? input.checked : input.value;
    if (f.type === "number" || f.type === "integer") v = v === "" ? null : Number(v);
    else if (f.type === "id" && /^-?\d+$/.test(v) && info && typeof (f.example) === "number") v = Number(v);
    else if (f.type === "category" && v === "") v = null;
    else if (f.type === "category" && f.choices && typeof f.choices[0] === "number") v = Number(v);
    if (!f.required && (v === "" || v === null)) continue;
    row[f.name] = v;
  }
  return row;
}
function drawInputs() {
  if (info.input.files) {
    $("drop").hidden = false;
    const zone = $("drop-zone");
    zone.addEventListener("dragover", (e) => { e.preventDefault(); zone.classList.add("over"); });
    zone.addEventListener("dragleave", () => zone.classList.remove("over"));
    zone.addEventListener("drop", (e) => { e.preventDefault(); zone.classList.remove("over"); if (e.dataTransfer.files[0]) sendFile(e.dataTransfer.files[0]); });
    $("file-input").addEventListener("change", (e) => { if (e.target.files[0]) sendFile(e.target.files[0]); });
  } else {
    const form = $("row-form");
    form.hidden = false;
    for (const f of info.input.rows) form.append(...fieldInput(f, "row"));
    form.append(el("button", { type: "submit", id: "predict-button", text: "Predict" }));
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      await run(() => call("/predict", { method: "POST", headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ rows: [readFields(form, info.input.rows)] }) }).then(drawRecords));
    });
  }
  for (const r of info.routes || []) {
    const form = el("form", { class: "route", id: "route-" + r.path.replace(/\W/g, "") });
    form.append(el("h3", { text: r.summary + " (POST " + r.path + ")" }));
    for (const f of r.fields) form.append(...fieldInput(f, "route" + r.path.replace(/\W/g, "")));
    form.append(el("button", { type: "submit", text: r.path.replace("/", "") }));
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      await run(() => call(r.path, { method: "POST", headers: { "Content-Type": "application/json" },
        body: JSON.stringify(readFields(form, r.fields)) }).then(drawTable));
    });
    $("routes").append(form);
  }
  $("input-box").hidden = false;
}

async function sendFile(file) {
  const url = URL.createObjectURL(file);
  $("preview").src = url; $("preview-box").hidden = false; $("overlay").hidden = true;
  const data = new FormData(); data.append("files", file, file.name);
  await run(() => call("/predict", { method: "POST", body: data }).then(drawRecords));
}
async function run(work) {
  showError("");
  try { await work(); } catch (e) { showError(e.message); }
}

// ---- answers ----------------------------------------------------------------------------------------------------
function bars(probs) {
  const top = probs.sort((a, b) => b[1] - a[1]).slice(0, 5);
  const grid = el("div", { class: "bars" });
  for (const [label, p] of top) {
    const bar = el("div", { class: "bar" }); bar.style.width = (100 * p).toFixed(1) + "%";
    grid.append(el("span", { class: "bar-label", text: label }), el("div", { class: "bar-track" }, bar),
      el("span", { class: "bar-value", text: (100 * p).toFixed(1) + "%" }));
  }
  return grid;
}
function drawRecords(records) {
  const out = $("results");
  out.replaceChildren();
  for (const r of records) {
    const box = el("div", { class: "result" });
    const name = r.path || r.file;
    if (name) box.append(el("div", { class: "name", text: name }));
    const probs = Object.entries(r).filter(([k, v]) => k.startsWith("prob_") && typeof v === "number").map(([k, v]) => [k.slice(5), v]);
    if (r.mask_png) {  // segmentation: the class map as a PNG, drawn over the photo
      $("overlay").src = "data:image/png;base64," + r.mask_png; $("overlay").hidden = false;
    }
    const shares = Object.entries(r).filter(([k, v]) => k.startsWith("share_") && typeof v === "number").map(([k, v]) => [k.slice(6), v]);
    if (probs.length) {
      box.append(el("div", { class: "top", id: "top-class" }, "", el("b", { text: String(r.prediction) }),
        typeof r.probability === "number" ? " " + (100 * r.probability).toFixed(1) + "%" : ""), bars(probs));
    } else if (shares.length) {
      box.append(el("div", { class: "top", id: "top-class" }, "most pixels: ", el("b", { text: String(r.prediction) })),
        el("div", { class: "name", text: "each class's share of the pixels" }), bars(shares));
    } else {
      box.append(el("div", { class: "top", id: "top-class" }, "prediction: ", el("b", { text: fmt(r.prediction) })));
    }
    const rest = Object.entries(r).filter(([k]) => !k.startsWith("prob_") && !k.startsWith("share_") && !["mask_png", "path", "prediction"].includes(k));
    if (rest.length) box.append(el("table", {}, ...rest.map(([k, v]) => el("tr", {}, el("th", { text: k }), el("td", { text: fmt(v) })))));
    out.append(box);
  }
  $("results-box").hidden = false;
}
function drawTable(records) {
  const out = $("results");
  if (!Array.isArray(records) || !records.length) { out.replaceChildren(el("p", { text: "nothing" })); $("results-box").hidden = false; return; }
  const cols = Object.keys(records[0]);
  out.replaceChildren(el("table", { id: "route-table" }, el("tr", {}, ...cols.map((c) => el("th", { text: c }))),
    ...records.map((r) => el("tr", {}, ...cols.map((c) => el("td", { text: fmt(r[c]) }))))));
  $("results-box").hidden = false;
}

// ---- start -----------------------------------------------------------------------------------------------------
async function start() {
  try {
    info = await call("/info");
  } catch (e) {
    showError(e.message);
    return;
  }
  $("key-box").hidden = true;
  showError("");
  drawCard();
  if (!drawn) { drawInputs(); drawn = true; }
}
$("key-form").addEventListener("submit", (e) => {
  e.preventDefault(); sessionStorage.setItem("quicklearn-key", $("key").value.trim()); start();
});
start();
