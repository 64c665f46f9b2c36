// deepfill page: paint a mask over a photo, send both to POST /api/v1/inpaint, show the result,
// paint again on it for another pass.
//
// The mask canvas has the photo's full resolution; CSS scales it with the photo (zoom and pan
// move and size the frame holding both). The history is one list of operations in image pixels:
// strokes, clears, loaded masks and passes (an Inpaint and its result). The image shown is the
// last pass's result (or the original), and the mask is what was painted since that pass, so
// undo walks back through strokes and passes alike, down to the original.
"use strict";

const $ = (id) => document.getElementById(id);
const els = {
  open: $("open"), file: $("file"), openMask: $("open-mask"), maskFile: $("mask-file"),
  brush: $("brush"), eraser: $("eraser"), size: $("size"), sizeValue: $("size-value"),
  undo: $("undo"), redo: $("redo"), clear: $("clear"), inpaint: $("inpaint"), compare: $("compare"),
  attentionToggle: $("attention-toggle"), download: $("download"),
  zoomIn: $("zoom-in"), zoomOut: $("zoom-out"), zoomFit: $("zoom-fit"), blend: $("blend"), quality: $("quality"),
  stage: $("stage"), placeholder: $("placeholder"), frame: $("frame"), photo: $("photo"),
  attention: $("attention"), mask: $("mask"), cursor: $("cursor"), status: $("status"),
  info: $("info"), model: $("model"), notice: $("notice"), noticeText: $("notice-text"),
  noticeClose: $("notice-close"), progress: $("progress"), progressText: $("progress-text"),
};
const HOLE_COLOUR = "#ff2d55";
const MARGIN = 12;          // screen pixels kept around the fitted image
const MAX_PIXEL_SIZE = 16;  // the closest zoom: one image pixel as 16 screen pixels
const ctx = els.mask.getContext("2d");

const state = {
  original: null,   // {blob, name, url, width, height}: the image as opened
  ops: [],          // stroke {kind, erase, width, points} | {kind: "clear"} | {kind: "mask", canvas} | pass
  redone: [],       // pass = {kind: "pass", input, mask, blob, url, filename, attentionUrl}
  drawing: null,
  showingOriginal: false,
  tool: "brush",
  size: Number(els.size.value),
  view: { zoom: 1, x: 0, y: 0 },  // zoom relative to "fit"; x, y: the frame's place in the stage
  pointers: new Map(),            // pointers down on the image (two make a pinch)
  gesture: null,                  // {kind: "pan", ...} | {kind: "pinch", ...}
  limits: null,
  busy: false,
};

// ---- messages: the footer line, plus a notice over the image for errors --------------------

function setStatus(text, kind = "idle") {
  els.status.textContent = text;
  els.status.dataset.state = kind;
  els.notice.hidden = kind !== "error";
  if (kind === "error") els.noticeText.textContent = text;
}

/** Progress over the image while ``work`` runs: what is happening and the seconds so far. */
async function withProgress(text, work) {
  state.busy = true;
  refresh();
  setStatus(text, "working");
  const started = performance.now();
  const tick = () => { els.progressText.textContent = `${text}… ${((performance.now() - started) / 1000).toFixed(1)} s`; };
  tick();
  els.progress.hidden = false;
  els.frame.classList.add("busy");
  const timer = setInterval(tick, 100);
  try {
    return await work();
  } finally {
    clearInterval(timer);
    els.progress.hidden = true;
    els.frame.classList.remove("busy");
    state.busy = false;
    refresh();
  }
}

// ---- loading ---------------------------------------------------------------------------------

async function loadHealth() {
  try {
    const health = await (await fetch("/api/v1/health")).json();
    state.limits = health.limits;
    els.blend.value = health.defaults.blend;
    els.quality.value = els.quality.defaultValue = health.defaults.jpeg_quality;
    els.model.textContent = `${health.model} on ${health.device}`;
    if (!health.trained) {
      els.model.textContent += " — untrained placeholder weights: fills are not meaningful";
      els.model.className = "warning";
    }
  } catch (err) {
    els.model.textContent = "server not reachable";
  }
}

const SIGNATURES = [  // the first bytes of each format the page can send
  ["PNG", [0x89, 0x50, 0x4e, 0x47]], ["JPEG", [0xff, 0xd8, 0xff]], ["GIF", [0x47, 0x49, 0x46, 0x38]],
  ["BMP", [0x42, 0x4d]], ["TIFF", [0x49, 0x49, 0x2a, 0x00]], ["TIFF", [0x4d, 0x4d, 0x00, 0x2a]],
];

