"use strict";
// Talking to the gateway's JSON API (bot/console/routes.py).

class ApiError extends Error {
  constructor(status, body) {
    super((body && body.error) || "HTTP " + status);
    this.status = status;
    this.body = body;
  }
}

async function api(method, path, body) {
  const options = {method, credentials: "same-origin", headers: {Accept: "application/json"}, cache: "no-store"};
  if (method !== "GET") {
    options.headers["Content-Type"] = "application/json";
    options.headers["X-CSRF-Token"] = app.me ? app.me.csrf : "";
    options.body = JSON.stringify(body || {});
  }
  const response = await fetch(path, options);
  if (response.status === 401) {
    location.href = "/console/login";
    throw new ApiError(401, null);
  }
  let data = null;
  try { data = await response.json(); } catch (e) { data = null; }
  if (!response.ok) throw new ApiError(response.status, data);
  return data;
}

function failed(error) {
  if (error && error.status === 401) return;
  toast(error && error.message ? error.message : String(error));
  console.error(error);
}
