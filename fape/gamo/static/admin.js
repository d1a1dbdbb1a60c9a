// Admin: class balance chart, players, sessions, model versions with their held-out accuracy.
"use strict";

const $ = (id) => document.getElementById(id);
const pct = (v) => (v === null || v === undefined ? "-" : `${(100 * v).toFixed(1)}%`);

function rows(tbody, items, cells) {
  tbody.innerHTML = "";
  for (const it of items) {
    const tr = document.createElement("tr");
    for (const c of cells(it)) { const td = document.createElement("td"); td.textContent = c; tr.appendChild(td); }
    tbody.appendChild(tr);
  }
}

(async function main() {
  const a = await api("GET", "/api/admin");
  const cur = a.model.versions.find(v => v.version === a.model.current);
  $("model-version").textContent = `${cur.version} (${cur.model})`;
  const ref = cur.reference;
  $("model-accuracy").textContent = cur.heldout ? `${pct(cur.heldout.candidate)} on ${cur.heldout.n} GaMo images`
    : "not measured on GaMo data yet" + (ref ? ` (initial model: ${pct(ref.accuracy)} on ${ref.n} ${ref.data} ${ref.split} images)` : "");
  rows($("versions").tBodies[0], a.model.versions, v => {
    const d = v.data || {}, n = (p) => (d[p] ? d[p].images : "-");
    return [v.version + (v.version === a.model.current ? " (serving)" : ""), v.promoted ? "yes" : "no",
            pct(v.heldout && v.heldout.candidate), pct(v.heldout && v.heldout.parent),
            `${n("train")} / ${n("val")} / ${n("heldout")}`, v.reason];
  });
  const max = Math.max(1, ...Object.values(a.classes));
  $("chart").innerHTML = "";
  for (const [name, n] of Object.entries(a.classes)) {
    const d = document.createElement("div");
    d.innerHTML = `<b>${n}</b><div class="col" style="height:${Math.round(140 * n / max)}px"></div>${ICONS[name] || ""} ${name}`;
    d.dataset.expression = name; d.dataset.count = n;
    $("chart").appendChild(d);
  }
  const s = a.stats;
  $("totals").textContent = `${s.samples} faces from ${s.players} player(s) in ${s.sessions} session(s); bombs: ` +
    Object.entries(s.bombs).map(([k, v]) => `${v} ${k}`).join(", ");
  $("thresholds").textContent = Object.entries(a.thresholds).map(([k, v]) => `${k} ${v}`).join(" · ");
  rows($("players").tBodies[0], a.players, p => [p.pseudonym, p.sessions, p.samples, `${p.templates}/7`, p.store_frames ? "yes" : "no"]);
  rows($("sessions").tBodies[0], a.sessions.slice().reverse(),
       s => [s.pseudonym, s.mode, s.score, s.lives, s.model_version, new Date(1000 * s.started).toLocaleString()]);
})();
