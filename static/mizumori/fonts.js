/*
 * The web font (site.css: "Mizumori Gothic", for kiosks and signage without a Japanese font) arrives
 * after the first drawing. Text the browser lays out itself is drawn again with it, but not all:
 *
 * - Chromium keeps the shaping of text laid out while the font was on its way (boxes included)
 *   until that text's font changes: `mz-fonts-in` on <html> is a no-op change of the font features
 *   (site.css) that has every text shaped again;
 * - text drawn on a canvas (the station page's chart axes) stays as drawn, and positions measured
 *   from text (the chart's threshold labels) stay as measured: a "mizumori:fonts" event on document
 *   tells their scripts to draw and measure again (static/mizumori/station.js).
 *
 * Fired when the fonts the page asked for are in, and again whenever a later load finishes (a
 * font first needed by text added since, such as a popup's Japanese).
 */
(function (window, document) {
  "use strict";

  var fonts = document.fonts;
  if (!fonts || !fonts.ready) {
    return;
  }

  function fontsIn() {
    document.documentElement.classList.add("mz-fonts-in");
    if (typeof window.CustomEvent === "function") {
      document.dispatchEvent(new window.CustomEvent("mizumori:fonts"));
    }
  }

  fonts.ready.then(fontsIn);
  if (fonts.addEventListener) {
    fonts.addEventListener("loadingdone", fontsIn);
  }
})(window, document);
