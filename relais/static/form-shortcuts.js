// Keyboard shortcuts of the record form and the queue's result page, shown on the page (#form-shortcuts): on a result,
// N, P or I chooses negative, positive or invalid (the same letters in French); Ctrl+Enter (⌘+Enter) submits with the
// form's main button. The symptoms' onset date shows only when the patient has symptoms. No inline script (CSP).
(function () {
  "use strict";
  var forms = document.querySelectorAll("form[data-shortcuts]");
  Array.prototype.forEach.call(forms, function (form) {
    form.addEventListener("keydown", function (event) {
      if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
        var main = form.querySelector("button[type=submit].primary");
        if (main) { event.preventDefault(); form.requestSubmit(main); }
        return;
      }
      var target = event.target;
      if (event.altKey || event.ctrlKey || event.metaKey || !target || target.type !== "radio" || !target.dataset.keys) { return; }
      var value = JSON.parse(target.dataset.keys)[event.key.toUpperCase()];
      if (!value) { return; }
      var choice = form.querySelector('input[type=radio][name="' + target.name + '"][value="' + value + '"]');
      if (choice) {
        event.preventDefault();
        choice.checked = true;
        choice.focus();
        choice.dispatchEvent(new Event("change", { bubbles: true }));
      }
    });

    var onset = form.querySelector("#id_symptom_onset");
    var symptoms = form.querySelectorAll('input[type=radio][name="symptoms"]');
    if (!onset || !symptoms.length) { return; }
    var field = onset.closest(".field");
    function toggle() {
      var chosen = form.querySelector('input[type=radio][name="symptoms"]:checked');
      var needed = (chosen && chosen.value === "yes") || onset.value || field.classList.contains("invalid");
      field.hidden = !needed;
    }
    Array.prototype.forEach.call(symptoms, function (radio) { radio.addEventListener("change", toggle); });
    toggle();
  });
})();
