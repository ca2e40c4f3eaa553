// The "in Latin letters" fields of the patient form appear as soon as a typed name has letters no ICAO 9303 table
// transliterates (Chinese, Hebrew...), instead of after a refused submit. The rule is Python's
// (relais.certificates.transliteration.untransliterable), given as data by the server: data-latin-uncovered (characters
// with a letter no table covers), data-latin-producing (characters that give at least one letter A-Z) and
// data-latin-blank (Python's white space); a name that is not blank needs its Latin spelling when it has an uncovered
// character or no producing one (relais.certificates.icao_coverage.needs_latin). Without JavaScript the server shows the
// fields after the first submit, as before. No inline script (CSP).
(function () {
  "use strict";

  function rule(input) {
    var uncovered = new RegExp(input.dataset.latinUncovered, "u");
    var producing = new RegExp(input.dataset.latinProducing, "u");
    var blank = new RegExp("^" + input.dataset.latinBlank + "*$", "u");
    return function needsLatin(name) {
      var text = String(name).normalize("NFC");
      if (blank.test(text)) { return false; }
      return uncovered.test(text) || !producing.test(text);
    };
  }

  var ruled = document.querySelector("input[data-latin-uncovered]");
  if (!ruled) { return; }
  var needsLatin = rule(ruled);
  window.relaisNeedsLatin = needsLatin; // tests/e2e/test_latin_reveal.py compares it with the Python rule

  var form = ruled.form;
  var sources = form.querySelectorAll("input[data-latin-source]");
  var latins = form.querySelectorAll('input[name="latin_last_name"], input[name="latin_first_names"]');
  if (!latins.length) { return; }
  var status = document.createElement("p");
  status.className = "visually-hidden";
  status.setAttribute("role", "status");
  form.insertBefore(status, form.firstChild);

  function update() {
    var needed = Array.prototype.some.call(sources, function (input) { return needsLatin(input.value); }) ||
      Array.prototype.some.call(latins, function (input) { return input.value !== ""; });
    Array.prototype.forEach.call(latins, function (input) {
      var field = input.closest(".field");
      if (!field || field.hidden === !needed) { return; }
      field.hidden = !needed;
      if (needed && input.dataset.latinRevealed) { status.textContent = input.dataset.latinRevealed; }
    });
    if (!needed) { status.textContent = ""; }
  }

  Array.prototype.forEach.call(sources, function (input) { input.addEventListener("input", update); });
  update();
})();
