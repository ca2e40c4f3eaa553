// Keeps the today list current: fetches the list alone every 30 s and puts it in place; pauses while the tab is hidden.
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

  function refresh() {
    // Never pull the list from under the keyboard focus or a selection: try again at the next tick.
    if (box.contains(document.activeElement) && document.activeElement !== box) { schedule(every); return; }
    fetch(url, { credentials: "same-origin", headers: { "X-Requested-With": "fetch" }, cache: "no-store" })
      .then(function (r) {
        // Logged out or expired session: the answer is the login page, so stop and let the refresh link do the rest.
        if (r.redirected || r.status === 401 || r.status === 403) { stopped = true; return null; }
        return r.ok ? r.text() : null;
      })
      .then(function (html) {
        if (html !== null && html !== undefined) { box.innerHTML = html; }
        schedule(every);
      })
      .catch(function () { schedule(every); });
  }

  document.addEventListener("visibilitychange", function () {
    if (document.hidden) { clearTimeout(timer); } else { schedule(0); }
  });
  schedule(every);
})();
