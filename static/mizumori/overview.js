/*
 * The HQ overview (templates/timeline/_hq_overview.html) follows the live map: after live messages
 * (the "mizumori:<type>" events static/mizumori/live.js dispatches) it fetches the fragment again, at most
 * once every few seconds, and swaps it in. It shows now, also while the map replays the past.
 */
(function (window, document) {
  "use strict";

  var QUIET_MS = 3000;
  var timer = null;

  function refresh() {
    timer = null;
    var section = document.getElementById("mz-overview");
    if (!section || !window.fetch) {
      return;
    }
    window.fetch(section.getAttribute("data-fragment-url"), { credentials: "same-origin" })
      .then(function (response) { return response.ok ? response.text() : Promise.reject(response.status); })
      .then(function (html) {
        var holder = document.createElement("div");
        holder.innerHTML = html;
        var fresh = holder.querySelector("#mz-overview");
        if (fresh) {
          section.replaceWith(fresh);
        }
      })
      .catch(function () { /* kept as it was; the next live message tries again */ });
  }

  ["stations", "withdrawn", "shelters", "alert", "orders", "snapshot"].forEach(function (type) {
    document.addEventListener("mizumori:" + type, function () {
      if (!timer) {
        timer = window.setTimeout(refresh, QUIET_MS);
      }
    });
  });
})(window, document);
