// Conduit's console: small enhancements to pages that work without them. Same origin only (the
// CSP allows no inline script): confirmations, copy and download buttons, the topic preview,
// credential fields that follow their choice, and a device's messages arriving live.
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  // A button with data-confirm asks before its form is sent.
  document.addEventListener("click", (event) => {
    const button = event.target.closest("button[data-confirm]");
    if (button && !window.confirm(button.dataset.confirm)) event.preventDefault();
  });

  // Copy buttons copy the text of what data-copy names.
  for (const button of document.querySelectorAll("button[data-copy]")) {
    const source = document.querySelector(button.dataset.copy);
    if (!source || !navigator.clipboard) continue;
    button.hidden = false;
    button.addEventListener("click", async () => {
      const text = "value" in source && source.tagName !== "CODE" ? source.value : source.textContent;
      try {
        await navigator.clipboard.writeText(text);
        button.textContent = "Copied";
      } catch {
        button.textContent = "Select and copy by hand";
      }
    });
  }

  // Download buttons save a textarea as the file a device needs.
  for (const button of document.querySelectorAll("button[data-download]")) {
    const source = document.getElementById(button.dataset.download);
    if (!source) continue;
    button.hidden = false;
    button.addEventListener("click", () => {
      const link = document.createElement("a");
      link.href = URL.createObjectURL(new Blob([source.value], { type: "application/octet-stream" }));
      link.download = button.dataset.filename;
      document.body.appendChild(link);
      link.click();
      setTimeout(() => { URL.revokeObjectURL(link.href); link.remove(); }, 0);
    });
  }

  // "Select all" on the devices list.
  const selectAll = document.getElementById("select-all");
  if (selectAll) {
    selectAll.hidden = false;
    selectAll.addEventListener("change", () => {
      for (const box of document.querySelectorAll('#devices input[name="ids"]')) box.checked = selectAll.checked;
    });
  }

  // Fields shown only for one choice of a radio group: data-when="name=value".
  const conditional = document.querySelectorAll("[data-when]");
  const refresh = () => {
    for (const block of conditional) {
      const [name, value] = block.dataset.when.split("=");
      const chosen = document.querySelector(`input[name="${name}"]:checked`);
      block.hidden = !chosen || chosen.value !== value;
    }
  };
  if (conditional.length) {
    document.addEventListener("change", (event) => { if (event.target.type === "radio") refresh(); });
    refresh();
  }

  // The uplink topic for a sample device, as the forwarder fills it in.
  const topic = document.getElementById("uplink-topic");
  const preview = document.getElementById("topic-preview");
  if (topic && preview) {
    const update = () => {
      preview.textContent = topic.value
        .split("{deviceId}").join("boiler-7")
        .split("{deviceName}").join("Boiler 7")
        .split("{subtopic}").join("up");
    };
    topic.addEventListener("input", update);
  }

  // A device's messages, live: server-sent events prepend each new one.
  const section = document.querySelector("[data-live]");
  const list = document.getElementById("message-list");
  if (section && list && window.EventSource) {
    const state = document.getElementById("live-state");
    const source = new EventSource(section.dataset.live);
    source.addEventListener("open", () => { if (state) state.hidden = false; });
    source.addEventListener("error", () => { if (state) state.hidden = true; });
    source.addEventListener("message", (event) => {
      const message = JSON.parse(event.data);
      if (list.querySelector(`li[data-seq="${message.sequence}"]`)) return;
      const item = document.createElement("li");
      item.className = "message new";
      item.dataset.seq = String(message.sequence);
      const meta = document.createElement("div");
      meta.className = "meta";
      const topicCode = document.createElement("code");
      topicCode.className = "message-topic";
      topicCode.textContent = message.topic;
      const time = document.createElement("time");
      time.className = "message-time";
      time.dateTime = message.timeISO;
      time.textContent = message.time;
      const info = document.createElement("span");
      info.className = "hint";
      info.textContent = `QoS ${message.qos} · ${message.shownAs}`;
      meta.append(topicCode, " ", time, " ", info);
      const payload = document.createElement("pre");
      payload.className = "message-payload";
      payload.textContent = message.payload;
      item.append(meta, payload);
      list.prepend(item);
      const none = document.getElementById("no-messages");
      if (none) none.remove();
      // Keep the page's list bounded however long it stays open.
      while (list.children.length > 200) list.lastElementChild.remove();
    });
  }
});
