// deepfill page: paint a mask over a photo, send both to POST /api/v1/inpaint, show the result.
// The mask canvas has the photo's full resolution; CSS scales it with the photo. Strokes are kept
// as vector operations (in image pixels), so undo/redo replays them instead of storing bitmaps.
"use strict";

const $ = (id) => document.getElementById(id);
const els = {
  open: $("open"), file: $("file"), brush: $("brush"), eraser: $("eraser"), size: $("size"), sizeValue: $("size-value"),
  undo: $("undo"), redo: $("redo"), clear: $("clear"), inpaint: $("inpaint"), compare: $("compare"),
  attentionToggle: $("attention-toggle"), reuse: $("reuse"), download: $("download"),
  stage: $("stage"), placeholder: $("placeholder"), frame: $("frame"), photo: $("photo"),
  attention: $("attention"), mask: $("mask"), cursor: $("cursor"), status: $("status"),
  info: $("info"), model: $("model"),
};
const HOLE_COLOUR = "#ff2d55";
const ctx = els.mask.getContext("2d");

const state = {
  source: null,     // {blob, name, url, width, height}: the image being edited
  result: null,     // {blob, url, filename, mask}: the last fill and the mask it was made with
  attentionUrl: null,
  showing: "source",
  ops: [],          // {kind: "stroke", erase, width, points: [[x, y], ...]} | {kind: "clear"}
  redone: [],
  drawing: null,
  tool: "brush",
  size: Number(els.size.value),
  limits: null,
  busy: false,
};

function setStatus(text, kind = "idle") {
  els.status.textContent = text;
  els.status.dataset.state = kind;
}

// ---- loading ---------------------------------------------------------------------------------

async function loadHealth() {
  try {
    const health = await (await fetch("/api/v1/health")).json();
    state.limits = health.limits;
    els.model.textContent = `${health.model} on ${health.device}`;
    if (!health.trained) {
      els.model.textContent += " — untrained placeholder weights: fills are not meaningful";
      els.model.className = "warning";
    }
  } catch (err) {
    els.model.textContent = "server not reachable";
  }
}

/** Whether there is work that opening another image would lose: paint or a result. */
function hasWork() {
  return Boolean(state.source) && (state.ops.length > 0 || Boolean(state.result));
}

/** Why this server would refuse the image, in the user's words; null when it fits. */
function overLimits(blob, width, height) {
  const limits = state.limits;
  if (!limits) return null;
  const megapixels = (n) => `${(n / 1e6).toFixed(n < 1e7 ? 1 : 0)} MP`;
  if (width * height > limits.max_pixels) {
    return `${width}×${height} px (${megapixels(width * height)}) is larger than this server takes ` +
      `(${megapixels(limits.max_pixels)}); scale it down and open it again`;
  }
  if (blob.size > limits.max_upload_bytes) {
    return `the file is ${(blob.size / 1048576).toFixed(1)} MiB, more than this server takes ` +
      `(${(limits.max_upload_bytes / 1048576).toFixed(0)} MiB); save it smaller and open it again`;
  }
  return null;
}

async function openImage(blob, name, { keepWork = false } = {}) {
  if (!blob) return;
  const label = name || "that file";
  if (blob.type && !blob.type.startsWith("image/")) {
    setStatus(`${label} is not an image`, "error");
    return;
  }
  const url = URL.createObjectURL(blob);
  const probe = new Image();
  probe.src = url;
  try {
    await probe.decode();
  } catch (err) {
    URL.revokeObjectURL(url);
    setStatus(`${label} could not be read as an image (corrupt, or a format this browser cannot show); ` +
      "try PNG or JPEG", "error");
    return;
  }
  const refusal = overLimits(blob, probe.naturalWidth, probe.naturalHeight);
  if (refusal) {
    URL.revokeObjectURL(url);
    setStatus(`Cannot open ${label}: ${refusal}.`, "error");
    return;
  }
  if (!keepWork && hasWork() && !window.confirm("Open the new image? The current image, its mask and its result will be discarded.")) {
    URL.revokeObjectURL(url);
    return;
  }
  if (state.source) URL.revokeObjectURL(state.source.url);
  dropResult();
  state.source = { blob, name: name || "image.png", url, width: probe.naturalWidth, height: probe.naturalHeight };
  els.mask.width = probe.naturalWidth;   // the mask lives at the image's full resolution
  els.mask.height = probe.naturalHeight;
  state.ops = [];
  state.redone = [];
  els.placeholder.hidden = true;
  els.frame.hidden = false;
  fit();
  show("source");
  setStatus("Paint over what should disappear, then press Inpaint.", "ready");
  refresh();
}

