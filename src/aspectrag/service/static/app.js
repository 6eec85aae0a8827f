// aspectrag web page: plain JavaScript, no build step, no external resources.
"use strict";

const $ = (id) => document.getElementById(id);
let hits = [];        // hits of the last ask/search (citation [n] = hits[n - 1])
let citations = {};   // n -> citation (with the quoted text) once the answer is done

function headers(json) {
  const h = {};
  if (json) h["Content-Type"] = "application/json";
  const key = $("apikey").value.trim();
  if (key) h["Authorization"] = "Bearer " + key;
  return h;
}

async function problem(resp) {
  try { const p = await resp.json(); return p.detail || p.title || resp.statusText; }
  catch (e) { return resp.status + " " + resp.statusText; }
}

function setStatus(msg, isError) {
  const s = $("status");
  s.textContent = msg;
  s.className = isError ? "error" : "";
}

async function loadStats() {
  try {
    const r = await fetch("/v1/stats", { headers: headers(false) });
    if (!r.ok) { $("stats").textContent = await problem(r); return; }
    const s = await r.json();
    $("stats").textContent = `${s.documents} documents, ${s.chunks} chunks` +
      (s.embedder ? ` · embedder ${s.embedder}` : "") + ` · generation ${s.generation ?? "?"}`;
    const d = await fetch("/v1/documents?limit=1000", { headers: headers(false) });
    if (d.ok) {
      const list = await d.json();
      const sel = $("source"), keep = sel.value;
      sel.replaceChildren(new Option("all sources", ""));
      for (const it of list.items) sel.add(new Option(shortName(it.source), it.source));
      sel.value = keep;
    }
  } catch (e) { $("stats").textContent = "cannot reach the server"; }
}

function shortName(src) {
  if (/^https?:/.test(src)) return src;
  const parts = src.split("/");
  return parts[parts.length - 1];
}

function requestBody(stream) {
  const body = {
    question: $("question").value.trim(), k: parseInt($("k").value, 10) || 5,
    retriever: $("retriever").value, stream: stream,
  };
  if ($("source").value) body.sources = [$("source").value];
  return body;
}

// -- answers ---------------------------------------------------------------------------------
function renderAnswer(text) {
  const el = $("answer");
  el.replaceChildren();
  const re = /\[(\d+)\]/g;
  let last = 0, m;
  while ((m = re.exec(text)) !== null) {
    el.append(document.createTextNode(text.slice(last, m.index)));
    const n = parseInt(m[1], 10);
    const b = document.createElement("button");
    b.type = "button";
    b.className = "cite";
    b.textContent = m[0];
    b.dataset.n = m[1];
    b.setAttribute("aria-label", "show passage " + m[1]);
    b.addEventListener("click", () => showPassage(n));
    el.append(b);
    last = re.lastIndex;
  }
  el.append(document.createTextNode(text.slice(last)));
}

function showPassage(n) {
  const c = citations[n] || hits[n - 1];
  if (!c) return;
  const where = c.location;  // page, heading and character offsets
  $("passage-h").textContent = `[${n}] ${c.title || shortName(c.source)}`;
  $("passage-meta").textContent = `${c.source} — ${where}`;
  $("passage-text").textContent = c.text;
  const link = $("passage-link");
  link.onclick = null;
  if (c.link) {
    link.href = c.link;
    link.textContent = "open the original";
  } else {
    link.href = "#";
    link.textContent = "show the whole document";
    link.onclick = (ev) => { ev.preventDefault(); showDocument(c); };
  }
  $("passage-doc").hidden = true;
  $("passage").hidden = false;
  $("passage").focus();
}

async function showDocument(c) {
  const r = await fetch("/v1/documents/text?source=" + encodeURIComponent(c.source),
                        { headers: headers(false) });
  const pre = $("passage-doc");
  pre.replaceChildren();
  if (!r.ok) { pre.textContent = await problem(r); pre.hidden = false; return; }
  const doc = await r.json();
  const mark = document.createElement("mark");
  mark.textContent = doc.text.slice(c.start, c.end);
  pre.append(doc.text.slice(0, c.start), mark, doc.text.slice(c.end));
  pre.hidden = false;
  mark.scrollIntoView({ block: "center" });
}

function renderQueries(queries) {
  const ul = $("queries");
  ul.replaceChildren();
  if (!queries.length) { ul.append(li("(one query: the question itself)")); return; }
  for (const q of queries) ul.append(li(`${q.query}  [${q.kind}, weight ${q.weight}]`));
}

function li(text) { const e = document.createElement("li"); e.textContent = text; return e; }

function renderHits(list) {
  hits = list;
  const ol = $("hits");
  ol.replaceChildren();
  for (const h of list) {
    const item = document.createElement("li");
    const meta = document.createElement("div");
    meta.className = "meta";
    meta.textContent = `score ${h.score.toFixed(3)} · ${shortName(h.source)} · ${h.location}`;
    const text = document.createElement("div");
    text.textContent = h.text.length > 400 ? h.text.slice(0, 400) + "…" : h.text;
    item.append(meta, text);
    const qs = (h.provenance && h.provenance.queries) || [];
    if (qs.length) {
      const f = document.createElement("div");
      f.className = "found";
      f.textContent = "found by: " + qs.map((q) => `“${q.query}” (rank ${q.rank})`).join("; ");
      item.append(f);
    }
    ol.append(item);
  }
}

