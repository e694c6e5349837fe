/*
 * The live layer: draws the stations of the page's first snapshot and keeps the map in step with
 * /ws/live/ (docs/api.md, "Websocket").
 *
 * The page carries its first snapshot (#mz-live-snapshot: seq, stream, features; the public page
 * hands over its snapshot document instead, static/mizumori/public.js), so the socket
 * starts with subscribe {"snapshot": false} and resume {"since": seq, "stream": stream}: the
 * server answers with what was missed, or with a fresh snapshot when it cannot. Then "stations",
 * "withdrawn" and "shelters" messages with sequence numbers. A snapshot may come in parts
 * ("part" of "parts"); it is applied only once every part is here. After a drop the client
 * reconnects with backoff and resumes the same way. The indicator says live / reconnecting /
 * offline since hh:mm, so a frozen map is never mistaken for a calm one; and "degraded" while the
 * server says it cannot deliver updates (Redis or the database down): the socket stays open, and
 * "restored" is followed by what was missed.
 *
 * Stations are drawn from their properties by static/mizumori/stations.js (DOM text, never HTML).
 * Shelter marker, tooltip, popup and panel strings still arrive prepared and escaped by the server
 * (properties.display).
 */
(function (window, document) {
  "use strict";

  var Mizumori = (window.Mizumori = window.Mizumori || {});
  var STATION_KINDS = ["river", "rain", "reservoir", "tide"];
  var LIVE_LAYERS = STATION_KINDS.concat(["shelters", "alerts", "releases", "orders"]);
  var PING_EVERY_MS = 20000;
  var PONG_WITHIN_MS = 10000;
  var MAX_BACKOFF_MS = 30000;
  var STALE_CHECK_MS = 15000;
  // More parts than this is not a snapshot this page asked for.
  var MAX_SNAPSHOT_PARTS = 10000;
  // The live message shapes this script draws (`subscribed.version`, dashboard/live.py
  // PROTOCOL_VERSION); a server without the field speaks version 1.
  var PROTOCOL_VERSIONS = [1];

  function readJson(id) {
    var element = document.getElementById(id);
    if (!element) {
      return null;
    }
    try {
      return JSON.parse(element.textContent);
    } catch (error) {
      return null;
    }
  }

  function LiveMap(root) {
    this.root = root;
    this.view = root.getAttribute("data-live-view") || "";
    this.seq = 0;
    this.stream = null;
    // True once the map holds a whole snapshot (the page's or the server's): then a (re)connect
    // resumes from this.seq instead of asking for everything again.
    this.synced = false;
    this.pendingSnapshot = null;
    this.attempt = 0;
    this.socket = null;
    this.offlineSince = null;
    this.pingTimer = null;
    this.pongTimer = null;
    this.indicator = document.getElementById("mz-live-status");
  }

  LiveMap.prototype.url = function () {
    var scheme = window.location.protocol === "https:" ? "wss://" : "ws://";
    return scheme + window.location.host + "/ws/live/" + (this.view === "public" ? "?view=public" : "");
  };

  LiveMap.prototype.connect = function () {
    var self = this;
    var socket;
    this.wanted = true;  // a socket is this page's transport: unpause reconnects only then
    if (this.paused) {
      return;
    }
    try {
      socket = new window.WebSocket(this.url());
    } catch (error) {
      this.scheduleReconnect();
      return;
    }
    this.socket = socket;
    socket.onopen = function () {
      var resuming = self.synced;
      self.pendingSnapshot = null;
      self.send({ type: "subscribe", layers: LIVE_LAYERS, snapshot: !resuming });
      if (resuming) {
        // With the stream's name, so a server whose counter restarted answers with a snapshot.
        self.send({ type: "resume", since: self.seq, stream: self.stream });
      }
      self.startHeartbeat();
    };
    socket.onmessage = function (event) {
      var message;
      try {
        message = JSON.parse(event.data);
      } catch (error) {
        return;
      }
      self.handle(message);
    };
    socket.onclose = function () {
      self.stopHeartbeat();
      if (self.socket === socket) {
        self.socket = null;
        self.scheduleReconnect();
      }
    };
    socket.onerror = function () {
      socket.close();
    };
  };

  LiveMap.prototype.send = function (message) {
    if (this.socket && this.socket.readyState === 1) {
      this.socket.send(JSON.stringify(message));
    }
  };

  // For good: no reconnect (the public page leaving map mode).
  LiveMap.prototype.stop = function () {
    var socket = this.socket;
    this.socket = null;
    this.wanted = false;
    this.stopHeartbeat();
    if (socket) {
      socket.close();
    }
  };

  // Exposed for tests and for staff who want to force a reconnect.
  LiveMap.prototype.drop = function () {
    if (this.socket) {
      this.socket.close();
    }
  };

  LiveMap.prototype.scheduleReconnect = function () {
    var self = this;
    if (this.offlineSince === null) {
      this.offlineSince = new Date();
    }
    // A few quick retries read as "reconnecting"; after that the page says plainly it is offline.
    this.setStatus(this.attempt >= 3 ? "offline" : "reconnecting");
    var delay = Math.min(MAX_BACKOFF_MS, 1000 * Math.pow(2, this.attempt));
    delay = delay / 2 + Math.random() * delay / 2;
    this.attempt += 1;
    window.setTimeout(function () { self.connect(); }, delay);
  };

  LiveMap.prototype.startHeartbeat = function () {
    var self = this;
    this.stopHeartbeat();
    // A connection can die without a close event (a phone changing networks): ask, and give up
    // on it if no answer comes.
    this.pingTimer = window.setInterval(function () {
      self.send({ type: "ping" });
      self.pongTimer = window.setTimeout(function () { self.drop(); }, PONG_WITHIN_MS);
    }, PING_EVERY_MS);
  };

  LiveMap.prototype.stopHeartbeat = function () {
    window.clearInterval(this.pingTimer);
    window.clearTimeout(this.pongTimer);
  };

  // While static/mizumori/replay.js shows the past: no socket, no reconnects, no ageing of markers,
  // and a snapshot document the public page fetches meanwhile is held, not drawn. `unpause` draws
  // that document, reconnects and resumes from the last applied sequence number.
  LiveMap.prototype.pause = function () {
    var socket = this.socket;
    this.paused = true;
    this.socket = null;
    this.pendingSnapshot = null;
    this.stopHeartbeat();
    if (socket) {
      socket.close();
    }
    this.setStatus("paused");
  };

  LiveMap.prototype.unpause = function () {
    var held = this.heldDocument;
    this.paused = false;
    this.heldDocument = null;
    if (held) {
      this.applyDocument(held);
    }
    this.attempt = 0;
    this.offlineSince = null;
    if (this.wanted) {
      this.setStatus("connecting");
      this.connect();
    } else {
      // A polling public page: its next poll brings the present.
      this.setStatus("live");
    }
  };

  LiveMap.prototype.handle = function (message) {
    if (this.paused) {
      return;
    }
    switch (message.type) {
      case "subscribed":
        if (PROTOCOL_VERSIONS.indexOf(message.version === undefined ? 1 : message.version) === -1) {
          // A server of a newer deploy: its messages drawn by this script could be wrong.
          this.stop();
          this.setStatus("outdated");
          Mizumori.showOutdated();
          return;
        }
        this.attempt = 0;
        this.offlineSince = null;
        this.stream = message.stream;
        this.refreshAlerts();
        this.setStatus("live");
        break;
      case "snapshot":
        this.receiveSnapshotPart(message);
        break;
      case "shelters":
        (message.features || []).forEach(applyShelter);
        this.seq = Math.max(this.seq, message.seq);
        break;
      case "orders":
      case "recommendations":
      case "order_drafts":
        // Drawn by static/mizumori/orders.js.
        this.seq = Math.max(this.seq, message.seq);
        break;
      case "stations":
        (message.features || []).forEach(function (feature) { Mizumori.drawStation(feature, true); });
        this.seq = Math.max(this.seq, message.seq);
        this.refreshNotices();
        break;
      case "withdrawn":
        (message.stations || []).forEach(function (code) { Mizumori.removeStation(code); });
        this.seq = Math.max(this.seq, message.seq);
        this.refreshNotices();
        break;
      case "releases":
        // Dam release notices: drawn by static/mizumori/releases.js.
        if (Mizumori.applyReleases) {
          Mizumori.applyReleases(message.releases || []);
        }
        this.seq = Math.max(this.seq, message.seq);
        break;
      case "alert":
        this.applyAlert(message.alert || {});
        this.refreshAlerts();
        break;
      case "degraded":
        this.setStatus("degraded");
        break;
      case "restored":
        this.setStatus("live");
        this.refreshAlerts();
        this.refreshNotices();
        break;
      case "pong":
        window.clearTimeout(this.pongTimer);
        break;
      case "error":
        if (window.console) {
          window.console.warn("live layer:", message.error);
        }
        break;
      default:
        if (typeof message.seq === "number") {
          this.seq = Math.max(this.seq, message.seq);
        }
    }
    this.root.setAttribute("data-live-seq", String(this.seq));
    announce(message);
  };

  // The page's one event scheme: every live message the map has applied is dispatched on document
  // as "mizumori:<type>" (detail: the message), e.g. mizumori:stations, mizumori:orders,
  // mizumori:subscribed; map.js adds "mizumori:map" once the map exists. None while replaying.
  function announce(message) {
    if (typeof window.CustomEvent === "function" && /^[a-z]+$/.test(message.type || "")) {
      document.dispatchEvent(new window.CustomEvent("mizumori:" + message.type, { detail: message }));
    }
  }

  // The page's own snapshot (or the one the public page fetched), drawn before the socket opens.
  LiveMap.prototype.loadPageSnapshot = function (given) {
    var snapshot = given || readJson("mz-live-snapshot");
    if (!snapshot || typeof snapshot.seq !== "number") {
      return;
    }
    this.replaceAll(Array.isArray(snapshot.features) ? snapshot.features : []);
    this.seq = snapshot.seq;
    this.stream = snapshot.stream;
    this.synced = true;
  };

  // Collect the parts of a snapshot (same seq and stream); apply it once all have arrived.
  LiveMap.prototype.receiveSnapshotPart = function (message) {
    var parts = typeof message.parts === "number" ? message.parts : 1;
    var part = typeof message.part === "number" ? message.part : 0;
    if (Math.floor(parts) !== parts || parts < 1 || parts > MAX_SNAPSHOT_PARTS || Math.floor(part) !== part || part < 0 || part >= parts) {
      return;
    }
    var pending = this.pendingSnapshot;
    if (!pending || pending.seq !== message.seq || pending.stream !== message.stream || pending.parts.length !== parts) {
      // A new snapshot: any unfinished one before it is superseded.
      pending = this.pendingSnapshot = { seq: message.seq, stream: message.stream, parts: new Array(parts), received: 0 };
    }
    if (!pending.parts[part]) {
      pending.parts[part] = message;
      pending.received += 1;
    }
    if (pending.received < parts) {
      return;
    }
    this.pendingSnapshot = null;
    var features = [];
    var shelters = null;
    pending.parts.forEach(function (piece) {
      features = features.concat(piece.features || []);
      if (Array.isArray(piece.shelters)) {
        shelters = (shelters || []).concat(piece.shelters);
      }
    });
    this.replaceAll(features);
    if (shelters) {
      replaceShelters(shelters);
    }
    this.seq = message.seq;
    if (message.stream) {
      this.stream = message.stream;
    }
    this.synced = true;
  };

  // The snapshot is the whole truth: draw every station it has, drop those it no longer has.
  LiveMap.prototype.replaceAll = function (features) {
    var current = Mizumori.drawStations(features);
    Object.keys(Mizumori.stationMarkers).forEach(function (code) {
      if (!current[code]) {
        Mizumori.removeStation(code);
      }
    });
    this.refreshNotices();
  };

  // Give an existing shelter marker a feature's new drawing, tooltip and popup.
  function refreshMarker(marker, feature, icon, changed) {
    var display = (feature.properties && feature.properties.display) || {};
    marker.feature = feature;
    marker.setIcon(icon);
    marker.setZIndexOffset(display.z || 0);
    // Their content is a function of marker.feature (static/mizumori/map.js): set again, an open
    // tooltip or popup is redrawn from the new feature.
    if (marker.getTooltip()) {
      marker.setTooltipContent(marker.getTooltip().getContent());
    }
    if (marker.getPopup()) {
      marker.setPopupContent(marker.getPopup().getContent());
    }
    var element = marker.getElement && marker.getElement();
    if (changed && element) {
      // A brief ring around a marker that just changed, so a new reading catches the eye.
      element.classList.remove("mz-just-updated");
      void element.offsetWidth;
      element.classList.add("mz-just-updated");
    }
  }

  // --- shelters: the markers and, on /hq/, the rows of the shelter panel --------------------------

  function applyShelter(feature) {
    var marker = Mizumori.shelterMarkers[feature.id];
    if (marker) {
      // Only a new status (or a re-confirmed one, with a new time) is news worth a pulse; the
      // snapshot after every (re)connect repeats what the page already shows.
      var before = (marker.feature && marker.feature.properties) || {};
      var after = feature.properties || {};
      var changed = before.status !== after.status || before.status_updated_at !== after.status_updated_at;
      refreshMarker(marker, feature, Mizumori.shelterIcon(feature), changed);
    } else if (Mizumori.shelterLayer) {
      Mizumori.shelterLayer.addData(feature);
    }
    applyShelterRow(feature);
  }

  // The snapshot is the whole truth: update every shelter it has, drop those it no longer has.
  function replaceShelters(features) {
    var current = {};
    features.forEach(function (feature) { current[feature.id] = true; });
    Object.keys(Mizumori.shelterMarkers).forEach(function (code) {
      if (!current[code]) {
        if (Mizumori.shelterLayer) {
          Mizumori.shelterLayer.removeLayer(Mizumori.shelterMarkers[code]);
        }
        delete Mizumori.shelterMarkers[code];
      }
    });
    features.forEach(applyShelter);
  }

  function applyShelterRow(feature) {
    var rows = document.querySelectorAll("[data-shelter-row]");
    var props = feature.properties || {};
    var display = props.display || {};
    Array.prototype.forEach.call(rows, function (row) {
      if (row.getAttribute("data-shelter-row") !== String(feature.id)) {
        return;
      }
      var status = row.querySelector('[data-shelter-field="status"]');
      var updated = row.querySelector('[data-shelter-field="updated"]');
      if (status && Mizumori.shelterChip) {
        status.textContent = "";
        status.appendChild(Mizumori.shelterChip(props));
      }
      if (updated && display.updated) {
        updated.textContent = display.updated;
      }
      Array.prototype.forEach.call(row.querySelectorAll('button[name="status"]'), function (button) {
        button.setAttribute("aria-pressed", button.value === props.status ? "true" : "false");
      });
    });
  }

  // For static/mizumori/shelters.js: show the operator's own change at once, even while offline.
  Mizumori.applyShelter = applyShelter;

  // Readings age even when no message arrives (or while offline): grey stations out on time.
  LiveMap.prototype.markStale = function () {
    var now = Date.now();
    if (this.paused) {
      return;
    }
    Object.keys(Mizumori.stationMarkers).forEach(function (code) {
      var feature = Mizumori.stationMarkers[code].feature;
      var props = feature && feature.properties;
      if (!props || props.stale || !props.stale_after || Date.parse(props.stale_after) > now) {
        return;
      }
      var properties = {};
      Object.keys(props).forEach(function (key) { properties[key] = props[key]; });
      properties.stale = true;
      Mizumori.drawStation({ type: feature.type, id: feature.id, geometry: feature.geometry, properties: properties });
    });
  };

  LiveMap.prototype.refreshNotices = function () {
    var container = document.getElementById("mz-notices");
    if (container) {
      Mizumori.drawNotices(container, document.getElementById("mz-notices-empty"));
    }
  };

  // Keep the map's alert layer in step: one badge per unresolved alert, over its station.
  LiveMap.prototype.applyAlert = function (alert) {
    var layer = Mizumori.alertLayer;
    if (!layer || alert.id === undefined) {
      return;
    }
    var id = "alert-" + alert.id;
    var existing = Mizumori.alertMarkers[id];
    if (existing) {
      layer.removeLayer(existing);
      delete Mizumori.alertMarkers[id];
    }
    var station = alert.station;
    if (alert.state === "resolved" || !station || typeof station.lon !== "number") {
      return;
    }
    var value = typeof alert.value === "number" ? " " + alert.value.toFixed(2) + " " + (alert.unit || "") : "";
    layer.addData({
      type: "Feature",
      id: id,
      geometry: { type: "Point", coordinates: [station.lon, station.lat] },
      properties: {
        alert: alert.id,
        level: alert.level,
        state: alert.state,
        label: "L" + alert.level + " " + Mizumori.localized(station, "name") + value,
      },
    });
  };

  // The list of alerts in force under the public map: the server renders it, we fetch it again
  // (on the public shell, static/mizumori/public.js fetches the snapshot instead).
  LiveMap.prototype.refreshAlerts = function () {
    if (typeof Mizumori.onAlertsChanged === "function") {
      Mizumori.onAlertsChanged();
      return;
    }
    var container = document.getElementById("mz-public-alerts");
    if (!container || !container.getAttribute("data-fragment-url") || !window.fetch) {
      return;
    }
    window.fetch(container.getAttribute("data-fragment-url"), { credentials: "same-origin" })
      .then(function (response) { return response.ok ? response.text() : Promise.reject(response.status); })
      .then(function (html) { container.innerHTML = html; })
      .catch(function () { /* kept as it was; the next alert or reconnect tries again */ });
  };

  LiveMap.prototype.setStatus = function (status) {
    this.root.setAttribute("data-live-status", status);
    Mizumori.showLiveStatus(this.indicator, status, this.offlineSince);
  };

  // The status line; also used by the alert board (static/mizumori/alerts.js).
  Mizumori.showLiveStatus = function (indicator, status, offlineSince) {
    if (!indicator) {
      return;
    }
    var since = offlineSince;
    var time = since ? ("0" + since.getHours()).slice(-2) + ":" + ("0" + since.getMinutes()).slice(-2) : "";
    indicator.className = "mz-live-status mz-live-" + status;
    // Its words from the page's catalog (dashboard/js_catalog.py).
    indicator.textContent = {
      live: gettext("Live"),
      reconnecting: gettext("Reconnecting…"),
      degraded: gettext("Updates delayed (server recovering)"),
      offline: interpolate(gettext("Offline since %s (retrying)"), [time]),
      paused: gettext("Live updates paused (replaying the past)"),
      outdated: gettext("Not updated: reload the page"),
    }[status] || gettext("Connecting…");
  };

  // The server now speaks a version of the live messages or of the public snapshot document that
  // this page's scripts do not know (a deploy since the page was loaded): what they would draw could
  // be wrong, so they draw nothing more, and the reader is asked to reload. Once per page; the map
  // already drawn stays, washed out as offline, under this notice.
  Mizumori.showOutdated = function () {
    Mizumori.outdated = true;
    if (document.getElementById("mz-outdated-notice")) {
      return;
    }
    var box = document.createElement("div");
    box.id = "mz-outdated-notice";
    box.className = "mz-outdated-notice";
    box.setAttribute("role", "alert");
    var heading = document.createElement("p");
    var strong = document.createElement("strong");
    strong.textContent = gettext("This page is out of date: the server has been updated.");
    heading.appendChild(strong);
    var words = document.createElement("p");
    words.textContent = gettext("What the page shows is no longer updated and may be wrong. Reload it to see the current situation.");
    var button = document.createElement("button");
    button.type = "button";
    button.className = "mz-button";
    button.textContent = gettext("Reload");
    button.addEventListener("click", function () { window.location.reload(); });
    box.appendChild(heading);
    box.appendChild(words);
    box.appendChild(button);
    document.body.classList.add("mz-outdated");
    var main = document.getElementById("main") || document.body;
    main.insertBefore(box, main.firstChild);
  };

  // A whole public snapshot document (static/mizumori/public.js): its stations unless the socket
  // already brought newer ones, its shelters and its alerts; held for unpause while paused.
  LiveMap.prototype.applyDocument = function (doc) {
    var self = this;
    if (this.paused) {
      // Replaying: the map shows the past; the newest document is drawn on unpause.
      this.heldDocument = doc;
      return;
    }
    if (!this.synced || doc.stream !== this.stream || doc.seq >= this.seq) {
      this.replaceAll(Array.isArray(doc.features) ? doc.features : []);
      this.seq = Math.max(doc.stream === this.stream ? this.seq : 0, doc.seq);
      this.stream = doc.stream;
      this.synced = true;
    }
    replaceShelters(Array.isArray(doc.shelters) ? doc.shelters : []);
    Object.keys(Mizumori.alertMarkers || {}).forEach(function (id) {
      if (Mizumori.alertLayer) {
        Mizumori.alertLayer.removeLayer(Mizumori.alertMarkers[id]);
      }
      delete Mizumori.alertMarkers[id];
    });
    (Array.isArray(doc.alerts) ? doc.alerts : []).forEach(function (alert) { self.applyAlert(alert); });
    this.root.setAttribute("data-live-seq", String(this.seq));
  };

  // `snapshot`: a snapshot the caller already has (else the page's #mz-live-snapshot); `connect`:
  // false keeps the socket closed (the public page in poll mode calls connect() itself if told to).
  Mizumori.startLive = function (snapshot, options) {
    var root = document.querySelector("[data-live-view]");
    var connect = !options || options.connect !== false;
    if (!root || (connect && !window.WebSocket)) {
      return null;
    }
    var live = new LiveMap(root);
    live.loadPageSnapshot(snapshot);
    if (connect) {
      live.connect();
    }
    window.setInterval(function () { live.markStale(); }, STALE_CHECK_MS);
    Mizumori.live = live;
    return live;
  };

  // live.js is loaded after the map script, at the end of <body>; a page that fetches its snapshot
  // first (data-live-start="manual", the public shell) starts it itself.
  var liveRoot = document.querySelector("[data-live-view]");
  if (liveRoot && liveRoot.getAttribute("data-live-start") !== "manual") {
    Mizumori.startLive();
  }
})(window, document);