/** Show the whole image, scaled down to the stage when larger; the mask keeps full resolution. */
function fit() {
  const src = state.source;
  if (!src) return;
  const style = getComputedStyle(els.stage);
  const width = els.stage.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight);
  const height = els.stage.clientHeight - parseFloat(style.paddingTop) - parseFloat(style.paddingBottom);
  const scale = Math.min(1, width / src.width, height / src.height);
  els.frame.style.width = `${Math.max(1, Math.floor(src.width * scale))}px`;
  els.frame.style.height = `${Math.max(1, Math.floor(src.height * scale))}px`;
  els.info.textContent = `${src.name} · ${src.width}×${src.height} px · shown at ${Math.round(100 * scale)}%`;
}

function dropResult() {
  if (state.result) URL.revokeObjectURL(state.result.url);
  if (state.attentionUrl) URL.revokeObjectURL(state.attentionUrl);
  state.result = null;
  state.attentionUrl = null;
  els.attentionToggle.checked = false;
  els.download.removeAttribute("href");
}

// ---- painting --------------------------------------------------------------------------------

function imagePoint(event) {
  const r = els.mask.getBoundingClientRect();
  return [((event.clientX - r.left) * els.mask.width) / r.width, ((event.clientY - r.top) * els.mask.height) / r.height];
}

function screenToImage() {
  const r = els.mask.getBoundingClientRect();
  return r.width ? els.mask.width / r.width : 1;
}

function applyStyle(op) {
  ctx.globalCompositeOperation = op.erase ? "destination-out" : "source-over";
  ctx.strokeStyle = ctx.fillStyle = HOLE_COLOUR;
  ctx.lineWidth = op.width;
  ctx.lineCap = "round";
  ctx.lineJoin = "round";
}

function drawDot(op, [x, y]) {
  applyStyle(op);
  ctx.beginPath();
  ctx.arc(x, y, op.width / 2, 0, 2 * Math.PI);
  ctx.fill();
}

function drawSegment(op, from, to) {
  applyStyle(op);
  ctx.beginPath();
  ctx.moveTo(from[0], from[1]);
  ctx.lineTo(to[0], to[1]);
  ctx.stroke();
}

function drawOp(op) {
  if (op.kind === "clear") {
    ctx.globalCompositeOperation = "source-over";
    ctx.clearRect(0, 0, els.mask.width, els.mask.height);
    return;
  }
  drawDot(op, op.points[0]);
  if (op.points.length > 1) {
    applyStyle(op);
    ctx.beginPath();
    ctx.moveTo(op.points[0][0], op.points[0][1]);
    for (const [x, y] of op.points.slice(1)) ctx.lineTo(x, y);
    ctx.stroke();
  }
}

function replay() {
  ctx.globalCompositeOperation = "source-over";
  ctx.clearRect(0, 0, els.mask.width, els.mask.height);
  state.ops.forEach(drawOp);
}

function hasPaint() {
  const sinceClear = state.ops.slice(state.ops.map((op) => op.kind).lastIndexOf("clear") + 1);
  return sinceClear.some((op) => !op.erase);
}

function commit(op) {
  state.ops.push(op);
  state.redone = [];
  refresh();
}

function undo() {
  if (!state.ops.length) return;
  state.redone.push(state.ops.pop());
  replay();
  refresh();
}

function redo() {
  if (!state.redone.length) return;
  state.ops.push(state.redone.pop());
  replay();
  refresh();
}

function clearMask() {
  if (!hasPaint()) return;
  const op = { kind: "clear" };
  drawOp(op);
  commit(op);
}

function onPointerDown(event) {
  if (!state.source || state.busy || (event.pointerType === "mouse" && event.button !== 0)) return;
  event.preventDefault();
  if (state.showing === "result") show("source");
  els.mask.setPointerCapture(event.pointerId);
  const p = imagePoint(event);
  state.drawing = { kind: "stroke", erase: state.tool === "eraser", width: state.size * screenToImage(), points: [p] };
  drawDot(state.drawing, p);
}

function onPointerMove(event) {
  moveCursor(event);
  const op = state.drawing;
  if (!op) return;
  const events = event.getCoalescedEvents ? event.getCoalescedEvents() : [];
  for (const e of events.length ? events : [event]) {
    const p = imagePoint(e);
    drawSegment(op, op.points[op.points.length - 1], p);
    op.points.push(p);
  }
}

function onPointerUp() {
  if (!state.drawing) return;
  commit(state.drawing);
  state.drawing = null;
}

function moveCursor(event) {
  if (event.pointerType === "touch" || !state.source) {
    els.cursor.hidden = true;
    return;
  }
  const r = els.frame.getBoundingClientRect();
  els.cursor.hidden = false;
  els.cursor.style.left = `${event.clientX - r.left}px`;
  els.cursor.style.top = `${event.clientY - r.top}px`;
  els.cursor.style.width = els.cursor.style.height = `${state.size}px`;
  els.cursor.classList.toggle("erase", state.tool === "eraser");
}

