/*
 * The live layer: keeps the folium map (drawn by the server) in step with /ws/live/.
 *
 * Protocol (DESIGN.md): subscribe -> subscribed + snapshot; then "stations" and "shelters" messages
 * with a sequence number. The snapshot carries the stations in "features" and every shelter in
 * "shelters"; a "shelters" message carries the shelters that changed (open / full / closed).
 * After a drop the client reconnects with backoff, subscribes without a snapshot and resumes
 * from its last number; the server answers with what was missed, or with a snapshot when it
 * cannot. The indicator says live / reconnecting / offline since hh:mm, so a
 * frozen map is never mistaken for a calm one.
 *
 * Marker, tooltip, popup, notice and shelter-panel strings arrive prepared and escaped by the
 * server (properties.display); nothing from a feature's raw properties is put into HTML here.
 */
(function (window, document) {
  "use strict";

  var Mizumori = (window.Mizumori = window.Mizumori || {});
  var STATION_KINDS = ["river", "rain", "reservoir"];
  var LIVE_LAYERS = STATION_KINDS.concat(["shelters", "alerts"]);
  var PING_EVERY_MS = 20000;
  var PONG_WITHIN_MS = 10000;
  var MAX_BACKOFF_MS = 30000;
  var STALE_CHECK_MS = 15000;

  function LiveMap(root) {
    this.root = root;
    this.view = root.getAttribute("data-live-view") || "";
    this.language = document.documentElement.lang === "en" ? "en" : "ja";
    this.seq = 0;
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
    try {
      socket = new window.WebSocket(this.url());
    } catch (error) {
      this.scheduleReconnect();
      return;
    }
    this.socket = socket;
    socket.onopen = function () {
      var resuming = self.seq > 0;
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

  LiveMap.prototype.handle = function (message) {
    switch (message.type) {
      case "subscribed":
        this.attempt = 0;
        this.offlineSince = null;
        this.stream = message.stream;
        this.refreshAlerts();
        if (!this.seq) {
          this.seq = message.seq;
        }
        this.setStatus("live");
        break;
      case "snapshot":
        this.replaceAll(message.features || []);
        if (message.shelters) {
          replaceShelters(message.shelters);
        }
        this.seq = message.seq;
        break;
      case "shelters":
        (message.features || []).forEach(applyShelter);
        this.seq = Math.max(this.seq, message.seq);
        break;
      case "stations":
        (message.features || []).forEach(this.upsert, this);
        this.seq = Math.max(this.seq, message.seq);
        this.refreshNotices();
        break;
      case "withdrawn":
        (message.stations || []).forEach(this.remove, this);
        this.seq = Math.max(this.seq, message.seq);
        this.refreshNotices();
        break;
      case "alert":
        this.applyAlert(message.alert || {});
        this.refreshAlerts();
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
  };

  LiveMap.prototype.replaceAll = function (features) {
    STATION_KINDS.forEach(function (kind) {
      var layer = Mizumori.stationLayers[kind];
      if (layer) {
        layer.eachLayer(function (marker) {
          if (marker.feature) {
            delete Mizumori.stationMarkers[marker.feature.id];
          }
        });
        layer.clearLayers();
      }
    });
    features.forEach(this.upsert, this);
    this.refreshNotices();
  };

  LiveMap.prototype.upsert = function (feature) {
    var marker = Mizumori.stationMarkers[feature.id];
    if (!marker) {
      var layer = Mizumori.stationLayers[feature.properties && feature.properties.kind];
      if (layer) {
        layer.addData(feature);
      }
      return;
    }
    var changed = !marker.feature || JSON.stringify(marker.feature.properties) !== JSON.stringify(feature.properties);
    refreshMarker(marker, feature, Mizumori.stationIcon(feature), changed);
  };

  // Give an existing marker (station or shelter) a feature's new drawing, tooltip and popup.
  function refreshMarker(marker, feature, icon, changed) {
    var display = (feature.properties && feature.properties.display) || {};
    marker.feature = feature;
    marker.setIcon(icon);
    marker.setZIndexOffset(display.z || 0);
    if (marker.getTooltip() && display.tooltip) {
      marker.setTooltipContent(display.tooltip);
    }
    if (marker.getPopup() && display.popup) {
      marker.setPopupContent(display.popup);
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
      if (status && display.status) {
        status.innerHTML = display.status;
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

  // A station this page may no longer show (sharing withdrawn, visibility narrowed).
  LiveMap.prototype.remove = function (code) {
    var marker = Mizumori.stationMarkers[code];
    if (!marker) {
      return;
    }
    STATION_KINDS.forEach(function (kind) {
      var layer = Mizumori.stationLayers[kind];
      if (layer && layer.hasLayer(marker)) {
        layer.removeLayer(marker);
      }
    });
    delete Mizumori.stationMarkers[code];
  };

  // Readings age even when no message arrives (or while offline): grey stations out on time.
  LiveMap.prototype.markStale = function () {
    var now = Date.now();
    Object.keys(Mizumori.stationMarkers).forEach(function (code) {
      var marker = Mizumori.stationMarkers[code];
      var props = marker.feature && marker.feature.properties;
      if (!props || props.stale || !props.stale_after || Date.parse(props.stale_after) > now) {
        return;
      }
      props.stale = true;
      var element = marker.getElement && marker.getElement();
      var drawn = element && element.querySelector(".mz-marker");
      if (drawn && !drawn.classList.contains("mz-stale")) {
        drawn.classList.add("mz-stale");
        var tag = document.createElement("span");
        tag.className = "mz-stale-tag";
        tag.lang = "ja";
        tag.textContent = "欠測";
        drawn.appendChild(tag);
      }
    });
  };

  LiveMap.prototype.refreshNotices = function () {
    var container = document.getElementById("mz-notices");
    var empty = document.getElementById("mz-notices-empty");
    if (!container) {
      return;
    }
    var language = this.language;
    var raised = Object.keys(Mizumori.stationMarkers)
      .map(function (code) { return Mizumori.stationMarkers[code].feature; })
      .filter(function (feature) {
        var display = feature && feature.properties && feature.properties.display;
        return display && display.notice;
      })
      .sort(function (a, b) {
        return (b.properties.level - a.properties.level) || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
      });
    if (!raised.length) {
      container.innerHTML = empty ? empty.innerHTML : "";
      return;
    }
    container.innerHTML = '<ul class="mz-notice-list">' + raised.map(function (feature) {
      return feature.properties.display.notice[language];
    }).join("") + "</ul>";
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
        label: "L" + alert.level + " " + station.name_ja + " / " + station.name_en + value,
      },
    });
  };

  // The list of alerts in force under the public map: the server renders it, we fetch it again.
  LiveMap.prototype.refreshAlerts = function () {
    var container = document.getElementById("mz-public-alerts");
    if (!container || !window.fetch) {
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

  // The status line in both languages; also used by the alert board (static/mizumori/alerts.js).
  Mizumori.showLiveStatus = function (indicator, status, offlineSince) {
    if (!indicator) {
      return;
    }
    var since = offlineSince;
    var time = since ? ("0" + since.getHours()).slice(-2) + ":" + ("0" + since.getMinutes()).slice(-2) : "";
    var words = {
      live: ["ライブ", "Live"],
      reconnecting: ["再接続中…", "Reconnecting…"],
      offline: [time + "から接続が切れています(再試行中)", "Offline since " + time + " (retrying)"],
    }[status] || ["接続中…", "Connecting…"];
    indicator.className = "mz-live-status mz-live-" + status;
    indicator.querySelector("[lang=ja]").textContent = words[0];
    indicator.querySelector("[lang=en]").textContent = words[1];
  };

  Mizumori.startLive = function () {
    var root = document.querySelector("[data-live-view]");
    if (!root || !window.WebSocket) {
      return null;
    }
    var live = new LiveMap(root);
    live.connect();
    window.setInterval(function () { live.markStale(); }, STALE_CHECK_MS);
    Mizumori.live = live;
    return live;
  };

  // live.js is loaded after the map script, at the end of <body>.
  Mizumori.startLive();
})(window, document);
