// The page of `timnet serve`: upload or record audio, show the scores. No library, no CDN.
// Recordings are encoded here as 16-bit PCM WAV: Chromium's MediaRecorder gives WebM/Opus,
// which the server's decoder (libsndfile) cannot read.
"use strict";

const COLOURS = ["#2b6cb0", "#c05621", "#2f855a", "#b83280", "#6b46c1", "#b7791f", "#00838f", "#c53030",
                 "#4a5568", "#7b341e"];
const SVG = "http://www.w3.org/2000/svg";
const $ = (id) => document.getElementById(id);
let card = null;
let limits = { max_duration: 600 };

function el(tag, attrs = {}, text = null) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text !== null) node.textContent = text;
  return node;
}

function setStatus(text) { $("status").textContent = text; }

function showError(text) {
  $("error").textContent = text;
  $("error").hidden = !text;
}

function fmt(value, digits = 3) { return value === null || value === undefined ? "unknown" : Number(value).toFixed(digits); }

// ---- the model card -------------------------------------------------------------------

function row(list, term, value) {
  const dt = document.createElement("dt");
  const dd = document.createElement("dd");
  dt.textContent = term;
  dd.textContent = value;
  list.append(dt, dd);
}

async function loadCard() {
  const res = await fetch("/api/model");
  card = await res.json();
  limits = card.limits || limits;
  $("model-line").textContent = `Model ${card.file}: ${card.classes.length} classes, trained on ${card.corpus}`;
  const list = $("card");
  list.replaceChildren();
  row(list, "classes", card.classes.join(", "));
  row(list, "corpus", card.corpus);
  const m = card.metrics;
  if (m) {
    let text = `WAR ${fmt(m.WAR)}, UAR ${fmt(m.UAR)} on ${m.n} utterances (${m.protocol || "unknown"} protocol, ${m.scope})`;
    if (m.fold) text += `; this fold: WAR ${fmt(m.fold.WAR)}, UAR ${fmt(m.fold.UAR)}`;
    row(list, "metrics", text);
  } else {
    row(list, "metrics", "unknown (no metrics.json of the training run was found beside the model)");
  }
  row(list, "preprocessing", card.preprocessing.description);
  const a = card.architecture;
  row(list, "network", `${card.head} head (${card.score_kind}); ${a.dilation_size} temporal-aware blocks, ` +
      `${a.filters} filters, kernel ${a.kernel_size}, ${a.bidirection ? "bi-directional" : "forward only"}`);
  row(list, "limits", `uploads up to ${limits.max_upload_mb} MB and ${limits.max_duration} s`);
  for (const note of card.notes || []) row(list, "note", note);
}

// ---- charts ---------------------------------------------------------------------------

// Probabilities are drawn on [0, 1]. Cosine similarities lie in [-1, 1] but are often all
// close to 1: their axis starts just below the smallest value shown (the chart says where).
function scoreRange(values) {
  if (card && card.score_kind === "probability") return [0, 1];
  const low = Math.min(...values);
  return [Math.max(-1, Math.floor((low - 0.05) * 20) / 20), 1];
}

function drawBars(scores, winner) {
  const svg = $("bars");
  const names = Object.keys(scores);
  const rowH = 26, left = 90, right = 60, width = 560;
  const [lo, hi] = scoreRange(Object.values(scores));
  const x = (v) => left + ((Math.max(lo, Math.min(hi, v)) - lo) / (hi - lo)) * (width - left - right);
  svg.setAttribute("viewBox", `0 0 ${width} ${names.length * rowH + 8}`);
  svg.replaceChildren();
  names.forEach((name, i) => {
    const v = scores[name];
    const y = 4 + i * rowH;
    const x0 = x(Math.min(0, v)), x1 = x(Math.max(0, v));
    svg.append(el("text", { x: left - 8, y: y + 16, "text-anchor": "end" }, name));
    svg.append(el("rect", { x: left, y: y + 3, width: width - left - right, height: rowH - 8, fill: "#f0f2f5" }));
    svg.append(el("rect", { x: x0, y: y + 3, width: Math.max(1, x1 - x0), height: rowH - 8, rx: 2,
                            fill: name === winner ? "#c05621" : "#2b6cb0", class: "bar",
                            "data-class": name, "data-score": v }));
    svg.append(el("text", { x: width - right + 6, y: y + 16 }, v.toFixed(3)));
  });
  if (lo < 0) svg.append(el("line", { x1: x(0), x2: x(0), y1: 2, y2: names.length * rowH + 6, class: "axis" }));
  if (lo !== 0) {
    svg.setAttribute("viewBox", `0 0 ${width} ${names.length * rowH + 24}`);
    svg.append(el("text", { x: left, y: names.length * rowH + 20, class: "note" },
                  `${card.score_kind}: the bars start at ${lo.toFixed(2)}`));
  }
}

