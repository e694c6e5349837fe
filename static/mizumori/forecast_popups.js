/*
 * HQ map: when a station's popup opens, ask /api/v1/stations/<code>/forecast and, when the forecast
 * predicts the next threshold's crossing, add its line to the popup:
 * 「氾濫危険水位到達予測 14:20頃（14:05〜14:40）」 or "Flood danger level expected around 14:20 (14:05–14:40)",
 * in the page's language (static/mizumori/i18n.js).
 *
 * Loaded on the HQ page only: the public map shows no forecast (docs/api.md, "Forecasts"). The API
 * answers only for stations the logged-in viewer may see. Text reaches the page as textContent.
 */
(function (window, document) {
  "use strict";

  var container = document.querySelector(".leaflet-container");
  if (!container || !window.fetch || !window.MutationObserver) {
    return;
  }

  function codeOf(popup) {
    var link = popup.querySelector('a[href*="/stations/"]');
    var match = link && /\/stations\/([^/]+)\//.exec(link.getAttribute("href"));
    return match ? decodeURIComponent(match[1]) : null;
  }

  function addForecast(popup) {
    if (popup.dataset.forecastAsked) {
      return;
    }
    popup.dataset.forecastAsked = "1";
    var code = codeOf(popup);
    if (!code) {
      return;
    }
    window.fetch("/api/v1/stations/" + encodeURIComponent(code) + "/forecast", { credentials: "same-origin" })
      .then(function (response) { return response.ok ? response.json() : null; })
      .then(function (forecast) {
        if (!forecast || !forecast.crossing || !forecast.crossing.text_ja || !popup.isConnected) {
          return;
        }
        var line = document.createElement("p");
        line.className = "mz-popup-forecast";
        line.textContent = window.Mizumori.localized(forecast.crossing, "text");  // the page's language
        popup.appendChild(line);
      })
      .catch(function () { /* no forecast line: the popup stays as it was */ });
  }

  new window.MutationObserver(function () {
    container.querySelectorAll(".mz-popup").forEach(addForecast);
  }).observe(container, { childList: true, subtree: true });
})(window, document);
