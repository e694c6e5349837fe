/*
 * Stations on the map, drawn in the browser from their GeoJSON feature properties (the
 * /api/v1/stations shape): the marker, its tooltip and popup, and the notice under the public map.
 * The first render (the snapshot in the page) and every live patch go through drawStation, so a
 * marker looks the same however it got there.
 *
 * Everything is built with DOM calls and textContent: data from a feature (names, units, codes) is
 * never inserted as HTML. The words, colours and advice for each level, the kind shapes and the
 * popup's headings are not written here: they come from the vocabulary the server embeds in the
 * page (#mz-map-vocabulary, dashboard.maps.map_vocabulary), their one home.
 */
(function (window, document) {
  "use strict";

  // Leaflet is read when a marker is built, not at load: the public page loads it only in map mode
  // (static/mizumori/public.js), and its minimal mode uses only the notice list from this file.
  var Mizumori = (window.Mizumori = window.Mizumori || {});
  var SVG_NS = "http://www.w3.org/2000/svg";
  var vocabulary = null;

  Mizumori.stationMarkers = Mizumori.stationMarkers || {};
  Mizumori.stationLayers = Mizumori.stationLayers || {};

  function words() {
    if (vocabulary === null) {
      var element = document.getElementById("mz-map-vocabulary");
      vocabulary = element ? JSON.parse(element.textContent) : {};
    }
    return vocabulary;
  }

  // --- reading the properties --------------------------------------------------------------------

  function levelStyle(level) {
    var levels = words().levels || {};
    if (typeof level !== "number" || !isFinite(level)) {
      return levels.none;
    }
    // Levels above the scale (data errors) are shown as the top level rather than hidden.
    var key = String(Math.min(Math.floor(level), words().top_level));
    return levels[key] || levels.none;
  }

  // A suspect latest reading that would mean a higher level shows as "unconfirmed", never as the
  // calm level below it (dashboard/maps.py state_style decides the same way on the server).
  function stateStyle(props) {
    var rain = words().rain || {};
    if (props.kind === "rain" && Object.prototype.hasOwnProperty.call(rain, props.rain_intensity)) {
      return rain[props.rain_intensity];  // rain by its 1-hour total's intensity, never a level
    }
    var levels = words().levels || {};
    var level = typeof props.level === "number" ? props.level : 0;
    var unconfirmed = props.unconfirmed_level;
    if (props.quality && props.quality !== "ok" && typeof unconfirmed === "number" && unconfirmed > level && levels.unconfirmed) {
      return levels.unconfirmed;
    }
    return levelStyle(props.level);
  }

  // The quantity that set the state (dashboard/maps.py headline_text writes the same).
  function headlineText(props) {
    var labels = words().rain_headline || ["1 h", "10 min"];
    if (props.kind === "rain" && typeof props.rain_hour_total === "number") {
      return labels[0] + " " + valueText(props.rain_hour_total, props.unit) + " (" + labels[1] + " " +
        valueText(props.value, props.unit) + ")";
    }
    return valueText(props.value, props.unit);
  }

  function kindStyle(kind) {
    var kinds = words().kinds || {};
    return Object.prototype.hasOwnProperty.call(kinds, kind) ? kinds[kind] : null;
  }

  function text(value) {
    return value === null || value === undefined ? "" : String(value);
  }

  function valueText(value, unit) {
    if (typeof value !== "number" || !isFinite(value)) {
      return "—";
    }
    var digitsByUnit = words().value_digits || {};
    var digits = Object.prototype.hasOwnProperty.call(digitsByUnit, unit) ? digitsByUnit[unit] : words().value_digits_default;
    return (value.toFixed(digits) + " " + text(unit)).trim();
  }

  // Feature times are ISO 8601 in the site's time zone already: show the date and minute and the zone.
  function observedText(iso) {
    var match = /^(\d{4}-\d{2}-\d{2})T(\d{2}:\d{2})/.exec(text(iso));
    return match ? match[1] + " " + match[2] + " " + words().time_zone_name : "—";
  }

  function windowText(seconds) {
    var minutes = Math.floor(Number(seconds) / 60);
    if (minutes % 60 === 0) {
      return interpolate(gettext("%s h"), [minutes / 60]);
    }
    return interpolate(gettext("%s min"), [minutes]);
  }

  // The highest threshold at the station's current level: what was crossed.
  function reachedThreshold(props) {
    if (!props.level || !Array.isArray(props.thresholds)) {
      return null;
    }
    var reached = null;
    props.thresholds.forEach(function (threshold) {
      if (threshold && threshold.level === props.level && (!reached || threshold.value > reached.value)) {
        reached = threshold;
      }
    });
    return reached;
  }

  function stationZ(props) {
    var level = typeof props.level === "number" ? Math.min(props.level, words().top_level) : 0;
    // Severe stations are drawn over calm ones where markers overlap.
    return Math.max(level, 0) * 100 + (props.stale ? 0 : 50);
  }

  // --- DOM helpers -------------------------------------------------------------------------------

  function node(tag, className, content, lang) {
    var element = document.createElement(tag);
    if (className) {
      element.className = className;
    }
    if (lang) {
      element.lang = lang;
    }
    if (content !== undefined && content !== null) {
      element.textContent = content;
    }
    return element;
  }

  function append(parent) {
    for (var i = 1; i < arguments.length; i += 1) {
      var child = arguments[i];
      if (child === null || child === undefined) {
        continue;
      }
      parent.appendChild(typeof child === "string" ? document.createTextNode(child) : child);
    }
    return parent;
  }

  // Word pairs of the vocabulary ([ja, en]) and names kept per language, in the page's language
  // (static/mizumori/i18n.js).
  function pick(pair) {
    return Mizumori.pick(pair);
  }

  function localized(source, field) {
    return Mizumori.localized(source, field);
  }

  function chip(level) {
    return node("span", "mz-chip mz-level-" + level.css, level.badge);
  }

  // --- the marker --------------------------------------------------------------------------------

  var markerTemplates = {};

  // The drawing for one kind, level and staleness, built once and cloned for every marker like it.
  function markerTemplate(kind, level, stale) {
    var key = kind + "|" + level.css + "|" + (stale ? 1 : 0);
    if (markerTemplates[key]) {
      return markerTemplates[key];
    }
    var style = kindStyle(kind);
    var shapeName = style ? style.shape : "circle";
    var shape = words().shapes[shapeName] || words().shapes.circle;
    var div = node("div", "mz-marker mz-kind-" + (style ? kind : "other") + " mz-level-" + level.css + (stale ? " mz-stale" : ""));
    div.setAttribute("role", "img");
    var svg = document.createElementNS(SVG_NS, "svg");
    var attributes = { "class": "mz-marker-svg", viewBox: "0 0 30 30", width: "30", height: "30", "aria-hidden": "true", focusable: "false" };
    Object.keys(attributes).forEach(function (name) { svg.setAttribute(name, attributes[name]); });
    var group = document.createElementNS(SVG_NS, "g");
    group.setAttribute("fill", level.fill);
    group.setAttribute("stroke", level.stroke);
    group.setAttribute("stroke-width", "2");
    if (stale) {
      group.setAttribute("stroke-dasharray", "4 3");
      group.setAttribute("opacity", "0.55");
    }
    var outline = document.createElementNS(SVG_NS, shape.tag);
    Object.keys(shape.attributes).forEach(function (name) { outline.setAttribute(name, shape.attributes[name]); });
    group.appendChild(outline);
    var badge = document.createElementNS(SVG_NS, "text");
    var badgeAttributes = {
      x: "15", y: "15.5", "text-anchor": "middle", "dominant-baseline": "middle",
      "font-size": words().badge_font_size[shapeName], "font-weight": "700",
      "font-family": "system-ui, sans-serif", fill: level.text,
    };
    Object.keys(badgeAttributes).forEach(function (name) { badge.setAttribute(name, badgeAttributes[name]); });
    badge.textContent = level.badge;
    svg.appendChild(group);
    svg.appendChild(badge);
    div.appendChild(svg);
    if (stale) {
      div.appendChild(node("span", "mz-stale-tag", pick(words().stale)));
    }
    markerTemplates[key] = div;
    return div;
  }

  function markerElement(props) {
    var level = stateStyle(props);
    var element = markerTemplate(text(props.kind), level, Boolean(props.stale)).cloneNode(true);
    element.setAttribute("aria-label", spokenText(props, level));
    return element;
  }

  // --- calm stations: one light element each ------------------------------------------------------
  //
  // A full marker is a div holding an SVG with its outline and badge text (six nodes): 2,000 of them
  // cost Chromium seconds of style and layout. A calm station (a state the vocabulary lists as calm:
  // no data, normal, level 1, no or light rain; current; not selected) is drawn as one element
  // instead, whose picture is the same SVG as a background image, shared through one CSS rule per
  // kind and state. Every marker keeps its own focusable element and spoken label, so the keyboard
  // path to each station is the same for both.

  var lightRules = {};
  var lightSheet = null;

  function xmlText(value) {
    return String(value).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
  }

  function svgAttributes(attributes) {
    return Object.keys(attributes).map(function (name) {
      return " " + name + '="' + xmlText(attributes[name]) + '"';
    }).join("");
  }

  // The markerTemplate drawing (not stale) as SVG text, for a background image.
  function markerSvgText(shapeName, level) {
    var shape = words().shapes[shapeName] || words().shapes.circle;
    return '<svg xmlns="' + SVG_NS + '" viewBox="0 0 30 30" width="30" height="30">' +
      "<g" + svgAttributes({ fill: level.fill, stroke: level.stroke, "stroke-width": "2" }) + ">" +
      "<" + shape.tag + svgAttributes(shape.attributes) + "/></g>" +
      "<text" + svgAttributes({
        x: "15", y: "15.5", "text-anchor": "middle", "dominant-baseline": "middle",
        "font-size": words().badge_font_size[shapeName], "font-weight": "700",
        "font-family": "system-ui, sans-serif", fill: level.text,
      }) + ">" + xmlText(level.badge) + "</text></svg>";
  }

  // The class whose rule draws this kind and state; the rule is added on first use.
  function lightClass(kind, level) {
    var style = kindStyle(kind);
    var name = ("mz-m-" + (style ? kind : "other") + "-" + level.css).replace(/[^\w-]/g, "_");
    if (!lightRules[name]) {
      if (!lightSheet) {
        var element = document.createElement("style");
        document.head.appendChild(element);
        lightSheet = element.sheet;
      }
      var image = "data:image/svg+xml," + encodeURIComponent(markerSvgText(style ? style.shape : "circle", level));
      lightSheet.insertRule(".mz-station-icon." + name + '{background-image:url("' + image + '")}', lightSheet.cssRules.length);
      lightRules[name] = true;
    }
    return name;
  }

  function isCalm(props, level) {
    return !props.stale && (words().calm || []).indexOf(level.css) !== -1;
  }

  function spokenText(props, level) {
    var kind = kindStyle(props.kind);
    var spoken = localized(props, "name") + " " + (kind ? pick(kind.name) : text(props.kind)) + " " + pick(level.title);
    if (props.stale) {
      spoken += " (" + pick(words().stale) + ")";
    }
    return spoken;
  }

  // A div icon that also labels its element: the light marker is itself the labelled image, the
  // full one carries its label inside (markerElement). Leaflet reuses the element on setIcon, so a
  // marker that changes between the two keeps its focus; both name their badge in data-badge.
  var StationIcon = null;

  function stationIconClass() {
    if (!StationIcon) {
      StationIcon = window.L.DivIcon.extend({
        createIcon: function (oldIcon) {
          var element = window.L.DivIcon.prototype.createIcon.call(this, oldIcon);
          if (this.options.label) {
            element.setAttribute("aria-label", this.options.label);
          } else {
            element.removeAttribute("aria-label");
          }
          element.setAttribute("data-badge", this.options.badge);
          return element;
        },
      });
    }
    return StationIcon;
  }

  function stationIcon(props, selected) {
    var level = stateStyle(props);
    var light = !selected && isCalm(props, level);
    var Icon = stationIconClass();
    return new Icon({
      className: light ? "mz-station-icon mz-marker-light " + lightClass(text(props.kind), level) : "mz-station-icon",
      html: light ? false : markerElement(props),
      label: light ? spokenText(props, level) : null,
      badge: level.badge,
      // Size and anchor come from the .mz-station-icon rule (map.css), not from four inline styles
      // per marker that the browser would parse 2,000 times over.
      iconSize: null,
      iconAnchor: null,
      popupAnchor: [0, -15],
      tooltipAnchor: [15, 0],
    });
  }

  // --- tooltip, popup, notice --------------------------------------------------------------------

  function tooltipElement(props) {
    var level = stateStyle(props);
    var tip = append(
      node("div", "mz-tip"),
      node("strong", null, localized(props, "name")),
      node("br"),
      chip(level), " ", pick(level.action), " · " + headlineText(props)
    );
    if (props.stale) {
      append(tip, node("br"), node("span", "mz-stale-note", pick(words().stale)));
    }
    return tip;
  }

  function popupElement(props) {
    var vocab = words();
    var level = stateStyle(props);
    var kind = kindStyle(props.kind);
    var rows = [["kind", kind ? pick(kind.name) : text(props.kind)]];
    if (props.river) {
      rows.push(["river", text(props.river)]);
    }
    rows.push(["reading", headlineText(props)]);
    var trend = Object.prototype.hasOwnProperty.call(vocab.trends, props.trend) ? vocab.trends[props.trend] : null;
    if (trend) {
      rows.push(["trend", trend[0] + " " + text(trend[1])]);
    }
    rows.push(["observed", observedText(props.observed_at)]);
    var town = Object.prototype.hasOwnProperty.call(vocab.towns, props.municipality) ? vocab.towns[props.municipality] : null;
    rows.push(["owner", town ? pick(town) : text(props.municipality)]);
    var threshold = reachedThreshold(props);
    if (threshold) {
      rows.push(["threshold", localized(threshold, "label")]);
    }
    var totals = props.accumulations && typeof props.accumulations === "object" ? props.accumulations : {};
    Object.keys(totals)
      .filter(function (seconds) { return /^\d+$/.test(seconds); })
      .sort(function (a, b) { return Number(a) - Number(b); })
      .forEach(function (seconds) {
        rows.push(["rain_total", windowText(seconds) + ": " + valueText(totals[seconds], props.unit)]);
      });
    // Present only on staff pages (the vocabulary has no sharing words on the public map) and only
    // in features sent to staff (dashboard.live.audience_feature).
    if (Object.prototype.hasOwnProperty.call(vocab.sharing, props.visibility)) {
      rows.push(["sharing", text(vocab.sharing[props.visibility])]);
    }

    var popup = node("div", "mz-popup");
    append(popup, append(node("p", "mz-popup-title"), node("strong", null, localized(props, "name"))));
    append(popup, append(node("p", "mz-popup-level mz-level-" + level.css), chip(level), " ", node("span", null, pick(level.title))));
    if (props.stale) {
      append(popup, node("p", "mz-stale-note", text(vocab.words.stale_note)));
    }
    var facts = node("dl", "mz-popup-facts");
    rows.forEach(function (row) {
      append(facts, node("dt", null, text(vocab.rows[row[0]])), append(node("dd"), row[1]));
    });
    append(popup, facts);
    var link = node("a", null, text(vocab.words.details));
    link.href = vocab.station_url.replace("__code__", encodeURIComponent(text(props.code)));
    append(popup, append(node("p", "mz-popup-code"), text(props.code) + " · ", link));
    return popup;
  }

  // One item of the list under the public map (the same words as dashboard/_notice_item.html).
  function noticeElement(props) {
    var level = stateStyle(props);
    var kind = kindStyle(props.kind);
    var vocab = words();
    var town = Object.prototype.hasOwnProperty.call(vocab.towns, props.municipality)
      ? pick(vocab.towns[props.municipality]) : text(props.municipality);
    var item = node("li", "mz-notice mz-level-" + level.css);
    append(item, append(
      node("p", "mz-notice-level"),
      chip(level), " ", node("strong", null, pick(level.title))
    ));
    append(item, node("p", "mz-notice-advice", pick(level.advice)));
    append(item, node("p", "mz-notice-meta", interpolate(gettext("%(station)s — %(kind)s, %(town)s"), {
      station: localized(props, "name"), kind: kind ? pick(kind.name) : text(props.kind), town: town,
    }, true)));
    var meta = append(node("p", "mz-notice-meta"), headlineText(props) + " · " + observedText(props.observed_at));
    if (props.stale) {
      append(meta, " · ", node("span", "mz-stale-note", pick(vocab.stale)));
    }
    return append(item, meta);
  }

  function isRaised(props) {
    return typeof props.level === "number" && props.level >= words().notice_level;
  }

  // --- markers on the map ------------------------------------------------------------------------

  // What a station's icon, its spoken label and its place in the stacking order are drawn from.
  function iconKey(props) {
    return [text(props.kind), stateStyle(props).css, text(props.level), Boolean(props.stale), text(props.name_ja),
      text(props.name_en)].join("|");
  }

  // --- one set of map listeners for every station marker ------------------------------------------
  //
  // A Leaflet marker puts three listeners of its own on the map (zoom, viewreset, zoomanim), and
  // Leaflet compares each new listener with every one already there: 2,000 markers are 6,000
  // listeners and some 18 million comparisons, tens of milliseconds of the first drawing. A station
  // marker puts none there: the map's one set (added with its first station) moves every station
  // marker on it, as each marker's own listeners would.

  var StationMarker = null;

  function stationsOn(map) {
    if (!map.mzStationMarkers) {
      var placed = map.mzStationMarkers = {};
      var each = function (act) {
        return function (event) {
          Object.keys(placed).forEach(function (id) { act(placed[id], event); });
        };
      };
      var update = each(function (marker) { marker.update(); });
      map.on({
        zoom: update,
        viewreset: update,
        zoomanim: each(function (marker, event) {
          if (marker._zoomAnimated) {
            marker._animateZoom(event);
          }
        }),
      });
    }
    return map.mzStationMarkers;
  }

  function stationMarkerClass() {
    if (!StationMarker) {
      var L = window.L;
      StationMarker = L.Marker.extend({
        getEvents: function () {
          return {};
        },
        // L.Marker.onAdd, with the map's shared listeners instead of this marker's own.
        onAdd: function (map) {
          this._zoomAnimated = this._zoomAnimated && map.options.markerZoomAnimation;
          stationsOn(map)[L.stamp(this)] = this;
          this._initIcon();
          this.update();
        },
        onRemove: function (map) {
          delete stationsOn(map)[L.stamp(this)];
          this._zoomAnimated = false;  // it has no zoomanim listener of its own to take off the map
          L.Marker.prototype.onRemove.call(this, map);
        },
      });
    }
    return StationMarker;
  }

  function createMarker(feature, latlng) {
    var Marker = stationMarkerClass();
    var marker = new Marker(latlng, {
      icon: stationIcon(feature.properties),
      keyboard: true,
      riseOnHover: true,
      zIndexOffset: stationZ(feature.properties),
    });
    marker.feature = feature;
    marker.mzIconKey = iconKey(feature.properties);
    // Built when opened, from the marker's current feature: a patch never leaves an old popup behind.
    marker.bindTooltip(function (layer) { return tooltipElement(layer.feature.properties); }, { direction: "top" });
    marker.bindPopup(function (layer) { return popupElement(layer.feature.properties); }, { maxWidth: 320, autoPanPadding: [16, 16] });
    // On touch screens a tap opens the popup; a tooltip on top of it only gets in the way. The
    // station whose popup is open is drawn in full, so the map shows which one it is.
    marker.on("popupopen", function () {
      marker.closeTooltip();
      marker.mzSelected = true;
      marker.setIcon(stationIcon(marker.feature.properties, true));
    });
    marker.on("popupclose", function () {
      marker.mzSelected = false;
      marker.setIcon(stationIcon(marker.feature.properties, false));
    });
    return marker;
  }

  function latLngOf(feature) {
    var geometry = feature.geometry;
    var coordinates = geometry && geometry.type === "Point" && geometry.coordinates;
    if (!coordinates || typeof coordinates[0] !== "number" || typeof coordinates[1] !== "number") {
      return null;
    }
    return window.L.latLng(coordinates[1], coordinates[0]);
  }

  // Draw a station or bring its marker up to date; `pulse` rings a marker whose reading changed (live
  // patches, not snapshots). Returns false when there is nothing to draw (no position, or a kind
  // this page has no layer for).
  // Where a feature goes: its position and its kind's layer, or null when this page cannot draw it.
  function placeOf(feature) {
    var props = feature && feature.properties;
    var latlng = props && latLngOf(feature);
    var layer = props && Mizumori.stationLayers[props.kind];
    if (!latlng || !layer || feature.id === undefined || feature.id === null) {
      return null;
    }
    return { latlng: latlng, layer: layer };
  }

  Mizumori.drawStation = function (feature, pulse) {
    var place = placeOf(feature);
    if (!place) {
      return false;
    }
    var props = feature.properties;
    var latlng = place.latlng;
    var layer = place.layer;
    var marker = Mizumori.stationMarkers[feature.id];
    if (marker && !layer.hasLayer(marker)) {
      Mizumori.removeStation(feature.id);  // its kind changed: it moves to another layer
      marker = null;
    }
    if (!marker) {
      marker = createMarker(feature, latlng);
      Mizumori.stationMarkers[feature.id] = marker;
      layer.addLayer(marker);
      return true;
    }
    if (marker.feature === feature) {
      return true;  // drawn from this very feature already (a document applied a second time)
    }
    var changed = JSON.stringify(marker.feature.properties) !== JSON.stringify(props);
    var drawing = iconKey(props);
    marker.feature = feature;
    if (!marker.getLatLng().equals(latlng)) {
      marker.setLatLng(latlng);
    }
    if (changed) {
      // A new value alone leaves the marker's drawing as it is: a new icon is a new element, and
      // thousands of them at once (a replay frame, a gateway's batch) cost seconds of layout.
      if (drawing !== marker.mzIconKey) {
        marker.mzIconKey = drawing;
        marker.setIcon(stationIcon(props, marker.mzSelected));
        marker.setZIndexOffset(stationZ(props));
      }
      if (marker.isPopupOpen()) {
        marker.getPopup().update();
      }
      if (marker.isTooltipOpen()) {
        marker.getTooltip().update();
      }
      var element = pulse === true && marker.getElement && marker.getElement();
      if (element && !element.classList.contains("mz-just-updated")) {
        // A brief ring so a new reading catches the eye. No forced reflow to restart it: that
        // costs a layout of every marker, per marker.
        element.classList.add("mz-just-updated");
        element.addEventListener("animationend", function () {
          element.classList.remove("mz-just-updated");
        }, { once: true });
      }
    }
    return true;
  };

  // Run `add` with the map's marker pane out of the document: markers added meanwhile go into it
  // without touching the page, which then takes them in as one insertion (one style, layout and
  // paint pass for all, whatever the browser would otherwise do between them).
  function withPaneDetached(map, add) {
    var pane = map && map.getPane && map.getPane("markerPane");
    var parent = pane && pane.parentNode;
    if (!parent) {
      add();
      return;
    }
    var next = pane.nextSibling;
    parent.removeChild(pane);
    try {
      add();
    } finally {
      parent.insertBefore(pane, next);
    }
  }

  // Many stations at once (a snapshot): existing markers are brought up to date one by one, new
  // ones are all built first and put on the map together. Returns {id: true} for every station drawn.
  Mizumori.drawStations = function (features) {
    var drawn = {};
    var fresh = [];
    features.forEach(function (feature) {
      var place = placeOf(feature);
      if (!place) {
        return;
      }
      drawn[feature.id] = true;
      var marker = Mizumori.stationMarkers[feature.id];
      if (marker && place.layer.hasLayer(marker)) {
        Mizumori.drawStation(feature);
        return;
      }
      if (marker) {
        Mizumori.removeStation(feature.id);  // its kind changed: it moves to another layer
      }
      marker = createMarker(feature, place.latlng);
      Mizumori.stationMarkers[feature.id] = marker;
      fresh.push([place.layer, marker]);
    });
    if (fresh.length) {
      var map = Mizumori.map || fresh[0][0]._map;
      withPaneDetached(map, function () {
        fresh.forEach(function (pair) { pair[0].addLayer(pair[1]); });
      });
    }
    return drawn;
  };

  // A station this page may no longer show (sharing withdrawn, visibility narrowed).
  Mizumori.removeStation = function (code) {
    var marker = Mizumori.stationMarkers[code];
    if (!marker) {
      return;
    }
    Object.keys(Mizumori.stationLayers).forEach(function (kind) {
      Mizumori.stationLayers[kind].removeLayer(marker);
    });
    delete Mizumori.stationMarkers[code];
  };

  // The list under the public map, most severe first, rebuilt from `features` (by default the
  // markers' features; the public page's minimal mode has no markers and passes its snapshot's).
  // Not rebuilt when it would list the very same feature objects as last time: a marker gets a new
  // feature object whenever it is drawn, so the same objects mean the same words, and a replay frame
  // or live message that changed no raised station costs no rebuild of a list that may hold
  // thousands of items (at 2,000 gauges, seconds of layout per rebuild in Chromium).
  Mizumori.drawNotices = function (container, emptyTemplate, features) {
    var raised = (features || Object.keys(Mizumori.stationMarkers)
      .map(function (code) { return Mizumori.stationMarkers[code].feature; }))
      .filter(function (feature) { return feature && feature.properties; })
      .filter(function (feature) { return isRaised(feature.properties); })
      .sort(function (a, b) {
        return (b.properties.level - a.properties.level) || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
      });
    var drawn = container.mzNoticesDrawn;
    if (drawn && drawn.features.length === raised.length &&
        raised.every(function (feature, index) { return feature === drawn.features[index]; })) {
      return;
    }
    container.mzNoticesDrawn = { features: raised };
    container.textContent = "";
    if (!raised.length) {
      if (emptyTemplate) {
        container.appendChild(emptyTemplate.content.cloneNode(true));
      }
      return;
    }
    var list = node("ul", "mz-notice-list");
    raised.forEach(function (feature) { list.appendChild(noticeElement(feature.properties)); });
    container.appendChild(list);
  };

  // --- shelters: their words in the page's language --------------------------------------------------
  // A shelter's feature (dashboard.live_geo.shelter_feature) is the same for every reader (the public
  // snapshot is one cached document): its chip, tooltip, popup and marker name are written here, in
  // the page's language, from its data and the vocabulary (status words: dashboard.maps.SHELTER_STATUSES).

  function shelterStatus(props) {
    var statuses = words().shelter_statuses || {};
    // An unknown status reads as closed, as on the server: never tell residents a shelter is open when unsure.
    return statuses[props.status] || statuses.closed || { css: "closed", name: ["閉鎖中", "Closed"], advice: ["", ""] };
  }

  function shelterChip(props) {
    var status = shelterStatus(props);
    return node("span", "mz-shelter-chip mz-shelter-" + status.css, pick(status.name));
  }

  function capacityText(capacity) {
    if (typeof capacity !== "number") {
      return gettext("capacity unknown");
    }
    return interpolate(gettext("%s people"), [capacity.toLocaleString(Mizumori.language())]);
  }

  function shelterLabel(props) {
    return interpolate(gettext("%(name)s, shelter: %(status)s"), {
      name: localized(props, "name"), status: pick(shelterStatus(props).name),
    }, true);
  }

  function shelterTooltip(feature) {
    var props = (feature && feature.properties) || {};
    return append(
      node("div", "mz-tip"), node("strong", null, localized(props, "name")), node("br"),
      shelterChip(props), " · " + capacityText(props.capacity)
    );
  }

  function shelterPopup(feature) {
    var props = (feature && feature.properties) || {};
    var vocab = words();
    var town = vocab.towns && vocab.towns[props.municipality];
    var rows = [[gettext("Capacity"), capacityText(props.capacity)]];
    if (props.address) {
      rows.push([gettext("Address"), text(props.address)]);
    }
    rows.push([gettext("Run by"), town ? pick(town) : text(props.municipality)]);
    rows.push([gettext("Status updated"), observedText(props.status_updated_at)]);
    var popup = node("div", "mz-popup mz-shelter-popup");
    append(popup, append(node("p", "mz-popup-title"), node("strong", null, localized(props, "name"))));
    append(popup, append(node("p", "mz-popup-level"), shelterChip(props), node("br"), pick(shelterStatus(props).advice)));
    var facts = node("dl", "mz-popup-facts");
    rows.forEach(function (row) {
      append(facts, node("dt", null, row[0]), append(node("dd"), row[1]));
    });
    append(popup, facts, node("p", "mz-popup-code", text(props.code)));
    return popup;
  }

  Mizumori.shelterChip = shelterChip;
  Mizumori.shelterLabel = shelterLabel;
  Mizumori.shelterTooltipElement = shelterTooltip;
  Mizumori.shelterPopupElement = shelterPopup;

  // For the live layer and for tests: the same builders the map uses.
  Mizumori.stationTooltipElement = tooltipElement;
  Mizumori.stationPopupElement = popupElement;
  Mizumori.stationNoticeElement = noticeElement;
  // The level words and colours a station shows now, and the vocabulary they come from (the public
  // page's "near me" list and its announcements).
  Mizumori.stationStateStyle = stateStyle;
  Mizumori.mapVocabulary = words;
})(window, document);