function drawTimeline(windows, names) {
  const box = $("timeline-box");
  if (windows.length < 2) { box.hidden = true; return; }
  box.hidden = false;
  const svg = $("timeline");
  const width = 560, height = 220, left = 40, right = 12, top = 10, bottom = 30;
  const shown = windows.filter((w) => !w.silent).flatMap((w) => names.map((n) => w.scores[n]));
  const [lo, hi] = scoreRange(shown);
  const t1 = windows[windows.length - 1].end;
  const x = (t) => left + (t / t1) * (width - left - right);
  const y = (v) => top + (1 - (v - lo) / (hi - lo)) * (height - top - bottom);
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.replaceChildren();
  for (let k = 0; k <= 4; k++) {
    const v = lo + (k / 4) * (hi - lo);
    svg.append(el("line", { x1: left, x2: width - right, y1: y(v), y2: y(v), class: "grid" }));
    svg.append(el("text", { x: left - 6, y: y(v) + 4, "text-anchor": "end" }, v.toFixed(2)));
  }
  const step = Math.max(1, Math.ceil(t1 / 8));
  for (let t = 0; t <= t1 + 1e-9; t += step) {
    svg.append(el("text", { x: x(t), y: height - 10, "text-anchor": "middle" }, `${t} s`));
  }
  svg.append(el("line", { x1: left, x2: width - right, y1: height - bottom, y2: height - bottom, class: "axis" }));
  const legend = $("legend");
  legend.replaceChildren();
  names.forEach((name, c) => {
    const colour = COLOURS[c % COLOURS.length];
    let points = [];
    const segments = [];
    for (const w of windows) {
      if (w.silent) { if (points.length) segments.push(points); points = []; continue; }
      points.push(`${x((w.start + w.end) / 2).toFixed(1)},${y(w.scores[name]).toFixed(1)}`);
    }
    if (points.length) segments.push(points);
    for (const seg of segments) {
      svg.append(el("polyline", { points: seg.join(" "), fill: "none", stroke: colour, "stroke-width": 2,
                                  class: "series", "data-class": name }));
      for (const p of seg) {
        const [px, py] = p.split(",");
        svg.append(el("circle", { cx: px, cy: py, r: 2.5, fill: colour }));
      }
    }
    const item = document.createElement("span");
    const swatch = document.createElement("i");
    swatch.style.background = colour;
    item.append(swatch, name);
    legend.append(item);
  });
}

function showResult(data) {
  $("result-panel").hidden = false;
  $("label").textContent = data.label;
  const scored = data.windows.filter((w) => !w.silent).length;
  $("verdict-note").textContent = `${data.duration.toFixed(2)} s of audio, ` +
    (data.windows.length > 1 ? `mean of ${scored} windows` : "one window") + ` (${data.score_kind})`;
  drawBars(data.scores, data.label);
  drawTimeline(data.windows, Object.keys(data.scores));
}

// ---- sending audio --------------------------------------------------------------------

async function classify(blob, name) {
  showError("");
  setStatus(`Classifying ${name}…`);
  const form = new FormData();
  form.append("file", blob, name);
  let res;
  try {
    res = await fetch("/api/classify", { method: "POST", body: form });
  } catch (err) {
    setStatus("");
    showError(`The server cannot be reached (${err.message}).`);
    return;
  }
  const data = await res.json().catch(() => ({ detail: res.statusText }));
  if (!res.ok) {
    setStatus("");
    const wait = res.headers.get("Retry-After");
    showError(`${name}: ${data.detail || res.statusText}` + (wait ? ` (retry in ${wait} s)` : ""));
    return;
  }
  setStatus(`${name}: classified in ${data.seconds.toFixed(2)} s on the server.`);
  showResult(data);
}