/** The image format the file's first bytes announce, or null when they announce none. */
async function sniffFormat(blob) {
  const head = new Uint8Array(await blob.slice(0, 12).arrayBuffer());
  const starts = (bytes, at = 0) => bytes.every((b, i) => head[at + i] === b);
  for (const [name, bytes] of SIGNATURES) if (starts(bytes)) return name;
  if (starts([0x52, 0x49, 0x46, 0x46]) && starts([0x57, 0x45, 0x42, 0x50], 8)) return "WebP";
  if (starts([0x66, 0x74, 0x79, 0x70], 4)) return "AVIF/HEIF";
  return null;
}

/** The decoded image of ``blob`` ({url, image}), or an error message in the user's words. */
async function decodeFile(blob, label) {
  if (!(await sniffFormat(blob))) {
    return { error: `${label} is not an image: its content is not PNG, JPEG, WebP, GIF, BMP or TIFF` };
  }
  const url = URL.createObjectURL(blob);
  const image = new Image();
  image.src = url;
  try {
    await image.decode();
  } catch (err) {
    URL.revokeObjectURL(url);
    return { error: `${label} could not be read: the file is damaged, or its format is one this browser cannot show; try PNG or JPEG` };
  }
  return { url, image };
}

/** Whether there is work that opening another image would lose: paint or a result. */
function hasWork() {
  return Boolean(state.original) && state.ops.length > 0;
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

async function openImage(blob, name) {
  if (!blob) return;
  const label = name || "that file";
  const decoded = await decodeFile(blob, label);
  if (decoded.error) {
    setStatus(decoded.error, "error");
    return;
  }
  const { url, image } = decoded;
  const refusal = overLimits(blob, image.naturalWidth, image.naturalHeight);
  if (refusal) {
    URL.revokeObjectURL(url);
    setStatus(`Cannot open ${label}: ${refusal}.`, "error");
    return;
  }
  if (hasWork() && !window.confirm("Open the new image? The current image, its mask and its results will be discarded.")) {
    URL.revokeObjectURL(url);
    return;
  }
  if (state.original) URL.revokeObjectURL(state.original.url);
  forgetPasses([...state.ops, ...state.redone]);
  state.original = { blob, name: name || "image.png", url, width: image.naturalWidth, height: image.naturalHeight };
  els.mask.width = image.naturalWidth;   // the mask lives at the image's full resolution
  els.mask.height = image.naturalHeight;
  state.ops = [];
  state.redone = [];
  state.showingOriginal = false;
  els.attentionToggle.checked = false;
  els.placeholder.hidden = true;
  els.frame.hidden = false;
  state.view = { zoom: 1, x: 0, y: 0 };
  layout();
  replay();
  showImage();
  setStatus("Paint over what should disappear, then press Inpaint.", "ready");
}

function forgetPasses(ops) {
  for (const op of ops) {
    if (op.kind !== "pass") continue;
    URL.revokeObjectURL(op.url);
    if (op.attentionUrl) URL.revokeObjectURL(op.attentionUrl);
  }
}

/** A loaded mask file as a mask operation: white (> 127, opaque) = hole; scaled when only its size differs. */
async function openMask(blob, name) {
  if (!state.original || state.busy) return;
  const label = name || "that file";
  const decoded = await decodeFile(blob, label);
  if (decoded.error) {
    setStatus(decoded.error, "error");
    return;
  }
  const { url, image } = decoded;
  URL.revokeObjectURL(url);
  const { width, height } = state.original;
  const [w, h] = [image.naturalWidth, image.naturalHeight];
  if (Math.abs(w / h - width / height) > 0.01 * (width / height)) {
    setStatus(`The mask ${label} is ${w}×${h} px, a different shape from the image (${width}×${height} px); ` +
      "use a mask of the image's size", "error");
    return;
  }
  const canvas = document.createElement("canvas");
  canvas.width = width;
  canvas.height = height;
  const c = canvas.getContext("2d", { willReadFrequently: true });
  c.imageSmoothingEnabled = false;  // nearest: a scaled mask stays black and white
  c.drawImage(image, 0, 0, width, height);
  const pixels = c.getImageData(0, 0, width, height);
  const data = pixels.data;
  let holes = 0;
  for (let i = 0; i < data.length; i += 4) {
    const hole = data[i + 3] > 127 && 0.299 * data[i] + 0.587 * data[i + 1] + 0.114 * data[i + 2] > 127;
    data[i] = 0xff; data[i + 1] = 0x2d; data[i + 2] = 0x55;  // HOLE_COLOUR
    data[i + 3] = hole ? 255 : 0;
    holes += hole;
  }
  if (!holes) {
    setStatus(`The mask ${label} has no white pixels: white marks the hole, black what to keep`, "error");
    return;
  }
  if (holes === width * height) {
    setStatus(`The mask ${label} is white everywhere: there would be nothing left to fill from`, "error");
    return;
  }
  c.putImageData(pixels, 0, 0);
  commit({ kind: "mask", canvas });
  replay();
  const scaled = w === width && h === height ? "" : ` (scaled from ${w}×${h} px)`;
  setStatus(`Mask ${label} loaded${scaled}: ${(100 * holes / (width * height)).toFixed(1)} % of the image. ` +
    "Paint to change it, or press Inpaint.", "ready");
}

// ---- zoom and pan ----------------------------------------------------------------------------

function fitScale() {
  const src = state.original;
  const width = els.stage.clientWidth - 2 * MARGIN;
  const height = els.stage.clientHeight - 2 * MARGIN;
  return Math.min(1, width / src.width, height / src.height);
}

function scale() {
  return fitScale() * state.view.zoom;
}

/** Size and place the frame for the current zoom; an image smaller than the stage is centred. */
function layout() {
  const src = state.original;
  if (!src) return;
  const s = scale();
  const width = src.width * s;
  const height = src.height * s;
  const place = (offset, size, room) => (size + 2 * MARGIN <= room ? (room - size) / 2
    : Math.min(MARGIN, Math.max(room - size - MARGIN, offset)));
  state.view.x = place(state.view.x, width, els.stage.clientWidth);
  state.view.y = place(state.view.y, height, els.stage.clientHeight);
  els.frame.style.width = `${width}px`;
  els.frame.style.height = `${height}px`;
  els.frame.style.transform = `translate(${state.view.x}px, ${state.view.y}px)`;
  els.info.textContent = `${src.name} · ${src.width}×${src.height} px · shown at ${Math.round(100 * s)}%`;
  refresh();
}

/** Zoom by ``factor`` keeping the image point under (sx, sy) (stage pixels; default its centre) in place. */
function zoomBy(factor, sx = els.stage.clientWidth / 2, sy = els.stage.clientHeight / 2) {
  if (!state.original) return;
  const before = scale();
  const maxZoom = Math.max(1, MAX_PIXEL_SIZE / fitScale());
  state.view.zoom = Math.min(maxZoom, Math.max(1, state.view.zoom * factor));
  const ratio = scale() / before;
  state.view.x = sx - (sx - state.view.x) * ratio;
  state.view.y = sy - (sy - state.view.y) * ratio;
  layout();
}

function panBy(dx, dy) {
  state.view.x += dx;
  state.view.y += dy;
  layout();
}

function fitView() {
  state.view = { zoom: 1, x: 0, y: 0 };
  layout();
}

function stagePoint(event) {
  const r = els.stage.getBoundingClientRect();
  return [event.clientX - r.left, event.clientY - r.top];
}

// ---- painting --------------------------------------------------------------------------------

function imagePoint(event) {
  const r = els.mask.getBoundingClientRect();
  return [((event.clientX - r.left) * els.mask.width) / r.width, ((event.clientY - r.top) * els.mask.height) / r.height];
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
  } else if (op.kind === "mask") {
    ctx.globalCompositeOperation = "source-over";
    ctx.drawImage(op.canvas, 0, 0);
  } else if (op.kind === "stroke") {
    drawDot(op, op.points[0]);
    if (op.points.length > 1) {
      applyStyle(op);
      ctx.beginPath();
      ctx.moveTo(op.points[0][0], op.points[0][1]);
      for (const [x, y] of op.points.slice(1)) ctx.lineTo(x, y);
      ctx.stroke();
    }
  }
}