function setTool(tool) {
  state.tool = tool;
  for (const [name, button] of [["brush", els.brush], ["eraser", els.eraser]]) {
    button.classList.toggle("active", tool === name);
    button.setAttribute("aria-pressed", String(tool === name));
  }
}

function setSize(size) {
  state.size = Math.max(Number(els.size.min), Math.min(Number(els.size.max), Math.round(size)));
  els.size.value = state.size;
  els.sizeValue.textContent = state.size;
  els.cursor.style.width = els.cursor.style.height = `${state.size}px`;
}

// ---- inpainting ------------------------------------------------------------------------------

/** The mask as the API wants it: a PNG at the image's size, white = hole, black = keep. */
function maskBlob() {
  const { width, height } = els.mask;
  const white = document.createElement("canvas");
  white.width = width;
  white.height = height;
  const w = white.getContext("2d");
  w.drawImage(els.mask, 0, 0);
  w.globalCompositeOperation = "source-in";  // every painted pixel becomes white, keeping its coverage
  w.fillStyle = "#fff";
  w.fillRect(0, 0, width, height);
  const out = document.createElement("canvas");
  out.width = width;
  out.height = height;
  const o = out.getContext("2d");
  o.fillStyle = "#000";
  o.fillRect(0, 0, width, height);
  o.drawImage(white, 0, 0);
  return new Promise((resolve) => out.toBlob(resolve, "image/png"));
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function callApi(mask, attention) {
  const src = state.source;
  const limit = state.limits && state.limits.max_upload_bytes;
  if (limit && src.blob.size + mask.size > limit) {
    throw new Error(`the image is ${(src.blob.size / 1048576).toFixed(1)} MiB; this server accepts up to ${(limit / 1048576).toFixed(0)} MiB`);
  }
  const form = new FormData();
  form.append("image", src.blob, src.name);
  form.append("mask", mask, "mask.png");
  if (attention) form.append("attention", "true");
  for (let attempt = 1; ; attempt++) {
    const response = await fetch("/api/v1/inpaint", { method: "POST", body: form });
    if (response.ok) {
      const disposition = response.headers.get("Content-Disposition") || "";
      const match = /filename="([^"]+)"/.exec(disposition);
      return { blob: await response.blob(), filename: match ? match[1] : "inpainted.png" };
    }
    const body = await response.json().catch(() => ({ message: response.statusText }));
    if (response.status === 503 && attempt < 6) {
      const wait = Number(response.headers.get("Retry-After")) || 2;
      setStatus(`Server busy; retrying in ${wait} s (attempt ${attempt + 1} of 6)`, "working");
      await sleep(wait * 1000);
      continue;
    }
    throw new Error(body.message || `HTTP ${response.status}`);
  }
}

async function inpaint() {
  if (!state.source || state.busy || !hasPaint()) return;
  state.busy = true;
  refresh();
  setStatus("Inpainting", "working");
  const started = performance.now();
  try {
    const mask = await maskBlob();
    const { blob, filename } = await callApi(mask, false);
    dropResult();
    const stem = state.source.name.replace(/\.[^.]*$/, "") || "image";
    const ext = filename.includes(".") ? filename.slice(filename.lastIndexOf(".")) : ".png";
    state.result = { blob, url: URL.createObjectURL(blob), filename: `${stem}-inpainted${ext}`, mask };
    els.download.href = state.result.url;
    els.download.download = state.result.filename;
    show("result");
    setStatus(`Done in ${((performance.now() - started) / 1000).toFixed(1)} s. Toggle before/after, or download.`, "done");
  } catch (err) {
    setStatus(`Inpainting failed: ${err.message}`, "error");
  } finally {
    state.busy = false;
    refresh();
  }
}

async function toggleAttention() {
  if (!state.result) return;
  if (els.attentionToggle.checked && !state.attentionUrl) {
    state.busy = true;
    refresh();
    setStatus("Computing the attention map", "working");
    try {
      const { blob } = await callApi(state.result.mask, true);
      state.attentionUrl = URL.createObjectURL(blob);
      els.attention.src = state.attentionUrl;
      setStatus("Attention map: colour = direction and distance each hole pixel copied from (white = itself).", "done");
    } catch (err) {
      els.attentionToggle.checked = false;
      setStatus(`Attention map failed: ${err.message}`, "error");
    } finally {
      state.busy = false;
    }
  }
  if (els.attentionToggle.checked) show("result");
  refresh();
}

function show(which) {
  state.showing = which === "result" && state.result ? "result" : "source";
  const result = state.showing === "result";
  els.photo.src = result ? state.result.url : state.source.url;
  els.frame.classList.toggle("result", result);
  refresh();
}

