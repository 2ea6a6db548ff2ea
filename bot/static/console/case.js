"use strict";
// One case: transcript, replies, notes, transfer, assignment and wrap-up.

function isMine() {
  if (!app.detail || !app.me) return false;
  const c = app.detail.case || {};
  if (c.state !== "assigned") return false;
  if (c.counsellor_id !== undefined && c.counsellor_id !== null) return String(c.counsellor_id) === String(app.me.id);
  if ((app.queue.mine || []).some((m) => String(m.id) === String(c.id))) return true;
  const who = c.counsellor;
  if (who === null || who === undefined) return false;
  if (typeof who === "object") return String(who.id) === String(app.me.id);
  return c.state === "assigned" && [app.me.id, app.me.username, app.me.display_name].map(String).includes(String(who));
}

function senderLabel(sender) {
  const name = sender === "fallback" || sender === "holding" ? "bot" : sender;
  return optional("console_sender_" + name) || t("console_sender_" + (name === "child" ? "user" : name));
}

function transcriptRow(m) {
  const kind = m.kind || "text";
  let text = m.text || "";
  let placeholder = false;
  if (kind === "media") { text = t("console_media_placeholder"); placeholder = true; }
  else if (kind === "sticker") { text = t("console_sticker_placeholder"); placeholder = true; }
  else if (kind !== "text" && !text) { text = "[" + kind + "]"; placeholder = true; }
  return el("div", {
    class: "turn " + (m.sender || "system") + (placeholder ? " placeholder" : ""),
    "data-testid": "transcript-row",
    dataset: {sender: m.sender || "", kind},
  },
    el("span", {class: "from"}, senderLabel(m.sender || "system"), el("span", {class: "at"}, clock(m.at))),
    text);
}

// The transcript stays scrolled to the newest message unless the counsellor scrolled up to read.
let stick = true;
function nearBottom(box) { return box.scrollHeight - box.scrollTop - box.clientHeight < 40; }

function fillSelect(select, options) {
  const keep = select.value;
  select.replaceChildren(...options.map(([value, label, extra]) => el("option", {value, ...(extra || {})}, label)));
  const valid = [...select.options].some((o) => o.value === keep && !o.disabled);
  select.value = valid ? keep : (options.length ? options[0][0] : "");
}

function categorySelects() { return [$("category-1"), $("category-2"), $("category-3")]; }

function renderCategories(d, canAct) {
  const groups = app.categories.map((top) => el("optgroup", {label: top[app.lang]},
    ...(top.subcategories || []).map((sub) => el("option", {value: sub.id}, sub[app.lang]))));
  const fresh = app.suggestedFor !== d.case.id;
  categorySelects().forEach((select, i) => {
    const keep = fresh ? ((d.suggested || [])[i] || "") : select.value;
    select.replaceChildren(el("option", {value: ""}, i ? "—" : t("console_categories") + "…"),
      ...groups.map((group) => group.cloneNode(true)));
    select.value = keep;
    if (select.value !== keep) select.value = "";
    select.disabled = !canAct;
  });
  if (fresh) show($("categories-hint"), (d.suggested || []).length > 0);
  app.suggestedFor = d.case.id;
}

function renderCase() {
  const d = app.detail;
  show($("case-empty"), app.view === "cases" && !d);
  show($("case-view"), app.view === "cases" && !!d);
  show($("supervisor-view"), app.view === "supervisor");
  if (!d) return;
  const c = d.case || {};
  const mine = isMine();
  const open = c.state === "assigned" && mine;
  const supervisor = app.me && app.me.role === "supervisor";
  const canAct = (mine || supervisor) && c.state !== "closed";

  $("case-id").textContent = "#" + c.id;
  $("case-state").textContent = optional("console_state_" + c.state) || String(c.state || "");
  show($("case-urgent"), !!c.urgent);
  show($("case-returned"), !!c.returned);
  $("case-lang").textContent = language(c.language);
  $("case-channel").textContent = channel(c.channel);
  $("case-counsellor").textContent = c.counsellor && c.state !== "queued" ? personName(c.counsellor) : "";
  show($("claim"), c.state === "queued");

  $("summary").textContent = d.summary_text || "";
  $("child-note").textContent = d.child_note || "";
  show($("child-note-box"), !!d.child_note);

  const box = $("transcript");
  const before = box.childElementCount;
  box.replaceChildren(...(d.transcript || []).map(transcriptRow));
  if (stick || box.childElementCount !== before) {
    box.scrollTop = box.scrollHeight;
    stick = true;
  }

  $("reply-box").disabled = !open;
  $("send").disabled = !open;

  $("canned").replaceChildren(...(d.canned || []).map((item) => el("button", {
    type: "button", "data-testid": "canned-item", title: item.text || "", disabled: !open,
    onclick: () => insertReply(item.text || ""),
  }, item.title || item.id)));

  $("notes").replaceChildren(...(d.notes || []).map((n) => {
    const note = typeof n === "object" && n !== null ? n : {text: String(n)};
    const by = personName(note.author ?? note.who ?? note.by ?? note.counsellor ?? "");
    return el("div", {class: "note", "data-testid": "note"},
      el("span", {class: "meta"}, [by, clock(note.at)].filter(Boolean).join(" — ")),
      note.text || "");
  }));
  $("note-box").disabled = !(mine || supervisor);
  $("add-note").disabled = !(mine || supervisor);

  $("routes").replaceChildren(...(d.routes || []).map((r) => {
    const url = typeof r.website === "string" && /^https?:\/\//i.test(r.website) ? r.website : null;
    return el("div", {class: "route", "data-testid": "route"},
      el("div", null, el("span", {class: "name"}, r.name || r.id || ""),
        r.number ? el("span", {class: "number"}, " " + String(r.number)) : null),
      r.hours ? el("div", {class: "hours"}, String(r.hours)) : null,
      r.website ? el("div", {class: "website"},
        url ? el("a", {href: url, target: "_blank", rel: "noopener noreferrer"}, r.website) : String(r.website)) : null);
  }));

  const others = (d.counsellors || []).filter((p) => !app.me || String(p.id) !== String(app.me.id) || supervisor);
  fillSelect($("transfer-to"), [["", t("console_transfer_queue")],
    ...others.map((p) => [String(p.id), p.display_name || String(p.id)])]);
  $("transfer-to").disabled = !canAct || c.state !== "assigned";
  $("transfer-note").disabled = !canAct || c.state !== "assigned";
  $("transfer").disabled = !canAct || c.state !== "assigned";

  // A supervisor gives a queued chat to a counsellor (within that counsellor's limit).
  show($("assign-box"), supervisor && c.state === "queued");
  fillSelect($("assign-to"), (d.counsellors || []).map((p) => [String(p.id), p.display_name || String(p.id)]));

  renderCategories(d, canAct);
  $("close").disabled = !canAct;
}