/** The last pass in the history (the image being edited is its result), or null. */
function currentPass() {
  for (let i = state.ops.length - 1; i >= 0; i--) if (state.ops[i].kind === "pass") return state.ops[i];
  return null;
}

/** The operations that make the current mask: those since the last pass and the last clear. */
function maskOps() {
  const kinds = state.ops.map((op) => op.kind);
  return state.ops.slice(Math.max(kinds.lastIndexOf("pass"), kinds.lastIndexOf("clear")) + 1);
}

function replay() {
  ctx.globalCompositeOperation = "source-over";
  ctx.clearRect(0, 0, els.mask.width, els.mask.height);
  maskOps().forEach(drawOp);
}

function hasPaint() {
  return maskOps().some((op) => op.kind === "mask" || (op.kind === "stroke" && !op.erase));
}

function commit(op) {
  state.ops.push(op);
  forgetPasses(state.redone);
  state.redone = [];
  refresh();
}

function undo() {
  if (!state.ops.length || state.busy) return;
  state.redone.push(state.ops.pop());
  replay();
  showImage();
}

function redo() {
  if (!state.redone.length || state.busy) return;
  state.ops.push(state.redone.pop());
  replay();
  showImage();
}

function clearMask() {
  if (!hasPaint() || state.busy) return;
  const op = { kind: "clear" };
  drawOp(op);
  commit(op);
}

