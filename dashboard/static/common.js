// Shared by every page: JSON fetches with the CSRF token, the status bar, notices, chart helpers.
"use strict";

const hive = (() => {
  const csrfToken = document.querySelector('meta[name="csrf-token"]')?.content || "";
  const palette = ["#2563eb", "#dc2626", "#16a34a", "#d97706", "#7c3aed", "#0891b2", "#db2777",
                   "#65a30d", "#ea580c", "#4f46e5", "#0d9488", "#be123c"];

  // Requests made with no click or key press in the last few seconds come from the pages' timers:
  // they say so, and the server does not count them as activity (an idle tab signs out).
  let lastInteraction = Date.now();
  for (const type of ["pointerdown", "keydown", "input", "change", "wheel"]) {
    document.addEventListener(type, () => { lastInteraction = Date.now(); }, { capture: true, passive: true });
  }

  async function request(method, url, body) {
    const options = { method, credentials: "same-origin", headers: { Accept: "application/json" } };
    if (Date.now() - lastInteraction > 3000) options.headers["X-Hiverl-Background"] = "1";
    if (method !== "GET") {
      options.headers["X-CSRF-Token"] = csrfToken;
      options.headers["Content-Type"] = "application/json";
      options.body = JSON.stringify(body ?? {});
    }
    let response;
    try {
      response = await fetch(url, options);
    } catch (error) {
      return { ok: false, status: 0, data: { detail: "the dashboard server does not answer" } };
    }
    if (response.status === 401) {
      window.location.assign("/login?next=" + encodeURIComponent(location.pathname + location.search));
      return { ok: false, status: 401, data: {} };
    }
    let data = {};
    try { data = await response.json(); } catch (error) { data = {}; }
    return { ok: response.ok, status: response.status, data };
  }

  // One notice for all pages' outages: the union of what each source (status bar, charts) saw down.
  const downBy = new Map();
  function reportDown(key, down) {
    downBy.set(key, Object.keys(down || {}));
    const names = [...new Set([...downBy.values()].flat())].sort();
    const box = document.getElementById("notice");
    if (!box) return;
    box.hidden = names.length === 0;
    box.textContent = names.length
      ? `${names.join(", ")} ${names.length > 1 ? "are" : "is"} down: the dashboard shows what it still has.`
      : "";
  }

  function formatTime(ms) {
    const d = new Date(ms);
    return d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false });
  }
  function formatDate(seconds) {
    if (!seconds) return "";
    const d = new Date(seconds * 1000);
    return d.toISOString().slice(0, 16).replace("T", " ");
  }
  function formatNumber(v) {
    if (v === null || v === undefined || v === "") return "";
    if (typeof v !== "number") return String(v);
    if (Number.isInteger(v)) return v.toLocaleString();
    const abs = Math.abs(v);
    return abs !== 0 && (abs < 1e-3 || abs >= 1e6) ? v.toExponential(2) : v.toPrecision(4).replace(/\.?0+$/, "");
  }

  async function pollStatus() {
    const { ok, data } = await request("GET", "/api/status");
    const services = document.getElementById("status-services");
    if (!ok || !services) {
      if (services) services.textContent = "status unavailable";
      return;
    }
    services.replaceChildren(...Object.entries(data.services).map(([name, s]) => {
      const pill = document.createElement("span");
      pill.className = "pill " + (s.up ? "up" : "down");
      pill.dataset.service = name;
      pill.title = s.address + (s.error ? ` (${s.error})` : "");
      pill.textContent = `${name} ${s.up ? "up" : "down"}`;
      return pill;
    }));
    const device = data.device || {};
    document.getElementById("status-device").textContent =
      `${device.kind === "cuda" ? "GPU" : "CPU"}: ${device.name || "?"}`;
    const latest = data.latest_session;
    document.getElementById("status-latest").textContent = latest
      ? `latest session: ${latest.session_id}${latest.status ? " (" + latest.status + ")" : ""}` : "no session yet";
    reportDown("status", Object.fromEntries(Object.entries(data.services).filter(([, s]) => !s.up)));
  }

  function lineChart(canvas, { yLabel = "", timeAxis = true, xLabel = "", legend = true, logY = false } = {}) {
    return new Chart(canvas, {
      type: "line",
      data: { datasets: [] },
      options: {
        animation: false,
        parsing: false,
        normalized: true,
        responsive: true,
        maintainAspectRatio: false,
        interaction: { mode: "nearest", intersect: false },
        plugins: {
          legend: { display: legend, labels: { boxWidth: 10, font: { size: 11 } } },
          decimation: { enabled: false },
          tooltip: {
            callbacks: {
              title: (items) => items.length ? (timeAxis ? formatTime(items[0].parsed.x) : formatNumber(items[0].parsed.x)) : "",
            },
          },
        },
        scales: {
          x: {
            type: "linear",
            title: { display: !!xLabel, text: xLabel },
            ticks: { maxTicksLimit: 6, callback: (v) => (timeAxis ? formatTime(v) : formatNumber(v)) },
          },
          y: { type: logY ? "logarithmic" : "linear", title: { display: !!yLabel, text: yLabel },
               ticks: { callback: (v) => formatNumber(v) } },
        },
      },
    });
  }

  // Replace the chart's datasets in place (same objects when labels match: no flicker, no reset zoom).
  function setSeries(chart, seriesList) {
    const byLabel = new Map(chart.data.datasets.map((d) => [d.label, d]));
    chart.data.datasets = seriesList.map((s, i) => {
      const points = s.points.map(([x, y]) => ({ x, y }));
      const existing = byLabel.get(s.label);
      const color = s.color || palette[i % palette.length];
      const dataset = existing || {};
      Object.assign(dataset, {
        label: s.label, data: points, borderColor: color, backgroundColor: color,
        showLine: s.showLine !== false, pointRadius: s.pointRadius ?? (s.showLine === false ? 2 : 0),
        borderWidth: s.borderWidth ?? 1.5, yAxisID: s.yAxisID || "y", hidden: s.hidden || false,
      });
      return dataset;
    });
    chart.update("none");
    const count = seriesList.reduce((n, s) => n + s.points.length, 0);
    chart.canvas.dataset.points = String(count);
    return count;
  }

  function color(i) { return palette[i % palette.length]; }

  document.addEventListener("DOMContentLoaded", () => {
    pollStatus();
    setInterval(pollStatus, 5000);
  });

  return { get: (url) => request("GET", url), post: (url, body) => request("POST", url, body),
           reportDown, formatTime, formatDate, formatNumber, lineChart, setSeries, color, csrfToken };
})();
