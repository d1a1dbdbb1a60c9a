// Registration: capture one template frame per expression, send all, recapture the rejected ones.
"use strict";

const $ = (id) => document.getElementById(id);
const shots = {};  // expression -> JPEG blob

function tile(name) {
  const t = document.createElement("div");
  t.className = "tile"; t.dataset.expression = name;
  t.innerHTML = `<div class="shot">${ICONS[name] || ""}</div><b>${name}</b><div class="why note"></div>`;
  t.onclick = async () => {
    const blob = await grabFrame($("camera"), $("grab"));
    if (!blob) return;
    shots[name] = blob;
    t.querySelector(".shot").innerHTML = `<img alt="${name}" src="${URL.createObjectURL(blob)}">`;
    t.classList.remove("ok", "bad"); t.querySelector(".why").textContent = "";
    $("send").disabled = Object.keys(shots).length === 0;
  };
  return t;
}

async function sendAll(names) {
  $("send").disabled = true;
  let ok = 0;
  for (const name of names) {
    const t = document.querySelector(`.tile[data-expression="${name}"]`);
    if (!shots[name]) { t.classList.add("bad"); t.querySelector(".why").textContent = "not captured"; continue; }
    try {
      const r = await api("POST", `/api/players/${encodeURIComponent(player.id)}/templates/${name}`, shots[name], "image/jpeg");
      t.classList.add("ok"); t.classList.remove("bad"); t.querySelector(".why").textContent = "saved";
      ok = r.templates.length;
    } catch (e) {
      t.classList.add("bad"); t.querySelector(".why").textContent = e.message;
    }
  }
  $("msg").textContent = `${ok} of ${names.length} templates registered`;
  $("go").hidden = ok < names.length;
  $("send").disabled = false;
}

(async function main() {
  if (!requirePlayer()) return;
  $("who").textContent = `registering ${player.pseudonym}`;
  const cfg = await api("GET", "/api/config");
  for (const name of cfg.labels) $("tiles").appendChild(tile(name));
  $("send").onclick = () => sendAll(cfg.labels);
  const me = await api("GET", `/api/players/${encodeURIComponent(player.id)}`);
  for (const name of me.templates) document.querySelector(`.tile[data-expression="${name}"]`).classList.add("ok");
  $("go").hidden = me.templates.length < cfg.labels.length;
  try { await startCamera($("camera")); } catch (e) { $("msg").textContent = `No camera: ${e.message}`; }
})();
