"use strict";
// The console's state and the helpers every part uses. Every label comes from
// GET /console/api/strings (locales/); every piece of data is put on the page as text
// (textContent / text nodes), never as HTML.

const $ = (id) => document.getElementById(id);
const LANGS = ["th", "en"];
const LANG_KEY = "console-lang";

const app = {
  me: null,
  strings: {},
  lang: [localStorage.getItem(LANG_KEY), new URLSearchParams(location.search).get("lang"), "th"]
    .find((lang) => LANGS.includes(lang)),
  queue: {queued: [], mine: []},
  queueAt: Date.now(),
  selected: null,      // case id
  detail: null,        // GET /console/api/cases/{id}
  view: "cases",       // or "supervisor"
  supervisor: null,
  audit: [],
  categories: [],      // GET /console/api/categories
  suggestedFor: null,  // the case whose suggested categories are pre-selected
  supervisorAt: Date.now(),
  missing: new Set(),  // label keys the server did not give (visible to tests and developers)
};
window.consoleApp = app;


function t(key, values) {
  let text = app.strings[key];
  if (typeof text !== "string") {
    app.missing.add(key);
    text = key;
  }
  if (values) text = text.replace(/\{([a-z_]+)\}/g, (m, name) => (name in values ? String(values[name]) : m));
  return text;
}

function optional(key) {
  const text = app.strings[key];
  return typeof text === "string" ? text : null;
}

function el(tag, props, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(props || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "class") node.className = value;
    else if (name === "dataset") Object.assign(node.dataset, value);
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    node.appendChild(typeof child === "string" || typeof child === "number"
      ? document.createTextNode(String(child)) : child);
  }
  return node;
}

function show(node, visible) { node.classList.toggle("hidden", !visible); }

function minutes(seconds, since) {
  const elapsed = since ? (Date.now() - since) / 1000 : 0;
  return Math.max(0, Math.floor(((Number(seconds) || 0) + elapsed) / 60));
}

function clock(at) {
  if (!at) return "";
  const date = new Date(at);
  if (Number.isNaN(date.getTime())) return String(at);
  const sameDay = date.toDateString() === new Date().toDateString();
  const locale = app.lang === "th" ? "th-TH" : "en-GB";
  return sameDay
    ? date.toLocaleTimeString(locale, {hour: "2-digit", minute: "2-digit"})
    : date.toLocaleString(locale, {day: "numeric", month: "short", hour: "2-digit", minute: "2-digit"});
}

function language(code) {
  return code ? (optional("label_language_" + code) || "") : "";
}

function channel(name) {
  return name ? (optional("console_channel_" + name) || "") : "";
}

function topics(list) {
  return (list || []).map((topic) => optional("label_topic_" + topic)).filter(Boolean).join(", ");
}

// "Category / subcategory" in the console's language (locales/categories.yml).
function categoryLabel(id) {
  for (const top of app.categories) {
    const sub = (top.subcategories || []).find((s) => s.id === id);
    if (sub) return top[app.lang] + " / " + sub[app.lang];
  }
  return "";
}

// An audit entry's detail, said in words: never the code's own strings.
function auditDetail(a) {
  const detail = a.detail === null || a.detail === undefined ? "" : String(a.detail);
  if (a.action === "close") return detail.split(",").map(categoryLabel).filter(Boolean).join("; ");
  if (detail === "to the queue") return t("console_transfer_queue");
  if (detail === "at the child's request") return t("console_audit_child_request");
  const colleague = /^(?:to )?counsellor (\d+)$/.exec(detail);
  return colleague ? t("console_audit_counsellor", {id: colleague[1]}) : "";
}

function personName(value) {
  if (value === null || value === undefined || value === "") return "";
  if (typeof value === "object") return value.display_name || value.username || value.name || String(value.id ?? "");
  if (app.detail) {
    const match = (app.detail.counsellors || []).find((c) => String(c.id) === String(value));
    if (match) return match.display_name;
  }
  if (app.me && String(app.me.id) === String(value)) return app.me.display_name;
  return String(value);
}

let toastTimer = null;
function toast(message, kind) {
  $("toast").className = "banner " + (kind || "error");
  $("toast-text").textContent = message;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => show($("toast"), false), 8000);
}
