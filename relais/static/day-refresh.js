// Keeps the today list current: every 30 s asks whether it changed (a fingerprint, no names) and puts the new list in
// place only when it did; pauses while the tab is hidden. Without JavaScript the page's refresh link does the same.
(function () {
  "use strict";
  var box = document.getElementById("day-today");
  if (!box || !box.dataset.fragmentUrl || !window.fetch) { return; }
  var url = box.dataset.fragmentUrl;
  var every = 30000;
  var timer = null;
  var stopped = false;

  function schedule(delay) {
    clearTimeout(timer);
    if (!stopped && !document.hidden) { timer = setTimeout(refresh, delay); }
  }

  function version() {
    var mark = box.querySelector("[data-list-version]");
    return mark ? mark.getAttribute("data-list-version") : "";
  }

  function checked() {
    var time = box.querySelector(".day-updated time");
    if (time) { time.textContent = new Date().toLocaleTimeString(document.documentElement.lang || undefined); }
  }

  function refresh() {
    // Never pull the list from under the keyboard focus: try again at the next tick.
    if (box.contains(document.activeElement) && document.activeElement !== box) { schedule(every); return; }
    fetch(url + "?v=" + encodeURIComponent(version()), { credentials: "same-origin", headers: { "X-Requested-With": "fetch" }, cache: "no-store" })
      .then(function (r) {
        // Logged out or expired session: the answer is the login page, so stop and let the refresh link do the rest.
        if (r.redirected || r.status === 401 || r.status === 403) { stopped = true; return null; }
        if (r.status === 204) { checked(); return null; }
        return r.ok ? r.text() : null;
      })
      .then(function (html) {
        if (html) { box.innerHTML = html; }
        schedule(every);
      })
      .catch(function () { schedule(every); });
  }

  document.addEventListener("visibilitychange", function () {
    if (document.hidden) { clearTimeout(timer); } else { schedule(0); }
  });
  schedule(every);
})();