function reuseResult() {
  if (!state.result) return;
  const blob = state.result.blob;
  const stem = state.source.name.replace(/\.[^.]*$/, "");
  const name = `${stem}${state.result.filename.slice(state.result.filename.lastIndexOf("."))}`;
  openImage(blob, name, { keepWork: true });
}

function refresh() {
  const loaded = Boolean(state.source);
  const idle = loaded && !state.busy;
  els.undo.disabled = !idle || !state.ops.length;
  els.redo.disabled = !idle || !state.redone.length;
  els.clear.disabled = !idle || !hasPaint();
  els.inpaint.disabled = !idle || !hasPaint();
  els.compare.disabled = !idle || !state.result;
  els.compare.textContent = state.showing === "result" ? "Show before" : "Show after";
  els.compare.setAttribute("aria-pressed", String(state.showing === "source" && Boolean(state.result)));
  els.attentionToggle.disabled = !idle || !state.result;
  els.reuse.disabled = !idle || !state.result;
  els.download.setAttribute("aria-disabled", String(!state.result));
  els.attention.hidden = !(state.showing === "result" && els.attentionToggle.checked && state.attentionUrl);
}

// ---- wiring ----------------------------------------------------------------------------------

els.open.addEventListener("click", () => els.file.click());
// A control clicked with the mouse gives its focus back, so Space and Enter keep their page-wide
// meaning (compare, inpaint); a control reached with the keyboard keeps it.
$("toolbar").addEventListener("click", (event) => {
  if (event.detail > 0 && document.activeElement !== els.size) document.activeElement.blur();
});
els.file.addEventListener("change", () => {
  const file = els.file.files[0];
  if (file) openImage(file, file.name);
  els.file.value = "";
});
els.mask.addEventListener("pointerdown", onPointerDown);
els.mask.addEventListener("pointermove", onPointerMove);
els.mask.addEventListener("pointerup", onPointerUp);
els.mask.addEventListener("pointercancel", onPointerUp);
els.mask.addEventListener("pointerleave", () => { els.cursor.hidden = true; });
els.brush.addEventListener("click", () => setTool("brush"));
els.eraser.addEventListener("click", () => setTool("eraser"));
els.size.addEventListener("input", () => setSize(Number(els.size.value)));
els.undo.addEventListener("click", undo);
els.redo.addEventListener("click", redo);
els.clear.addEventListener("click", clearMask);
els.inpaint.addEventListener("click", inpaint);
els.compare.addEventListener("click", () => show(state.showing === "result" ? "source" : "result"));
els.attentionToggle.addEventListener("change", toggleAttention);
els.reuse.addEventListener("click", reuseResult);
window.addEventListener("resize", fit);

document.addEventListener("keydown", (event) => {
  if (event.target.matches("input[type=text], input[type=number], textarea")) return;
  // Space and Enter belong to a focused control (tick a box, press a button, follow a link).
  const onControl = event.target.matches("button, a, input, select, label");
  const mod = event.ctrlKey || event.metaKey;
  const key = event.key.toLowerCase();
  let handled = true;
  if (mod && key === "z") event.shiftKey ? redo() : undo();
  else if (mod && key === "y") redo();
  else if (mod) handled = false;
  else if (key === "[") setSize(state.size - Math.max(1, state.size * 0.15));
  else if (key === "]") setSize(state.size + Math.max(1, state.size * 0.15));
  else if (key === "b") setTool("brush");
  else if (key === "e") setTool("eraser");
  else if ((key === " " || key === "enter") && onControl) handled = false;
  else if (key === " " && state.result && !state.busy) show(state.showing === "result" ? "source" : "result");
  else if (key === "enter") inpaint();
  else handled = false;
  if (handled) event.preventDefault();
});

for (const type of ["dragenter", "dragover"]) {
  document.addEventListener(type, (event) => {
    event.preventDefault();
    els.stage.classList.add("dragover");
  });
}
document.addEventListener("dragleave", (event) => {
  if (!event.relatedTarget) els.stage.classList.remove("dragover");
});
document.addEventListener("drop", (event) => {
  event.preventDefault();
  els.stage.classList.remove("dragover");
  const file = event.dataTransfer && event.dataTransfer.files[0];
  if (file) openImage(file, file.name);
});
document.addEventListener("paste", (event) => {
  const items = event.clipboardData ? Array.from(event.clipboardData.items) : [];
  const item = items.find((i) => i.kind === "file" && i.type.startsWith("image/"));
  if (!item) return;
  event.preventDefault();
  const file = item.getAsFile();
  openImage(file, file.name && file.name !== "image.png" ? file.name : `pasted.${item.type.split("/")[1] || "png"}`);
});

setSize(state.size);
refresh();
loadHealth();
