/*
 * Dam release notices on the map and in the release panel: the river downstream drawn as a
 * thick dashed line with the advice, and the panel's list. The page brings the notices in force
 * (#mz-releases-data); live.js hands over each `releases` message (Mizumori.applyReleases). A notice
 * leaves when it is ended or its end time passes. Text from notices only ever goes in as text.
 */
(function (window, document) {
  "use strict";

  var Mizumori = (window.Mizumori = window.Mizumori || {});
  var RECHECK_MS = 30000;
  var releases = {};
  var lines = {};

  function inForce(release, now) {
    return release.in_force && !release.ended_at && (!release.ends_at || Date.parse(release.ends_at) > now);
  }

  function text(tag, value) {
    var element = document.createElement(tag);
    element.textContent = value;
    return element;
  }

  function item(release, ownTown) {
    var li = document.createElement("li");
    li.className = "mz-notice mz-release";
    li.setAttribute("data-release", String(release.id));
    li.appendChild(text("strong", interpolate(gettext("Dam release: %s"), [Mizumori.localized(release.dam, "name")])));
    li.appendChild(document.createElement("br"));
    var discharge = release.current_discharge !== null ? release.current_discharge : release.planned_discharge;
    var districts = release.districts && release.districts.length ? "（" + release.districts.join("、") + "）" : "";
    li.appendChild(document.createTextNode(release.reach + districts + " — " + discharge + " m³/s"));
    li.appendChild(document.createElement("br"));
    li.appendChild(text("strong", Mizumori.localized(release, "advice")));
    if (ownTown && release.downstream.indexOf(ownTown) !== -1) {
      li.appendChild(document.createElement("br"));
      li.appendChild(text("em", gettext("Concerns your town")));
    }
    return li;
  }

  function drawLine(release) {
    // Leaflet and the map may come after this script (the public shell builds its map lazily).
    var L = window.L;
    if (!L || !Mizumori.map || !release.river_geometry) {
      return;
    }
    var line = L.geoJSON(release.river_geometry, {
      style: { color: "#0050b3", weight: 7, opacity: 0.85, dashArray: "10 8" },
    });
    line.bindTooltip(interpolate(gettext("Dam release: %s"), [Mizumori.localized(release.dam, "name")]) + " — " +
      Mizumori.localized(release, "advice"), { sticky: true });
    line.addTo(Mizumori.map);
    lines[release.id] = line;
  }

  function render() {
    var now = Date.now();
    var list = document.getElementById("mz-releases-list");
    var ownTown = list ? list.getAttribute("data-own-town") : "";
    var current = Object.keys(releases)
      .map(function (id) { return releases[id]; })
      .filter(function (release) { return inForce(release, now); })
      .sort(function (a, b) { return Date.parse(b.started_at) - Date.parse(a.started_at); });
    Object.keys(lines).forEach(function (id) {
      lines[id].remove();
      delete lines[id];
    });
    current.forEach(drawLine);
    if (!list) {
      return;
    }
    var empty = list.querySelector(".mz-release-none");
    var emptyCopy = empty ? empty.cloneNode(true) : null;
    while (list.firstChild) {
      list.removeChild(list.firstChild);
    }
    current.forEach(function (release) { list.appendChild(item(release, ownTown)); });
    if (!current.length) {
      var none = emptyCopy || text("li", gettext("No dam is releasing water now."));
      none.className = "mz-muted mz-release-none";
      list.appendChild(none);
    }
  }

  Mizumori.applyReleases = function (documents) {
    documents.forEach(function (release) {
      if (release && typeof release.id === "number") {
        releases[release.id] = release;
      }
    });
    render();
  };

  function start() {
    var data = document.getElementById("mz-releases-data");
    var initial = [];
    if (data) {
      try {
        initial = JSON.parse(data.textContent) || [];
      } catch (error) {
        initial = [];
      }
    }
    Mizumori.applyReleases(initial);
    window.setInterval(render, RECHECK_MS);
  }

  // The map built after this script (static/mizumori/map.js announces it): draw onto it.
  document.addEventListener("mizumori:map", render);

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})(window, document);
