// The play page: falling expression bombs, ~1 frame a second to the server, score and lives.
"use strict";

const $ = (id) => document.getElementById(id);
const state = {cfg: null, session: null, score: 0, lives: 0, over: false, bombs: new Map(), defused: [],
               frames: 0, sending: false, timers: []};
window.gamo = state;  // read by the end-to-end test

function beep(freq) {
  try {
    const ctx = beep.ctx || (beep.ctx = new AudioContext());
    const o = ctx.createOscillator(), g = ctx.createGain();
    o.frequency.value = freq; g.gain.value = 0.05; o.connect(g); g.connect(ctx.destination);
    o.start(); o.stop(ctx.currentTime + 0.12);
  } catch (e) { /* no audio: the game still works */ }
}

function hud() {
  $("score").textContent = state.score;
  $("lives").textContent = state.lives > 0 ? "\u2764\uFE0F".repeat(state.lives) + ` (${state.lives})` : "0";
}

function overlay(title, text, button) {
  $("overlay-title").textContent = title; $("overlay-text").textContent = text;
  $("start").textContent = button; $("overlay").classList.add("show");
}

function showProbs(r) {
  const box = $("probs"); box.innerHTML = "";
  for (const [name, p] of Object.entries(r.scores)) {
    const label = document.createElement("span"); label.textContent = `${ICONS[name] || ""} ${name}`;
    const bar = document.createElement("div"); bar.className = "bar"; bar.style.width = `${Math.round(100 * p)}%`;
    const val = document.createElement("span"); val.textContent = p.toFixed(2);
    box.append(label, bar, val);
  }
}

async function spawnBomb() {
  if (state.over || state.bombs.size >= state.cfg.game.max_bombs) return;
  let b;
  try { b = await api("POST", `/api/sessions/${state.session}/bombs`); } catch (e) { return; }
  const el = document.createElement("div");
  el.className = "bomb"; el.dataset.expression = b.expression;
  el.innerHTML = `${ICONS[b.expression] || "?"}<small>${b.expression}</small>`;
  el.style.left = `${15 + Math.random() * 70}%`;
  $("stage").appendChild(el);
  state.bombs.set(b.bomb, {el, start: performance.now(), expression: b.expression, landing: false});
}

async function landed(id, bomb) {
  bomb.landing = true;
  try {
    const r = await api("POST", `/api/sessions/${state.session}/bombs/${id}/landed`);
    state.lives = r.lives; beep(180);
    if (r.game_over) gameOver();
  } catch (e) { /* already defused by a frame in flight */ }
  bomb.el.remove(); state.bombs.delete(id); hud();
}

function animate() {
  if (state.over) return;
  const stage = $("stage"), ground = stage.clientHeight * 0.8 - 60;
  const fall = state.cfg.game.fall_seconds * 1000;
  for (const [id, b] of state.bombs) {
    const t = (performance.now() - b.start) / fall;
    b.el.style.top = `${Math.min(t, 1) * ground}px`;
    if (t >= 1 && !b.landing) landed(id, b);
  }
  requestAnimationFrame(animate);
}

async function sendFrame() {
  if (state.over || state.sending) return;
  state.sending = true;
  try {
    const blob = await grabFrame($("camera"), $("grab"));
    if (!blob) return;
    state.frames += 1;
    const r = await api("POST", `/api/sessions/${state.session}/frames`, blob, "image/jpeg");
    showProbs(r);
    $("status").textContent = `face found; model ${r.model_version}`;
    if (r.defused) {
      const b = state.bombs.get(r.defused.bomb);
      if (b) { b.el.classList.add("defused"); setTimeout(() => b.el.remove(), 400); state.bombs.delete(r.defused.bomb); }
      state.defused.push({...r.defused, distances: r.distances || null}); beep(880);  // custom: L2 per template
    }
    state.score = r.score; hud();
  } catch (e) {
    $("status").textContent = e.code === "no_face" ? "No face found: look at the camera." : e.message;
    if (e.code === "game_over") gameOver();
  } finally { state.sending = false; }
}

function gameOver() {
  if (state.over) return;
  state.over = true;
  state.timers.forEach(clearInterval); state.timers = [];
  for (const b of state.bombs.values()) b.el.remove();
  state.bombs.clear();
  overlay("Game over", `Score ${state.score}. Thanks for playing!`, "Replay");
  document.body.dataset.gameOver = "1";
}

async function start() {
  const mode = new URLSearchParams(location.search).get("mode") || "general";
  try {
    const s = await api("POST", "/api/sessions", {player_id: player.id, mode});
    Object.assign(state, {session: s.session, score: s.score, lives: s.lives, over: false, defused: [], frames: 0});
    $("mode").textContent = `${s.mode} version, model ${s.model_version}`;
  } catch (e) { $("status").textContent = e.message; return; }
  delete document.body.dataset.gameOver;
  $("overlay").classList.remove("show"); hud();
  const g = state.cfg.game;
  state.timers.push(setInterval(sendFrame, g.frame_interval_ms));
  state.timers.push(setInterval(spawnBomb, g.bomb_every_seconds * 1000));
  spawnBomb(); requestAnimationFrame(animate);
}

(async function main() {
  if (!requirePlayer()) return;
  $("who").textContent = `playing as ${player.pseudonym}`;
  $("delete").onclick = deleteMyData;
  state.cfg = await api("GET", "/api/config");
  state.lives = state.cfg.game.lives; hud();
  overlay("Ready?", "Make the face on each bomb before it lands.", "Start");
  $("start").onclick = start;
  try { await startCamera($("camera")); $("status").textContent = "Camera on. Press Start."; }
  catch (e) { $("status").textContent = `No camera: ${e.message}`; }
})();
