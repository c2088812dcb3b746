// Sessions table: filters and sort drive /api/sessions; the scatter, curves and diff follow the rows.
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  const form = document.getElementById("filters");
  const tbody = document.querySelector("#sessions-table tbody");
  const count = document.getElementById("sessions-count");
  const scatterX = document.getElementById("scatter-x");
  const scatterY = document.getElementById("scatter-y");
  const diffA = document.getElementById("diff-a");
  const diffB = document.getElementById("diff-b");
  const diffOnly = document.getElementById("diff-only");
  const scatter = new Chart(document.getElementById("chart-scatter"), {
    type: "scatter",
    data: { datasets: [] },
    options: {
      animation: false, responsive: true, maintainAspectRatio: false,
      plugins: { legend: { display: false },
        tooltip: { callbacks: { label: (c) => `${c.raw.id}: ${hive.formatNumber(c.raw.x)} → ${hive.formatNumber(c.raw.y)}` } } },
      scales: { x: { title: { display: true, text: "" } }, y: { title: { display: true, text: "" } } },
    },
  });
  const curves = hive.lineChart(document.getElementById("chart-curves"), { timeAxis: false, xLabel: "hive env steps", yLabel: "mean return" });

  let sort = "started_at";
  let order = "desc";
  let rows = [];
  let facets = null;
  const ticked = new Set();
  let generation = 0;

  function fillSelect(select, values, keep, blank) {
    const current = keep ?? select.value;
    const options = (blank !== undefined ? [["", blank]] : []).concat(values.map((v) => [v, v]));
    select.replaceChildren(...options.map(([value, text]) => {
      const o = document.createElement("option"); o.value = value; o.textContent = text; return o;
    }));
    if ([...select.options].some((o) => o.value === current)) select.value = current;
  }

  function query() {
    const f = new FormData(form);
    const q = new URLSearchParams();
    for (const key of ["env_id", "status", "tag", "started_after", "started_before", "q"]) {
      const v = f.get(key);
      if (v) q.set(key, v);
    }
    const hp = f.get("hp_name");
    if (hp && (f.get("hp_min") || f.get("hp_max"))) q.set("hp", `${hp}:${f.get("hp_min")}:${f.get("hp_max")}`);
    const res = f.get("result_name");
    if (res && (f.get("result_min") || f.get("result_max"))) q.set("result", `${res}:${f.get("result_min")}:${f.get("result_max")}`);
    let sortKey = sort;
    if (sort === "hp") sortKey = scatterX.value ? "config." + scatterX.value : "started_at";
    if (sort === "res") sortKey = scatterY.value ? "results." + scatterY.value : "started_at";
    q.set("sort", sortKey);
    q.set("order", order);
    return q;
  }

  function render() {
    const hpName = scatterX.value;
    const resName = scatterY.value;
    document.getElementById("th-hp").textContent = hpName || "hyperparameter";
    document.getElementById("th-res").textContent = resName || "result";
    tbody.replaceChildren(...rows.map((r) => {
      const tr = document.createElement("tr");
      tr.dataset.sessionId = r.session_id;
      const box = document.createElement("input");
      box.type = "checkbox";
      box.checked = ticked.has(r.session_id);
      box.setAttribute("aria-label", "compare " + r.session_id);
      box.addEventListener("change", () => {
        if (box.checked) ticked.add(r.session_id); else ticked.delete(r.session_id);
        updateCurves();
      });
      const cells = [box, r.session_id, r.env_id, r.status, hive.formatDate(r.started_at), r.actors,
                     (r.tags || []).join(", "), hive.formatNumber(r.config[hpName]), hive.formatNumber(r.results[resName])];
      for (const c of cells) {
        const td = document.createElement("td");
        if (c instanceof Node) td.append(c); else td.textContent = c ?? "";
        tr.append(td);
      }
      const link = document.createElement("a");
      link.href = "/live?session=" + encodeURIComponent(r.session_id);
      link.textContent = r.session_id;
      tr.children[1].replaceChildren(link);
      return tr;
    }));
    const points = rows.filter((r) => typeof r.config[hpName] === "number" && typeof r.results[resName] === "number")
      .map((r) => ({ x: r.config[hpName], y: r.results[resName], id: r.session_id }));
    scatter.data.datasets = [{ label: resName, data: points, backgroundColor: hive.color(0), pointRadius: 4 }];
    // learning rates and the like span decades: a log axis when all values are positive and spread
    const xs = points.map((p) => p.x);
    const logX = xs.length > 1 && Math.min(...xs) > 0 && Math.max(...xs) / Math.min(...xs) >= 20;
    scatter.options.scales.x.type = logX ? "logarithmic" : "linear";
    scatter.options.scales.x.title.text = hpName + (logX ? " (log scale)" : "");
    scatter.options.scales.y.title.text = resName;
    scatter.update("none");
    scatter.canvas.dataset.points = String(points.length);
    const ids = rows.map((r) => r.session_id);
    const a = ids.includes(diffA.value) ? diffA.value : ids[0];
    const b = ids.includes(diffB.value) && diffB.value !== a ? diffB.value : ids.find((id) => id !== a) ?? a;
    fillSelect(diffA, ids, a);
    fillSelect(diffB, ids, b);
  }

  async function updateCurves() {
    const visible = new Set(rows.map((r) => r.session_id));
    let ids = [...ticked].filter((id) => visible.has(id));
    if (ids.length === 0) ids = rows.slice(0, 5).map((r) => r.session_id);
    const mine = ++generation;
    if (ids.length === 0) { hive.setSeries(curves, []); return; }
    const q = new URLSearchParams();
    ids.forEach((id) => q.append("session_id", id));
    const { ok, data } = await hive.get("/api/compare/curves?" + q);
    if (mine !== generation) return;
    if (!ok) { hive.reportDown("curves", data.down || {}); hive.setSeries(curves, []); return; }
    hive.reportDown("curves", data.down);
    curves.options.scales.x.title.text = data.x === "env_steps" ? "hive env steps" : "seconds since start";
    hive.setSeries(curves, ids.map((id, i) => ({ label: id, points: data.curves[id] || [], color: hive.color(i) })));
  }

  let diffs = 0;
  async function updateDiff() {
    const diffTbody = document.querySelector("#diff-table tbody");
    const mine = ++diffs;
    if (!diffA.value || !diffB.value) { diffTbody.replaceChildren(); return; }
    const { ok, data } = await hive.get(`/api/compare/diff?a=${encodeURIComponent(diffA.value)}&b=${encodeURIComponent(diffB.value)}`);
    if (mine !== diffs) return;
    if (!ok) { diffTbody.replaceChildren(); return; }
    diffTbody.replaceChildren(...data.rows.filter((r) => !diffOnly.checked || r.differs).map((r) => {
      const tr = document.createElement("tr");
      if (r.differs) tr.className = "differs";
      for (const v of [r.key, JSON.stringify(r.a), JSON.stringify(r.b)]) {
        const td = document.createElement("td"); td.textContent = v ?? ""; tr.append(td);
      }
      return tr;
    }));
  }

  let loads = 0;
  async function load() {
    const mine = ++loads;
    const { ok, status, data } = await hive.get("/api/sessions?" + query());
    if (mine !== loads) return; // a newer filter is already on its way
    if (!ok) {
      if (status === 503) {
        hive.reportDown("sessions", data.down || { mongodb: "down" });
        count.textContent = "The session archive (MongoDB) is down: no sessions to show.";
      } else {
        count.textContent = (Array.isArray(data.detail) ? data.detail.map((e) => e.message).join("; ") : data.detail) || "error";
      }
      return;
    }
    hive.reportDown("sessions", data.down);
    rows = data.rows;
    if (!facets) {
      facets = data.facets;
      fillSelect(form.env_id, facets.env_ids, undefined, "any");
      fillSelect(form.status, facets.statuses, undefined, "any");
      fillSelect(form.tag, facets.tags, undefined, "any");
      fillSelect(form.hp_name, facets.hyperparameters, undefined, "—");
      fillSelect(form.result_name, facets.results, undefined, "—");
      const preferredX = ["agent.lr", "agent.gamma", "actors", "workers"].find((n) => facets.hyperparameters.includes(n));
      fillSelect(scatterX, facets.hyperparameters, preferredX ?? facets.hyperparameters[0]);
      fillSelect(scatterY, facets.results, facets.results[0]);
    }
    count.textContent = `${data.matched} of ${data.total} sessions`;
    count.dataset.matched = String(data.matched);
    render();
    updateCurves();
    updateDiff();
  }

  form.addEventListener("input", load);
  form.addEventListener("change", load);
  form.addEventListener("reset", () => setTimeout(load, 0));
  form.addEventListener("submit", (e) => { e.preventDefault(); load(); });
  scatterX.addEventListener("change", render);
  scatterY.addEventListener("change", render);
  diffA.addEventListener("change", updateDiff);
  diffB.addEventListener("change", updateDiff);
  diffOnly.addEventListener("change", updateDiff);
  document.querySelectorAll("#sessions-table th[data-sort]").forEach((th) => th.addEventListener("click", () => {
    const key = th.dataset.sort;
    order = sort === key && order === "desc" ? "asc" : "desc";
    sort = key;
    document.querySelectorAll("#sessions-table th").forEach((h) => h.classList.remove("sorted", "asc", "desc"));
    th.classList.add("sorted", order);
    load();
  }));
  load();
  setInterval(load, 15000);
});
