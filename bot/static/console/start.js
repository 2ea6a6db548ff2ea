"use strict";
// Wiring the screen's controls, then starting (loaded last).

function wire() {
  for (const button of document.querySelectorAll(".langs button")) {
    button.addEventListener("click", () => setLanguage(button.dataset.lang));
  }
  $("tab-cases").addEventListener("click", () => showView("cases"));
  $("supervisor-toggle").addEventListener("click", () => showView("supervisor"));
  $("tabs").addEventListener("keydown", tabKeys);
  $("claim").addEventListener("click", claim);
  $("voice-form").addEventListener("submit", saveVoice);
  $("send").addEventListener("click", sendReply);
  $("reply-box").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) { event.preventDefault(); sendReply(); }
  });
  $("add-note").addEventListener("click", addNote);
  $("transfer").addEventListener("click", transfer);
  $("assign").addEventListener("click", assign);
  $("close").addEventListener("click", closeCase);
  $("reminder-dismiss").addEventListener("click", () => show($("reminder"), false));
  $("reminder-open").addEventListener("click", () => {
    show($("reminder"), false);
    if (reminderCase !== null) openCase(reminderCase);
  });
  $("toast-dismiss").addEventListener("click", () => show($("toast"), false));
  $("urgent-alert-dismiss").addEventListener("click", () => show($("urgent-alert"), false));
  document.addEventListener("click", unlockAlerts);
  document.addEventListener("keydown", unlockAlerts);
  $("transcript").addEventListener("scroll", () => { stick = nearBottom($("transcript")); });
  new ResizeObserver(() => {
    if (stick) $("transcript").scrollTop = $("transcript").scrollHeight;
  }).observe($("transcript"));
  // Waiting times move on between events; a slow poll covers a lost event stream.
  setInterval(() => { renderQueue(); renderSupervisor(); }, 30000);
  setInterval(refresh, 60000);
  setInterval(loadHealth, 10000);
}

async function start() {
  wire();
  try {
    app.me = await api("GET", "/console/api/me");
    await loadStrings();
    app.categories = (await api("GET", "/console/api/categories")).categories || [];
  } catch (error) {
    failed(error);
    return;
  }
  $("logout-csrf").value = app.me.csrf || "";
  showMe();
  show($("supervisor-toggle"), app.me.role === "supervisor");
  show($("tab-insights"), app.me.role === "supervisor");
  applyLabels();
  renderCase();
  try { await loadQueue(); } catch (error) { failed(error); }
  loadHealth();
  listen();
  document.body.dataset.ready = "true";
}

start();
