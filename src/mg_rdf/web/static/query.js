/* The query page: runs the editor's query against /sparql with fetch() and
 * shows the answer as a table (SELECT/ASK from SPARQL JSON results,
 * CONSTRUCT/DESCRIBE from N-Triples as subject/predicate/object rows).
 * Everything from the server is put in the page with textContent: a literal
 * can never become markup.
 */
(function () {
  "use strict";

  var layout = document.querySelector(".query-layout");
  if (!layout) return;
  var ENDPOINT = layout.dataset.endpoint;
  var BASE = layout.dataset.base;
  var ENTITY_ROOT = layout.dataset.entityRoot;
  var PREFIXES = JSON.parse(document.getElementById("query-prefixes").textContent);
  var PREFIX_LIST = Object.keys(PREFIXES).map(function (p) { return [p, PREFIXES[p]]; })
    .sort(function (a, b) { return b[1].length - a[1].length; });   // longest namespace wins

  var form = document.getElementById("query-form");
  var textarea = document.getElementById("query-text");
  var status = document.getElementById("query-status");
  var results = document.getElementById("query-results");
  var errorBox = document.getElementById("query-error");
  var truncated = document.getElementById("query-truncated");
  var downloads = document.getElementById("query-downloads");
  var editor = window.SparqlEditor ? window.SparqlEditor.attach(textarea)
    : { getValue: function () { return textarea.value; }, setValue: function (t) { textarea.value = t; } };

  document.querySelectorAll(".js-only").forEach(function (el) { el.hidden = false; });
  document.querySelectorAll(".nojs-only").forEach(function (el) { el.hidden = true; });

  /** "results" for SELECT/ASK, "graph" for CONSTRUCT/DESCRIBE, null if unclear. */
  function queryForm(text) {
    var masked = text.replace(/#[^\n]*|"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*'|<[^<>"{}|^`\\\s]*>/g, " ");
    var m = /\b(SELECT|ASK|CONSTRUCT|DESCRIBE)\b/i.exec(masked);
    if (!m) return null;
    return /^(SELECT|ASK)$/i.test(m[1]) ? "results" : "graph";
  }

  function updateDownloads(text) {
    var form = queryForm(text);
    downloads.querySelectorAll("[data-form]").forEach(function (group) {
      group.hidden = form !== null && group.dataset.form !== form;
    });
    downloads.querySelectorAll("a[data-format]").forEach(function (a) {
      var fmt = a.dataset.format;
      a.href = ENDPOINT + "?query=" + encodeURIComponent(text) + "&format=" + fmt;
      a.setAttribute("download", "query-results." + fmt);
    });
  }

  // --- terms -------------------------------------------------------------

  function compact(iri) {
    for (var i = 0; i < PREFIX_LIST.length; i++) {
      var ns = PREFIX_LIST[i][1];
      if (iri.indexOf(ns) === 0 && /^[\w.\-]*$/.test(iri.slice(ns.length))) return PREFIX_LIST[i][0] + ":" + iri.slice(ns.length);
    }
    return iri;
  }

  /** An IRI of ours ({BASE}id/...) links to this server's page; others link as they are. */
  function iriCell(iri) {
    var a = document.createElement("a");
    a.title = iri;
    if (iri.indexOf(BASE + "id/") === 0) {
      var local = iri.slice(BASE.length + 3);
      a.href = ENTITY_ROOT + local;
      a.textContent = local;
      a.className = "entity-link";
    } else {
      if (/^https?:/i.test(iri)) a.href = iri;
      a.textContent = compact(iri);
    }
    return a;
  }

  // Datatypes a reader recognises from the value itself: no "^^" note for them.
  var PLAIN_TYPES = /^http:\/\/www\.w3\.org\/2001\/XMLSchema#(string|integer|decimal|double|boolean)$/;

  /** A cell for a term in SPARQL JSON results form ({type, value, datatype, xml:lang}). */
  function termCell(term) {
    var td = document.createElement("td");
    if (!term) return td;
    if (term.type === "uri") {
      td.appendChild(iriCell(term.value));
    } else if (term.type === "bnode") {
      td.textContent = "_:" + term.value;
      td.className = "bnode";
    } else if (term.type === "triple") {
      td.textContent = "<< " + ["subject", "predicate", "object"].map(function (k) {
        return term.value[k].value; }).join(" ") + " >>";
    } else {
      var span = document.createElement("span");
      span.className = "literal";
      span.textContent = term.value;
      td.appendChild(span);
      var lang = term["xml:lang"], dt = term.datatype;
      if (lang || (dt && !PLAIN_TYPES.test(dt))) {
        var small = document.createElement("small");
        small.className = "term-annotation";
        small.textContent = lang ? "@" + lang : "^^" + compact(dt);
        td.appendChild(small);
      }
    }
    return td;
  }

  function table(columns, rows) {
    var t = document.createElement("table");
    t.className = "results-table";
    var head = t.createTHead().insertRow();
    columns.forEach(function (c) {
      var th = document.createElement("th");
      th.scope = "col";
      th.textContent = c;
      head.appendChild(th);
    });
    var body = t.createTBody();
    var frag = document.createDocumentFragment();
    rows.forEach(function (row) {
      var tr = document.createElement("tr");
      columns.forEach(function (c, i) { tr.appendChild(termCell(Array.isArray(row) ? row[i] : row[c])); });
      frag.appendChild(tr);
    });
    body.appendChild(frag);
    return t;
  }

  // --- N-Triples (what CONSTRUCT/DESCRIBE answers are fetched as) ---------

  var NT_TERM = /\s*(?:<([^>]*)>|_:(\S+)|"((?:[^"\\]|\\.)*)"(?:@([A-Za-z0-9\-]+)|\^\^<([^>]*)>)?)/y;

  function unescapeNt(s) {
    return s.replace(/\\(?:u([0-9A-Fa-f]{4})|U([0-9A-Fa-f]{8})|(.))/g, function (_, u4, u8, c) {
      if (u4 || u8) return String.fromCodePoint(parseInt(u4 || u8, 16));
      return { t: "\t", n: "\n", r: "\r", b: "\b", f: "\f" }[c] || c;
    });
  }

  function parseNTriples(text) {
    var triples = [];
    text.split("\n").forEach(function (line) {
      if (!line.trim() || line.trim()[0] === "#") return;
      var terms = [], m;
      NT_TERM.lastIndex = 0;
      for (var i = 0; i < 3 && (m = NT_TERM.exec(line)); i++) {
        if (m[1] !== undefined) terms.push({ type: "uri", value: unescapeNt(m[1]) });
        else if (m[2] !== undefined) terms.push({ type: "bnode", value: m[2] });
        else terms.push({ type: "literal", value: unescapeNt(m[3]), "xml:lang": m[4], datatype: m[5] && unescapeNt(m[5]) });
      }
      if (terms.length === 3) triples.push(terms);
    });
    return triples;
  }

  // --- running -----------------------------------------------------------

  var running = null;

  function show(el, on) { el.hidden = !on; }

  function run() {
    var text = editor.getValue();
    var kind = queryForm(text);
    if (running) running.abort();
    var controller = running = new AbortController();
    show(errorBox, false);
    show(truncated, false);
    status.textContent = "Running…";
    results.setAttribute("aria-busy", "true");
    updateDownloads(text);
    history.replaceState(null, "", "?query=" + encodeURIComponent(text));
    var accept = kind === "results" ? "application/sparql-results+json"
      : kind === "graph" ? "application/n-triples"
      : "application/sparql-results+json, application/n-triples;q=0.9";
    var started = performance.now();
    fetch(ENDPOINT, {
      method: "POST", body: text, signal: controller.signal,
      headers: { "Content-Type": "application/sparql-query", "Accept": accept },
    }).then(function (resp) {
      return resp.text().then(function (body) { return { resp: resp, body: body }; });
    }).then(function (r) {
      if (controller !== running) return;
      var ms = Math.round(performance.now() - started);
      results.removeAttribute("aria-busy");
      results.textContent = "";
      if (!r.resp.ok) return failed(r.resp, r.body, ms);
      var type = (r.resp.headers.get("Content-Type") || "").split(";")[0].trim();
      var count;
      if (type === "application/sparql-results+json" || type === "application/json") {
        var data = JSON.parse(r.body);
        if (typeof data.boolean === "boolean") {
          var p = document.createElement("p");
          p.className = "ask-answer";
          p.textContent = "Answer: " + (data.boolean ? "yes (true)" : "no (false)");
          results.appendChild(p);
          status.textContent = "ASK answered in " + ms + " ms";
          return;
        }
        var rows = data.results.bindings;
        results.appendChild(table(data.head.vars || [], rows));
        count = rows.length;
        status.textContent = count + " row" + (count === 1 ? "" : "s") + " in " + ms + " ms";
      } else {
        var triples = parseNTriples(r.body);
        results.appendChild(table(["subject", "predicate", "object"], triples));
        count = triples.length;
        status.textContent = count + " triple" + (count === 1 ? "" : "s") + " in " + ms + " ms";
      }
      show(truncated, r.resp.headers.get("MG-RDF-Truncated") === "true");
    }).catch(function (err) {
      if (err.name === "AbortError" || controller !== running) return;
      results.removeAttribute("aria-busy");
      status.textContent = "";
      showError("The server could not be reached: " + err.message);
    });
  }

  function failed(resp, body, ms) {
    var type = (resp.headers.get("Content-Type") || "");
    // Error pages in HTML would show as markup; keep only their text.
    if (type.indexOf("html") >= 0) {
      var doc = new DOMParser().parseFromString(body, "text/html");
      body = (doc.querySelector("main") || doc.body).textContent.trim().replace(/\n\s*\n+/g, "\n");
    }
    status.textContent = "Failed after " + ms + " ms (HTTP " + resp.status + ")";
    showError(body || resp.statusText);
  }

  function showError(message) {
    errorBox.querySelector("pre").textContent = message;
    // Parser messages name a position ("error at 3:14"): offer to put the caret there.
    var at = /at (\d+):(\d+)/.exec(message), jump = errorBox.querySelector("button");
    if (jump) jump.remove();
    if (at) {
      jump = document.createElement("button");
      jump.type = "button";
      jump.textContent = "Go to line " + at[1] + ", column " + at[2];
      jump.addEventListener("click", function () { caretTo(+at[1], +at[2]); });
      errorBox.appendChild(jump);
    }
    show(errorBox, true);
  }

  function caretTo(line, column) {
    var lines = textarea.value.split("\n"), offset = 0;
    for (var i = 0; i < line - 1 && i < lines.length; i++) offset += lines[i].length + 1;
    offset += Math.max(0, column - 1);
    textarea.focus();
    textarea.setSelectionRange(offset, Math.min(offset + 1, textarea.value.length));
  }

  form.addEventListener("submit", function (e) {
    // The per-format buttons (no-JS downloads) submit normally; Run stays on the page.
    if (e.submitter && e.submitter.name === "format") return;
    e.preventDefault();
    run();
  });
  document.addEventListener("keydown", function (e) {
    if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) { e.preventDefault(); run(); }
  });
  document.querySelectorAll("a.query-example").forEach(function (a) {
    a.addEventListener("click", function (e) {
      if (e.button !== 0 || e.ctrlKey || e.metaKey || e.shiftKey) return;   // let "open in new tab" work
      e.preventDefault();
      editor.setValue(new URL(a.href).searchParams.get("query") || "");
      document.querySelectorAll("a.query-example[aria-current]").forEach(function (x) { x.removeAttribute("aria-current"); });
      a.setAttribute("aria-current", "true");
      run();
    });
  });
  var pending;
  textarea.addEventListener("input", function () {
    clearTimeout(pending);
    pending = setTimeout(function () { updateDownloads(editor.getValue()); }, 200);
  });
  updateDownloads(editor.getValue());
})();
