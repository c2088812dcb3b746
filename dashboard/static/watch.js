// Recorded episodes: list what `hiverl evaluate --video` wrote and play the chosen one.
"use strict";

document.addEventListener("DOMContentLoaded", async () => {
  const list = document.getElementById("video-list");
  const player = document.getElementById("player");
  const gif = document.getElementById("player-gif");
  const title = document.getElementById("video-title");
  const { ok, data } = await hive.get("/api/videos");
  if (!ok) return;
  document.getElementById("video-folders").textContent = data.folders.join(", ");
  if (data.sessions.length === 0) {
    list.replaceChildren(Object.assign(document.createElement("li"), { className: "muted", textContent: "No recordings yet." }));
    return;
  }
  function play(sessionId, video) {
    title.textContent = `${sessionId} · ${video.name}`;
    player.hidden = video.kind !== "video";
    gif.hidden = video.kind !== "image";
    if (video.kind === "video") { player.src = video.url; player.play().catch(() => {}); } else { gif.src = video.url; }
  }
  list.replaceChildren(...data.sessions.map((s) => {
    const li = document.createElement("li");
    li.append(Object.assign(document.createElement("strong"), { textContent: s.session_id }));
    const ul = document.createElement("ul");
    for (const v of s.videos) {
      const item = document.createElement("li");
      const button = Object.assign(document.createElement("button"), { className: "link", textContent: `${v.name} (${(v.bytes / 1024).toFixed(0)} KiB)` });
      button.addEventListener("click", () => play(s.session_id, v));
      item.append(button);
      ul.append(item);
    }
    li.append(ul);
    return li;
  }));
  const wanted = new URLSearchParams(location.search).get("session");
  const first = data.sessions.find((s) => s.session_id === wanted) || data.sessions[0];
  play(first.session_id, first.videos[0]);
});
