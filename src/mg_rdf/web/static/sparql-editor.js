/* A small SPARQL editor: the textarea stays the real input (forms, undo,
 * accessibility and no-JS all keep working); a <pre> behind it shows the same
 * text with syntax highlighting. No dependencies, works offline.
 *
 *   const editor = SparqlEditor.attach(textarea);
 *   editor.setValue("SELECT * { ?s ?p ?o } LIMIT 10");
 */
(function () {
  "use strict";

  var KEYWORDS = ("BASE PREFIX SELECT DISTINCT REDUCED AS CONSTRUCT DESCRIBE ASK FROM NAMED WHERE " +
    "ORDER BY ASC DESC LIMIT OFFSET GROUP HAVING VALUES OPTIONAL UNION MINUS GRAPH SERVICE SILENT " +
    "BIND FILTER NOT EXISTS IN UNDEF a true false").split(" ");
  var FUNCTIONS = ("COUNT SUM MIN MAX AVG SAMPLE GROUP_CONCAT SEPARATOR STR LANG LANGMATCHES DATATYPE " +
    "BOUND IRI URI BNODE RAND ABS CEIL FLOOR ROUND CONCAT STRLEN UCASE LCASE ENCODE_FOR_URI CONTAINS " +
    "STRSTARTS STRENDS STRBEFORE STRAFTER YEAR MONTH DAY HOURS MINUTES SECONDS TIMEZONE TZ NOW UUID " +
    "STRUUID MD5 SHA1 SHA256 SHA384 SHA512 COALESCE IF STRLANG STRDT SAMETERM ISIRI ISURI ISBLANK " +
    "ISLITERAL ISNUMERIC REGEX SUBSTR REPLACE").split(" ");
  var WORDS = {};
  KEYWORDS.forEach(function (w) { WORDS[w.toUpperCase()] = "kw"; });
  FUNCTIONS.forEach(function (w) { WORDS[w] = "fn"; });

  // One alternation, tried left to right at each position; the group that
  // matched names the token class. Order matters: comments and strings first,
  // so that '#' or '?' inside them is not read as anything else.
  var RULES = [
    ["comment", /#[^\n]*/],
    ["str", /"""[\s\S]*?(?:"""|$)|'''[\s\S]*?(?:'''|$)|"(?:[^"\\\n]|\\.)*"?|'(?:[^'\\\n]|\\.)*'?/],
    ["iri", /<[^<>"{}|^`\\\s]*>/],
    ["var", /[?$][A-Za-z0-9_\u00B7\u00C0-\uFFFF]+/],
    ["lang", /@[A-Za-z]+(?:-[A-Za-z0-9]+)*/],
    ["pname", /(?:[A-Za-z\u00C0-\uFFFF][\w.\-\u00C0-\uFFFF]*)?:(?:[\w\-\u00C0-\uFFFF%]|\\.|\.(?=[\w\-]))*/],
    ["bnode", /_:[\w\-]+/],
    ["num", /[+-]?(?:\d+\.?\d*(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?)/],
    ["word", /[A-Za-z_][A-Za-z0-9_]*/],
    ["ws", /\s+/],
    ["punct", /\^\^|&&|\|\||!=|<=|>=|[{}()\[\].,;*+\-\/=<>!|^]|./],
  ];
  var MASTER = new RegExp(RULES.map(function (r) { return "(" + r[1].source + ")"; }).join("|"), "gy");

  /** Split SPARQL text into [class, text] tokens (class "" for plain text). */
  function tokenize(text) {
    var out = [], m;
    MASTER.lastIndex = 0;
    while (MASTER.lastIndex < text.length && (m = MASTER.exec(text)) !== null) {
      var i = 1;
      while (m[i] === undefined) i++;
      var kind = RULES[i - 1][0], value = m[0];
      if (kind === "word") kind = WORDS[value.toUpperCase()] || (value === "a" ? "kw" : "");
      else if (kind === "ws" || kind === "punct") kind = "";
      if (value === "") { MASTER.lastIndex++; continue; }
      out.push([kind, value]);
    }
    return out;
  }

  function escapeHtml(s) {
    return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
  }

  /** The highlighted HTML of ``text``: every token escaped, classed ones in a span. */
  function highlight(text) {
    return tokenize(text).map(function (t) {
      var html = escapeHtml(t[1]);
      return t[0] ? '<span class="sq-' + t[0] + '">' + html + "</span>" : html;
    }).join("");
  }

  /** Attach highlighting to a textarea inside a .sparql-editor container. */
  function attach(textarea) {
    var box = textarea.parentNode;
    var pre = document.createElement("pre");
    pre.className = "sparql-highlight";
    pre.setAttribute("aria-hidden", "true");
    var code = document.createElement("code");
    pre.appendChild(code);
    box.insertBefore(pre, textarea);
    box.classList.add("is-enhanced");

    function refresh() {
      // A trailing newline needs something after it, or the <pre> is one line short.
      code.innerHTML = highlight(textarea.value) + "\n ";
      syncScroll();
    }
    function syncScroll() {
      pre.scrollTop = textarea.scrollTop;
      pre.scrollLeft = textarea.scrollLeft;
    }
    textarea.addEventListener("input", refresh);
    textarea.addEventListener("scroll", syncScroll);
    // Tab indents (two spaces) instead of leaving the editor, unless Shift is held;
    // Escape then Tab still moves focus on, so the editor is never a keyboard trap.
    var escaped = false;
    textarea.addEventListener("keydown", function (e) {
      if (e.key === "Escape") { escaped = true; return; }
      if (e.key === "Tab" && !e.shiftKey && !escaped && !e.ctrlKey && !e.metaKey && !e.altKey) {
        e.preventDefault();
        var start = textarea.selectionStart, end = textarea.selectionEnd;
        textarea.setRangeText("  ", start, end, "end");
        refresh();
      }
      escaped = false;
    });
    refresh();
    return {
      textarea: textarea,
      refresh: refresh,
      getValue: function () { return textarea.value; },
      setValue: function (text) { textarea.value = text; refresh(); },
    };
  }

  window.SparqlEditor = { attach: attach, tokenize: tokenize, highlight: highlight };
})();
