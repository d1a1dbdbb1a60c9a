// Shared helpers of the GaMo pages: JSON API calls and the player id kept by this browser.
"use strict";

const ICONS = {angry: "\u{1F620}", disgust: "\u{1F922}", fear: "\u{1F628}", happy: "\u{1F604}",
               sad: "\u{1F622}", surprise: "\u{1F62E}", neutral: "\u{1F610}"};

async function api(method, url, body, contentType) {
  const opts = {method, headers: {}};
  if (body instanceof Blob) {
    opts.body = body;
    opts.headers["Content-Type"] = contentType || body.type || "application/octet-stream";
  } else if (body !== undefined) {
    opts.body = JSON.stringify(body);
    opts.headers["Content-Type"] = "application/json";
  }
  const r = await fetch(url, opts);
  const data = await r.json().catch(() => ({error: "bad_response", detail: "the server did not answer JSON"}));
  if (!r.ok) {
    const e = new Error(data.detail || r.statusText);
    e.code = data.error; e.status = r.status;
    throw e;
  }
  return data;
}

const player = {
  get id() { return localStorage.getItem("gamo.player"); },
  get pseudonym() { return localStorage.getItem("gamo.pseudonym"); },
  set(p) { localStorage.setItem("gamo.player", p.id); localStorage.setItem("gamo.pseudonym", p.pseudonym); },
  clear() { localStorage.removeItem("gamo.player"); localStorage.removeItem("gamo.pseudonym"); },
};

async function deleteMyData() {
  if (!player.id) return;
  if (!confirm("Delete every image and record of you from this game?")) return;
  const r = await api("DELETE", `/players/${encodeURIComponent(player.id)}`);
  player.clear();
  alert(`Deleted ${r.samples} image(s) of ${r.deleted}.`);
  location.href = "/";
}

async function startCamera(video) {
  const stream = await navigator.mediaDevices.getUserMedia({video: {width: 640, height: 480}, audio: false});
  video.srcObject = stream;
  await video.play();
  return stream;
}

// The current video frame as a JPEG blob, at most maxWidth pixels wide.
function grabFrame(video, canvas, maxWidth = 480) {
  const w = video.videoWidth, h = video.videoHeight;
  if (!w || !h) return Promise.resolve(null);
  const s = Math.min(1, maxWidth / w);
  canvas.width = Math.round(w * s); canvas.height = Math.round(h * s);
  canvas.getContext("2d").drawImage(video, 0, 0, canvas.width, canvas.height);
  return new Promise(resolve => canvas.toBlob(resolve, "image/jpeg", 0.88));
}

function requirePlayer() {
  if (!player.id) { location.href = "/"; return false; }
  return true;
}
