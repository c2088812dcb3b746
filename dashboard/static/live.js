// Live view: picks a session and a time range, polls /api/live/series, updates the charts in place.
"use strict";

// Outages (the roles' `outage` events): a shaded band per service over every chart's time axis.
const OUTAGE_FILL = { redis: "rgba(220, 38, 38, 0.13)", kafka: "rgba(217, 119, 6, 0.13)",
                      elasticsearch: "rgba(124, 58, 237, 0.13)" };
const SERVICE_NAMES = { redis: "Redis", kafka: "Kafka", elasticsearch: "Elasticsearch" };
Chart.register({
  id: "outageBands",
  beforeDatasetsDraw(chart) {
    const bands = chart.$outages || [];
    const x = chart.scales.x;
    if (!bands.length || !x) return;
    const area = chart.chartArea;
    const ctx = chart.ctx;
    ctx.save();
    for (const band of bands) {
      const left = Math.max(area.left, x.getPixelForValue(band.start_ms));
      const right = Math.min(area.right, x.getPixelForValue(band.end_ms));
      if (!(right >= left)) continue;  // outside the visible range (or NaN)
      ctx.fillStyle = OUTAGE_FILL[band.service] || "rgba(107, 114, 128, 0.15)";
      ctx.fillRect(left, area.top, Math.max(2, right - left), area.bottom - area.top);
    }
    ctx.restore();
  },
});

// One band per service and span: the roles' outages of a service that overlap are one outage.
function outageSpans(outages) {
  const byService = new Map();
  for (const o of outages || []) {
    if (!byService.has(o.service)) byService.set(o.service, []);
    byService.get(o.service).push(o);
  }
  const spans = [];
  for (const [service, list] of byService) {
    list.sort((a, b) => a.start_ms - b.start_ms);
    let span = null;
    for (const o of list) {
      const who = o.role === "actor" ? `actor ${o.worker_index}` : o.role;
      if (span && o.start_ms <= span.end_ms) {
        span.end_ms = Math.max(span.end_ms, o.end_ms);
      } else {
        span = { service, start_ms: o.start_ms, end_ms: o.end_ms, roles: [] };
        spans.push(span);
      }
      if (!span.roles.some((r) => r.who === who)) span.roles.push({ who, rank: roleRank(o) });
    }
  }
  for (const span of spans) span.roles = span.roles.sort((a, b) => a.rank - b.rank).map((r) => r.who);
  return spans.sort((a, b) => a.start_ms - b.start_ms);
}

// The learner first, then the actors by index, the evaluator, the indexer.
function roleRank(o) {
  if (o.role === "learner") return -1;
  if (o.role === "actor") return Number(o.worker_index) || 0;
  return o.role === "evaluator" ? 1e6 : 1e6 + 1;
}

