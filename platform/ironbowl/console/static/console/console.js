// Ironbowl console: small behaviours on top of htmx. Nothing here is needed to read a page.
(function () {
  "use strict";
  // A form sends once: its buttons are disabled while it is being sent (the server also
  // refuses a second send of the same form token, see console/forms.py).
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!(form instanceof HTMLFormElement) || form.method.toLowerCase() !== "post") return;
    if (form.dataset.sending === "1") { event.preventDefault(); return; }
    form.dataset.sending = "1";
    setTimeout(function () {
      form.querySelectorAll("button[type=submit], button:not([type])").forEach(function (b) { b.disabled = true; });
    }, 0);
  }, true);
  // htmx swaps re-enable what they replace; a failed htmx request frees its form again.
  document.addEventListener("htmx:afterRequest", function (event) {
    var form = event.target.closest && event.target.closest("form");
    if (!form) return;
    form.dataset.sending = "";
    form.querySelectorAll("button").forEach(function (b) { b.disabled = false; });
  });
  // Coming back to a page from the history shows it as left: free its forms again.
  window.addEventListener("pageshow", function () {
    document.querySelectorAll("form[data-sending='1']").forEach(function (form) {
      form.dataset.sending = "";
      form.querySelectorAll("button").forEach(function (b) { b.disabled = false; });
    });
  });
  // Dates typed as local times are the organization's; nothing converts them in the browser.
})();