function setUpFileInput() {
  const input = $("file-input");
  const drop = $("drop");
  input.addEventListener("change", () => { if (input.files.length) classify(input.files[0], input.files[0].name); });
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    if (e.dataTransfer.files.length) classify(e.dataTransfer.files[0], e.dataTransfer.files[0].name);
  });
}

// ---- recording: Web Audio samples -> 16-bit PCM WAV -----------------------------------

function encodeWav(chunks, sampleRate) {
  const n = chunks.reduce((sum, c) => sum + c.length, 0);
  const buffer = new ArrayBuffer(44 + 2 * n);
  const view = new DataView(buffer);
  const text = (offset, s) => { for (let i = 0; i < s.length; i++) view.setUint8(offset + i, s.charCodeAt(i)); };
  text(0, "RIFF"); view.setUint32(4, 36 + 2 * n, true); text(8, "WAVE");
  text(12, "fmt "); view.setUint32(16, 16, true); view.setUint16(20, 1, true); view.setUint16(22, 1, true);
  view.setUint32(24, sampleRate, true); view.setUint32(28, 2 * sampleRate, true);
  view.setUint16(32, 2, true); view.setUint16(34, 16, true);
  text(36, "data"); view.setUint32(40, 2 * n, true);
  let offset = 44;
  for (const chunk of chunks) {
    for (let i = 0; i < chunk.length; i++, offset += 2) {
      const s = Math.max(-1, Math.min(1, chunk[i]));
      view.setInt16(offset, s < 0 ? s * 0x8000 : s * 0x7fff, true);
    }
  }
  return new Blob([buffer], { type: "audio/wav" });
}

let recording = null;

async function startRecording() {
  showError("");
  if (!navigator.mediaDevices || !window.AudioWorkletNode) {
    showError("This browser gives no microphone here: recording needs a page served from localhost or over HTTPS.");
    return;
  }
  let stream;
  try {
    stream = await navigator.mediaDevices.getUserMedia({
      audio: { echoCancellation: false, noiseSuppression: false, autoGainControl: false, channelCount: 1 } });
  } catch (err) {
    showError(`No microphone: ${err.message}`);
    return;
  }
  const context = new AudioContext();
  await context.audioWorklet.addModule("/static/recorder-worklet.js");
  const source = context.createMediaStreamSource(stream);
  const node = new AudioWorkletNode(context, "pcm-recorder");
  const chunks = [];
  node.port.onmessage = (e) => chunks.push(e.data);
  source.connect(node);
  node.connect(context.destination); // the recorder writes no output: nothing is heard
  const started = performance.now();
  const limit = Math.min(limits.max_duration, 600);
  const timer = setInterval(() => {
    const s = (performance.now() - started) / 1000;
    $("rec-time").textContent = `${s.toFixed(1)} s`;
    if (s >= limit) stopRecording();
  }, 100);
  recording = { stream, context, node, chunks, timer };
  $("record").disabled = true;
  $("stop").disabled = false;
  setStatus("Recording… press Stop to classify.");
}

async function stopRecording() {
  if (!recording) return;
  const { stream, context, node, chunks, timer } = recording;
  recording = null;
  clearInterval(timer);
  node.port.onmessage = null;
  stream.getTracks().forEach((t) => t.stop());
  const rate = context.sampleRate;
  await context.close();
  $("record").disabled = false;
  $("stop").disabled = true;
  $("rec-time").textContent = "";
  await classify(encodeWav(chunks, rate), "recording.wav");
}

window.addEventListener("DOMContentLoaded", () => {
  setUpFileInput();
  $("record").addEventListener("click", startRecording);
  $("stop").addEventListener("click", stopRecording);
  loadCard().catch((err) => showError(`The model card could not be loaded (${err.message}).`));
});