function onPointerDown(event) {
  if (!state.original || state.busy || (event.pointerType === "mouse" && event.button > 1)) return;
  event.preventDefault();
  els.mask.setPointerCapture(event.pointerId);
  state.pointers.set(event.pointerId, stagePoint(event));
  if (state.pointers.size === 2) {  // a second finger: the stroke begun by the first becomes a pinch
    state.drawing = null;
    replay();
    const [a, b] = [...state.pointers.values()];
    state.gesture = { kind: "pinch", distance: Math.hypot(a[0] - b[0], a[1] - b[1]), centre: midpoint(a, b) };
    return;
  }
  if (state.pointers.size > 2) return;
  if (event.button === 1 || event.altKey) {
    state.gesture = { kind: "pan", last: stagePoint(event) };
    els.stage.classList.add("panning");
    return;
  }
  state.showingOriginal = false;
  showImage();
  const p = imagePoint(event);
  const imagePixelsPerScreenPixel = 1 / scale();
  state.drawing = { kind: "stroke", erase: state.tool === "eraser", width: state.size * imagePixelsPerScreenPixel, points: [p] };
  drawDot(state.drawing, p);
}

const midpoint = (a, b) => [(a[0] + b[0]) / 2, (a[1] + b[1]) / 2];

function onPointerMove(event) {
  moveCursor(event);
  if (state.pointers.has(event.pointerId)) state.pointers.set(event.pointerId, stagePoint(event));
  const gesture = state.gesture;
  if (gesture && gesture.kind === "pan") {
    const p = stagePoint(event);
    panBy(p[0] - gesture.last[0], p[1] - gesture.last[1]);
    gesture.last = p;
    return;
  }
  if (gesture && gesture.kind === "pinch" && state.pointers.size === 2) {
    const [a, b] = [...state.pointers.values()];
    const distance = Math.hypot(a[0] - b[0], a[1] - b[1]);
    const centre = midpoint(a, b);
    panBy(centre[0] - gesture.centre[0], centre[1] - gesture.centre[1]);
    if (gesture.distance > 0) zoomBy(distance / gesture.distance, ...centre);
    Object.assign(gesture, { distance, centre });
    return;
  }
  const op = state.drawing;
  if (!op) return;
  const events = event.getCoalescedEvents ? event.getCoalescedEvents() : [];
  for (const e of events.length ? events : [event]) {
    const p = imagePoint(e);
    drawSegment(op, op.points[op.points.length - 1], p);
    op.points.push(p);
  }
}

function onPointerUp(event) {
  state.pointers.delete(event.pointerId);
  if (state.gesture) {
    if (state.pointers.size === 0) {
      state.gesture = null;
      els.stage.classList.remove("panning");
    }
    return;
  }
  if (!state.drawing) return;
  commit(state.drawing);
  state.drawing = null;
}

