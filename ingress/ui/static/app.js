// The /ui chat page: pick a model, attach images or a video, stream the answer from
// /v1/chat/completions (SSE), keep the conversation, and draw the answer's `grounding`
// boxes and points over the images they refer to. Plain browser JS, no dependencies.
// Model text is only ever put in the page as text (textContent), never as HTML.
"use strict";

const API = new URL("../", location.href); // the server root, whatever the route prefix
const $ = (id) => document.getElementById(id);
const COLORS = ["#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#008080", "#f032e6", "#9a6324"];

const state = {
  messages: [], // the conversation as sent: OpenAI messages, images and videos included
  pending: [], // attachments of the next message: {kind, url, name, maxPixels}
  controller: null, // aborts the answer in flight
};

// -- the API --------------------------------------------------------------------------------

function headers() {
  const h = { "Content-Type": "application/json" };
  const key = $("api-key").value.trim();
  if (key) h.Authorization = `Bearer ${key}`;
  return h;
}

function errorText(payload, status) {
  const e = payload && payload.error;
  if (!e) return `HTTP ${status}`;
  return e.param ? `${e.message} (${e.param})` : e.message || `HTTP ${status}`;
}

async function loadModels() {
  const select = $("model");
  let response;
  try {
    response = await fetch(new URL("v1/models", API), { headers: headers() });
  } catch (err) {
    return setStatus(`Cannot reach the server: ${err}`);
  }
  const body = await response.json().catch(() => null);
  if (response.status === 401) {
    $("key-field").hidden = false;
    $("api-key").focus();
    return setStatus(`This server needs an API key: ${errorText(body, 401)}`);
  }
  if (!response.ok) return setStatus(`Models: ${errorText(body, response.status)}`);
  const previous = select.value || sessionStorage.getItem("qvs-model");
  select.replaceChildren(...body.data.map((m) => new Option(m.id, m.id)));
  if ([...select.options].some((o) => o.value === previous)) select.value = previous;
  setStatus(body.data.length ? `${body.data.length} model(s) ready` : "No model is ready yet: try again shortly");
}

function requestBody() {
  const body = {
    model: $("model").value,
    messages: systemMessages().concat(state.messages),
    stream: true,
    stream_options: { include_usage: true },
  };
  const maxTokens = parseInt($("max-tokens").value, 10);
  if (maxTokens > 0) body.max_tokens = maxTokens;
  const temperature = parseFloat($("temperature").value);
  if (!Number.isNaN(temperature)) body.temperature = temperature;
  const overrides = $("overrides").value.trim();
  if (overrides) {
    const parsed = JSON.parse(overrides); // a SyntaxError is shown by the caller
    if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
      throw new SyntaxError("Request JSON overrides must be a JSON object");
    }
    Object.assign(body, parsed);
  }
  return body;
}

function systemMessages() {
  const text = $("system").value.trim();
  return text ? [{ role: "system", content: text }] : [];
}

// Reads `data:` events of an SSE body; calls onEvent with each parsed JSON payload.
async function readEvents(response, onEvent) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    buffer += decoder.decode(value || new Uint8Array(), { stream: !done });
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const event = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const data = event.split("\n").filter((l) => l.startsWith("data:")).map((l) => l.slice(5).trimStart()).join("\n");
      if (!data) continue;
      if (data === "[DONE]") return;
      onEvent(JSON.parse(data));
    }
    if (done) return;
  }
}

// -- sending a turn -------------------------------------------------------------------------

function userMessage(text) {
  const parts = state.pending.map((item) => {
    if (item.kind === "video") return { type: "video_url", video_url: { url: item.url } };
    const image = { url: item.url };
    if (item.maxPixels) image.max_pixels = item.maxPixels;
    return { type: "image_url", image_url: image };
  });
  if (text) parts.push({ type: "text", text });
  return { role: "user", content: parts };
}

// The image URLs of `messages` in order: what a grounding item's `image_index` counts.
function imagesOf(messages) {
  const urls = [];
  for (const m of messages) {
    if (!Array.isArray(m.content)) continue;
    for (const part of m.content) if (part.type === "image_url") urls.push(part.image_url.url);
  }
  return urls;
}

async function send(event) {
  event.preventDefault();
  if (state.controller) return;
  const text = $("prompt").value.trim();
  if (!text && !state.pending.length) return;
  if (!$("model").value) return setStatus("No model to ask: is the server ready, is the API key right?");
  const message = userMessage(text);
  const firstImage = imagesOf(state.messages).length; // this message's first image's number - 1
  state.messages.push(message);
  let body;
  try {
    body = requestBody();
  } catch (err) {
    state.messages.pop();
    return setStatus(`Request JSON overrides: ${err.message}`);
  }
  $("history").append(renderUser(message, firstImage));
  $("prompt").value = "";
  state.pending = [];
  renderAttachments();
  sessionStorage.setItem("qvs-model", body.model);
  await answer(body, imagesOf(body.messages));
}

