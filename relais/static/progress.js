// Follows a file import: polls its status and updates the progress bar; reloads once it is finished to show the rows to fix.
(function () {
  "use strict";
  var box = document.getElementById("progress");
  if (!box || box.dataset.running !== "1") { return; }
  var url = box.dataset.statusUrl;
  function tick() {
    fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (s) {
        if (!s) { setTimeout(tick, 3000); return; }
        var bar = document.getElementById("progress-bar");
        bar.max = s.total || 1;
        bar.value = s.processed;
        bar.textContent = s.percent + " %";
        document.getElementById("progress-text").textContent = s.processed + " / " + s.total;
        document.getElementById("status-label").textContent = s.status_label;
        ["accepted", "duplicates", "rejected"].forEach(function (k) { document.getElementById("n-" + k).textContent = s[k]; });
        if (s.status === "done" || s.status === "failed") { window.location.reload(); } else { setTimeout(tick, 1000); }
      })
      .catch(function () { setTimeout(tick, 3000); });
  }
  setTimeout(tick, 500);
})();
