"use strict";
// The sidebar: the queue and the counsellor's own chats.

function sortQueue(list) {
  // The server sends the queue in its order; urgent cases go first whatever it says (stable sort).
  return [...(list || [])].sort((a, b) => (b.urgent ? 1 : 0) - (a.urgent ? 1 : 0));
}

function caseRow(c, since) {
  const row = el("button", {
    type: "button",
    class: "case-row" + (c.urgent ? " urgent" : "") + (String(c.id) === String(app.selected) ? " selected" : ""),
    dataset: {testid: "queue-item", caseId: String(c.id), state: c.state || ""},
    "data-testid": "queue-item",
    onclick: () => openCase(c.id),
  },
    el("span", {class: "line1"},
      c.urgent ? el("span", {class: "badge urgent", "data-testid": "urgent-badge"}, t("console_urgent")) : null,
      el("span", {class: "wait", "data-testid": "waiting"}, t("console_waiting_for", {minutes: minutes(c.waiting_s, since)})),
      el("span", {class: "badge lang", title: t("console_language")}, language(c.language)),
      el("span", {class: "badge channel", title: t("console_channel")}, channel(c.channel)),
      c.returned ? el("span", {class: "badge returned", "data-testid": "returned-badge"}, t("console_returned")) : null),
    c.preview || topics(c.topics)
      ? el("span", {class: "preview", "data-testid": "preview"}, c.preview ? String(c.preview) : topics(c.topics)) : null,
    c.counsellor && c.state !== "queued" ? el("span", {class: "meta"}, personName(c.counsellor)) : null,
  );
  return row;
}

function renderQueue() {
  const queued = sortQueue(app.queue.queued);
  const mine = app.queue.mine || [];
  $("queue").replaceChildren(...(queued.length
    ? queued.map((c) => caseRow(c, app.queueAt))
    : [el("div", {class: "empty", "data-testid": "queue-empty"}, t("console_no_cases"))]));
  $("mine").replaceChildren(...mine.map((c) => {
    const row = caseRow(c, app.queueAt);
    row.dataset.testid = "mine-item";
    row.setAttribute("data-testid", "mine-item");
    return row;
  }));
  updateTitle();
}

async function loadQueue() {
  const data = await api("GET", "/console/api/queue");
  app.queue = {queued: (data && data.queued) || [], mine: (data && data.mine) || []};
  app.queueAt = Date.now();
  renderQueue();
}
