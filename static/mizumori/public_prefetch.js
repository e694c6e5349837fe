/*
 * The public page's first snapshot request, started from <head> as soon as the shell arrives rather
 * than once the page's other scripts have run (about 0.2 s later on a busy machine, all of it on the
 * way to the first marker). static/mizumori/public.js takes the pending response for its first
 * refresh() (Mizumori.firstSnapshot), or asks itself if this script has not run by then.
 */
(function (window, document) {
  "use strict";

  var Mizumori = (window.Mizumori = window.Mizumori || {});
  var script = document.currentScript;
  var url = script && script.getAttribute("data-snapshot-url");
  if (!url || !window.fetch || Mizumori.publicPage) {
    return;  // nothing to ask for, or public.js has asked already
  }
  // The same request as public.js refresh(): revalidated, without cookies (the same for everyone).
  var pending = window.fetch(url, { cache: "no-cache", credentials: "omit" });
  // Its failure is public.js's to report (offline, say); not an unhandled rejection meanwhile.
  pending.catch(function () {});
  Mizumori.firstSnapshot = pending;
})(window, document);