async function ask(ev) {
  ev.preventDefault();
  const body = requestBody(true);
  if (!body.question) return;
  citations = {};
  $("passage").hidden = true;
  renderAnswer("");
  setStatus("searching…");
  $("ask-btn").disabled = true;
  let text = "";
  try {
    const r = await fetch("/v1/ask", { method: "POST", headers: headers(true), body: JSON.stringify(body) });
    if (!r.ok) { setStatus(await problem(r), true); return; }
    const reader = r.body.getReader();
    const dec = new TextDecoder();
    let buf = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += dec.decode(value, { stream: true });
      let i;
      while ((i = buf.indexOf("\n\n")) >= 0) {
        const block = buf.slice(0, i);
        buf = buf.slice(i + 2);
        let event = "message", data = "";
        for (const line of block.split("\n")) {
          if (line.startsWith("event: ")) event = line.slice(7);
          else if (line.startsWith("data: ")) data += line.slice(6);
        }
        const d = data ? JSON.parse(data) : null;
        if (event === "queries") renderQueries(d);
        else if (event === "hits") { renderHits(d); setStatus("answering…"); }
        else if (event === "token") { text += d; renderAnswer(text); }
        else if (event === "citations") for (const c of d) citations[c.n] = c;
        else if (event === "done") { renderAnswer(d.answer); setStatus(`done (${d.mode} answer)`); }
        else if (event === "error") setStatus(d.detail, true);
      }
    }
  } catch (e) {
    setStatus("the request failed: " + e, true);
  } finally {
    $("ask-btn").disabled = false;
  }
}

async function searchOnly() {
  const body = requestBody(false);
  if (!body.question) return;
  const req = { query: body.question, k: body.k, retriever: body.retriever };
  if (body.sources) req.sources = body.sources;
  setStatus("searching…");
  const r = await fetch("/v1/search", { method: "POST", headers: headers(true), body: JSON.stringify(req) });
  if (!r.ok) { setStatus(await problem(r), true); return; }
  const res = await r.json();
  renderQueries(res.queries);
  renderHits(res.hits);
  setStatus(`${res.hits.length} hits`);
}

// -- uploads ---------------------------------------------------------------------------------
function upload(files) {
  if (!files.length) return;
  const form = new FormData();
  for (const f of files) form.append("files", f, f.name);
  const xhr = new XMLHttpRequest();
  xhr.open("POST", "/v1/documents");
  const key = $("apikey").value.trim();
  if (key) xhr.setRequestHeader("Authorization", "Bearer " + key);
  const bar = $("progress");
  bar.value = 0;
  $("job").className = "";
  $("job").textContent = "uploading…";
  xhr.upload.onprogress = (e) => { if (e.lengthComputable) bar.value = 20 * e.loaded / e.total; };
  xhr.onload = () => {
    let res = {};
    try { res = JSON.parse(xhr.responseText); } catch (e) { /* not JSON */ }
    if (xhr.status !== 202) { jobError(res.detail || xhr.statusText); return; }
    pollJob(res.job);
  };
  xhr.onerror = () => jobError("the upload failed");
  xhr.send(form);
}

function jobError(msg) {
  $("job").className = "error";
  $("job").textContent = msg;
  $("progress").value = 0;
}

async function pollJob(id) {
  const bar = $("progress");
  for (;;) {
    const r = await fetch("/v1/jobs/" + id, { headers: headers(false) });
    if (!r.ok) { jobError(await problem(r)); return; }
    const j = await r.json();
    const p = j.progress || {};
    if (j.status === "queued") { bar.value = 20; $("job").textContent = "queued…"; }
    else if (j.status === "running") {
      const frac = p.chunks_total ? p.chunks_done / p.chunks_total : 0;
      bar.value = 25 + 75 * frac;
      $("job").textContent = p.chunks_total
        ? `embedding ${p.chunks_done}/${p.chunks_total} chunks (${(p.chunks_per_second || 0).toFixed(1)} chunks/s)`
        : `reading ${p.documents || ""} document(s)…`;
    } else if (j.status === "succeeded") {
      bar.value = 100;
      const res = j.result;
      const failed = res.failed.map((f) => `${shortName(f.source)}: ${f.reason}`).join("; ");
      $("job").textContent = `done: ${res.added} added, ${res.updated} updated, ${res.unchanged} unchanged, ` +
        `${res.chunks} chunks` + (failed ? ` — failed: ${failed}` : "");
      loadStats();
      return;
    } else { jobError("failed: " + j.error); return; }
    await new Promise((ok) => setTimeout(ok, 300));
  }
}

async function addUrl(ev) {
  ev.preventDefault();
  const url = $("url").value.trim();
  if (!url) return;
  $("job").className = "";
  $("job").textContent = "checking the URL…";
  const r = await fetch("/v1/documents", { method: "POST", headers: headers(true), body: JSON.stringify({ url }) });
  if (r.status !== 202) { jobError(await problem(r)); return; }
  pollJob((await r.json()).job);
}

function setupDrop() {
  const drop = $("drop"), input = $("file");
  drop.addEventListener("click", () => input.click());
  drop.addEventListener("keydown", (e) => {
    if (e.key === "Enter" || e.key === " ") { e.preventDefault(); input.click(); }
  });
  input.addEventListener("change", () => { upload([...input.files]); input.value = ""; });
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    upload([...e.dataTransfer.files]);
  });
}

$("ask-form").addEventListener("submit", ask);
$("search-btn").addEventListener("click", searchOnly);
$("url-form").addEventListener("submit", addUrl);
$("passage-close").addEventListener("click", () => { $("passage").hidden = true; $("answer").focus(); });
document.addEventListener("keydown", (e) => { if (e.key === "Escape") $("passage").hidden = true; });
$("apikey").addEventListener("change", loadStats);
setupDrop();
loadStats();