document.addEventListener("DOMContentLoaded", () => {
  const picker = document.getElementById("session-picker");
  const rangePicker = document.getElementById("range-picker");
  const follow = document.getElementById("live-follow");
  const info = document.getElementById("live-info");
  const charts = {
    ret: hive.lineChart(document.getElementById("chart-return"), { yLabel: "return" }),
    loss: hive.lineChart(document.getElementById("chart-loss"), { yLabel: "loss" }),
    epsilon: hive.lineChart(document.getElementById("chart-epsilon"), { yLabel: "ε" }),
    steps: hive.lineChart(document.getElementById("chart-steps"), { yLabel: "steps/s" }),
    updates: hive.lineChart(document.getElementById("chart-updates"), { yLabel: "updates/s" }),
    memory: hive.lineChart(document.getElementById("chart-memory"), { yLabel: "transitions" }),
    rates: hive.lineChart(document.getElementById("chart-rates"), { yLabel: "per s" }),
  };
  charts.memory.options.scales.y2 = { position: "right", title: { display: true, text: "bytes" },
    grid: { drawOnChartArea: false }, ticks: { callback: (v) => hive.formatNumber(v) } };

  const params = new URLSearchParams(location.search);
  let wanted = params.get("session") || "";
  let busy = false;

  // Series keyed by actor index ("0", "1", ...) or "learner" (the learner's train_stats).
  const LEARNER = "learner";
  const order = (key) => (key === LEARNER ? -1 : Number(key));
  function perWorker(series, opts = {}) {
    return Object.keys(series || {}).sort((a, b) => order(a) - order(b)).map((key) => ({
      label: key === LEARNER ? LEARNER : `actor ${key}`, points: series[key],
      color: key === LEARNER ? "#222222" : hive.color(Number(key)), ...opts,
    }));
  }

  // Admins stop the picked running session, wherever it was started (its hive's stop flag).
  const stopButton = document.getElementById("live-stop");
  let runningIds = new Set();
  function showStop() {
    if (stopButton) stopButton.hidden = !runningIds.has(picker.value);
  }
  if (stopButton) {
    picker.addEventListener("change", showStop);
    stopButton.addEventListener("click", async () => {
      const sessionId = picker.value;
      if (!sessionId || !window.confirm(`Stop ${sessionId}? The learner saves its checkpoint first.`)) return;
      stopButton.disabled = true;
      const r = await hive.post(`/api/train/${encodeURIComponent(sessionId)}/stop`, {});
      stopButton.disabled = false;
      info.textContent = r.ok ? `stop requested for ${sessionId}` : (r.data.detail || "stop refused");
    });
  }

  async function loadSessions() {
    const { ok, data } = await hive.get("/api/live/sessions");
    if (!ok) return;
    hive.reportDown("live-sessions", data.down);
    const running = data.running || [];
    const ids = new Set();
    const options = [];
    for (const s of running) {
      ids.add(s.session_id);
      options.push([s.session_id, `● ${s.session_id}${s.env_id ? " · " + s.env_id : ""} (running)`]);
    }
    for (const s of data.recent || []) {
      if (ids.has(s.session_id)) continue;
      ids.add(s.session_id);
      options.push([s.session_id, `${s.session_id}${s.env_id ? " · " + s.env_id : ""} (${s.status || "?"})`]);
    }
    if (wanted && !ids.has(wanted)) options.unshift([wanted, wanted]);
    const current = picker.value || wanted || (options[0] && options[0][0]) || "";
    picker.replaceChildren(...(options.length ? options : [["", "(no session yet)"]]).map(([value, text]) => {
      const o = document.createElement("option");
      o.value = value; o.textContent = text; return o;
    }));
    picker.value = current;
    runningIds = new Set(running.map((s) => s.session_id));
    showStop();
    document.getElementById("running-list").textContent = running.length
      ? `Running now: ${running.map((s) => s.session_id).join(", ")}` : "No session is running.";
  }

  async function refresh() {
    const sessionId = picker.value;
    if (!sessionId || busy) return;
    busy = true;
    try {
      const range = rangePicker.value;
      const query = new URLSearchParams({ session_id: sessionId, points: "300" });
      if (range === "custom") {
        const from = document.getElementById("range-from").value;
        const to = document.getElementById("range-to").value;
        if (from) query.set("start_ms", String(new Date(from).getTime()));
        if (to) query.set("end_ms", String(new Date(to).getTime()));
      } else if (range !== "session") {
        query.set("last_s", range);
      }
      const { ok, status, data } = await hive.get("/api/live/series?" + query);
      if (!ok) {
        hive.reportDown("live", data.down || {});
        info.textContent = status === 503 ? "Elasticsearch is down: no live telemetry." : (data.detail || "error");
        return;
      }
      hive.reportDown("live", data.down);
      showOutages(outageSpans(data.outages));
      const w = data.workers;
      const evals = (data.eval && data.eval.eval_return) || [];
      let count = 0;
      count += hive.setSeries(charts.ret, [
        ...perWorker(w.episode_return, { showLine: false, pointRadius: 1.5, borderWidth: 0 }).map((s) => ({ ...s, label: s.label + " return" })),
        ...perWorker(w.episode_return_ma, { borderWidth: 2 }).map((s) => ({ ...s, label: s.label + " avg" })),
        ...(evals.length ? [{ label: "evaluator (greedy)", points: evals, color: "#222222", borderWidth: 3 }] : []),
      ]);
      count += hive.setSeries(charts.loss, perWorker(w.loss));
      count += hive.setSeries(charts.epsilon, perWorker(w.epsilon));
      count += hive.setSeries(charts.steps, perWorker(w.env_steps_per_s));
      count += hive.setSeries(charts.updates, perWorker(w.updates_per_s));
      const m = data.memory;
      count += hive.setSeries(charts.memory, [
        { label: "size", points: m.size, color: hive.color(0) },
        { label: "bytes", points: m.bytes_used, color: hive.color(1), yAxisID: "y2" },
      ]);
      count += hive.setSeries(charts.rates, [
        { label: "insert/s", points: m.insert_rate, color: hive.color(2) },
        { label: "sample/s", points: m.sample_rate, color: hive.color(3) },
      ]);
      document.getElementById("live-empty").hidden = data.event_count > 0;
      const lastEval = evals.length ? ` · eval return ${evals[evals.length - 1][1].toFixed(1)}` : "";
      info.textContent = `${data.event_count.toLocaleString()} events${lastEval} · bucket ${(data.interval_ms / 1000).toFixed(0)} s · updated ${hive.formatTime(Date.now())}`;
      info.dataset.events = String(data.event_count);
      info.dataset.points = String(count);
    } finally {
      busy = false;
    }
  }

  // The session's outages: drawn on every chart (before the charts' update below) and listed.
  const outageList = document.getElementById("live-outages");
  function showOutages(spans) {
    for (const chart of Object.values(charts)) chart.$outages = spans;
    outageList.hidden = spans.length === 0;
    outageList.dataset.outages = String(spans.length);
    outageList.replaceChildren(...spans.map((s) => {
      const item = document.createElement("li");
      item.className = `outage outage-${s.service}`;
      item.dataset.service = s.service;
      const seconds = ((s.end_ms - s.start_ms) / 1000).toFixed(1);
      item.textContent = `${SERVICE_NAMES[s.service] || s.service} unreachable ${hive.formatTime(s.start_ms)}`
        + `–${hive.formatTime(s.end_ms)} (${seconds} s): ${s.roles.join(", ")} waited`;
      return item;
    }));
  }

  picker.addEventListener("change", () => {
    wanted = picker.value;
    const url = new URL(location.href);
    url.searchParams.set("session", wanted);
    history.replaceState(null, "", url);
    refresh();
  });
  rangePicker.addEventListener("change", () => {
    const custom = rangePicker.value === "custom";
    document.querySelectorAll(".custom-range").forEach((el) => { el.hidden = !custom; });
    if (custom && !document.getElementById("range-from").value) {
      // start from the last hour, in local time as datetime-local expects
      const local = (ms) => new Date(ms - new Date().getTimezoneOffset() * 60000).toISOString().slice(0, 19);
      document.getElementById("range-from").value = local(Date.now() - 3600_000);
      document.getElementById("range-to").value = local(Date.now());
    }
    refresh();
  });
  document.getElementById("range-from").addEventListener("change", refresh);
  document.getElementById("range-to").addEventListener("change", refresh);

  (async () => {
    await loadSessions();
    await refresh();
  })();
  setInterval(() => { if (follow.checked) refresh(); }, 3000);
  setInterval(loadSessions, 10000);
});
