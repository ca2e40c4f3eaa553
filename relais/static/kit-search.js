// The record form's device list, faster: a search box narrows the list to the devices every typed word matches (any
// word of the maker or the device, or its number; accents and case ignored), ranked as relais/screenings/kits.py
// search_devices ranks them; typing on the list itself goes to the box. A keyboard-wedge scanner typing a box's barcode
// then Enter fills device, lot and expiry (read on the server: /kits/scan/); a box this pharmacy never scanned asks once
// which catalogue device it is, and the answer is remembered when the test is recorded.
// Without JavaScript the list and the "Barcode of the kit box" field work as they are.
(function () {
  "use strict";
  var select = document.getElementById("id_device");
  var ui = document.getElementById("kit-search-ui");
  if (!select || !select.form || !ui || !("content" in ui)) { return; }
  var form = select.form;
  var field = function (name) { return form.elements.namedItem(name); };
  var scanField = field("scan");
  var gtinField = field("scan_gtin");
  var lotField = field("kit_lot");
  var expiryField = field("kit_expiry");
  var scanUrl = ui.getAttribute("data-scan-url");

  var WORD = /[\p{L}\p{N}]+/gu;
  function fold(text) { return text.normalize("NFKD").replace(/\p{M}/gu, "").toLowerCase(); }
  function words(text) { return fold(text).match(WORD) || []; }

  var entries = [];
  Array.prototype.forEach.call(select.options, function (option) {
    if (!option.value) { return; }
    var name = (option.getAttribute("data-name") || "").split(" ").filter(Boolean);
    var other = (option.getAttribute("data-other") || "").split(" ").filter(Boolean);
    entries.push({ value: option.value, text: option.text, name: name, other: other, whole: name.concat(other).join(" ") });
  });
  var fullList = select.innerHTML;
  var filtered = false;

  // Same as kits._score: 0 a word starting a word of the name, 1 one starting the maker's or the id, 2 found inside.
  function startsOne(list, word) { return list.some(function (w) { return w.indexOf(word) === 0; }); }
  function score(query, entry) {
    var total = 0;
    for (var i = 0; i < query.length; i++) {
      if (startsOne(entry.name, query[i])) { continue; }
      if (startsOne(entry.other, query[i])) { total += 1; } else if (entry.whole.indexOf(query[i]) >= 0) { total += 2; } else { return null; }
    }
    return total;
  }

  var box, statusLine, alertLine;
  var wrapper = select.closest(".field");
  var clone = ui.content.cloneNode(true);
  wrapper.parentNode.insertBefore(clone, wrapper);
  box = document.getElementById("kit-filter");
  statusLine = document.getElementById("kit-filter-status");
  alertLine = document.getElementById("kit-filter-alert");
  var scanWrapper = scanField && scanField.closest(".field");
  // The search box takes the scans; the plain field stays for a page without JavaScript (or to show its error).
  if (scanWrapper && !scanWrapper.classList.contains("invalid")) { scanWrapper.hidden = true; }

  function say(text) { statusLine.textContent = text; }
  function warn(text) { alertLine.textContent = text; }
  function count(n) {
    if (n === 0) { return ui.getAttribute("data-none"); }
    return (n === 1 ? ui.getAttribute("data-one") : ui.getAttribute("data-many")).replace("%(count)s", String(n));
  }

  function restore() {
    if (!filtered) { return; }
    var value = select.value;
    select.innerHTML = fullList;
    select.value = value;
    select.removeAttribute("size");
    filtered = false;
  }

  function filter(text) {
    var query = words(text);
    if (!query.length) { restore(); say(""); return; }
    var found = [];
    entries.forEach(function (entry, index) {
      var s = score(query, entry);
      if (s !== null) { found.push([s, index, entry]); }
    });
    found.sort(function (a, b) { return a[0] - b[0] || a[1] - b[1]; });
    select.innerHTML = "";
    found.forEach(function (f) { select.appendChild(new Option(f[2].text, f[2].value)); });
    filtered = true;
    if (found.length > 1) { select.size = Math.min(found.length, 6); } else { select.removeAttribute("size"); }
    if (found.length) { select.value = found[0][2].value; }
    say(count(found.length));
  }

  function looksScanned(text) { return /^\s*(\]|\(\d\d\)|\d{8,})/.test(text) || text.indexOf("\u001d") >= 0; }

  function next() { (field("specimen_type") || lotField || select).focus(); }

  function choose() {
    if (!select.value) { return; }
    restore();
    box.value = "";
    say(select.options[select.selectedIndex].text);
    next();
  }

  function scan(raw) {
    warn("");
    say(ui.getAttribute("data-reading"));
    var body = new FormData();
    body.append("scan", raw);
    body.append("csrfmiddlewaretoken", field("csrfmiddlewaretoken").value);
    fetch(scanUrl, { method: "POST", body: body, credentials: "same-origin", headers: { "X-Requested-With": "fetch" } })
      .then(function (r) { return r.ok ? r.json() : { ok: false, error: ui.getAttribute("data-failed") }; })
      .catch(function () { return { ok: false, error: ui.getAttribute("data-failed") }; })
      .then(function (data) {
        box.value = "";
        restore();
        if (!data.ok) {
          if (scanField) { scanField.value = ""; }
          if (gtinField) { gtinField.value = ""; }
          say("");
          warn(data.error);
          box.focus();
          return;
        }
        if (scanField) { scanField.value = raw; }
        if (data.lot && lotField) { lotField.value = data.lot; }
        if (data.expiry && expiryField) { expiryField.value = data.expiry; }
        if (data.expired) { warn(data.expired); }
        if (data.device) {
          if (gtinField) { gtinField.value = ""; }
          select.value = data.device;
          say(data.message);
          if (!data.expired) { next(); } else { box.focus(); }
        } else {
          if (gtinField) { gtinField.value = data.gtin; }
          select.value = "";
          say(data.message);
          box.focus();
        }
      });
  }

  box.addEventListener("input", function () {
    warn("");
    if (!looksScanned(box.value)) { filter(box.value); }
  });
  box.addEventListener("keydown", function (event) {
    if (event.key === "Enter") {
      event.preventDefault();
      if (looksScanned(box.value)) { scan(box.value); } else { choose(); }
    } else if (event.key === "ArrowDown" || event.key === "ArrowUp") {
      event.preventDefault();
      var step = event.key === "ArrowDown" ? 1 : -1;
      select.selectedIndex = Math.max(0, Math.min(select.options.length - 1, select.selectedIndex + step));
      if (select.selectedIndex >= 0) { say(select.options[select.selectedIndex].text); }
    } else if (event.key === "Escape" && box.value) {
      event.preventDefault();
      box.value = "";
      restore();
      say("");
    }
  });
  // Letters and digits typed on the list go to the search box (a scanner's first character too), instead of the
  // browser's jump to the first option starting with that letter.
  select.addEventListener("keydown", function (event) {
    if (event.key.length !== 1 || event.key === " " || event.ctrlKey || event.metaKey || event.altKey) { return; }
    event.preventDefault();
    box.value = event.key;
    box.focus();
    box.dispatchEvent(new Event("input"));
  });
  // Picking a device by hand overrides an earlier scan's device (not the answer to a new box's question).
  select.addEventListener("change", function () {
    if (scanField && !(gtinField && gtinField.value)) { scanField.value = ""; }
  });
})();
