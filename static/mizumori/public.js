/*
 * The public page: the shell (/) holds no data; this script fetches the public snapshot document
 * (/api/v1/public/snapshot, docs/api.md "Public snapshot") and shows it in the mode the server names:
 *
 *   mode "map"      Leaflet, the base map (/public/basemap.js) and every station, shelter and alert
 *                   on it, with the lists under it;
 *   mode "minimal"  no map library at all: the stations at level 2 equivalent and up, the alerts in
 *                   force, the open shelters and any other section, as text, with the server's notice.
 *
 * and stays live the way the server names (doc.live.transport): "websocket" (static/mizumori/live.js,
 * resuming from the document's sequence number) or "poll": a conditional GET of the document every
 * doc.live.interval seconds, which a caching proxy answers without the application. In websocket
 * mode the document is still fetched now and then, so a switch of mode or transport reaches the page.
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
  var language = document.documentElement.lang === "en" ? "en" : "ja";
  // How often a websocket reader still fetches the document, in polls: for mode changes.
  var WEBSOCKET_CHECK_POLLS = 6;
  var MAX_BACKOFF_MS = 60000;
  var OPEN_SHELTER_STATUSES = { open: true, full: true };

  var state = { etag: null, doc: null, mode: null, mapReady: null, live: null, timer: null, failures: 0, offlineSince: null };

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
  // the downloads need not wait for each other.
  function loadMap() {
    if (!state.mapReady) {
      listOf("data-map-css").forEach(loadCss);
      var scripts = listOf("data-map-js").concat([root.getAttribute("data-basemap-url")]);
      state.mapReady = Promise.all(scripts.map(loadScript));
    }
    return state.mapReady;
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
    heading.appendChild(node("strong", null, station.name_ja, "ja"));
    heading.appendChild(document.createTextNode(" / "));
    heading.appendChild(node("span", null, station.name_en, "en"));
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
    var display = props.display || {};
    var item = node("li", "mz-notice mz-shelter-" + String(props.status || ""));
    var heading = node("p", "mz-notice-level");
    var status = node("span");
    status.innerHTML = display.status || "";  // escaped by the server (dashboard.maps.shelter_status_chip_html)
    heading.appendChild(status);
    heading.appendChild(document.createTextNode(" "));
    heading.appendChild(node("strong", null, props.name_ja, "ja"));
    heading.appendChild(document.createTextNode(" / "));
    heading.appendChild(node("span", null, props.name_en, "en"));
    item.appendChild(heading);
    return item;
  }

  function drawLists(doc) {
    var alerts = Array.isArray(doc.alerts) ? doc.alerts : [];
    fill(document.getElementById("mz-public-alerts"), alerts.map(alertItem), "mz-public-alerts-empty");
    var notices = document.getElementById("mz-notices");
    if (doc.mode === "minimal" || !state.live) {
      Mizumori.drawNotices(notices, document.getElementById("mz-notices-empty"), language,
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
      box.querySelector("[lang=ja]").textContent = notice.ja || "";
      box.querySelector("[lang=en]").textContent = notice.en || "";
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
    root.setAttribute("data-live-status", status);
    Mizumori.showLiveStatus(document.getElementById("mz-live-status"), status, state.offlineSince);
  }

  // --- applying a document ------------------------------------------------------------------------

  function apply(doc) {
    state.doc = doc;
    root.setAttribute("data-public-mode", doc.mode);
    root.setAttribute("data-live-transport", doc.live && doc.live.transport);
    showNotice(doc.notice);
    var transport = doc.live && doc.live.transport === "websocket" && window.WebSocket ? "websocket" : "poll";
    if (doc.mode === "minimal") {
      // The map (if one was drawn) goes, and with it its socket: the page stays live by polling.
      root.hidden = false;
      root.classList.add("mz-map-off");
      var slot = document.getElementById("mz-map-slot");
      slot.hidden = true;
      if (state.live) {
        state.live.stop();
      }
      state.mode = "minimal";
      drawLists(doc);
      root.setAttribute("data-live-seq", String(doc.seq));
      return Promise.resolve();
    }
    state.mode = "map";
    root.classList.remove("mz-map-off");
    document.getElementById("mz-map-slot").hidden = false;
    return loadMap().then(function () {
      if (!state.live) {
        state.live = Mizumori.live || Mizumori.startLive(doc, { connect: transport === "websocket" });
      }
      state.live.applyDocument(doc);
      state.live.refreshNotices();
      drawLists(doc);
      if (transport === "websocket" && !state.live.socket) {
        state.live.connect();
      }
    });
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

  // A conditional GET: the browser revalidates its copy (If-None-Match), the proxy usually answers.
  function refresh() {
    var url = root.getAttribute("data-snapshot-url");
    return window.fetch(url, { cache: "no-cache", credentials: "omit" })
      .then(function (response) {
        if (!response.ok) {
          throw new Error("snapshot: HTTP " + response.status);
        }
        var etag = response.headers.get("ETag");
        var lastModified = response.headers.get("Last-Modified");
        if (etag && etag === state.etag) {
          return null;
        }
        return response.json().then(function (doc) {
          state.etag = etag;
          showUpdated(lastModified);
          return apply(doc);
        });
      })
      .then(function () {
        state.failures = 0;
        state.offlineSince = null;
        if (!(state.live && state.live.socket)) {
          setStatus("live");
        }
      })
      .catch(function () {
        state.failures += 1;
        if (state.offlineSince === null) {
          state.offlineSince = new Date();
        }
        if (!(state.live && state.live.socket)) {
          setStatus(state.failures >= 3 ? "offline" : "reconnecting");
        }
      })
      .then(schedule);
  }

  // An alert message on the socket: the list comes from the document, which holds it from the next
  // tick on (a document changes at most once per tick).
  Mizumori.onAlertsChanged = function () {
    var doc = state.doc;
    var interval = doc && doc.live && doc.live.interval > 0 ? doc.live.interval * 1000 : 5000;
    window.clearTimeout(state.timer);
    state.timer = window.setTimeout(refresh, interval + 500);
  };

  Mizumori.publicPage = { refresh: refresh, state: state };
  refresh();
})(window, document);
