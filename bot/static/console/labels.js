"use strict";
// The screen's labels in the chosen language.

function applyLabels() {
  document.documentElement.lang = app.lang;
  renderHealth();
  for (const button of document.querySelectorAll(".langs button")) {
    button.setAttribute("aria-pressed", String(button.dataset.lang === app.lang));
  }
  $("title").textContent = t("console_title");
  $("logout").textContent = t("console_logout");
  $("voice-title").textContent = t("console_voice_title");
  $("voice-name-label").textContent = t("console_voice_name");
  $("voice-particle-label").textContent = t("console_voice_particle");
  $("voice-save").textContent = t("console_voice_save");
  $("tabs").setAttribute("aria-label", t("console_tabs"));
  $("tab-cases").textContent = t("console_tab_cases");
  $("supervisor-toggle").textContent = t("console_supervisor");
  $("tab-insights").textContent = t("console_tab_insights");
  $("tab-insights").href = "/console/insights?lang=" + encodeURIComponent(app.lang);
  $("categories-title").textContent = t("console_categories");
  $("categories-hint").textContent = t("console_suggested");
  $("reminder-text").textContent = t("console_reminder");
  $("reminder-open").textContent = "→";
  $("queue-title").textContent = t("console_queue");
  $("mine-title").textContent = t("console_mine");
  $("summary-title").textContent = t("console_summary");
  $("child-note-title").textContent = t("console_child_note");
  $("transcript-title").textContent = t("console_transcript");
  $("reply-box").placeholder = t("console_reply_placeholder");
  $("send").textContent = t("console_send");
  $("claim").textContent = t("console_claim");
  $("canned-title").textContent = t("console_canned");
  $("notes-title").textContent = t("console_notes");
  $("note-box").placeholder = t("console_notes");
  $("add-note").textContent = t("console_add_note");
  $("routes-title").textContent = t("console_routes");
  $("transfer-title").textContent = t("console_transfer");
  $("transfer-to-label").textContent = t("console_transfer_to");
  $("assign-title").textContent = t("console_assign");
  $("assign").textContent = t("console_assign_button");
  $("transfer-note").placeholder = t("console_transfer_note");
  $("transfer").textContent = t("console_transfer");
  $("close-title").textContent = t("console_close");
  $("close").textContent = t("console_close");
  $("case-urgent").textContent = t("console_urgent");
  $("case-returned").textContent = t("console_returned");
  $("case-lang").title = t("console_language");
  $("case-channel").title = t("console_channel");
  $("sup-online-title").textContent = t("console_online");
  $("sup-longest-title").textContent = t("console_longest_wait");
  $("sup-open-title").textContent = t("console_open_cases");
  $("sup-audit-title").textContent = t("console_audit");
  updateTitle();
}

function updateTitle() {
  const waiting = (app.queue.queued || []).length;
  document.title = (waiting ? "(" + waiting + ") " : "") + t("console_title");
}

async function loadStrings() {
  const data = await api("GET", "/console/api/strings?lang=" + encodeURIComponent(app.lang));
  app.strings = data && typeof data.strings === "object" ? data.strings : (data || {});
  app.missing.clear();
}

async function setLanguage(lang) {
  if (!LANGS.includes(lang)) return;
  app.lang = lang;
  localStorage.setItem(LANG_KEY, lang);
  try {
    await loadStrings();
  } catch (error) {
    failed(error);
    return;
  }
  applyLabels();
  renderQueue();
  renderCase();
  renderSupervisor();
  refresh();  // route names and wrap-up labels of the open case come in the chosen language
}
