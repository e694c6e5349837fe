/*
 * Replay: the map as it stood at a past moment (templates/timeline/_replay_bar.html).
 *
 * Dragging the slider, stepping or playing pauses the live socket (Mizumori.live.pause) and draws
 * what GET /api/v1/stations?at=, /api/v1/shelters?at=, /api/v1/alerts?at= and /api/v1/orders?at=
 * say of that moment (orders through Mizumori.orders.showAt, static/mizumori/orders.js),
 * with the same drawing code as live (Mizumori.drawStation via live.replaceAll). A "REPLAY hh:mm"
 * banner says so. "LIVE" (or playing up to now) puts back the map as it was when replay began and
 * unpauses the socket, which resumes from the last sequence number it applied, so whatever changed
 * meanwhile arrives then. The public page asks without credentials: public data only.
 *
 * Playing shows a frame every FRAME_MS (slower at 1×: a frame a second). The stations of the frames
 * come a batch at a time from GET /api/v1/replay/frames (per moment only what changed of each
 * station; the next batch is asked for while the last is shown), so the frame rate does not hang on
 * a full as-of read per frame. Shelters, alerts and orders follow with their own ?at= reads, one set
 * in flight at a time, for the latest frame shown.
 *
 * ?at=<ISO time> in the page's address (the timeline's links) starts in replay at that moment.
 *
 * The page's text list of alerts in force (the public page's, Mizumori.showAlertList) shows the
 * alerts of the moment shown, and the live ones again on LIVE.
 *
 * The public page shows the bar only once it knows it draws a map (setAvailable from
 * static/mizumori/public.js): in its minimal mode (no map) the bar is hidden and the page live.
 *
 * A page whose map is built after this script runs (the public page builds it once its first
 * snapshot is in) says so with Mizumori.mapReady, a promise (static/mizumori/public.js): the live
 * map is taken aside and the past drawn only once it is there, so the frames that follow find a
 * marker for every station and change only what changed.
 */
