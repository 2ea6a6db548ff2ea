"use strict";
// The web chat page (bot/channels/webchat.py serves it with the greeting already in it, in the
// browser's language). Everything this page keeps in the browser starts with "webchat-".

(() => {
  const log = document.getElementById("log");
  const form = document.getElementById("form");
  const input = document.getElementById("text");
  const forget = document.getElementById("forget");
  const exit = document.getElementById("quick-exit");
  const {language, offline} = document.body.dataset;
  const KEPT = "webchat-";

  // Quick exit (its button, or Esc): nothing of the chat stays in this browser, and the chat's
  // history entry is replaced, so the back button cannot bring it back. (Without this script the
  // button is still a plain link to the same page.)
  function quickExit() {
    for (const key of Object.keys(localStorage)) {
      if (key.startsWith(KEPT)) localStorage.removeItem(key);
    }
    log.replaceChildren();
    input.value = "";
    location.replace(exit.href);
  }
  exit.addEventListener("click", (event) => {
    event.preventDefault();
    quickExit();
  });
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && !event.isComposing) quickExit();
  });

  // Only this browser knows the id; the server keeps nothing until the first message.
  let user = localStorage.getItem(KEPT + "user") || crypto.randomUUID();
  localStorage.setItem(KEPT + "user", user);

  // Messages to the child carry a `cursor` (increasing). Replies to a POST and messages fetched by
  // polling (counsellor replies, queue updates) may overlap: a cursor is shown only once.
  const shown = new Set();
  let cursor = Number(localStorage.getItem(KEPT + "cursor-" + user)) || 0;
  const POLL_MS = 1500;

  function scrollDown() {
    log.scrollTop = log.scrollHeight;
  }

  function bubble(text, who, label) {
    const div = document.createElement("div");
    div.className = "msg " + who;
    div.dataset.sender = who;
    if (label) {
      const name = document.createElement("span");
      name.className = "who";
      name.textContent = label;
      div.appendChild(name);
    }
    div.appendChild(document.createTextNode(text));
    log.appendChild(div);
    scrollDown();
    return div;
  }

  function buttons(list) {
    if (!list || !list.length) return;
    const row = document.createElement("div");
    row.className = "buttons";
    for (const b of list) {
      const el = document.createElement("button");
      el.type = "button";
      el.textContent = b.title;
      el.dataset.payload = b.payload;
      row.appendChild(el);
    }
    log.appendChild(row);
    scrollDown();
  }

  function remember(c) {
    cursor = c;
    localStorage.setItem(KEPT + "cursor-" + user, String(cursor));
  }

  // `replied`: the answer to a POST, whose largest cursor becomes the one to poll after (this also
  // heals a remembered cursor from an older database); polled messages only move it forward.
  function show(messages, replied) {
    let largest = null;
    for (const m of messages || []) {
      const c = Number(m.cursor);
      const known = m.cursor !== undefined && m.cursor !== null && Number.isFinite(c);
      if (known && (largest === null || c > largest)) largest = c;
      if (known && shown.has(c)) continue;
      if (known) shown.add(c);
      const counsellor = m.sender === "counsellor";
      const div = bubble(m.text || "", counsellor ? "counsellor" : "bot", counsellor ? m.label : "");
      if (known) div.dataset.cursor = String(c);
      buttons(m.buttons);
    }
    if (largest !== null && (replied || largest > cursor)) remember(largest);
  }

  // The user's data was deleted on the server (bot/forget.py): nothing of the old chat stays in
  // this browser either. A new id starts a new conversation; the goodbye is shown after this.
  function startOver() {
    localStorage.removeItem(KEPT + "cursor-" + user);
    user = crypto.randomUUID();
    localStorage.setItem(KEPT + "user", user);
    cursor = 0;
    shown.clear();
    log.replaceChildren();
  }

  // `pressed`: a button's payload (only a pressed "yes" deletes anything), not typed words.
  // `language`: the page's, for a button pressed before the child has written anything.
  async function send(text, shownText, pressed) {
    bubble(shownText || text, "me");
    const body = pressed ? {user, text, pressed: true, language} : {user, text, language};
    try {
      const response = await fetch("/webchat/messages", {
        method: "POST",
        headers: {"Content-Type": "application/json"},
        body: JSON.stringify(body),
      });
      const data = await response.json();
      if (data.forgotten) startOver();
      show(data.messages, true);
    } catch (e) {
      bubble(offline, "bot");
    }
  }

  async function poll() {
    try {
      const asked = user;
      const url = "/webchat/messages?user=" + encodeURIComponent(user) + "&after=" + cursor;
      const response = await fetch(url, {cache: "no-store"});
      // not if the user started over meanwhile: those were the deleted conversation's
      if (response.ok && asked === user) show((await response.json()).messages);
    } catch (e) {
      // offline for a moment: the next poll catches up from the same cursor
    }
    setTimeout(poll, POLL_MS);
  }
  setTimeout(poll, POLL_MS);

  // Every answer button, the greeting's included.
  log.addEventListener("click", (event) => {
    const button = event.target.closest(".buttons button");
    if (button) send(button.dataset.payload, button.textContent, true);
  });

  forget.addEventListener("click", () => send("/forget", forget.textContent, true));

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const text = input.value.trim();
    if (!text) return;
    input.value = "";
    send(text);
  });

  scrollDown();
})();
