// Start form and the list of sessions started here, with Stop buttons (admins only).
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  const form = document.getElementById("train-form");
  const errorBox = document.getElementById("train-error");
  const okBox = document.getElementById("train-ok");
  const tbody = document.querySelector("#launched-table tbody");
  const logBox = document.getElementById("launch-log");
  const canControl = document.body.dataset.role === "admin";

  function clearErrors() {
    form.querySelectorAll(".field").forEach((f) => { f.classList.remove("invalid"); f.querySelector(".field-error").textContent = ""; });
    errorBox.hidden = true; okBox.hidden = true;
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors();
    const answers = {};
    form.querySelectorAll("[name]").forEach((input) => {
      if (input.value === "") return;
      const kind = input.dataset.kind;
      answers[input.name] = kind === "int" || kind === "float" ? (isNaN(Number(input.value)) ? input.value : Number(input.value)) : input.value;
    });
    const button = document.getElementById("start-training");
    button.disabled = true;
    const { ok, data } = await hive.post("/api/train/start", answers);
    button.disabled = false;
    if (ok) {
      okBox.hidden = false;
      okBox.replaceChildren("Started ", Object.assign(document.createElement("a"), {
        href: "/live?session=" + encodeURIComponent(data.session_id), textContent: data.session_id, id: "started-link",
      }), " — open the live view to watch it.");
      refresh();
      return;
    }
    const errors = Array.isArray(data.detail) ? data.detail : [{ field: "(settings)", message: data.detail || "refused" }];
    for (const e of errors) {
      const label = form.querySelector(`.field[data-field="${CSS.escape(e.field)}"]`);
      if (label) { label.classList.add("invalid"); label.querySelector(".field-error").textContent = e.message; }
    }
    errorBox.hidden = false;
    errorBox.textContent = errors.map((e) => e.message).join("\n");
  });

  async function refresh() {
    const { ok, data } = await hive.get("/api/train/launched");
    if (!ok) return;
    tbody.replaceChildren(...data.sessions.map((s) => {
      const tr = document.createElement("tr");
      tr.dataset.sessionId = s.session_id;
      const link = Object.assign(document.createElement("a"), { href: "/live?session=" + encodeURIComponent(s.session_id), textContent: s.session_id });
      const state = s.running ? (s.stop_requested_at ? "stopping…" : "running") : `exited (${s.exit_code})`;
      const cells = [link, s.started_by, state];
      for (const c of cells) { const td = document.createElement("td"); td.append(c); tr.append(td); }
      const td = document.createElement("td");
      if (s.running && canControl) {
        const stop = Object.assign(document.createElement("button"), { textContent: "Stop", className: "danger stop" });
        stop.addEventListener("click", async () => {
          stop.disabled = true;
          const r = await hive.post(`/api/train/${encodeURIComponent(s.session_id)}/stop`, {});
          if (!r.ok) { errorBox.hidden = false; errorBox.textContent = r.data.detail || "stop refused"; }
          refresh();
        });
        td.append(stop);
      }
      tr.append(td);
      return tr;
    }));
    const latest = data.sessions[0];
    logBox.hidden = !latest;
    if (latest) logBox.textContent = `$ hiverl ${latest.command}\n${latest.log_tail}`;
  }

  refresh();
  setInterval(refresh, 3000);
});