(function (window, document) {
  "use strict";

  var Mizumori = (window.Mizumori = window.Mizumori || {});
  // Playback shows a frame every FRAME_MS of wall time (at least 1 s of the past per frame), from a
  // queue of frames asked for BATCH_FRAMES at a time, the next batch once fewer than REFILL_AT are left.
  var TICK_MS = 100;
  var FRAME_MS = 400;
  var BATCH_FRAMES = 25;
  var REFILL_AT = 12;
  var STEP_MINUTES = 10;

  function Replay(bar) {
    this.bar = bar;
    this.view = bar.getAttribute("data-view");
    this.timeZone = bar.getAttribute("data-time-zone") || undefined;
    this.slider = document.getElementById("mz-replay-slider");
    this.windowSelect = document.getElementById("mz-replay-window");
    this.speedSelect = document.getElementById("mz-replay-speed");
    this.playButton = document.getElementById("mz-replay-play");
    this.liveButton = document.getElementById("mz-replay-live");
    this.banner = document.getElementById("mz-replay-banner");
    this.bannerTime = document.getElementById("mz-replay-time");
    this.at = null; // ms since the epoch while replaying, null while live
    this.anchor = Date.now(); // the slider's right end
    this.saved = null;
    this.request = 0;
    this.loading = false;
    this.timer = null;
    this.resetFrames();
    this.sideLoading = false;
  }

  Replay.prototype.start = function () {
    var self = this;
    this.slider.addEventListener("input", function () { self.showTime(self.sliderTime()); });
    this.slider.addEventListener("change", function () { self.go(self.sliderTime()); });
    this.windowSelect.addEventListener("change", function () { self.syncSlider(); });
    this.speedSelect.addEventListener("change", function () { self.resetFrames(); });
    document.getElementById("mz-replay-back").addEventListener("click", function () {
      self.go((self.at === null ? Date.now() : self.at) - STEP_MINUTES * 60000);
    });
    document.getElementById("mz-replay-forward").addEventListener("click", function () {
      if (self.at !== null) {
        self.go(self.at + STEP_MINUTES * 60000);
      }
    });
    this.playButton.addEventListener("click", function () {
      if (self.timer) {
        self.pause();
      } else {
        self.play();
      }
    });
    this.liveButton.addEventListener("click", function () { self.goLive(); });
    var requested = new window.URLSearchParams(window.location.search).get("at");
    var parsed = requested ? Date.parse(requested) : NaN;
    this.pendingAt = isNaN(parsed) ? null : parsed;
    var publicPage = Mizumori.publicPage;
    if (!Mizumori.mapReady) {
      this.setAvailable(true);
    } else if (publicPage && publicPage.state.mode) {
      this.setAvailable(publicPage.state.mode === "map");
    } // else the public page calls setAvailable once it knows its mode
  };

  // Whether the page draws a map to replay onto: the bar shows (and a pending ?at= is replayed), or
  // the bar hides and the page goes live.
  Replay.prototype.setAvailable = function (available) {
    var pending = this.pendingAt;
    this.pendingAt = null;
    if (!available) {
      this.goLive();
      this.bar.hidden = true;
      return;
    }
    this.bar.hidden = false;
    if (pending !== null) {
      this.go(pending);
    }
  };

  Replay.prototype.windowMinutes = function () {
    return Number(this.windowSelect.value) || 1440;
  };

  Replay.prototype.sliderTime = function () {
    return this.anchor + Number(this.slider.value) * 60000;
  };

  Replay.prototype.syncSlider = function () {
    var minutes = this.windowMinutes();
    this.slider.min = String(-minutes);
    if (this.at !== null) {
      var offset = Math.round((this.at - this.anchor) / 60000);
      if (offset < -minutes) {
        // A moment before the window (a timeline link): widen the window to reach it.
        this.slider.min = String(offset);
      }
      this.slider.value = String(Math.min(0, offset));
    } else {
      this.slider.value = "0";
    }
  };

  Replay.prototype.clock = function (ms) {
    try {
      return new Intl.DateTimeFormat("ja-JP", {
        timeZone: this.timeZone, year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit",
        hour12: false,
      }).format(new Date(ms));
    } catch (error) {
      return new Date(ms).toISOString();
    }
  };

  Replay.prototype.showTime = function (ms) {
    this.bannerTime.textContent = this.clock(ms).slice(-5);
    this.bannerTime.setAttribute("datetime", new Date(ms).toISOString());
    this.bannerTime.title = this.clock(ms);
  };

  // Into replay at `ms` (from live or from another past moment).
  Replay.prototype.go = function (ms) {
    if (ms >= Date.now()) {
      this.goLive();
      return;
    }
    if (this.at === null) {
      this.enter();
    }
    this.resetFrames();
    this.at = ms;
    this.showTime(ms);
    this.syncSlider();
    this.load(ms);
  };

  Replay.prototype.enter = function () {
    var self = this;
    this.anchor = Date.now();
    this.saved = null;
    this.banner.hidden = false;
    this.liveButton.disabled = false;
    document.documentElement.classList.add("mz-replaying");
    if (Mizumori.mapReady) {
      Mizumori.mapReady.then(function () { self.takeOver(); });
    } else {
      this.takeOver();
    }
  };

  // The live map is put aside (LIVE puts it back) and its socket paused: once per replay, when
  // the page's map is there to put aside.
  Replay.prototype.takeOver = function () {
    var live = Mizumori.live;
    if (this.at === null || this.saved) {
      return;
    }
    this.saved = {
      stations: Object.keys(Mizumori.stationMarkers || {}).map(function (code) { return Mizumori.stationMarkers[code].feature; }),
      shelters: Object.keys(Mizumori.shelterMarkers || {}).map(function (code) { return Mizumori.shelterMarkers[code].feature; }),
      alerts: Object.keys(Mizumori.alertMarkers || {}).map(function (id) { return Mizumori.alertMarkers[id]; }),
    };
    if (live) {
      live.pause();
    }
  };

  Replay.prototype.fetchJson = function (url) {
    // The public map shows public data even to a signed-in visitor.
    var credentials = this.view === "public" ? "omit" : "same-origin";
    return window.fetch(url, { credentials: credentials, headers: { Accept: "application/json" } })
      .then(function (response) { return response.ok ? response.json() : Promise.reject(response.status); });
  };

  Replay.prototype.load = function (ms) {
    var self = this;
    var token = ++this.request;
    var at = encodeURIComponent(new Date(ms).toISOString());
    var bar = this.bar;
    this.loading = true;
    bar.setAttribute("data-replay-state", "loading");
    return Promise.all([
      this.fetchJson(bar.getAttribute("data-stations-url") + "?at=" + at),
      this.fetchJson(bar.getAttribute("data-shelters-url") + "?at=" + at),
      this.fetchJson(bar.getAttribute("data-alerts-url") + "?limit=500&at=" + at),
      this.fetchJson(bar.getAttribute("data-orders-url") + "?at=" + at),
      Mizumori.mapReady,
    ]).then(function (answers) {
      if (token !== self.request || self.at === null) {
        return; // a later moment was asked for meanwhile, or we are live again
      }
      self.takeOver();
      self.draw(answers[0].features || [], answers[1].features || [], answers[2].results || [], answers[3].features || []);
      bar.setAttribute("data-replay-at", new Date(ms).toISOString());
      bar.setAttribute("data-replay-state", "shown");
    }).catch(function () {
      bar.setAttribute("data-replay-state", "failed");
    }).then(function () {
      if (token === self.request) {
        self.loading = false;
      }
    });
  };

  Replay.prototype.draw = function (stations, shelters, alerts, orders) {
    var live = Mizumori.live;
    if (live) {
      live.replaceAll(stations);
    } else {
      stations.forEach(function (feature) { Mizumori.drawStation(feature); });
    }
    this.drawSide(shelters, alerts, orders);
  };

  Replay.prototype.drawSide = function (shelters, alerts, orders) {
    var live = Mizumori.live;
    shelters.forEach(function (feature) {
      if (Mizumori.applyShelter) {
        Mizumori.applyShelter(feature);
      }
    });
    this.clearAlerts();
    if (live) {
      alerts.forEach(function (alert) { live.applyAlert(alert); });
    }
    if (Mizumori.showAlertList) {
      Mizumori.showAlertList(alerts);
    }
    if (Mizumori.orders && Mizumori.orders.showAt) {
      Mizumori.orders.showAt(orders);
    }
  };

  Replay.prototype.clearAlerts = function () {
    var layer = Mizumori.alertLayer;
    Object.keys(Mizumori.alertMarkers || {}).forEach(function (id) {
      if (layer) {
        layer.removeLayer(Mizumori.alertMarkers[id]);
      }
      delete Mizumori.alertMarkers[id];
    });
  };

  // Frames asked for and not yet shown are dropped (a jump, a new speed, a pause, live again).
  Replay.prototype.resetFrames = function () {
    this.frames = [];
    this.framesToken = (this.framesToken || 0) + 1;
    this.framesLoading = false;
    this.nextFrameAt = null;
    this.framesEnd = false;
  };

  Replay.prototype.frameTiming = function () {
    var speed = Number(this.speedSelect.value) || 1;
    var interval = Math.max(FRAME_MS, 1000 / speed);
    return { interval: interval, stepSeconds: Math.max(1, Math.round((speed * interval) / 1000)) };
  };

  // Ask for the next batch of frames after the last one queued (or the moment shown).
  Replay.prototype.fillFrames = function () {
    if (this.framesLoading || this.framesEnd || this.frames.length >= REFILL_AT || this.at === null) {
      return;
    }
    var self = this;
    var token = this.framesToken;
    var step = this.frameTiming().stepSeconds * 1000;
    var since = this.nextFrameAt === null ? this.at + step : this.nextFrameAt;
    var now = Date.now();
    if (since >= now) {
      this.framesEnd = true; // the queue runs up to now: live once it is shown
      return;
    }
    var count = Math.min(BATCH_FRAMES, Math.floor((now - since) / step) + 1);
    var until = since + (count - 1) * step;
    this.framesLoading = true;
    this.fetchJson(this.bar.getAttribute("data-frames-url") + "?since=" + encodeURIComponent(new Date(since).toISOString()) +
      "&until=" + encodeURIComponent(new Date(until).toISOString()) + "&step=" + step / 1000)
      .then(function (answer) {
        if (token !== self.framesToken) {
          return;
        }
        (answer.frames || []).forEach(function (frame, index) {
          self.frames.push({ at: since + index * step, fields: answer.fields, stations: frame.stations || {} });
        });
        self.nextFrameAt = until + step;
      })
      .catch(function () {
        if (token === self.framesToken) {
          self.bar.setAttribute("data-replay-state", "failed");
        }
      })
      .then(function () {
        if (token === self.framesToken) {
          self.framesLoading = false;
        }
      });
  };

  // Whether a frame's row holds what these properties already say (objects compared as JSON).
  function sameValues(properties, fields, row) {
    return fields.every(function (name, index) {
      if (!(name in properties)) {
        return true;
      }
      var value = properties[name];
      return value === row[index] ||
        (typeof value === "object" && value !== null && JSON.stringify(value) === JSON.stringify(row[index]));
    });
  }

  // One frame onto the map: each listed station's marker gets its feature with the frame's values.
  Replay.prototype.showFrame = function (frame) {
    this.at = frame.at;
    this.showTime(frame.at);
    this.syncSlider();
    var markers = Mizumori.stationMarkers || {};
    var missing = 0;
    Object.keys(frame.stations).forEach(function (code) {
      var marker = markers[code];
      var base = marker && marker.feature;
      if (!base) {
        missing += 1; // not on the map this frame changes (not drawable, or new since it was drawn)
        return;
      }
      var row = frame.stations[code];
      if (sameValues(base.properties, frame.fields, row)) {
        return; // the first frame of a batch lists every station, most as they already are
      }
      var properties = {};
      Object.keys(base.properties).forEach(function (key) { properties[key] = base.properties[key]; });
      frame.fields.forEach(function (name, index) {
        if (name in properties) { // the rain fields only where the feature has them
          properties[name] = row[index];
        }
      });
      Mizumori.drawStation({ type: base.type, id: base.id, geometry: base.geometry, properties: properties });
    });
    if (Mizumori.live && Mizumori.live.refreshNotices) {
      Mizumori.live.refreshNotices();
    }
    if (missing && !this.loading) {
      // A frame holds only what changed: stations with no marker to change get the whole map of
      // this moment once (the queue waits for it), as a jump would.
      this.load(frame.at);
      return;
    }
    this.bar.setAttribute("data-replay-at", new Date(frame.at).toISOString());
    this.bar.setAttribute("data-replay-state", "shown");
    this.loadSide(frame.at);
  };

  // Shelters, alerts and orders of a frame's moment; skipped while the last set is still on its way.
  Replay.prototype.loadSide = function (ms) {
    if (this.sideLoading) {
      return;
    }
    var self = this;
    var request = this.request;
    var at = encodeURIComponent(new Date(ms).toISOString());
    this.sideLoading = true;
    Promise.all([
      this.fetchJson(this.bar.getAttribute("data-shelters-url") + "?at=" + at),
      this.fetchJson(this.bar.getAttribute("data-alerts-url") + "?limit=500&at=" + at),
      this.fetchJson(this.bar.getAttribute("data-orders-url") + "?at=" + at),
    ]).then(function (answers) {
      if (request === self.request && self.at !== null) {
        self.drawSide(answers[0].features || [], answers[1].results || [], answers[2].features || []);
      }
    }).catch(function () {
      // The stations went on; the next frame asks again.
    }).then(function () {
      self.sideLoading = false;
    });
  };

  Replay.prototype.play = function () {
    var self = this;
    if (this.at === null) {
      this.go(Date.now() - this.windowMinutes() * 60000);
    }
    this.resetFrames();
    var last = 0;
    this.playButton.setAttribute("aria-pressed", "true");
    this.timer = window.setInterval(function () {
      if (self.loading) {
        return; // the as-of map the frames change is still on its way
      }
      self.fillFrames();
      var now = Date.now();
      if (now - last < self.frameTiming().interval) {
        return;
      }
      if (!self.frames.length) {
        if (self.framesEnd) {
          self.goLive();
        }
        return; // the moment shown waits for the next batch rather than skipping ahead
      }
      last = now;
      self.showFrame(self.frames.shift());
    }, TICK_MS);
  };

  Replay.prototype.pause = function () {
    window.clearInterval(this.timer);
    this.timer = null;
    this.resetFrames();
    this.playButton.setAttribute("aria-pressed", "false");
  };

  Replay.prototype.goLive = function () {
    var live = Mizumori.live;
    this.pause();
    if (this.at === null) {
      return;
    }
    this.at = null;
    this.request += 1;
    // Nothing was put aside when the page's map never came: then nothing of the past was drawn either.
    var saved = this.saved || { stations: null, shelters: [], alerts: [] };
    this.saved = null;
    if (live && saved.stations) {
      live.replaceAll(saved.stations);
    }
    saved.shelters.forEach(function (feature) {
      if (Mizumori.applyShelter) {
        Mizumori.applyShelter(feature);
      }
    });
    this.clearAlerts();
    saved.alerts.forEach(function (marker) {
      if (Mizumori.alertLayer) {
        Mizumori.alertLayer.addLayer(marker);
        Mizumori.alertMarkers[marker.feature.id] = marker;
      }
    });
    if (Mizumori.showAlertList) {
      Mizumori.showAlertList(null);
    }
    if (Mizumori.orders && Mizumori.orders.showAt) {
      Mizumori.orders.showAt(null);
    }
    this.banner.hidden = true;
    this.liveButton.disabled = true;
    this.syncSlider();
    this.bar.setAttribute("data-replay-state", "live");
    document.documentElement.classList.remove("mz-replaying");
    if (live && live.paused) {
      live.unpause();
    }
  };

  var bar = document.getElementById("mz-replay");
  if (bar && window.fetch && window.URLSearchParams) {
    Mizumori.replay = new Replay(bar);
    Mizumori.replay.start();
  }
})(window, document);
