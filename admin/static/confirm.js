// A confirmation before switching something off: a form marked data-confirm-off="NAME"
// asks (with its data-confirm text) when its checkbox NAME was on and is now off.
(function () {
  "use strict";
  document.querySelectorAll("form[data-confirm-off]").forEach(function (form) {
    var box = form.querySelector("input[type=checkbox][name='" + form.dataset.confirmOff + "']");
    if (!box) { return; }
    var wasOn = box.checked;
    form.addEventListener("submit", function (event) {
      if (wasOn && !box.checked && !window.confirm(form.dataset.confirm || "确定停用吗？")) {
        event.preventDefault();
      }
    });
  });
})();
