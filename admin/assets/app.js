// sluice-admin: the little JavaScript the pages use. Embedded in the binary (include_str!).
// - Buttons with data-url perform an admin action after a confirmation, then reload or go on.
// - "live" re-fetches the page every few seconds and swaps <main> (remembered per browser).
// - The lookup page's form creates a topic or channel; the counter page polls /api/counter.
(function () {
  "use strict";
  var base = document.body.getAttribute("data-base") || "";

  function show(message, isError) {
    var box = document.getElementById("flash");
    if (!box) { return; }
    box.textContent = message;
    box.className = isError ? "warning error" : "warning";
    box.hidden = !message;
  }

  function send(method, url, body) {
    var init = { method: method, headers: { "Content-Type": "application/json" } };
    if (body) { init.body = body; }
    return fetch(url, init).then(function (r) {
      return r.text().then(function (t) {
        var json = {};
        try { json = JSON.parse(t); } catch (e) { json = { message: t }; }
        if (!r.ok) { throw new Error((json.message || r.statusText) + " (" + r.status + ")"); }
        return json;
      });
    });
  }

  document.addEventListener("click", function (ev) {
    var button = ev.target.closest("button[data-url]");
    if (!button) { return; }
    ev.preventDefault();
    var question = button.getAttribute("data-confirm");
    if (question && !window.confirm(question)) { return; }
    button.disabled = true;
    send(button.getAttribute("data-method") || "POST", button.getAttribute("data-url"),
         button.getAttribute("data-body"))
      .then(function (json) {
        if (json.message) { show(json.message, false); }
        var next = button.getAttribute("data-then");
        if (next) { window.location.href = next; } else { refresh(); }
      })
      .catch(function (e) { show(e.message, true); })
      .then(function () { button.disabled = false; });
  });

  var form = document.querySelector("form.create");
  if (form) {
    form.addEventListener("submit", function (ev) {
      ev.preventDefault();
      var topic = form.querySelector("[name=topic]").value.trim();
      var channel = form.querySelector("[name=channel]").value.trim();
      var what = channel ? "channel " + topic + "/" + channel : "topic " + topic;
      if (!window.confirm("Create " + what + "?")) { return; }
      send("POST", base + "/api/topics", JSON.stringify({ topic: topic, channel: channel }))
        .then(function () { window.location.reload(); })
        .catch(function (e) { show(e.message, true); });
    });
  }

  function refresh() {
    return fetch(window.location.href, { headers: { "Accept": "text/html" } })
      .then(function (r) { return r.text(); })
      .then(function (html) {
        var doc = new DOMParser().parseFromString(html, "text/html");
        var fresh = doc.querySelector("main");
        var main = document.querySelector("main");
        if (fresh && main) { main.innerHTML = fresh.innerHTML; }
      })
      .catch(function () { /* keep the page as it is; the next tick retries */ });
  }

  var live = document.getElementById("live");
  var timer = null;
  function setLive(on) {
    if (timer) { clearInterval(timer); timer = null; }
    if (on) { timer = setInterval(refresh, 5000); }
    try { localStorage.setItem("sluice-admin-live", on ? "1" : "0"); } catch (e) { /* private mode */ }
  }
  if (live && !document.getElementById("counter")) {
    var stored = null;
    try { stored = localStorage.getItem("sluice-admin-live"); } catch (e) { /* private mode */ }
    live.checked = stored !== "0";
    live.addEventListener("change", function () { setLive(live.checked); });
    setLive(live.checked);
  }

  var counter = document.getElementById("counter");
  if (counter) {
    var last = null;
    var poll = function () {
      send("GET", base + "/api/counter").then(function (json) {
        var total = 0;
        Object.keys(json.stats || {}).forEach(function (k) { total += json.stats[k].message_count; });
        var now = Date.now();
        counter.textContent = total.toLocaleString();
        if (last) {
          var rate = (total - last.total) / ((now - last.at) / 1000);
          document.getElementById("counter-rate").textContent =
            (rate >= 0 ? rate.toFixed(1) : "–") + " msgs/s";
        }
        last = { total: total, at: now };
        show(json.message || "", false);
      }).catch(function (e) { show(e.message, true); });
    };
    poll();
    setInterval(poll, 2000);
  }
})();