async function answer(body, images) {
  const conversation = state.messages; // "New chat" while streaming starts another one
  const view = renderAssistant(body.model);
  $("history").append(view.root);
  view.root.scrollIntoView({ block: "end" });
  state.controller = new AbortController();
  setBusy(true);
  const started = performance.now();
  const turn = { text: "", grounding: [], usage: null, ttft: null, chunks: 0, finish: null };
  try {
    const response = await fetch(new URL("v1/chat/completions", API), {
      method: "POST", headers: headers(), body: JSON.stringify(body), signal: state.controller.signal,
    });
    if (!response.ok) throw new Error(errorText(await response.json().catch(() => null), response.status));
    await readEvents(response, (payload) => {
      if (payload.error) throw new Error(errorText(payload, 500));
      if (payload.usage) turn.usage = payload.usage;
      const choice = payload.choices && payload.choices[0];
      if (!choice) return;
      const delta = choice.delta || {};
      if (delta.content) {
        if (turn.ttft === null) turn.ttft = performance.now() - started;
        turn.text += delta.content;
        turn.chunks += 1;
        view.text.textContent = turn.text;
        view.root.dataset.chunks = String(turn.chunks);
      }
      if (delta.grounding) turn.grounding = delta.grounding;
      if (choice.finish_reason) turn.finish = choice.finish_reason;
    });
    conversation.push({ role: "assistant", content: turn.text });
    view.root.dataset.state = "done";
  } catch (err) {
    const stopped = err.name === "AbortError";
    if (turn.text) conversation.push({ role: "assistant", content: turn.text }); // keep what came
    else conversation.pop(); // nothing answered: the question can be asked again
    view.root.dataset.state = stopped ? "stopped" : "error";
    view.error.textContent = stopped ? "Stopped." : String(err.message || err);
  } finally {
    state.controller = null;
    setBusy(false);
  }
  view.stats.textContent = stats(turn, performance.now() - started);
  view.marks.replaceChildren(...groundingFigures(turn.grounding, images));
  view.root.scrollIntoView({ block: "end" });
}

function stats(turn, totalMs) {
  const parts = [];
  if (turn.ttft !== null) parts.push(`first token ${Math.round(turn.ttft)} ms`);
  parts.push(`total ${(totalMs / 1000).toFixed(2)} s`);
  if (turn.usage) {
    const u = turn.usage;
    parts.push(`${u.prompt_tokens} prompt + ${u.completion_tokens} completion = ${u.total_tokens} tokens`);
    if (turn.ttft !== null && u.completion_tokens > 1 && totalMs > turn.ttft) {
      parts.push(`${((u.completion_tokens - 1) / ((totalMs - turn.ttft) / 1000)).toFixed(1)} tokens/s`);
    }
  }
  if (turn.finish) parts.push(`finish: ${turn.finish}`);
  if (turn.grounding.length) parts.push(`${turn.grounding.length} grounding item(s)`);
  return parts.join(" · ");
}

// -- drawing --------------------------------------------------------------------------------

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function mediaElement(part) {
  if (part.type === "video_url") {
    const video = el("video", "media");
    video.src = part.video_url.url;
    video.controls = true;
    video.preload = "metadata";
    return video;
  }
  const img = el("img", "media");
  img.src = part.image_url.url;
  img.alt = "attached image";
  return img;
}

// A sent message; its images are captioned with their number in the conversation, the
// number grounding's `image_index` counts (from 0) and answers name ("Picture 2").
function renderUser(message, firstImage) {
  const root = el("article", "msg user");
  const media = el("div", "media-row");
  let image = firstImage;
  for (const part of message.content) {
    if (part.type === "text") continue;
    const figure = el("figure", "thumb");
    figure.append(mediaElement(part));
    if (part.image_url) {
      const pixels = part.image_url.max_pixels ? ` · max_pixels ${part.image_url.max_pixels}` : "";
      figure.append(el("figcaption", "", `image ${++image}${pixels}`));
    }
    media.append(figure);
  }
  if (media.childElementCount) root.append(media);
  const text = message.content.filter((p) => p.type === "text").map((p) => p.text).join("\n");
  if (text) root.append(el("div", "text", text));
  return root;
}

function renderAssistant(model) {
  const root = el("article", "msg assistant");
  root.dataset.state = "streaming";
  root.dataset.chunks = "0";
  const view = {
    root,
    text: el("div", "text"),
    error: el("div", "error"),
    marks: el("div", "media-row grounding"),
    stats: el("div", "stats", "waiting for the first token…"),
  };
  root.append(el("div", "who", model), view.text, view.error, view.marks, view.stats);
  return view;
}

