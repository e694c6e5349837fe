/*
 * The public page: the shell (/) holds no data; this script fetches the public snapshot document
 * (/api/v1/public/snapshot, docs/api.md "Public snapshot") and shows it in the mode the server names:
 *
 *   mode "map"      Leaflet, the base map (/public/basemap.js) and every station, shelter and alert
 *                   on it, with the lists under it;
 *   mode "minimal"  no map library at all: the stations at level 2 equivalent and up, the alerts in
 *                   force, the open shelters and any other section, as text, with the server's notice;
 *                   no time slider (static/mizumori/replay.js): the present only.
 *
 * and stays live the way the server names (doc.live.transport): "websocket" (static/mizumori/live.js,
 * resuming from the document's sequence number) or "poll": a conditional GET of the document every
 * doc.live.interval seconds, which a caching proxy answers without the application. In websocket
 * mode the document is still fetched now and then, so a switch of mode or transport reaches the page.
 *
 * Offline (issue 15): a service worker (static/mizumori/service-worker.js, scope "/") keeps the
 * shell, its static files, the base map and the last snapshot. A snapshot it answers with while the
 * network fails carries X-Mizumori-Offline and X-Mizumori-Stored-At: the page then shows it as the
 * last known state with its age (#mz-offline-notice), never as current; so does a page whose
 * requests simply fail. Screen readers hear only what changed (#mz-public-announcer): a station
 * reaching or leaving a level, a new alert; the lists themselves are not live regions.
 *
 * Sections other apps add to the document are drawn by renderers they register:
 *   Mizumori.publicSections[name] = function (data, doc, container, language) { ... };
 * `container` is an element of its own inside #mz-public-sections. Build with DOM calls and
 * textContent: the document's strings are data, never HTML (except shelters' display strings,
 * which the server escaped).
 */
