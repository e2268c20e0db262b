// The dashboard's page logic: tiles per stream, fed by mgllavapublish's messages (format=mgllava:
// {"pts", "frame", "results": [{"text", "latency_ms", "source_frame", ...}], "source"}).
"use strict";

const params = new URLSearchParams(location.search);
const wsUrl = params.get("ws") || "ws://" + (location.hostname || "127.0.0.1") + ":9001";
const topic = params.get("topic") || "mgllava/dashboard/+";
const HISTORY = 12;
const tiles = {};
let total = 0;

function tile(name) {
  if (tiles[name]) return tiles[name];
  const el = document.createElement("div");
  el.className = "tile";
  el.dataset.stream = name;
  el.innerHTML = '<h2><span class="name"></span><span class="count">0 answers</span></h2>' +
    '<img alt="latest frame"><div class="caption waiting">waiting for the first answer...</div>' +
    '<ul class="history"></ul>';
  el.querySelector(".name").textContent = name;
  document.getElementById("tiles").appendChild(el);
  const img = el.querySelector("img");
  // the latest frame: pipelines/dashboard.sh writes thumbs/<stream>.jpg about once a second
  const refresh = () => {
    const next = new Image();
    next.onload = () => { img.src = next.src; };
    next.src = "thumbs/" + encodeURIComponent(name) + ".jpg?t=" + Date.now();
  };
  refresh();
  setInterval(refresh, 1000);
  tiles[name] = { el, n: 0 };
  return tiles[name];
}

function onMessage(t, payload) {
  let m;
  try { m = JSON.parse(payload); } catch (e) { return; }
  const name = m.source || t.split("/").pop();
  const results = m.results || (m.mgllava && m.mgllava.results) || [];
  if (!results.length) return;
  const tl = tile(name);
  for (const r of results) {
    tl.n++;
    total++;
    const cap = tl.el.querySelector(".caption");
    cap.textContent = r.text;
    cap.classList.remove("waiting");
    const li = document.createElement("li");
    const lat = document.createElement("span");
    lat.className = "lat";
    lat.textContent = `#${r.source_frame} ${Math.round(r.latency_ms)} ms`;
    li.appendChild(lat);
    li.appendChild(document.createTextNode(r.text));
    const hist = tl.el.querySelector(".history");
    hist.insertBefore(li, hist.firstChild);
    while (hist.children.length > HISTORY) hist.removeChild(hist.lastChild);
  }
  tl.el.querySelector(".count").textContent = `${tl.n} answer${tl.n === 1 ? "" : "s"}`;
  document.getElementById("total").textContent = `${total} answers`;
}

function onStatus(ok, text) {
  const s = document.getElementById("status");
  s.textContent = text;
  s.className = ok ? "connected" : "";
}

(params.get("streams") || "").split(",").filter((s) => s).forEach(tile);
const client = new MqttWs(wsUrl, "dashboard-" + Math.random().toString(16).slice(2, 10), onMessage, onStatus);
client.subscribe(topic);