// One figure per image the answer points into: the image with its boxes and points on top,
// positioned in 0..1 of the image (what the server returns), so any display size is right.
function groundingFigures(items, images) {
  const byImage = new Map();
  for (const item of items) {
    const index = item.image_index ?? images.length - 1;
    if (!byImage.has(index)) byImage.set(index, []);
    byImage.get(index).push(item);
  }
  const labels = new Map();
  const colorOf = (label) => {
    if (!labels.has(label)) labels.set(label, COLORS[labels.size % COLORS.length]);
    return labels.get(label);
  };
  const figures = [];
  for (const [index, marks] of [...byImage.entries()].sort((a, b) => a[0] - b[0])) {
    if (!images[index]) continue;
    const figure = el("figure", "ground");
    figure.dataset.imageIndex = String(index);
    const frame = el("div", "frame");
    const img = el("img", "media");
    img.src = images[index];
    img.alt = `image ${index + 1}`;
    frame.append(img);
    for (const mark of marks) frame.append(markElement(mark, colorOf(mark.label || "")));
    figure.append(frame, el("figcaption", "", `image ${index + 1} · ${marks.length} item(s)`));
    figures.push(figure);
  }
  return figures;
}

function markElement(mark, color) {
  const pct = (v) => `${(v * 100).toFixed(2)}%`;
  const node = el("div", mark.box ? "mark box" : "mark point");
  node.style.setProperty("--color", color);
  if (mark.box) {
    const [x1, y1, x2, y2] = mark.box;
    Object.assign(node.style, { left: pct(x1), top: pct(y1), width: pct(x2 - x1), height: pct(y2 - y1) });
  } else {
    const [x, y] = mark.point;
    Object.assign(node.style, { left: pct(x), top: pct(y) });
  }
  node.title = JSON.stringify(mark);
  if (mark.label) node.append(el("span", "label", mark.label));
  return node;
}

// -- attachments ----------------------------------------------------------------------------

function readAsDataUrl(file) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(reader.result);
    reader.onerror = () => reject(reader.error);
    reader.readAsDataURL(file);
  });
}

async function attachFiles(files) {
  for (const file of files) {
    const kind = file.type.startsWith("video/") ? "video" : file.type.startsWith("image/") ? "image" : null;
    if (!kind) {
      setStatus(`${file.name}: not an image or a video`);
      continue;
    }
    state.pending.push({ kind, url: await readAsDataUrl(file), name: file.name, maxPixels: null });
  }
  renderAttachments();
}

function attachUrl() {
  const url = $("media-url").value.trim();
  if (!url) return;
  const kind = /\.(mp4|webm|mov|mkv|avi)(\?|#|$)/i.test(url) ? "video" : "image";
  state.pending.push({ kind, url, name: url, maxPixels: null });
  $("media-url").value = "";
  renderAttachments();
}

function renderAttachments() {
  const chips = state.pending.map((item, i) => {
    const chip = el("div", "chip");
    chip.append(mediaElement(item.kind === "video"
      ? { type: "video_url", video_url: { url: item.url } } : { type: "image_url", image_url: { url: item.url } }));
    if (item.kind === "image") {
      const pixels = el("input", "max-pixels");
      pixels.type = "number";
      pixels.min = "1";
      pixels.placeholder = "max_pixels";
      pixels.title = "max_pixels for this image (empty: the model's default)";
      pixels.value = item.maxPixels || "";
      pixels.addEventListener("input", () => { item.maxPixels = parseInt(pixels.value, 10) || null; });
      chip.append(pixels);
    }
    const remove = el("button", "remove", "×");
    remove.type = "button";
    remove.title = `remove ${item.name}`;
    remove.addEventListener("click", () => { state.pending.splice(i, 1); renderAttachments(); });
    chip.append(remove);
    return chip;
  });
  $("attachments").replaceChildren(...chips);
}

// -- page -----------------------------------------------------------------------------------

function setStatus(text) {
  $("status").textContent = text;
}

function setBusy(busy) {
  $("send").disabled = busy;
  $("stop").hidden = !busy;
}

function newChat() {
  if (state.controller) state.controller.abort();
  state.messages = [];
  $("history").replaceChildren();
  setStatus("New conversation");
}

function init() {
  $("api-key").value = sessionStorage.getItem("qvs-key") || "";
  if ($("api-key").value) $("key-field").hidden = false;
  $("api-key").addEventListener("change", () => {
    sessionStorage.setItem("qvs-key", $("api-key").value.trim());
    loadModels();
  });
  $("composer").addEventListener("submit", send);
  $("stop").addEventListener("click", () => state.controller && state.controller.abort());
  $("new-chat").addEventListener("click", newChat);
  $("image-file").addEventListener("change", (e) => { attachFiles([...e.target.files]); e.target.value = ""; });
  $("video-file").addEventListener("change", (e) => { attachFiles([...e.target.files]); e.target.value = ""; });
  $("add-url").addEventListener("click", attachUrl);
  $("media-url").addEventListener("keydown", (e) => { if (e.key === "Enter") { e.preventDefault(); attachUrl(); } });
  $("prompt").addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) { e.preventDefault(); $("composer").requestSubmit(); }
  });
  $("prompt").addEventListener("paste", (e) => {
    const files = [...e.clipboardData.files].filter((f) => f.type.startsWith("image/"));
    if (files.length) { e.preventDefault(); attachFiles(files); }
  });
  $("composer").addEventListener("dragover", (e) => e.preventDefault());
  $("composer").addEventListener("drop", (e) => { e.preventDefault(); attachFiles([...e.dataTransfer.files]); });
  loadModels();
}

init();
