// The aeserve console: models, versions, jobs and live traffic, read from the JSON API.
"use strict";
(function () {
  const view = document.getElementById("view");
  const KEY = "aeserve-api-key";
  let cleanups = [];

  // -- helpers --------------------------------------------------------------------------------
  function h(tag, attrs, ...children) {
    const n = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k.startsWith("on")) n.addEventListener(k.slice(2), v);
      else if (v !== undefined && v !== null && v !== false) n.setAttribute(k, v === true ? "" : v);
    }
    for (const c of children.flat()) if (c !== null && c !== undefined) n.append(c);
    return n;
  }
  const esc = encodeURIComponent;
  const fmt = (v) => (v === null || v === undefined ? "–" : typeof v === "number" ? Charts.fmt(v) : String(v));
  const when = (iso) => (iso ? new Date(iso).toLocaleString() : "–");

  function say(text, isError) {
    const box = h("div", { class: isError ? "error" : "" }, text);
    document.getElementById("message").append(box);
    setTimeout(() => box.remove(), isError ? 8000 : 3000);
  }

  async function api(path, options) {
    const o = options || {};
    const headers = Object.assign({}, o.headers || {});
    const key = localStorage.getItem(KEY);
    if (key) headers.Authorization = `Bearer ${key}`;
    let body = o.body;
    if (o.json !== undefined) { headers["Content-Type"] = "application/json"; body = JSON.stringify(o.json); }
    const response = await fetch(path, { method: o.method || "GET", headers, body });
    if (response.status === 204) return null;
    const data = await response.json().catch(() => ({}));
    if (!response.ok) {
      const detail = typeof data.detail === "string" ? data.detail : JSON.stringify(data.detail || data);
      throw new Error(`${response.status}: ${detail}`);
    }
    return data;
  }

  // Server-sent events read with fetch, not EventSource: EventSource cannot send the API key.
  function streamEvents(path, handlers) {
    const abort = new AbortController();
    const headers = { Accept: "text/event-stream" };
    const key = localStorage.getItem(KEY);
    if (key) headers.Authorization = `Bearer ${key}`;
    (async () => {
      const response = await fetch(path, { headers, signal: abort.signal });
      if (!response.ok || !response.body) throw new Error(`${response.status}: events unavailable`);
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return;
        buffer += value;
        let end;
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          let name = "message";
          const data = [];
          for (const line of block.split("\n")) {
            if (line.startsWith("event:")) name = line.slice(6).trim();
            else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
          }
          if (handlers[name]) handlers[name](data.join("\n"));
        }
      }
    })().catch((e) => { if (e.name !== "AbortError") say(e.message, true); });
    return () => abort.abort();
  }

  function every(ms, fn) { fn(); const id = setInterval(fn, ms); cleanups.push(() => clearInterval(id)); }

  function showKeyState() {
    document.getElementById("key-state").textContent = localStorage.getItem(KEY) ? "key set" : "";
  }
  document.getElementById("key-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const input = document.getElementById("api-key");
    if (input.value) localStorage.setItem(KEY, input.value); else localStorage.removeItem(KEY);
    input.value = "";
    showKeyState();
    route();  // what was refused without the key is read again with it
  });

  // -- models ---------------------------------------------------------------------------------
  async function modelsPage() {
    const { models } = await api("/models");
    view.replaceChildren(h("h1", {}, "Models"));
    if (!models.length) view.append(h("p", { class: "empty" }, "No model yet: train one under Jobs."));
    for (const model of models) {
      const detail = await api(`/models/${esc(model.name)}`);
      const rows = [];
      for (const v of detail.version_details.slice().reverse()) {
        const m = await api(`/models/${esc(model.name)}/versions/${v.version}`);
        const loaded = model.loaded_version === v.version;
        rows.push(h("tr", { "data-model": model.name, "data-version": v.version },
          h("td", {}, h("a", { href: `#/models/${esc(model.name)}/${v.version}` }, `v${v.version}`)),
          h("td", { class: "num" }, `${m.input_dim} → ${m.latent_dim}`),
          h("td", {}, m.loss),
          h("td", {}, m.scaling ? m.scaling.method : "–"),
          h("td", { class: "num" }, fmt(m.threshold)),
          h("td", {}, when(m.created_at)),
          h("td", {}, v.active ? h("span", { class: "tag active" }, "active") : "",
            " ", loaded ? h("span", { class: "tag loaded" }, "loaded") : ""),
          h("td", {},
            v.active ? "" : h("button", { onclick: () => promote(model.name, v.version) }, "Promote"), " ",
            v.active ? "" : h("button", { onclick: () => remove(model.name, v.version) }, "Delete"))));
      }
      view.append(h("section", { class: "card model", "data-model": model.name },
        h("h2", {}, model.name),
        h("table", {}, h("thead", {}, h("tr", {}, ["version", "dims", "loss", "scaling", "threshold",
          "created", "state", ""].map((t) => h("th", {}, t)))), h("tbody", {}, rows))));
    }
  }

  async function promote(name, version) {
    try { await api(`/models/${esc(name)}/versions/${version}/promote`, { method: "POST" }); say(`${name} v${version} is active`); }
    catch (e) { say(e.message, true); }
    route();
  }

  async function remove(name, version) {
    if (!confirm(`Delete ${name} v${version}?`)) return;
    try { await api(`/models/${esc(name)}/versions/${version}`, { method: "DELETE" }); say(`${name} v${version} deleted`); }
    catch (e) { say(e.message, true); }
    route();
  }

  // -- a version ------------------------------------------------------------------------------
  function architecture(m) {
    const c = m.config || {};
    const hidden = c.hidden_dims || [];
    const widths = [m.input_dim, ...hidden, m.latent_dim, ...hidden.slice().reverse(), m.input_dim];
    return h("dl", { class: "facts architecture" },
      h("dt", {}, "layers"), h("dd", { class: "layers" }, widths.join(" → ")),
      h("dt", {}, "activation"), h("dd", {}, `${fmt(c.activation)}, output ${fmt(c.output_activation)}`),
      h("dt", {}, "optimizer"), h("dd", {}, `${fmt(c.optimizer)}, learning rate ${fmt(c.learning_rate)}, batch ${fmt(c.batch_size)}`));
  }

  async function versionPage(name, version) {
    const m = await api(`/models/${esc(name)}/versions/${version}`);
    const calibration = await api(`/models/${esc(name)}/versions/${version}/calibration`);
    const t = m.training || {};
    const history = t.history || [];
    const lossChart = h("div", { class: "chart", id: "loss-chart" });
    const histChart = h("div", { class: "chart", id: "calibration-chart" });
    view.replaceChildren(
      h("h1", {}, `${name} v${version}`),
      h("section", { class: "card" }, h("dl", { class: "facts" },
        h("dt", {}, "dimensions"), h("dd", {}, `${m.input_dim} features → ${m.latent_dim} codes`),
        h("dt", {}, "loss"), h("dd", {}, m.loss),
        h("dt", {}, "scaling"), h("dd", {}, m.scaling ? m.scaling.method : "–"),
        h("dt", {}, "threshold"), h("dd", { id: "threshold" }, `${fmt(m.threshold)} (quantile ${fmt(m.threshold_quantile)} of ${calibration.n} calibration scores)`),
        h("dt", {}, "training"), h("dd", {}, `${fmt(t.epochs_run)} epochs, best ${fmt(t.best_epoch)}, val loss ${fmt(t.val_loss)}, ${fmt(t.rows_train)} rows`),
        h("dt", {}, "created"), h("dd", {}, when(m.created_at)))),
      h("div", { class: "grid" },
        h("section", { class: "card" }, h("h2", {}, "Loss per epoch"), lossChart,
          h("div", { class: "legend" }, h("span", {}, "— train"), h("span", {}, "— validation"))),
        h("section", { class: "card" }, h("h2", {}, "Calibration scores"), histChart,
          h("div", { class: "legend" }, `${calibration.n} held-out rows; the dashed line is the threshold`))),
      h("section", { class: "card" }, h("h2", {}, "Architecture"), architecture(m)),
      trafficPanel(name, version));
    Charts.lineChart(lossChart, [
      { name: "train", cls: "series-train", points: history.map((e) => [e.epoch, e.train_loss]) },
      { name: "val", cls: "series-val", points: history.map((e) => [e.epoch, e.val_loss]) },
    ], { xLabel: "epoch", yLabel: "loss" });
    Charts.histogram(histChart, calibration.bin_edges, calibration.counts, { threshold: calibration.threshold });
  }

  // -- live traffic ---------------------------------------------------------------------------
  function trafficPanel(name, version) {
    const hist = h("div", { class: "chart traffic-histogram" });
    const rate = h("div", { class: "chart anomaly-rate" });
    const drift = h("dl", { class: "facts drift" });
    const panel = h("section", { class: "card traffic", "data-model": name, "data-version": version },
      h("h2", {}, `Live traffic: ${name} v${version}`), drift,
      h("div", { class: "grid" }, h("div", {}, hist,
        h("div", { class: "legend" }, h("span", {}, "blue: calibration"), h("span", {}, "orange: recent scores"))),
        h("div", {}, rate, h("div", { class: "legend" }, "share of rows above the threshold; dashed: expected"))));
    let threshold = null;
    every(2000, async () => {
      try {
        if (threshold === null) threshold = (await api(`/models/${esc(name)}/versions/${version}/calibration`));
        const t = await api(`/models/${esc(name)}/versions/${version}/traffic`);
        const alert = t.psi !== null && t.psi > t.psi_alert;
        drift.replaceChildren(
          h("dt", {}, "recent scores"), h("dd", { class: "window-rows" }, String(t.window_rows)),
          h("dt", {}, "drift (PSI)"), h("dd", { class: "psi" }, fmt(t.psi), " ",
            alert ? h("span", { class: "tag alert" }, `above ${t.psi_alert}: traffic has drifted`) : ""),
          h("dt", {}, "above threshold"), h("dd", {}, `${fmt(t.share_above_threshold)} (expected ${fmt(t.expected_share_above_threshold)})`));
        Charts.histogram(hist, threshold.bin_edges, threshold.counts, { threshold: threshold.threshold, live: t.counts });
        const now = Date.now() / 1000;
        Charts.lineChart(rate, [{ name: "rate", cls: "series-rate",
          points: t.anomaly_rate.map((p) => [(p.start - now) / 60, p.share_above_threshold]) }],
        { xLabel: "minutes ago", yLabel: "anomaly rate", xMin: -10, xMax: 0,
          hline: { value: t.expected_share_above_threshold, cls: "expected" } });
      } catch (e) { drift.replaceChildren(h("dd", { class: "empty" }, e.message)); }
    });
    return panel;
  }

  async function trafficPage() {
    const { models } = await api("/models");
    const loaded = models.filter((m) => m.loaded_version !== null && m.loaded_version !== undefined);
    view.replaceChildren(h("h1", {}, "Live traffic"),
      h("p", { class: "empty" }, "Scores served by this server process, against each version's calibration scores."));
    for (const m of loaded) view.append(trafficPanel(m.name, m.loaded_version));
    if (!loaded.length) view.append(h("p", { class: "empty" }, "No model is loaded."));
  }

  // -- jobs -----------------------------------------------------------------------------------
  async function startTraining(event) {
    event.preventDefault();
    const form = event.target;
    const file = form.elements.file.files[0];
    if (!file) { say("choose a data file", true); return; }
    const config = { epochs: +form.elements.epochs.value };
    if (form.elements.latent_dim.value) config.latent_dim = +form.elements.latent_dim.value;
    if (form.elements.batch_size.value) config.batch_size = +form.elements.batch_size.value;
    if (form.elements.hidden_dims.value) config.hidden_dims = form.elements.hidden_dims.value.split(",").map(Number);
    try {
      const upload = new FormData();
      upload.append("file", file, file.name);
      const dataset = await api("/datasets", { method: "POST", body: upload });
      const job = await api("/train", { method: "POST", json: {
        name: form.elements.name.value, data: { dataset: dataset.dataset }, config,
        promote: form.elements.promote.checked } });
      location.hash = `#/jobs/${job.job_id}`;
    } catch (e) { say(e.message, true); }
  }

  async function cancel(jobId) {
    try { await api(`/jobs/${esc(jobId)}`, { method: "DELETE" }); say("cancelled"); }
    catch (e) { say(e.message, true); }
    route();
  }

  function jobRow(j) {
    const live = j.status === "queued" || j.status === "running";
    const result = j.result ? h("a", { href: `#/models/${esc(j.result.model.name)}/${j.result.model.version}` },
      `${j.result.model.name} v${j.result.model.version}`) : j.error || "";
    return h("tr", { "data-job": j.job_id },
      h("td", {}, h("a", { href: `#/jobs/${j.job_id}` }, j.job_id.slice(0, 8))),
      h("td", {}, j.name), h("td", {}, h("span", { class: `tag ${j.status}` }, j.status)),
      h("td", { class: "num" }, `${j.progress.epoch}/${j.progress.epochs}`),
      h("td", {}, when(j.created_at)), h("td", {}, result),
      h("td", {}, live ? h("button", { onclick: () => cancel(j.job_id) }, "Cancel") : ""));
  }

  async function jobsPage() {
    const form = h("form", { class: "train card", id: "train-form", onsubmit: startTraining },
      h("h2", {}, "Train a model"),
      h("label", {}, "model name", h("input", { name: "name", required: true, pattern: "[A-Za-z0-9_.-]+" })),
      h("label", {}, "data (.csv, .npy, .npz, .parquet)", h("input", { name: "file", type: "file", required: true })),
      h("label", {}, "epochs", h("input", { name: "epochs", type: "number", min: 1, value: 50 })),
      h("label", {}, "latent dim", h("input", { name: "latent_dim", type: "number", min: 1 })),
      h("label", {}, "hidden dims", h("input", { name: "hidden_dims", placeholder: "e.g. 64,16" })),
      h("label", {}, "batch size", h("input", { name: "batch_size", type: "number", min: 1 })),
      h("label", {}, "promote", h("input", { name: "promote", type: "checkbox", checked: true })),
      h("div", {}, h("button", { type: "submit" }, "Upload and train")));
    const table = h("tbody");
    view.replaceChildren(h("h1", {}, "Jobs"), form, h("section", { class: "card" },
      h("table", { id: "jobs" }, h("thead", {}, h("tr", {}, ["job", "model", "status", "epoch", "created",
        "result", ""].map((t) => h("th", {}, t)))), table)));
    every(3000, async () => table.replaceChildren(...(await api("/jobs?limit=50")).jobs.map(jobRow)));
  }

  async function jobPage(jobId) {
    const record = await api(`/jobs/${esc(jobId)}`);
    const points = new Map(record.history.map((e) => [e.epoch, e]));
    const chart = h("div", { class: "chart", id: "job-loss-chart" });
    const status = h("div", { id: "job-status" });
    view.replaceChildren(h("h1", {}, `Job ${jobId.slice(0, 8)}: ${record.name}`), status,
      h("section", { class: "card" }, h("h2", {}, "Loss per epoch"), chart,
        h("div", { class: "legend" }, h("span", {}, "— train"), h("span", {}, "— validation"))));
    const draw = () => {
      const epochs = [...points.values()].sort((a, b) => a.epoch - b.epoch);
      Charts.lineChart(chart, [
        { name: "train", cls: "series-train", points: epochs.map((e) => [e.epoch, e.train_loss]) },
        { name: "val", cls: "series-val", points: epochs.map((e) => [e.epoch, e.val_loss]) },
      ], { xLabel: "epoch", yLabel: "loss", xMax: record.progress.epochs });
    };
    const showStatus = (r) => {
      const live = r.status === "queued" || r.status === "running";
      status.replaceChildren(h("section", { class: "card" },
        h("span", { class: `tag ${r.status}`, id: "job-state" }, r.status), " ",
        `epoch ${r.progress.epoch} of at most ${r.progress.epochs}`, " ",
        r.result ? h("a", { id: "job-result", href: `#/models/${esc(r.result.model.name)}/${r.result.model.version}` },
          `→ ${r.result.model.name} v${r.result.model.version}`) : "",
        r.error ? h("div", { class: "error" }, r.error) : "",
        live ? h("button", { onclick: () => cancel(jobId) }, "Cancel") : ""));
    };
    showStatus(record);
    draw();
    if (record.status === "queued" || record.status === "running") {
      cleanups.push(streamEvents(`/jobs/${esc(jobId)}/events`, {
        progress: (data) => {
          const p = JSON.parse(data);
          points.set(p.epoch, p);
          record.progress = p;
          showStatus(Object.assign({}, record, { status: "running" }));
          draw();
        },
        done: (data) => {
          const done = JSON.parse(data);
          for (const e of done.history) points.set(e.epoch, e);
          Object.assign(record, done);
          showStatus(done);
          draw();
        },
      }));
    }
  }

  // -- routing --------------------------------------------------------------------------------
  async function route() {
    for (const stop of cleanups) stop();
    cleanups = [];
    const parts = location.hash.replace(/^#\/?/, "").split("/").map(decodeURIComponent);
    try {
      if (parts[0] === "models" && parts.length === 3) await versionPage(parts[1], +parts[2]);
      else if (parts[0] === "jobs" && parts[1]) await jobPage(parts[1]);
      else if (parts[0] === "jobs") await jobsPage();
      else if (parts[0] === "traffic") await trafficPage();
      else await modelsPage();
    } catch (e) {
      view.replaceChildren(h("p", { class: "error" }, e.message));
    }
  }
  window.addEventListener("hashchange", route);
  showKeyState();
  route();
})();