function moveCursor(event) {
  if (event.pointerType === "touch" || !state.original) {
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
const isJpeg = (blob) => blob.type === "image/jpeg";

async function callApi(image, mask, { attention = false } = {}) {
  const limit = state.limits && state.limits.max_upload_bytes;
  if (limit && image.size + mask.size > limit) {
    throw new Error(`the image is ${(image.size / 1048576).toFixed(1)} MiB; this server accepts up to ${(limit / 1048576).toFixed(0)} MiB`);
  }
  const form = new FormData();
  form.append("image", image, state.original.name);
  form.append("mask", mask, "mask.png");
  form.append("blend", els.blend.value);
  if (isJpeg(image)) form.append("quality", String(jpegQuality()));
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

/** The JPEG quality field, clamped to 1-100; the server's default when it is empty. */
function jpegQuality() {
  const value = Math.round(els.quality.valueAsNumber);
  return Number.isFinite(value) ? Math.min(100, Math.max(1, value)) : Number(els.quality.defaultValue);
}

/** The image the next pass starts from: the last result, or the original. */
function currentImage() {
  const pass = currentPass();
  return pass ? pass.blob : state.original.blob;
}

async function inpaint() {
  if (!state.original || state.busy || !hasPaint()) return;
  const pass = await withProgress("Inpainting", async () => {
    try {
      const input = currentImage();
      const mask = await maskBlob();
      const started = performance.now();
      const { blob, filename } = await callApi(input, mask);
      const stem = state.original.name.replace(/\.[^.]*$/, "") || "image";
      const ext = filename.includes(".") ? filename.slice(filename.lastIndexOf(".")) : ".png";
      const seconds = (performance.now() - started) / 1000;
      return { kind: "pass", input, mask, blob, url: URL.createObjectURL(blob), filename: `${stem}-inpainted${ext}`, seconds };
    } catch (err) {
      setStatus(`Inpainting failed: ${err.message}`, "error");
      return null;
    }
  });
  if (!pass) return;
  commit(pass);
  state.showingOriginal = false;
  els.attentionToggle.checked = false;
  replay();
  showImage();
  const passes = state.ops.filter((op) => op.kind === "pass").length;
  setStatus(`Done in ${pass.seconds.toFixed(1)} s${passes > 1 ? ` (pass ${passes})` : ""}. Paint again for another pass; ` +
    "hold Space to see the original; Ctrl+Z undoes.", "done");
}

async function toggleAttention() {
  const pass = currentPass();
  if (!pass) return;
  if (els.attentionToggle.checked && !pass.attentionUrl) {
    await withProgress("Computing the attention map", async () => {
      try {
        const { blob } = await callApi(pass.input, pass.mask, { attention: true });
        pass.attentionUrl = URL.createObjectURL(blob);
        setStatus("Attention map: colour = direction and distance each hole pixel copied from (white = itself).", "done");
      } catch (err) {
        els.attentionToggle.checked = false;
        setStatus(`Attention map failed: ${err.message}`, "error");
      }
    });
  }
  showImage();
}

/** Show the current image (the last result, or the original when there is none or while comparing). */
function showImage() {
  if (!state.original) return;
  const pass = currentPass();
  const url = state.showingOriginal || !pass ? state.original.url : pass.url;
  if (els.photo.getAttribute("src") !== url) els.photo.src = url;
  els.frame.classList.toggle("original", state.showingOriginal);
  const attentionUrl = pass && els.attentionToggle.checked ? pass.attentionUrl : null;
  if (attentionUrl && els.attention.getAttribute("src") !== attentionUrl) els.attention.src = attentionUrl;
  els.attention.hidden = !attentionUrl;
  if (pass) {
    els.download.href = pass.url;
    els.download.download = pass.filename;
  } else {
    els.download.removeAttribute("href");
  }
  refresh();
}

function holdOriginal(on) {
  if (on && (!currentPass() || state.busy)) return;
  if (state.showingOriginal === on) return;
  state.showingOriginal = on;
  showImage();
}

function refresh() {
  const loaded = Boolean(state.original);
  const idle = loaded && !state.busy;
  const pass = currentPass();
  els.openMask.disabled = !idle;
  els.undo.disabled = !idle || !state.ops.length;
  els.redo.disabled = !idle || !state.redone.length;
  els.clear.disabled = !idle || !hasPaint();
  els.inpaint.disabled = !idle || !hasPaint();
  els.compare.disabled = !idle || !pass;
  els.compare.setAttribute("aria-pressed", String(state.showingOriginal));
  els.attentionToggle.disabled = !idle || !pass;
  if (!pass) els.attentionToggle.checked = false;
  els.download.setAttribute("aria-disabled", String(!pass));
  for (const button of [els.zoomIn, els.zoomOut, els.zoomFit]) button.disabled = !loaded;
  els.quality.disabled = !loaded || !isJpeg(state.original.blob);
}

// ---- wiring ----------------------------------------------------------------------------------

els.open.addEventListener("click", () => els.file.click());
els.openMask.addEventListener("click", () => els.maskFile.click());
// A control clicked with the mouse gives its focus back, so Space and Enter keep their page-wide
// meaning (compare, inpaint); a control reached with the keyboard keeps it.
$("toolbar").addEventListener("click", (event) => {
  const keepsFocus = event.target.closest("input, select, summary, #options");
  if (event.detail > 0 && !keepsFocus) document.activeElement.blur();
});
els.file.addEventListener("change", () => {
  const file = els.file.files[0];
  if (file) openImage(file, file.name);
  els.file.value = "";
});
els.maskFile.addEventListener("change", () => {
  const file = els.maskFile.files[0];
  if (file) openMask(file, file.name);
  els.maskFile.value = "";
});
els.mask.addEventListener("pointerdown", onPointerDown);
els.mask.addEventListener("pointermove", onPointerMove);
els.mask.addEventListener("pointerup", onPointerUp);
els.mask.addEventListener("pointercancel", onPointerUp);
els.mask.addEventListener("pointerleave", () => { els.cursor.hidden = true; });
els.mask.addEventListener("auxclick", (event) => event.preventDefault());
els.stage.addEventListener("wheel", (event) => {
  if (!state.original) return;
  event.preventDefault();
  const lines = event.deltaMode === WheelEvent.DOM_DELTA_LINE ? 40 : 1;
  zoomBy(Math.exp(-event.deltaY * lines * 0.0015), ...stagePoint(event));
}, { passive: false });
els.brush.addEventListener("click", () => setTool("brush"));
els.eraser.addEventListener("click", () => setTool("eraser"));
els.size.addEventListener("input", () => setSize(Number(els.size.value)));
els.undo.addEventListener("click", undo);
els.redo.addEventListener("click", redo);
els.clear.addEventListener("click", clearMask);
els.inpaint.addEventListener("click", inpaint);
els.compare.addEventListener("pointerdown", () => holdOriginal(true));
for (const type of ["pointerup", "pointerleave", "pointercancel"]) els.compare.addEventListener(type, () => holdOriginal(false));
els.compare.addEventListener("keydown", (event) => {
  if (event.key === " " || event.key === "Enter") {
    event.preventDefault();
    event.stopPropagation();
    holdOriginal(true);
  }
});
els.compare.addEventListener("keyup", (event) => {
  if (event.key === " " || event.key === "Enter") holdOriginal(false);
});
els.compare.addEventListener("blur", () => holdOriginal(false));
els.attentionToggle.addEventListener("change", toggleAttention);
els.zoomIn.addEventListener("click", () => zoomBy(1.5));
els.zoomOut.addEventListener("click", () => zoomBy(1 / 1.5));
els.zoomFit.addEventListener("click", fitView);
els.noticeClose.addEventListener("click", () => { els.notice.hidden = true; });
els.download.addEventListener("click", (event) => {
  if (!currentPass()) event.preventDefault();
});
window.addEventListener("resize", layout);

document.addEventListener("keydown", (event) => {
  if (event.target.matches("input[type=text], input[type=number], select, textarea")) return;
  // Space and Enter belong to a focused control (tick a box, press a button, follow a link).
  const onControl = event.target.matches("button, a, input, select, label, summary");
  const mod = event.ctrlKey || event.metaKey;
  const key = event.key.toLowerCase();
  let handled = true;
  if (mod && key === "z") event.shiftKey ? redo() : undo();
  else if (mod && key === "y") redo();
  else if (mod) handled = false;
  else if (key === "escape") els.notice.hidden = true;
  else if (key === "[") setSize(state.size - Math.max(1, state.size * 0.15));
  else if (key === "]") setSize(state.size + Math.max(1, state.size * 0.15));
  else if (key === "b") setTool("brush");
  else if (key === "e") setTool("eraser");
  else if (key === "+" || key === "=") zoomBy(1.5);
  else if (key === "-") zoomBy(1 / 1.5);
  else if (key === "0") fitView();
  else if (key.startsWith("arrow") && state.view.zoom > 1) {
    const step = 0.1 * Math.min(els.stage.clientWidth, els.stage.clientHeight);
    panBy({ arrowleft: step, arrowright: -step }[key] || 0, { arrowup: step, arrowdown: -step }[key] || 0);
  }
  else if ((key === " " || key === "enter") && onControl) handled = false;
  else if (key === " ") holdOriginal(true);
  else if (key === "enter" && !event.repeat) inpaint();
  else handled = false;
  if (handled) event.preventDefault();
});
document.addEventListener("keyup", (event) => {
  if (event.key === " ") holdOriginal(false);
});
window.addEventListener("blur", () => holdOriginal(false));

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
