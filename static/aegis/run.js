// Live run progress over a websocket, with catch-up by seq after a reconnect or reload.
// The server renders every event that existed when the page was built and tells us the last
// seq; the socket asks for everything after it, so no step is missed or shown twice.
(function () {
  "use strict";
  const root = document.getElementById("run");
  if (!root) return;
  const runId = root.dataset.run;
  let lastSeq = parseInt(root.dataset.seq || "0", 10);
  let done = root.dataset.done === "1";
  const live = document.getElementById("live");
  let backoff = 500;
  let reloadTimer = null;

  function setLive(on, text) {
    live.className = "live " + (on ? "on" : "off");
    live.textContent = text;
  }

  function stepRow(step) {
    let li = document.getElementById("step-" + step);
    if (!li) {
      li = document.createElement("li");
      li.id = "step-" + step;
      li.dataset.step = step;
      li.innerHTML = '<span class="dot"></span><span></span><span class="msg"></span>';
      li.children[1].textContent = step;
      document.getElementById("steps").appendChild(li);
    }
    return li;
  }

  function reloadSoon() {
    // The full result (tables, chart, downloads) is rendered by the server: fetch it once.
    if (reloadTimer) return;
    reloadTimer = setTimeout(function () { window.location.reload(); }, 400);
  }

  function apply(ev) {
    if (ev.seq <= lastSeq) return;
    lastSeq = ev.seq;
    const li = stepRow(ev.step);
    li.className = ev.status;
    li.querySelector(".msg").textContent = ev.message || "";
    const d = ev.data || {};
    // The run's last event (finished or failed) and approvals change the server-rendered parts.
    if (ev.step === "run" && (d.status === "finished" || d.status === "failed")) { done = true; reloadSoon(); }
    if (ev.step === "approval") { reloadSoon(); }
  }

  function connect() {
    const proto = window.location.protocol === "https:" ? "wss:" : "ws:";
    const ws = new WebSocket(proto + "//" + window.location.host + "/ws/runs/" + encodeURIComponent(runId) + "/?after=" + lastSeq);
    ws.onopen = function () { backoff = 500; setLive(true, "live"); };
    ws.onmessage = function (msg) {
      const data = JSON.parse(msg.data);
      if (data.type === "event") apply(data.event);
    };
    ws.onclose = function () {
      setLive(false, "reconnecting…");
      // Catch up from lastSeq on the next connection; back off so a restarting server is not hammered.
      setTimeout(connect, backoff);
      backoff = Math.min(backoff * 2, 10000);
    };
  }
  connect();
})();
