"use strict";
// The counsellor's voice: the name the child sees and the Thai particle.

function showMe() {
  $("me-name").textContent = app.me.display_name || app.me.username || "";
  $("voice-name").value = app.me.display_name || "";
  $("voice-particle").value = app.me.particle || "ค่ะ";
}

async function saveVoice(event) {
  event.preventDefault();
  try {
    const body = {display_name: $("voice-name").value, particle: $("voice-particle").value};
    Object.assign(app.me, await api("POST", "/console/api/me?lang=" + app.lang, body));
    showMe();
    toast(t("console_voice_saved"), "info");
    $("voice").open = false;
    await loadCase();
  } catch (error) { failed(error); }
}