(function (window, document) {
  "use strict";

  var Mizumori = (window.Mizumori = window.Mizumori || {});
  Mizumori.publicSections = Mizumori.publicSections || {};
  var root = document.getElementById("mz-public-map");
  if (!root || !window.fetch || !window.Promise) {
    return;
  }
  var language = Mizumori.language();
  // How often a websocket reader still fetches the document, in polls: for mode changes.
  var WEBSOCKET_CHECK_POLLS = 6;
  var MAX_BACKOFF_MS = 60000;
  var OPEN_SHELTER_STATUSES = { open: true, full: true };

  // The snapshot document versions this script draws (docs/api.md): 1 gives each feature its own
  // thresholds, 2 names them in `threshold_sets` (withThresholds). Any other comes from a deploy
  // newer than this page (the shell or its scripts out of a cache): drawn by this script it could be
  // wrong, so the page stops and asks the reader to reload (Mizumori.showOutdated, live.js).
  var SNAPSHOT_VERSIONS = [1, 2];

  var OFFLINE_HEADER = "X-Mizumori-Offline";
  var STORED_AT_HEADER = "X-Mizumori-Stored-At";
  var AGE_EVERY_MS = 30000;

  // Resolved once the first answer has been drawn (map mode: the map, its stations and the live
  // layer exist): static/mizumori/replay.js draws a past moment only then.
  var mapReadyResolve;
  Mizumori.mapReady = new Promise(function (resolve) { mapReadyResolve = resolve; });

  var state = {
    etag: null, doc: null, mode: null, mapReady: null, live: null, timer: null, failures: 0, offlineSince: null,
    // When the server last answered (ms): the age of what the page shows once it no longer does.
    confirmedAt: null, shownAsOf: null, firstAnswer: true, ageTimer: null, remembered: false,
    announced: null,
  };

  function loadScript(src) {
    return new Promise(function (resolve, reject) {
      var script = document.createElement("script");
      script.src = src;
      script.async = false;
      script.onload = resolve;
      script.onerror = function () { reject(new Error("could not load " + src)); };
      document.body.appendChild(script);
    });
  }

  function loadCss(href) {
    var link = document.createElement("link");
    link.rel = "stylesheet";
    link.href = href;
    document.head.appendChild(link);
  }

  function listOf(attribute) {
    return (root.getAttribute(attribute) || "").split(" ").filter(Boolean);
  }

  // Leaflet, map.js and the base map, once. All are requested at once and run in order (each
  // needs the one before): scripts inserted with async = false execute in insertion order, so
  // the downloads need not wait for each other. Once the map exists, its controls are measured for
  // the popups (fitMapForReaders) while the snapshot may still be on its way.
  function loadMap() {
    if (!state.mapReady) {
      listOf("data-map-css").forEach(loadCss);
      var scripts = listOf("data-map-js").concat([root.getAttribute("data-basemap-url")]);
      state.mapReady = Promise.all(scripts.map(loadScript)).then(function () {
        mark("mz:map-ready");
        if (Mizumori.map) {
          fitMapForReaders(Mizumori.map);
        }
      });
    }
    return state.mapReady;
  }

  // Where the first drawing's time goes (bench/map_profile.py prints these user timings).
  function mark(name) {
    if (window.performance && window.performance.mark) {
      window.performance.mark(name);
    }
  }

  function node(tag, className, content, lang) {
    var element = document.createElement(tag);
    if (className) {
      element.className = className;
    }
    if (lang) {
      element.lang = lang;
    }
    if (content !== undefined && content !== null) {
      element.textContent = String(content);
    }
    return element;
  }

  function fill(container, items, emptyTemplateId) {
    container.textContent = "";
    if (!items.length) {
      var empty = document.getElementById(emptyTemplateId);
      if (empty) {
        container.appendChild(empty.content.cloneNode(true));
      }
      return;
    }
    var list = node("ul", "mz-notice-list");
    items.forEach(function (item) { list.appendChild(item); });
    container.appendChild(list);
  }

  function localMinute(iso) {
    var match = /^(\d{4}-\d{2}-\d{2})T(\d{2}:\d{2})/.exec(String(iso || ""));
    return match ? match[1] + " " + match[2] : "";
  }

  // --- the lists ----------------------------------------------------------------------------------

  function alertItem(alert) {
    var level = parseInt(alert.level, 10) || 0;
    var station = alert.station || {};
    var item = node("li", "mz-notice mz-level-" + level);
    var heading = node("p", "mz-notice-level");
    heading.appendChild(node("span", "mz-chip mz-level-" + level, "L" + level));
    heading.appendChild(document.createTextNode(" "));
    heading.appendChild(node("strong", null, Mizumori.localized(station, "name")));
    item.appendChild(heading);
    var meta = node("p", "mz-notice-meta", localMinute(alert.opened_at) + " · ");
    var cap = node("a", null, "CAP");
    if (typeof alert.cap_url === "string" && /^https?:\/\//.test(alert.cap_url)) {
      cap.href = alert.cap_url;
    }
    meta.appendChild(cap);
    item.appendChild(meta);
    return item;
  }

  function shelterItem(feature) {
    var props = feature.properties || {};
    var item = node("li", "mz-notice mz-shelter-" + String(props.status || ""));
    var heading = node("p", "mz-notice-level");
    heading.appendChild(Mizumori.shelterChip(props));
    heading.appendChild(document.createTextNode(" "));
    heading.appendChild(node("strong", null, Mizumori.localized(props, "name")));
    item.appendChild(heading);
    return item;
  }

  function replaying() {
    return Boolean(Mizumori.replay && Mizumori.replay.at !== null);
  }

  // The list of alerts in force: the document's, or while replaying the past moment's (given by
  // static/mizumori/replay.js from GET /api/v1/alerts?at=); null: the document's again.
  function drawAlertList(alerts) {
    var shown = alerts || (state.doc && Array.isArray(state.doc.alerts) ? state.doc.alerts : []);
    var container = document.getElementById("mz-public-alerts");
    fill(container, shown.map(alertItem), "mz-public-alerts-empty");
    container.setAttribute("data-alerts-of", alerts ? "replay" : "live");
  }

  Mizumori.showAlertList = drawAlertList;

  function drawLists(doc) {
    if (!replaying()) {
      drawAlertList(null);  // while replaying, the list shows the past moment's alerts until LIVE
    }
    var notices = document.getElementById("mz-notices");
    if (doc.mode === "minimal" || !state.live) {
      Mizumori.drawNotices(notices, document.getElementById("mz-notices-empty"),
        Array.isArray(doc.features) ? doc.features : []);
    }
    var shelterSection = document.getElementById("mz-public-shelters-section");
    shelterSection.hidden = doc.mode !== "minimal";
    if (doc.mode === "minimal") {
      var open = (Array.isArray(doc.shelters) ? doc.shelters : []).filter(function (feature) {
        return feature && feature.properties && OPEN_SHELTER_STATUSES[feature.properties.status];
      });
      fill(document.getElementById("mz-public-shelters"), open.map(shelterItem), "mz-public-shelters-empty");
    }
    var sections = document.getElementById("mz-public-sections");
    Object.keys(Mizumori.publicSections).forEach(function (name) {
      if (!Object.prototype.hasOwnProperty.call(doc, name)) {
        return;
      }
      var container = sections.querySelector('[data-public-section="' + name.replace(/[^\w-]/g, "") + '"]');
      if (!container) {
        container = node("div");
        container.setAttribute("data-public-section", name.replace(/[^\w-]/g, ""));
        sections.appendChild(container);
      }
      Mizumori.publicSections[name](doc[name], doc, container, language);
    });
  }

  function showNotice(notice) {
    var box = document.getElementById("mz-public-notice");
    box.hidden = !notice;
    if (notice) {
      box.textContent = Mizumori.localized(notice);
    }
  }

  function showUpdated(lastModified) {
    var time = document.getElementById("mz-public-updated");
    var date = lastModified ? new Date(lastModified) : null;
    if (time && date && !isNaN(date.getTime())) {
      time.setAttribute("datetime", date.toISOString());
      time.textContent = date.getFullYear() + "-" + ("0" + (date.getMonth() + 1)).slice(-2) + "-" +
        ("0" + date.getDate()).slice(-2) + " " + ("0" + date.getHours()).slice(-2) + ":" +
        ("0" + date.getMinutes()).slice(-2) + ":" + ("0" + date.getSeconds()).slice(-2);
    }
  }

  function setStatus(status) {
    if (state.live && state.live.paused) {
      return;  // replaying: the indicator says so until LIVE
    }
    root.setAttribute("data-live-status", status);
    Mizumori.showLiveStatus(document.getElementById("mz-live-status"), status, state.offlineSince);
  }

  // --- offline: the last known state, with its age --------------------------------------------------

  function twoDigits(number) {
    return ("0" + number).slice(-2);
  }

  function ageWords(asOf) {
    var date = new Date(asOf);
    var clock = twoDigits(date.getHours()) + ":" + twoDigits(date.getMinutes());
    var today = new Date();
    if (date.toDateString() !== today.toDateString()) {
      clock = (date.getMonth() + 1) + "/" + date.getDate() + " " + clock;
    }
    var minutes = Math.max(0, Math.floor((Date.now() - asOf) / 60000));
    var hours = Math.floor(minutes / 60);
    var ago = hours
      ? interpolate(gettext("%(hours)s h %(minutes)s min ago"), { hours: hours, minutes: minutes % 60 }, true)
      : interpolate(gettext("%(minutes)s min ago"), { minutes: minutes }, true);
    return interpolate(gettext("last updated %(clock)s (%(ago)s)"), { clock: clock, ago: ago }, true);
  }

  function drawOfflineNotice() {
    var box = document.getElementById("mz-offline-notice");
    if (!box) {
      return;
    }
    var age = box.querySelector("[data-offline-age]");
    age.textContent = state.shownAsOf ? ageWords(state.shownAsOf) : gettext("nothing to show yet");
    if (state.shownAsOf) {
      age.setAttribute("data-as-of", new Date(state.shownAsOf).toISOString());
    }
  }

  // The shell kept by the worker is at least as old as the snapshot when the page itself came from
  // there (its orders, releases and warnings are of then): the older of the two is what is shown.
  function keptShellTime() {
    if (!window.caches || !window.caches.match) {
      return Promise.resolve(null);
    }
    // The worker's cache key for this shell (service-worker.js cacheKey): its language only. In any
    // of its caches: it keeps one, named after the front-end build, and deletes the others.
    var asked = new URL(window.location.href).searchParams.get("lang");
    var key = window.location.origin + "/" + (asked === language ? "?lang=" + language : "");
    return window.caches.match(key)
      .then(function (found) { return found ? Number(found.headers.get(STORED_AT_HEADER)) || null : null; })
      .catch(function () { return null; });
  }

  function showOffline(asOf) {
    var box = document.getElementById("mz-offline-notice");
    var wasShown = box && !box.hidden;
    state.shownAsOf = asOf || null;
    document.body.classList.add("mz-offline");
    root.setAttribute("data-offline", "true");
    if (box) {
      drawOfflineNotice();
      box.hidden = false;
      if (!wasShown) {
        // Announced once when the page goes offline, not at every retry.
        box.setAttribute("role", "alert");
      }
    }
    if (!state.ageTimer) {
      state.ageTimer = window.setInterval(drawOfflineNotice, AGE_EVERY_MS);
    }
  }

  function showOnline() {
    var box = document.getElementById("mz-offline-notice");
    document.body.classList.remove("mz-offline");
    root.removeAttribute("data-offline");
    if (box) {
      box.hidden = true;
    }
    window.clearInterval(state.ageTimer);
    state.ageTimer = null;
  }

  function registerServiceWorker() {
    var url = root.getAttribute("data-service-worker");
    var workers = window.navigator.serviceWorker;
    if (!url || !workers) {
      return;
    }
    workers.addEventListener("message", function (event) {
      if (event.data && event.data.type === "remembered") {
        root.setAttribute("data-offline-ready", "true");
      }
    });
    if (workers.startMessages) {
      workers.startMessages();
    }
    workers.register(url, { scope: "/" }).catch(function () { /* the page works without it */ });
  }

  // After the first whole drawing: the files this load fetched before the worker took over are
  // handed to it, so the next offline visit finds them. Files that arrive later without passing
  // through the worker (an image the map's stylesheet asks for once the map is drawn, requested
  // before the worker controlled the page) are handed over as they arrive.
  function rememberForOffline() {
    var workers = window.navigator.serviceWorker;
    if (state.remembered || !workers || !root.getAttribute("data-service-worker")) {
      return;
    }
    state.remembered = true;
    var origin = window.location.origin;
    var ours = function (entry) { return entry.name.indexOf(origin + "/") === 0; };
    workers.ready.then(function (registration) {
      var urls = [window.location.href, new URL(root.getAttribute("data-snapshot-url"), origin).href];
      (window.performance && window.performance.getEntriesByType ? window.performance.getEntriesByType("resource") : [])
        .forEach(function (entry) {
          if (ours(entry) && urls.indexOf(entry.name) === -1) {
            urls.push(entry.name);
          }
        });
      if (registration.active) {
        registration.active.postMessage({ type: "remember", urls: urls });
      }
      if (window.PerformanceObserver) {
        new window.PerformanceObserver(function (list) {
          // workerStart 0: the worker never saw it, so it has kept no copy.
          var missed = list.getEntries().filter(function (entry) { return ours(entry) && !entry.workerStart; })
            .map(function (entry) { return entry.name; });
          if (missed.length && registration.active) {
            registration.active.postMessage({ type: "remember", urls: missed });
          }
        }).observe({ type: "resource" });
      }
    }).catch(function () { /* kept on a later visit */ });
  }

  // --- what a screen reader hears ---------------------------------------------------------------------

  function levelWords(props) {
    var style = Mizumori.stationStateStyle ? Mizumori.stationStateStyle(props) : null;
    return style && style.title ? Mizumori.pick(style.title) : "L" + props.level;
  }

  function currentStations() {
    var markers = Mizumori.stationMarkers || {};
    var drawn = Object.keys(markers).map(function (code) { return markers[code].feature; }).filter(Boolean);
    if (drawn.length || state.mode === "map") {
      return drawn;
    }
    return state.doc && Array.isArray(state.doc.features) ? state.doc.features : [];
  }

  // Stations at the notice level and up (by code: their level) and the alerts in force (by id).
  function whatMatters() {
    var vocabulary = (Mizumori.mapVocabulary && Mizumori.mapVocabulary()) || {};
    var noticeLevel = typeof vocabulary.notice_level === "number" ? vocabulary.notice_level : 2;
    var stations = {};
    currentStations().forEach(function (feature) {
      var props = feature.properties || {};
      if (typeof props.level === "number" && props.level >= noticeLevel) {
        stations[feature.id] = props;
      }
    });
    var alerts = {};
    (state.doc && Array.isArray(state.doc.alerts) ? state.doc.alerts : []).forEach(function (alert) {
      if (alert && alert.id !== undefined) {
        alerts[alert.id] = alert;
      }
    });
    return { stations: stations, alerts: alerts };
  }

  // One sentence for what changed since the last one (the first state is only noted): a list
  // rewrite with the same stations and levels says nothing.
  function announceChanges() {
    if (replaying()) {
      // The map shows the past: nothing of it is news. Back to live, the first state is only noted.
      state.announced = null;
      return;
    }
    var now = whatMatters();
    var before = state.announced;
    state.announced = now;
    if (!before) {
      return;
    }
    var parts = [];
    Object.keys(now.stations).forEach(function (code) {
      var props = now.stations[code];
      var previous = before.stations[code];
      if (!previous || previous.level !== props.level) {
        parts.push(Mizumori.localized(props, "name") + " " + levelWords(props));
      }
    });
    Object.keys(before.stations).forEach(function (code) {
      if (!now.stations[code]) {
        var props = before.stations[code];
        parts.push(interpolate(gettext("%(station)s: below alert level 2"), { station: Mizumori.localized(props, "name") }, true));
      }
    });
    Object.keys(now.alerts).forEach(function (id) {
      var alert = now.alerts[id];
      if (!before.alerts[id] || before.alerts[id].level !== alert.level) {
        var station = alert.station || {};
        parts.push(interpolate(gettext("New alert: %s"), [Mizumori.localized(station, "name") + " L" + alert.level]));
      }
    });
    if (!parts.length) {
      return;
    }
    var announcer = document.getElementById("mz-public-announcer");
    if (announcer) {
      var more = parts.length - 5;
      announcer.textContent = parts.slice(0, 5).join(gettext(". ")) + (more > 0
        ? interpolate(gettext(" and %s more."), [more]) : "");
    }
  }

  // --- the map: popups clear of the controls, Escape, focus -------------------------------------------

  function controlsPadding(map) {
    var L = window.L;
    var box = map.getContainer().getBoundingClientRect();
    var top = 0;
    var bottom = 0;
    Array.prototype.forEach.call(map.getContainer().querySelectorAll(".leaflet-top .leaflet-control"), function (control) {
      var rect = control.getBoundingClientRect();
      if (rect.height) {
        top = Math.max(top, rect.bottom - box.top);
      }
    });
    Array.prototype.forEach.call(map.getContainer().querySelectorAll(".leaflet-bottom .leaflet-control"), function (control) {
      // A legend is measured closed: it is closed whenever a popup would meet it (below).
      var summary = control.tagName === "DETAILS" ? control.querySelector("summary") : null;
      var rect = control.getBoundingClientRect();
      var topEdge = summary && control.open ? rect.bottom - summary.getBoundingClientRect().height - 12 : rect.top;
      if (rect.height) {
        bottom = Math.max(bottom, box.bottom - topEdge);
      }
    });
    L.Popup.mergeOptions({
      autoPanPaddingTopLeft: L.point(8, Math.ceil(top) + 8),
      autoPanPaddingBottomRight: L.point(8, Math.ceil(bottom) + 8),
    });
  }

  function overlaps(a, b) {
    return a.left < b.right && b.left < a.right && a.top < b.bottom && b.top < a.bottom;
  }

  Mizumori.focusPopup = function () {
    var map = Mizumori.map;
    var content = map && map.getContainer().querySelector(".leaflet-popup-content");
    if (content) {
      content.setAttribute("tabindex", "-1");
      content.focus({ preventScroll: true });
    }
  };

  function closePopupFromKeyboard(map) {
    var popup = map._popup;
    if (!popup || !map.hasLayer(popup)) {
      return false;
    }
    var source = popup._source;
    var opener = Mizumori.popupOpener;
    map.closePopup();
    Mizumori.popupOpener = null;
    var target = opener && document.body.contains(opener) ? opener : source && source.getElement && source.getElement();
    if (target && target.focus) {
      target.focus();
    }
    return true;
  }

  function fitMapForReaders(map) {
    var legend = map.getContainer().querySelector("details.leaflet-control, .leaflet-control details");
    controlsPadding(map);
    map.on("resize", function () { controlsPadding(map); });
    if (legend) {
      legend.addEventListener("toggle", function () { controlsPadding(map); });
    }
    // An open legend that a popup meets is closed (the padding counts it closed): checked when the
    // popup opens and again once its autoPan has moved it.
    var legendClear = function () {
      var popup = map._popup && map.hasLayer(map._popup) ? map._popup.getElement() : null;
      if (legend && legend.open && popup && overlaps(popup.getBoundingClientRect(), legend.getBoundingClientRect())) {
        legend.open = false;
      }
    };
    map.on("moveend", legendClear);
    map.on("popupopen", function (event) {
      legendClear();
      // Tooltips stay closed under an open popup: on a phone they would sit on top of it.
      var source = event.popup._source;
      if (source && source.closeTooltip) {
        source.closeTooltip();
      }
    });
    document.addEventListener("keydown", function (event) {
      if (event.key === "Escape" && closePopupFromKeyboard(map)) {
        event.preventDefault();
      }
    });
    // Shapes without a name of their own (hazard zones, basins, boundaries, districts) are not
    // focus stops: their words are in the labels and the legend, and a click still opens a popup.
    var unnamed = function () {
      Array.prototype.forEach.call(map.getContainer().querySelectorAll("path.leaflet-interactive"), function (path) {
        path.setAttribute("tabindex", "-1");
        path.setAttribute("focusable", "false");
        path.setAttribute("aria-hidden", "true");
      });
    };
    unnamed();
    // Once per burst of new shapes (never per marker: a snapshot adds thousands).
    var pending = false;
    map.on("layeradd", function (event) {
      if (pending || !(event.layer instanceof window.L.Path)) {
        return;
      }
      pending = true;
      window.setTimeout(function () {
        pending = false;
        unnamed();
      }, 0);
    });
  }

  // --- applying a document ------------------------------------------------------------------------

  function apply(doc) {
    state.doc = doc;
    root.setAttribute("data-public-mode", doc.mode);
    root.setAttribute("data-live-transport", doc.live && doc.live.transport);
    showNotice(doc.notice);
    if (doc.mode === "minimal") {
      // The map (if one was drawn) goes, and with it its socket: the page stays live by polling.
      root.hidden = false;
      root.classList.add("mz-map-off");
      var slot = document.getElementById("mz-map-slot");
      slot.hidden = true;
      if (state.live) {
        state.live.stop();
        state.socketStarted = false;
      }
      if (Mizumori.replay) {
        // No map, no replay: minimal mode is the server shedding load, and a resident on it needs
        // the present (the as-of reads are the expensive ones). Back to live, bar hidden.
        Mizumori.replay.setAvailable(false);
      }
      state.mode = "minimal";
      drawLists(doc);
      root.setAttribute("data-live-seq", String(doc.seq));
      afterApply(doc);
      return Promise.resolve();
    }
    state.mode = "map";
    root.classList.remove("mz-map-off");
    document.getElementById("mz-map-slot").hidden = false;
    return loadMap().then(function () {
      if (Mizumori.replay) {
        Mizumori.replay.setAvailable(true);  // before the live layer: a pending ?at= pauses it below
      }
      if (!state.live) {
        // Not connected yet: connectOnce() opens the socket once the server has answered.
        state.live = Mizumori.live || Mizumori.startLive(doc, { connect: false });
        if (Mizumori.replay ? Mizumori.replay.at !== null : opensInPast()) {
          // The page opened in replay (?at= in its address): no socket until LIVE.
          state.live.pause();
        }
      }
      state.live.applyDocument(doc);
      mark("mz:stations-drawn");
      state.live.refreshNotices();
      drawLists(doc);
      afterApply(doc);
      connectOnce();
    });
  }

  // Whether the address asks for a past moment (?at=, a timeline link), by replay.js's own rule (a
  // time before now). The first snapshot and the map are fetched from <head>, so they can be drawn
  // before replay.js has run; the socket must stay shut until LIVE all the same.
  function opensInPast() {
    var requested = new window.URLSearchParams(window.location.search).get("at");
    var parsed = requested ? Date.parse(requested) : NaN;
    return !isNaN(parsed) && parsed < Date.now();
  }

  // The socket is opened once, when the server has answered; after that live.js reconnects it.
  function connectOnce() {
    var doc = state.doc;
    var websocket = doc && doc.live && doc.live.transport === "websocket" && window.WebSocket;
    if (websocket && state.live && !state.live.socket && !state.socketStarted && !root.getAttribute("data-offline")) {
      state.socketStarted = true;
      state.live.connect();
    }
  }

  function afterApply(doc) {
    if (Mizumori.nearMe) {
      Mizumori.nearMe.update(doc);
    }
    announceChanges();
    rememberForOffline();
  }

  // --- fetching -----------------------------------------------------------------------------------

  function pollDelay() {
    var doc = state.doc;
    var interval = doc && doc.live && doc.live.interval > 0 ? doc.live.interval * 1000 : 5000;
    if (state.failures) {
      return Math.min(MAX_BACKOFF_MS, interval * Math.pow(2, state.failures));
    }
    var websocket = state.live && state.live.socket && doc && doc.live && doc.live.transport === "websocket";
    return websocket ? interval * WEBSOCKET_CHECK_POLLS : interval;
  }

  function schedule() {
    window.clearTimeout(state.timer);
    state.timer = window.setTimeout(refresh, pollDelay());
  }

  // No answer from the server (`asOf` given: the worker answered with the copy kept then).
  function failed(asOf) {
    state.failures += 1;
    if (state.offlineSince === null) {
      state.offlineSince = new Date();
    }
    if (!(state.live && state.live.socket)) {
      setStatus(asOf !== undefined || state.failures >= 3 ? "offline" : "reconnecting");
    }
    if (asOf !== undefined || state.failures >= 3) {
      showOffline(asOf !== undefined ? asOf : state.confirmedAt);
    }
  }

  // The document names each station's thresholds by the key of their set in `threshold_sets` (a few
  // standard sets shared by thousands of stations: docs/api.md): every feature gets its list back
  // here, before anything reads it, so the page draws the features as the live messages carry them.
  // A key the table lacks reads as no thresholds (the popup then names none reached).
  function withThresholds(doc) {
    var sets = doc && doc.threshold_sets && typeof doc.threshold_sets === "object" ? doc.threshold_sets : {};
    (doc && Array.isArray(doc.features) ? doc.features : []).forEach(function (feature) {
      var props = feature && feature.properties;
      if (props && typeof props === "object" && typeof props.threshold_set === "string") {
        var set = Object.prototype.hasOwnProperty.call(sets, props.threshold_set) ? sets[props.threshold_set] : null;
        props.thresholds = Array.isArray(set) ? set : [];
      }
    });
    return doc;
  }

  // The first request may be under way already (static/mizumori/public_prefetch.js, from <head>).
  function requestSnapshot(url) {
    var pending = Mizumori.firstSnapshot;
    Mizumori.firstSnapshot = null;
    return pending || window.fetch(url, { cache: "no-cache", credentials: "omit" });
  }

  // A conditional GET: the browser revalidates its copy (If-None-Match), the proxy usually answers.
  // While the network fails, the service worker answers with the last copy, marked as such.
  function refresh() {
    if (Mizumori.outdated) {
      return Promise.resolve();  // nothing more is fetched or drawn: the page says to reload
    }
    var url = root.getAttribute("data-snapshot-url");
    var first = state.firstAnswer;
    var offlineCopy = false;
    var storedAt = null;
    return requestSnapshot(url)
      .then(function (response) {
        if (!response.ok) {
          throw new Error("snapshot: HTTP " + response.status);
        }
        state.firstAnswer = false;
        offlineCopy = response.headers.get(OFFLINE_HEADER) === "1";
        storedAt = Number(response.headers.get(STORED_AT_HEADER)) || null;
        if (offlineCopy) {
          root.setAttribute("data-offline", "true");  // before drawing: no socket to a server that is not there
        } else {
          state.confirmedAt = Date.now();
        }
        var etag = response.headers.get("ETag");
        var lastModified = response.headers.get("Last-Modified");
        if (etag && etag === state.etag) {
          return null;
        }
        return response.json().then(function (doc) {
          if (!doc || SNAPSHOT_VERSIONS.indexOf(doc.version) === -1) {
            outdated(doc);
            return null;
          }
          withThresholds(doc);
          if (first) {
            mark("mz:snapshot-parsed");
          }
          state.etag = etag;
          showUpdated(lastModified);
          return apply(doc);
        });
      })
      .then(function () {
        if (Mizumori.outdated) {
          return;
        }
        if (offlineCopy) {
          // The page itself came from the worker too when this is its first answer.
          return (first ? keptShellTime() : Promise.resolve(null)).then(function (shellAt) {
            var asOf = [storedAt, shellAt, state.confirmedAt].filter(Boolean);
            failed(asOf.length ? Math.min.apply(Math, asOf) : null);
          });
        }
        state.failures = 0;
        state.offlineSince = null;
        showOnline();
        connectOnce();
        if (!(state.live && state.live.socket)) {
          setStatus("live");
        }
      })
      .catch(function () {
        state.firstAnswer = false;
        failed();
      })
      .then(function () {
        mapReadyResolve();
        if (!Mizumori.outdated) {
          schedule();
        }
      });
  }

  // A document this script cannot draw: no socket, no more polls (the notice washes the map out).
  function outdated(doc) {
    window.clearTimeout(state.timer);
    if (state.live) {
      state.live.stop();
    }
    setStatus("outdated");
    root.setAttribute("data-outdated", String(doc && doc.version));
    Mizumori.showOutdated();
  }

  // The browser knows before a timeout does: ask again at once either way.
  window.addEventListener("online", function () { state.failures = 0; refresh(); });
  window.addEventListener("offline", function () { refresh(); });

  // An alert message on the socket: the list comes from the document, which holds it from the next
  // tick on (a document changes at most once per tick).
  Mizumori.onAlertsChanged = function () {
    var doc = state.doc;
    var interval = doc && doc.live && doc.live.interval > 0 ? doc.live.interval * 1000 : 5000;
    window.clearTimeout(state.timer);
    state.timer = window.setTimeout(refresh, interval + 500);
  };

  document.addEventListener("mizumori:stations", announceChanges);
  document.addEventListener("mizumori:withdrawn", announceChanges);

  Mizumori.publicPage = { refresh: refresh, state: state, withThresholds: withThresholds };
  registerServiceWorker();
  // The shell names the mode the server was in when it was built (data-map-hint): the map library
  // and base map then load beside the snapshot instead of after it. The snapshot's own mode still
  // decides what is drawn; a wrong guess costs one early download, or the wait it would have anyway.
  if (root.getAttribute("data-map-hint") === "map") {
    loadMap().catch(function () { /* apply() meets the same failure and reports it */ });
  }
  refresh();
})(window, document);
