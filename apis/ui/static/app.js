// left4me dashboard: the few things a server-rendered page cannot do
// alone. Loaded from this origin only (the CSP allows no inline script).
// Every value from the server is set as text, never as HTML.
"use strict";

// Ask before a form marked data-confirm is sent (Start, Stop).
document.addEventListener("submit", function (ev) {
  var msg = ev.target.getAttribute("data-confirm");
  if (msg && !window.confirm(msg)) {
    ev.preventDefault();
  }
});

function cell(text, cls) {
  var td = document.createElement("td");
  td.textContent = text || "";
  if (cls) td.className = cls;
  return td;
}

function nodeRow(n) {
  var tr = document.createElement("tr");
  tr.setAttribute("data-key", n.name);
  tr.append(cell(n.name), cell(n.ready, "ready-" + n.ready), cell(n.cordoned), cell(n.used), cell(n.build));
  return tr;
}

function link(href, text) {
  var td = document.createElement("td");
  var a = document.createElement("a");
  a.href = href;
  a.textContent = text;
  td.append(a);
  return td;
}

function instanceRow(i) {
  var tr = document.createElement("tr");
  tr.setAttribute("data-key", i.key);
  tr.append(cell(i.namespace), link(i.url, i.name), link(i.bpURL, i.blueprint), cell(i.phase), cell(i.node), cell(i.address), cell(i.map), cell(i.players), cell(i.ready, "ready-" + i.ready));
  return tr;
}

// upsert replaces, inserts (in key order) or removes one row of a table.
function upsert(table, key, row, deleted) {
  var body = table && table.tBodies[0];
  if (!body) return;
  var old = null;
  for (var r of body.rows) {
    if (r.getAttribute("data-key") === key) old = r;
  }
  if (deleted) {
    if (old) old.remove();
    return;
  }
  if (old) {
    old.replaceWith(row);
    return;
  }
  for (var r2 of body.rows) {
    if (r2.getAttribute("data-key") > key) {
      body.insertBefore(row, r2);
      return;
    }
  }
  body.append(row);
}

function replaceAll(table, rows) {
  var body = table && table.tBodies[0];
  if (body) body.replaceChildren.apply(body, rows);
}

// The fleet page follows the server's event stream (the store's watches,
// filtered by what this session may see).
function followFleet(live) {
  var nodes = document.getElementById("nodes");
  var instances = document.getElementById("instances");
  var es = new EventSource(live.getAttribute("data-stream"));
  es.addEventListener("open", function () { live.textContent = "live"; live.className = "live on"; });
  es.addEventListener("error", function () { live.textContent = "reconnecting…"; live.className = "live off"; });
  es.addEventListener("snapshot", function (ev) {
    var d = JSON.parse(ev.data);
    replaceAll(nodes, (d.nodes || []).map(nodeRow));
    replaceAll(instances, (d.instances || []).map(instanceRow));
  });
  es.addEventListener("node", function (ev) {
    var n = JSON.parse(ev.data);
    upsert(nodes, n.name, nodeRow(n), n.deleted);
  });
  es.addEventListener("instance", function (ev) {
    var i = JSON.parse(ev.data);
    upsert(instances, i.key, instanceRow(i), i.deleted);
  });
}

// The instance page streams the game's log into its <pre>.
async function followLog(pre) {
  try {
    var resp = await fetch(pre.getAttribute("data-stream"), {credentials: "same-origin"});
    if (!resp.ok) {
      var text = await resp.text();
      try { text = JSON.parse(text).message || text; } catch (e) { /* plain text */ }
      pre.textContent = "log unavailable (" + resp.status + "): " + text;
      return;
    }
    var reader = resp.body.getReader();
    var dec = new TextDecoder();
    for (;;) {
      var r = await reader.read();
      if (r.done) break;
      pre.append(document.createTextNode(dec.decode(r.value, {stream: true})));
      pre.scrollTop = pre.scrollHeight;
    }
  } catch (e) {
    pre.append(document.createTextNode("\n[log stream ended: " + e + "]"));
  }
}

// The instance page's console (editors): a WebSocket to this origin on
// which the game's new log lines and the answers to the commands typed
// arrive. The server checks every command; this only shows them.
function openConsole(out) {
  var form = document.getElementById("console-form");
  var input = document.getElementById("console-input");
  var state = document.getElementById("console-state");
  function show(text, cls) {
    var span = document.createElement("span");
    span.className = cls;
    span.textContent = text.replace(/\n$/, "") + "\n";
    out.append(span);
    out.scrollTop = out.scrollHeight;
  }
  var scheme = location.protocol === "https:" ? "wss://" : "ws://";
  var ws = new WebSocket(scheme + location.host + out.getAttribute("data-stream"));
  ws.addEventListener("open", function () {
    state.textContent = "live";
    state.className = "live on";
    input.disabled = false;
    input.focus();
  });
  ws.addEventListener("message", function (ev) {
    var m = JSON.parse(ev.data);
    if (m.type === "log") show(m.line, "console-log");
    else if (m.type === "output" && (m.output || m.truncated)) show((m.output || "") + (m.truncated ? "\n[cut at 64 KiB]" : ""), "console-output");
    else if (m.type === "error") show("error: " + m.message, "console-error");
  });
  ws.addEventListener("close", function (ev) {
    state.textContent = ev.reason ? "closed: " + ev.reason : "closed (is the game running?)";
    state.className = "live off";
    input.disabled = true;
  });
  form.addEventListener("submit", function (ev) {
    ev.preventDefault();
    var command = input.value.trim();
    if (!command || ws.readyState !== WebSocket.OPEN) return;
    show("> " + command, "console-command");
    ws.send(JSON.stringify({type: "command", command: command}));
    input.value = "";
  });
}

// The instance page's players: asked again every 5 s (each time the API
// asks the game; nothing is stored), one request at a time.
function refreshPlayers(section) {
  var summary = document.getElementById("players-summary");
  var message = document.getElementById("players-message");
  var table = document.getElementById("players");
  function row(p) {
    var tr = document.createElement("tr");
    tr.append(cell(p.name), cell(p.steamID), cell(p.score), cell(p.time), cell(p.ping));
    return tr;
  }
  async function once() {
    try {
      var resp = await fetch(section.getAttribute("data-refresh"), {credentials: "same-origin"});
      if (!resp.ok) throw new Error("HTTP " + resp.status);
      var d = await resp.json();
      summary.textContent = d.summary;
      message.textContent = d.message;
      replaceAll(table, (d.rows || []).map(row));
    } catch (e) {
      message.textContent = "Players unavailable: " + e.message;
    }
    setTimeout(once, 5000);
  }
  setTimeout(once, 5000);
}

document.addEventListener("DOMContentLoaded", function () {
  var live = document.getElementById("live");
  if (live) followFleet(live);
  var log = document.getElementById("log");
  if (log) followLog(log);
  var consoleOut = document.getElementById("console");
  if (consoleOut) openConsole(consoleOut);
  var players = document.getElementById("players-section");
  if (players) refreshPlayers(players);
});
