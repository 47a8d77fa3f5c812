// The console's only script: live rows, the hook form, the test panel and job buttons.
// Every call goes to /ui/api/…, the Admin API behind this session.
"use strict";

async function api(method, path, body) {
  const init = { method, headers: { "X-Eventhooks-Console": "1" }, credentials: "same-origin" };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const res = await fetch("/ui/api" + path, init);
  const text = await res.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch (e) { data = { message: text }; }
  if (!res.ok) {
    const err = new Error(describe(res.status, data));
    err.data = data;
    throw err;
  }
  return data;
}

// describe turns an Admin API error body into a sentence, fields included.
function describe(status, data) {
  let msg = (data && data.message) || ("HTTP " + status);
  if (data && data.fields) msg += "\n" + flatten(data.fields).join("\n");
  return msg;
}

function flatten(fields, prefix) {
  const out = [];
  for (const [k, v] of Object.entries(fields)) {
    const name = prefix ? prefix + "." + k : k;
    if (v && typeof v === "object") out.push(...flatten(v, name));
    else out.push("• " + name + ": " + v);
  }
  return out;
}

function show(el, text) { el.textContent = text; el.hidden = false; }

// Live deliveries: re-render the rows every two seconds with the current filters.
function liveRows() {
  const form = document.getElementById("filters");
  const rows = document.getElementById("rows");
  if (!form || !rows) return;
  const live = document.getElementById("live");
  const refresh = async () => {
    const q = new URLSearchParams(new FormData(form)).toString();
    const res = await fetch(form.dataset.rows + "?" + q, { credentials: "same-origin" });
    if (res.ok) rows.innerHTML = await res.text();
  };
  form.addEventListener("change", (e) => {
    if (e.target === live) return;
    history.replaceState(null, "", "?" + new URLSearchParams(new FormData(form)));
    refresh();
  });
  setInterval(() => { if (live.checked && !document.hidden && !location.search.includes("offset=")) refresh(); }, 2000);
}

// The create/edit form: POST a new hook or PATCH the stored one, then open its page.
function hookForm() {
  const form = document.getElementById("hook-form");
  if (!form) return;
  const error = document.getElementById("form-error");
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    error.hidden = true;
    let config;
    try { config = JSON.parse(form.config.value || "{}"); } catch (err) {
      show(error, "Config is not valid JSON: " + err.message);
      return;
    }
    const v = (id) => document.getElementById(id).value.trim();
    const body = {
      name: v("name") || null, source: v("source"), event: v("event") || null, handler: v("handler"), config,
      enabled: document.getElementById("enabled").checked,
      log_request_body: document.getElementById("log_request_body").checked,
    };
    const id = form.dataset.id;
    try {
      const hook = id ? await api("PATCH", "/event-hooks/" + id, body) : await api("POST", "/event-hooks", body);
      location.href = "/ui/hooks/" + hook.id;
    } catch (err) {
      show(error, err.message);
    }
  });
}

// The test panel: run the stored hook on the sample data.
function testPanel() {
  const run = document.getElementById("test-run");
  if (!run) return;
  const out = document.getElementById("test-result");
  run.addEventListener("click", async () => {
    let data;
    try { data = JSON.parse(document.getElementById("test-data").value); } catch (err) {
      out.classList.add("alert");
      show(out, "The event data is not valid JSON: " + err.message);
      return;
    }
    run.disabled = true;
    try {
      const res = await api("POST", "/event-hooks/" + run.dataset.id + "/test", data);
      out.classList.remove("alert");
      show(out, JSON.stringify(res, null, 2));
    } catch (err) {
      out.classList.add("alert");
      show(out, err.message);
    } finally {
      run.disabled = false;
    }
  });
}

// startJob posts to a route that starts a replay job and follows its progress.
async function startJob(button, path, body) {
  const note = document.getElementById("job");
  button.disabled = true;
  try {
    const job = await api("POST", path, body);
    follow(note, job.id);
  } catch (err) {
    note.classList.add("alert");
    show(note, err.message);
    button.disabled = false;
  }
}

async function follow(note, id) {
  for (;;) {
    const job = await api("GET", "/replays/" + id);
    const served = Object.values(job.served || {}).reduce((a, b) => a + b, 0);
    show(note, "Job " + id.slice(0, 8) + ": " + job.state + " · read " + job.read + " of " + job.total +
      " · sent " + served + (job.error ? " · " + job.error : ""));
    if (job.state !== "running") {
      if (job.state === "done" && document.getElementById("retry")) {
        const a = document.createElement("a");
        a.href = location.pathname;
        a.textContent = " · show the new attempt";
        note.append(a);
      }
      return;
    }
    await new Promise((r) => setTimeout(r, 700));
  }
}

function jobButtons() {
  const retry = document.getElementById("retry");
  if (retry) retry.addEventListener("click", () => startJob(retry, "/deliveries/" + retry.dataset.id + "/retry"));
  const redrive = document.getElementById("redrive");
  // A re-drive sends what the page's filters select: its hook and reason, when set.
  if (redrive) redrive.addEventListener("click", () => {
    const body = {};
    for (const f of ["hook", "reason"]) if (redrive.dataset[f]) body[f] = redrive.dataset[f];
    startJob(redrive, "/dead-letters/redrive", body);
  });
}

document.addEventListener("DOMContentLoaded", () => { liveRows(); hookForm(); testPanel(); jobButtons(); });
