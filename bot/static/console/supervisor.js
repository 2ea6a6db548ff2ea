"use strict";
// The supervisor's view and the tabs.

function cell(text) { return el("td", null, text); }

function renderSupervisor() {
  if (app.view !== "supervisor") return;
  show($("case-empty"), false);
  show($("case-view"), false);
  show($("supervisor-view"), true);
  const s = app.supervisor || {online: [], open: [], longest_wait_s: 0};
  $("sup-online").replaceChildren(...(s.online || []).map((p) =>
    el("span", {"data-testid": "sup-online-item"},
      personName(p) + (p && typeof p.open === "number" ? " (" + p.open + (p.limit ? "/" + p.limit : "") + ")" : ""))));
  $("sup-longest").textContent = t("console_waiting_for", {minutes: minutes(s.longest_wait_s, app.supervisorAt)});
  $("sup-open-head").replaceChildren(...["console_col_case", "console_col_state", "console_col_wait",
    "console_language", "console_channel", "console_col_counsellor", "console_col_preview"]
    .map((key) => el("th", null, t(key))));
  $("sup-open").replaceChildren(...sortQueue(s.open).map((c) => el("tr", {
    class: "clickable", "data-testid": "sup-open-item", onclick: () => openCase(c.id),
  },
    cell("#" + c.id),
    el("td", null, c.urgent ? el("span", {class: "badge urgent"}, t("console_urgent")) : null,
      " ", optional("console_state_" + c.state) || String(c.state || "")),
    cell(t("console_waiting_for", {minutes: minutes(c.waiting_s, app.supervisorAt)})),
    cell(language(c.language)),
    cell(channel(c.channel)),
    cell(personName(c.counsellor)),
    cell(c.preview ? String(c.preview) : topics(c.topics)))));
  $("sup-audit-head").replaceChildren(...["console_col_time", "console_col_who", "console_col_action",
    "console_col_case", "console_col_detail"].map((key) => el("th", null, t(key))));
  $("sup-audit").replaceChildren(...(app.audit || []).map((a) => el("tr", {"data-testid": "sup-audit-item"},
    cell(clock(a.at)), cell(a.who === "system" ? t("console_sender_system") : personName(a.who)),
    cell(optional("console_action_" + a.action) || ""),
    cell(a.case_id === null || a.case_id === undefined ? "" : "#" + a.case_id), cell(auditDetail(a)))));
}

async function loadSupervisor() {
  if (!app.me || app.me.role !== "supervisor" || app.view !== "supervisor") return;
  const [overview, audit] = await Promise.all([
    api("GET", "/console/api/supervisor"),
    api("GET", "/console/api/audit"),
  ]);
  app.supervisor = overview || {};
  app.audit = Array.isArray(audit) ? audit : ((audit && audit.entries) || []);
  app.supervisorAt = Date.now();
  renderSupervisor();
}

function selectTab(view) {
  app.view = view;
  for (const [tab, selected] of [[$("tab-cases"), view === "cases"], [$("supervisor-toggle"), view === "supervisor"]]) {
    tab.setAttribute("aria-selected", String(selected));
    tab.tabIndex = selected ? 0 : -1;
  }
}

async function showView(view) {
  selectTab(view);
  renderCase();
  try { await loadSupervisor(); } catch (error) { failed(error); }
}

// Arrow keys move between the tabs, as screen-reader users expect of a tab list.
function tabKeys(event) {
  const tabs = [...document.querySelectorAll('#tabs [role="tab"]:not(.hidden)')];
  const at = tabs.indexOf(document.activeElement);
  const step = {ArrowRight: 1, ArrowLeft: -1}[event.key];
  if (at < 0 || !step) return;
  event.preventDefault();
  tabs[(at + step + tabs.length) % tabs.length].focus();
}
