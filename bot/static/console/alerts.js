"use strict";
// Live updates: the event stream, the bot's health, reminders and urgent cases.

let refreshing = null;
let again = false;
async function refresh() {
  // One refresh at a time; events arriving meanwhile cause one more, not one each.
  if (refreshing) { again = true; return refreshing; }
  refreshing = (async () => {
    do {
      again = false;
      try {
        await Promise.all([loadQueue(), loadCase(), loadSupervisor()]);
      } catch (error) { failed(error); }
    } while (again);
  })();
  try { await refreshing; } finally { refreshing = null; }
}

// The bot's health (supervisors).

async function loadHealth() {
  if (!app.me || app.me.role !== "supervisor") return;
  try { app.health = await api("GET", "/console/api/health"); } catch (error) { return; }
  renderHealth();
}

function renderHealth() {
  const h = app.health;
  // Overloaded: how many turns of the last minutes got the holding line first (bot/holding.py).
  show($("overloaded"), Boolean(h && h.overloaded));
  if (h && h.overloaded) $("overloaded-text").textContent = t("console_overloaded", h.overload);
  show($("degraded"), Boolean(h && h.degraded));
  if (!h || !h.degraded) return;
  const parts = (h.down || []).map((name) => optional("console_part_" + name) || name).join(", ");
  $("degraded-text").textContent = t("console_degraded", {since: clock(h.since), parts, answers: h.failsafe_answers});
}

let reminderCase = null;
function remind(event) {
  reminderCase = event.case ?? null;
  $("reminder-text").textContent = t("console_reminder") + (reminderCase !== null ? " (#" + reminderCase + ")" : "");
  show($("reminder-open"), reminderCase !== null);
  show($("reminder"), true);
}

let source = null;
// A new urgent case: a short beep (WebAudio, no file), a browser notification (once the
// counsellor allowed them) and a banner; its card is first in the queue (sortQueue).
let audio = null;
function unlockAlerts() {
  if (!audio && window.AudioContext) audio = new AudioContext();
  if (audio && audio.state === "suspended") audio.resume();
  if (window.Notification && Notification.permission === "default") Notification.requestPermission();
}

function beep() {
  if (!audio) return;
  const tone = audio.createOscillator();
  const gain = audio.createGain();
  tone.frequency.value = 880;
  gain.gain.setValueAtTime(0.2, audio.currentTime);
  gain.gain.exponentialRampToValueAtTime(0.001, audio.currentTime + 0.4);
  tone.connect(gain).connect(audio.destination);
  tone.start();
  tone.stop(audio.currentTime + 0.4);
}

function alertUrgent() {
  const text = t("console_urgent_alert");
  $("urgent-alert-text").textContent = text;
  show($("urgent-alert"), true);
  document.body.dataset.urgentAt = String(Date.now());
  try { beep(); } catch (e) { console.error(e); }
  if (window.Notification && Notification.permission === "granted") {
    const note = new Notification(t("console_title"), {body: text, tag: "urgent", renotify: true});
    note.onclick = () => { window.focus(); note.close(); };
  }
}

function listen() {
  if (source) source.close();
  source = new EventSource("/console/api/events");
  source.onmessage = (message) => {
    let event = {};
    try { event = JSON.parse(message.data); } catch (e) { event = {}; }
    if (event.type === "reminder") remind(event);
    if (event.type === "urgent") alertUrgent();
    refresh();
  };
  source.onopen = () => refresh();
  source.onerror = () => {
    if (source.readyState === EventSource.CLOSED) setTimeout(listen, 5000);
  };
}
