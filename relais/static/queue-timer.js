// The test queue's countdowns: each row counts down to its reading time (data-ready-at, seconds since 1970), then says "Ready to read" and is
// highlighted; past data-overdue-at it shows the overdue flag. A test turning ready is announced once, politely, in the
// page's live region. Every 30 s the list is fetched again when it changed (a fingerprint of ids, no names), paused while
// the tab is hidden. The server renders the same texts, so without JavaScript the page (and its refresh link) still works.
(function () {
  "use strict";
  var box = document.getElementById("queue");
  var announcer = document.getElementById("queue-announce");
  if (!box) { return; }
  var texts = box.dataset;
  var offset = 0; // server clock minus this browser's clock, from the list's data-now
  var announced = {};
  var every = 30000;
  var timer = null;
  var stopped = false;

  function syncClock() {
    var mark = box.querySelector("[data-now]");
    var server = mark ? Number(mark.getAttribute("data-now")) * 1000 : NaN;
    offset = isNaN(server) ? 0 : server - Date.now();
  }

  function fill(template, name, value) {
    return template.replace("%(" + name + ")s", value);
  }

  function pad(n) { return (n < 10 ? "0" : "") + n; }

  function tick() {
    var now = Date.now() + offset;
    var rows = box.querySelectorAll("[data-ready-at]");
    for (var i = 0; i < rows.length; i++) {
      var row = rows[i];
      var readyAt = Number(row.getAttribute("data-ready-at")) * 1000;
      var overdueAt = Number(row.getAttribute("data-overdue-at")) * 1000;
      var countdown = row.querySelector(".queue-countdown");
      var flag = row.querySelector(".queue-flag");
      var left = Math.max(0, Math.ceil((readyAt - now) / 1000));
      var ready = left === 0;
      var text = ready ? texts.readyText : fill(texts.leftText, "time", Math.floor(left / 60) + ":" + pad(left % 60));
      if (countdown && countdown.textContent !== text) { countdown.textContent = text; }
      row.classList.toggle("queue-ready", ready);
      var link = row.querySelector("[data-testid=enter-result]");
      if (link) { link.classList.toggle("primary", ready); }
      if (flag) {
        var overdue = now >= overdueAt;
        flag.hidden = !overdue;
        row.classList.toggle("queue-overdue", overdue);
        if (overdue) {
          var minutes = String(Math.floor((now - readyAt) / 60000));
          var flagText = fill(texts.overdueText, "minutes", minutes);
          if (flag.textContent !== flagText) { flag.textContent = flagText; }
        }
      }
      var id = row.getAttribute("data-id");
      if (ready && announcer && !announced[id]) {
        announced[id] = true;
        // Rows already ready when the page opened are read with the page: announce only those that turn ready here.
        if (row.getAttribute("data-was-waiting") === "1") {
          announcer.textContent = fill(texts.announceText, "name", row.getAttribute("data-name") || "");
        }
      }
      if (!ready) { row.setAttribute("data-was-waiting", "1"); }
    }
  }

  function version() {
    var mark = box.querySelector("[data-list-version]");
    return mark ? mark.getAttribute("data-list-version") : "";
  }

  function schedule(delay) {
    clearTimeout(timer);
    if (!stopped && !document.hidden) { timer = setTimeout(refresh, delay); }
  }

  function refresh() {
    if (!window.fetch || !texts.fragmentUrl) { return; }
    // Never pull the list from under the keyboard focus: try again at the next tick.
    if (box.contains(document.activeElement) && document.activeElement !== box) { schedule(every); return; }
    fetch(texts.fragmentUrl + "?v=" + encodeURIComponent(version()), { credentials: "same-origin", headers: { "X-Requested-With": "fetch" }, cache: "no-store" })
      .then(function (r) {
        if (r.redirected || r.status === 401 || r.status === 403) { stopped = true; return null; }
        if (r.status === 204) { return null; }
        return r.ok ? r.text() : null;
      })
      .then(function (html) {
        if (html) {
          var waiting = {};
          var old = box.querySelectorAll("[data-was-waiting]");
          for (var i = 0; i < old.length; i++) { waiting[old[i].getAttribute("data-id")] = true; }
          box.innerHTML = html;
          syncClock();
          var rows = box.querySelectorAll("[data-ready-at]");
          for (var j = 0; j < rows.length; j++) {
            if (waiting[rows[j].getAttribute("data-id")]) { rows[j].setAttribute("data-was-waiting", "1"); }
          }
          tick();
        }
        schedule(every);
      })
      .catch(function () { schedule(every); });
  }

  document.addEventListener("visibilitychange", function () {
    if (document.hidden) { clearTimeout(timer); } else { schedule(0); }
  });
  syncClock();
  tick();
  setInterval(tick, 1000);
  schedule(every);
})();
