// The page of python -m fashion_jax.serve: upload -> tags and similar items; click a
// result to search from it; chips filter by a predicted label; the box searches by label.
"use strict";

const K = 12;
const state = { mode: null, file: null, id: null, label: null, filters: new Set() };
const $ = (id) => document.getElementById(id);

function setStatus(text, isError = false) {
  const filters = isError || !state.filters.size ? "" : ` · only ${[...state.filters].join(", ")}`;
  $("status").textContent = text + filters;
  $("status").classList.toggle("error", isError);
}

function filterParams(params) {
  for (const f of state.filters) params.append("filter", f);
  return params;
}

async function call(url, options) {
  const response = await fetch(url, options);
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(body.detail || `${response.status} ${response.statusText}`);
  return body;
}

function renderTags(predictions) {
  const box = $("tags");
  box.replaceChildren();
  for (const [task, labels] of Object.entries(predictions || {})) {
    const section = document.createElement("div");
    section.className = "task";
    const title = document.createElement("h3");
    title.textContent = task;
    section.append(title);
    for (const item of labels) {
      const value = item.probability ?? item.score;
      const row = document.createElement("div");
      row.className = "tag-row";
      row.dataset.task = task;
      row.dataset.label = item.label;
      const name = document.createElement("span");
      name.textContent = item.label;
      const bar = document.createElement("div");
      bar.className = "bar";
      const fill = document.createElement("span");
      fill.style.width = `${Math.round(value * 100)}%`;
      bar.append(fill);
      const number = document.createElement("span");
      number.className = "value";
      number.textContent = `${Math.round(value * 100)}%`;
      row.append(name, bar, number);
      section.append(row);
    }
    box.append(section);
  }
}

// Chips: the query's top label per class task and its attributes above threshold.
function renderChips(predictions) {
  const box = $("chips");
  box.replaceChildren();
  for (const [task, labels] of Object.entries(predictions || {})) {
    const chosen = labels.length && labels[0].probability !== undefined ? labels.slice(0, 1) : labels;
    for (const item of chosen) {
      const filter = `${task}=${item.label}`;
      const chip = document.createElement("button");
      chip.type = "button";
      chip.className = "chip" + (state.filters.has(filter) ? " active" : "");
      chip.dataset.filter = filter;
      chip.textContent = `${task}: ${item.label}`;
      chip.addEventListener("click", () => {
        state.filters.has(filter) ? state.filters.delete(filter) : state.filters.add(filter);
        chip.classList.toggle("active");
        search();
      });
      box.append(chip);
    }
  }
}

function renderResults(results) {
  const grid = $("results");
  grid.replaceChildren();
  for (const item of results) {
    const card = document.createElement("button");
    card.type = "button";
    card.className = "result";
    card.dataset.id = item.id;
    const img = document.createElement("img");
    img.className = "result-image";
    img.src = item.image_url;
    img.alt = item.id;
    const meta = document.createElement("div");
    meta.className = "meta";
    const first = Object.values(item.tags || {}).find((labels) => labels.length);
    const score = item.score ?? item.probability;
    meta.textContent = `${score.toFixed(3)} · ${first ? first[0].label : item.id}`;
    card.append(img, meta);
    card.addEventListener("click", () => searchFromProduct(item.id));
    grid.append(card);
  }
}

async function search() {
  try {
    let body;
    if (state.mode === "label") {
      const params = filterParams(new URLSearchParams({ label: state.label, k: K }));
      body = await call(`/products?${params}`);
      setStatus(`${body.results.length} products ranked by ${state.label}`);
    } else if (state.mode === "id") {
      const params = filterParams(new URLSearchParams({ id: state.id, k: K }));
      body = await call(`/similar?${params}`, { method: "POST" });
      setStatus(`${body.results.length} items similar to product ${state.id}`);
    } else if (state.mode === "upload") {
      const form = new FormData();
      form.append("file", state.file);
      body = await call(`/similar?${filterParams(new URLSearchParams({ k: K }))}`,
                        { method: "POST", body: form });
      setStatus(`${body.results.length} items similar to ${state.file.name}`);
    } else {
      return;
    }
    renderResults(body.results);
    return body;
  } catch (error) {
    setStatus(error.message, true);
  }
}

async function searchFromUpload(file) {
  Object.assign(state, { mode: "upload", file, id: null, label: null, filters: new Set() });
  $("preview").src = URL.createObjectURL(file);
  $("preview").classList.add("shown");
  $("drop-hint").textContent = file.name;
  setStatus("Reading the photo…");
  const body = await search();
  if (body) {
    renderTags(body.query.predictions);
    renderChips(body.query.predictions);
  }
}

async function searchFromProduct(id) {
  Object.assign(state, { mode: "id", id, label: null, filters: new Set() });
  const body = await search();
  if (body) {
    $("preview").src = body.query.image_url;
    $("preview").classList.add("shown");
    $("drop-hint").textContent = `product ${id}`;
    renderTags(body.query.tags);
    renderChips(body.query.tags);
  }
}

async function loadInfo() {
  try {
    const info = await call("/api/info");
    const options = $("label-options");
    for (const task of info.tasks) {
      for (const label of task.labels) {
        const option = document.createElement("option");
        option.value = `${task.name}=${label}`;
        options.append(option);
      }
    }
    if (!info.products) setStatus("No catalog index: tags only.");
  } catch (error) {
    setStatus(error.message, true);
  }
}

$("file-input").addEventListener("change", (event) => {
  if (event.target.files.length) searchFromUpload(event.target.files[0]);
});
const zone = $("drop-zone");
zone.addEventListener("dragover", (event) => { event.preventDefault(); zone.classList.add("dragging"); });
zone.addEventListener("dragleave", () => zone.classList.remove("dragging"));
zone.addEventListener("drop", (event) => {
  event.preventDefault();
  zone.classList.remove("dragging");
  if (event.dataTransfer.files.length) searchFromUpload(event.dataTransfer.files[0]);
});
$("label-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const label = $("label-input").value.trim();
  if (!label) return;
  Object.assign(state, { mode: "label", label });
  search();
});
loadInfo();