async function loadCase() {
  if (app.selected === null) return;
  const id = app.selected;
  let data;
  try {
    data = await api("GET", "/console/api/cases/" + encodeURIComponent(id) + "?lang=" + encodeURIComponent(app.lang));
  } catch (error) {
    if (error.status !== 404 || app.selected !== id) throw error;
    // No longer this counsellor's to see (bot/console/policy.py): closed, passed to a colleague,
    // or erased by the child (bot/forget.py). Say so once, close it.
    leave();
    renderQueue();
    renderCase();
    toast(t("console_case_gone"), "info");
    return;
  }
  if (app.selected !== id) return;  // another case was opened meanwhile
  app.detail = data;
  renderCase();
}

async function openCase(id) {
  const changed = String(app.selected) !== String(id);
  app.selected = id;
  selectTab("cases");
  if (changed) {
    app.detail = null;
    stick = true;
    $("reply-box").value = "";
    $("note-box").value = "";
    $("transfer-note").value = "";
    app.suggestedFor = null;
  }
  renderQueue();
  renderCase();
  try { await loadCase(); } catch (error) { failed(error); }
}

function insertReply(text) {
  const box = $("reply-box");
  const start = box.selectionStart ?? box.value.length;
  const end = box.selectionEnd ?? box.value.length;
  box.value = box.value.slice(0, start) + text + box.value.slice(end);
  box.focus();
  box.selectionStart = box.selectionEnd = start + text.length;
}

function leave() {
  app.selected = null;
  app.detail = null;
}

// A refusal (409) says in app.lang what happened to the case; `done` runs only on success.
async function act(path, body, button, done) {
  if (button) button.disabled = true;
  try {
    await api("POST", "/console/api/cases/" + encodeURIComponent(app.selected) + "/" + path +
      "?lang=" + encodeURIComponent(app.lang), body);
    if (done) done();
    return true;
  } finally {
    if (button) button.disabled = false;
    await refresh();
  }
}

async function claim() {
  try {
    await act("claim", {}, $("claim"));
  } catch (error) {
    if (error.status === 409) toast(t("console_claim_lost"));
    else failed(error);
  }
}

async function sendReply() {
  const text = $("reply-box").value.trim();
  if (!text) return;
  try {
    await act("reply", {text}, $("send"));
    $("reply-box").value = "";
    $("reply-box").focus();
  } catch (error) { failed(error); }
}

async function addNote() {
  const text = $("note-box").value.trim();
  if (!text) return;
  try {
    await act("note", {text}, $("add-note"));
    $("note-box").value = "";
  } catch (error) { failed(error); }
}

async function assign() {
  try {
    await act("assign", {to: Number($("assign-to").value)}, $("assign"));
  } catch (error) { failed(error); }
}

async function transfer() {
  const value = $("transfer-to").value;
  const to = value === "" ? null : (/^\d+$/.test(value) ? Number(value) : value);
  try {
    await act("transfer", {to, note: $("transfer-note").value.trim()}, $("transfer"), leave);
    $("transfer-note").value = "";
  } catch (error) { failed(error); }
}

async function closeCase() {
  const categories = [...new Set(categorySelects().map((s) => s.value).filter(Boolean))];
  if (!categories.length) {
    $("category-1").focus();
    toast(t("console_categories_needed"));
    return;
  }
  try {
    await act("close", {categories}, $("close"), leave);
    app.suggestedFor = null;
  } catch (error) { failed(error); }
}
