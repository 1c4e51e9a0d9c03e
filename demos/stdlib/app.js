// Demo page for the datasole browser client. Plain script, no build step: the client comes
// from /__ds/datasole.iife.min.js as the global Datasole. Everything here uses only v1
// features (RPC, events, STATE_PATCH/SNAPSHOT, CRDT_STATE), so it runs against any v1 server.
(function () {
  "use strict";

  var page = new URLSearchParams(location.search);
  var client = new Datasole.DatasoleClient({
    url: location.origin,
    auth: page.get("token") ? { token: page.get("token") } : undefined,
    useWorker: page.get("worker") !== "0",
  });

  var $ = function (id) { return document.getElementById(id); };

  // Connection status.
  var toggle = $("toggle");
  var wanted = true;
  client.onConnectionState(function (state, info) {
    $("status").textContent = state;
    $("status-dot").className = "dot " + state;
    var detail = "";
    if (state === "reconnecting") detail = "attempt " + info.attempt + ", retry in " + Math.round(info.delay / 1000) + " s";
    if (state === "disconnected" && info.gaveUp) detail = "gave up; press Connect to try again";
    $("status-detail").textContent = detail;
    toggle.textContent = state === "disconnected" ? "Connect" : "Disconnect";
    wanted = state !== "disconnected";
    var online = state === "connected";
    document.querySelectorAll("main button").forEach(function (b) {
      // The counter works offline: its ops are queued and sent on reconnect.
      if (b.id !== "like" && b.id !== "unlike") b.disabled = !online;
    });
  });
  toggle.addEventListener("click", function () {
    if (wanted) client.disconnect();
    else client.connect().catch(function () {});
  });

  // Chat: emit chat:send, render chat:message.
  var log = $("chat-log");
  client.on("chat:message", function (e) {
    var m = e.data || {};
    var li = document.createElement("li");
    var who = document.createElement("b");
    who.textContent = m.from || "?";
    var when = document.createElement("time");
    var at = new Date(typeof m.at === "number" ? m.at : e.timestamp);
    when.dateTime = at.toISOString();
    when.textContent = at.toLocaleTimeString();
    li.append(who, String(m.text || ""), when);
    log.append(li);
    while (log.children.length > 200) log.firstChild.remove();
    log.scrollTop = log.scrollHeight;
  });
  $("chat-form").addEventListener("submit", function (ev) {
    ev.preventDefault();
    var input = $("chat-text");
    var text = input.value.trim();
    if (!text) return;
    try {
      client.emit("chat:send", { text: text });
      input.value = "";
    } catch (err) {
      show(err, true);
    }
  });

  // Dashboard: live state key "dashboard".
  client.subscribeState("dashboard", function (d) {
    d = d || {};
    $("dash-connections").textContent = num(d.connections);
    $("dash-messages").textContent = num(d.messages);
    $("dash-started").textContent = typeof d.startedAt === "number" ? new Date(d.startedAt).toLocaleString() : "–";
  });

  // Shared counter: pn-counter "likes", sent as CRDT_OP, merged from CRDT_STATE.
  var likes = client.registerCrdt().register("likes", "pn-counter");
  likes.subscribe(function (v) { $("likes").textContent = String(v); });
  $("like").addEventListener("click", function () { likes.increment(); });
  $("unlike").addEventListener("click", function () { likes.decrement(); });

  // RPC panel.
  $("add-form").addEventListener("submit", function (ev) {
    ev.preventDefault();
    var params = { a: Number($("add-a").value), b: Number($("add-b").value) };
    call("add", params);
  });
  $("whoami").addEventListener("click", function () { call("whoami"); });

  client.onError(function (err) { show(err, true); });

  function call(method, params) {
    var started = performance.now();
    client.rpc(method, params).then(
      function (result) {
        show(method + " → " + JSON.stringify(result, null, 2) + "\n(" + Math.round(performance.now() - started) + " ms)", false);
      },
      function (err) { show(err, true); }
    );
  }

  function show(what, isError) {
    var out = $("rpc-out");
    out.textContent = what instanceof Error ? what.name + ": " + what.message + (what.code !== undefined ? " (" + what.code + ")" : "") : what;
    out.classList.toggle("error", isError);
  }

  function num(n) { return typeof n === "number" ? n.toLocaleString() : "–"; }

  client.connect().catch(function () { /* the status line shows the retry schedule */ });
})();
