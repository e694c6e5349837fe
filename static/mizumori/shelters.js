/*
 * The HQ shelter panel: sends a status button's form without leaving the page, so the map keeps
 * its zoom and open popups while staff work. Without this script the forms still work (the
 * server redirects back to the panel).
 *
 * The reply carries the shelter's feature, already escaped by the server; it is shown at once
 * through Mizumori.applyShelter (static/mizumori/live.js). Every other page hears of the change
 * from the live layer.
 */
(function (window, document) {
  "use strict";

  var Mizumori = (window.Mizumori = window.Mizumori || {});
  // In the page's language, from its catalog (dashboard/js_catalog.py, locale/*/djangojs.po).
  var FAILED = {
    400: gettext("That status cannot be set."),
    403: gettext("You may not change this shelter's status."),
    404: gettext("This shelter no longer exists."),
  };
  var FAILED_OTHER = gettext("The change did not go through. Please try again.");
  var OFFLINE = gettext("Cannot reach the server: nothing was changed.");

  function showError(form, words) {
    var box = form.querySelector('[data-shelter-field="error"]');
    if (!box) {
      return;
    }
    box.textContent = words || "";
    box.hidden = !words;
  }

  function setBusy(form, busy) {
    form.setAttribute("aria-busy", busy ? "true" : "false");
    Array.prototype.forEach.call(form.querySelectorAll("button"), function (button) {
      button.disabled = busy;
    });
  }

  function send(form, submitter) {
    // FormData before the buttons are disabled: a disabled submitter is left out of it.
    var body = new window.FormData(form, submitter);
    setBusy(form, true);
    showError(form, null);
    return window
      .fetch(form.action, {
        method: "POST",
        body: body,
        credentials: "same-origin",
        headers: { Accept: "application/json" },
      })
      .then(function (response) {
        var type = response.headers.get("Content-Type") || "";
        if (type.indexOf("application/json") === -1) {
          // Not an answer from the endpoint: the session ended and we were sent to the login page.
          window.location.assign(response.url);
          return null;
        }
        return response.json().then(function (reply) {
          if (!response.ok) {
            showError(form, FAILED[response.status] || FAILED_OTHER);
            return;
          }
          if (Mizumori.applyShelter && reply.shelter) {
            Mizumori.applyShelter(reply.shelter);
          }
        });
      })
      .catch(function () {
        showError(form, OFFLINE);
      })
      .then(function () {
        setBusy(form, false);
      });
  }

  function start() {
    if (!window.fetch || !window.FormData) {
      return;
    }
    Array.prototype.forEach.call(document.querySelectorAll("[data-shelter-form]"), function (form) {
      form.addEventListener("submit", function (event) {
        event.preventDefault();
        send(form, event.submitter || null);
      });
    });
  }

  start();
})(window, document);
