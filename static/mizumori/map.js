/*
 * Mizumori map helpers. Folium generates the map script and refers to these functions by name
 * (see geo/maps.py and dashboard/maps.py), so this file is loaded in <head>, before that script.
 *
 * Every string under feature.properties.display (areas, shelters) was built and HTML-escaped on the
 * server; it is inserted as prepared. Never put raw feature properties (names, units) into HTML here.
 * Stations are drawn from their properties by static/mizumori/stations.js, into the layers that
 * the map script registers here.
 */
(function (window, document) {
  "use strict";

  var L = window.L;
  var Mizumori = (window.Mizumori = window.Mizumori || {});
  var NARROW_SCREEN = "(max-width: 40em)";

  function displayOf(feature) {
    return (feature && feature.properties && feature.properties.display) || {};
  }

  // Station markers by station code and station layers by kind, for static/mizumori/stations.js.
  Mizumori.stationMarkers = Mizumori.stationMarkers || {};
  Mizumori.stationLayers = Mizumori.stationLayers || {};

  Mizumori.registerStationLayer = function (kind, layer) {
    Mizumori.stationLayers[kind] = layer;
  };

  // Shelter markers by shelter code and the one shelter layer, for static/mizumori/live.js.
  Mizumori.shelterMarkers = Mizumori.shelterMarkers || {};
  Mizumori.shelterLayer = Mizumori.shelterLayer || null;

  // The house is the server's drawing (the same for every reader); its name, in the page's
  // language, is written here (static/mizumori/stations.js).
  Mizumori.shelterIcon = function (feature) {
    var house = document.createElement("div");
    house.innerHTML = displayOf(feature).icon || "";  // escaped by the server (dashboard.maps.shelter_marker_html)
    if (house.firstElementChild) {
      house.firstElementChild.setAttribute("aria-label", Mizumori.shelterLabel((feature && feature.properties) || {}));
    }
    return L.divIcon({
      className: "mz-shelter-icon",
      html: house.firstElementChild || "",
      iconSize: [30, 30],
      iconAnchor: [15, 15],
      popupAnchor: [0, -15],
      tooltipAnchor: [15, 0],
    });
  };

  // pointToLayer for shelter features: a div icon holding the server-drawn house.
  Mizumori.shelterMarker = function (feature, latlng) {
    var marker = L.marker(latlng, {
      icon: Mizumori.shelterIcon(feature),
      keyboard: true,
      riseOnHover: true,
      zIndexOffset: displayOf(feature).z || 0,
    });
    // Built when shown, from the marker's current feature: a live change never leaves old words behind.
    marker.bindTooltip(function (layer) { return Mizumori.shelterTooltipElement(layer.feature); }, { direction: "top" });
    marker.bindPopup(function (layer) { return Mizumori.shelterPopupElement(layer.feature); }, { maxWidth: 320, autoPanPadding: [16, 16] });
    // On touch screens a tap opens the popup; a tooltip on top of it only gets in the way.
    marker.on("popupopen", function () { marker.closeTooltip(); });
    if (feature && feature.id !== undefined) {
      Mizumori.shelterMarkers[feature.id] = marker;
    }
    return marker;
  };

  Mizumori.registerShelterLayer = function (layer) {
    Mizumori.shelterLayer = layer;
  };

  // Active alerts: a badge over the station, built from numbers and text nodes only.
  Mizumori.alertMarkers = Mizumori.alertMarkers || {};
  Mizumori.alertMarker = function (feature, latlng) {
    var props = feature.properties || {};
    var level = parseInt(props.level, 10) || 0;
    var badge = document.createElement("div");
    badge.className = "mz-alert-badge mz-level-" + level;
    badge.textContent = "⚠ L" + level;
    var marker = L.marker(latlng, {
      icon: L.divIcon({ className: "mz-alert-icon", html: badge, iconSize: [46, 20], iconAnchor: [23, 36] }),
      zIndexOffset: 2000 + level * 100,
      keyboard: false,
    });
    var tip = document.createElement("span");
    tip.textContent = props.label || "";
    marker.bindTooltip(tip, { direction: "top" });
    Mizumori.alertMarkers[feature.id] = marker;
    return marker;
  };
  Mizumori.registerAlertLayer = function (layer) {
    Mizumori.alertLayer = layer;
  };

  // onEachFeature for every layer: a permanent label (areas), a hover tooltip, a popup.
  Mizumori.bindDetails = function (feature, layer) {
    var display = displayOf(feature);
    if (display.label) {
      layer.bindTooltip(display.label, {
        permanent: true,
        direction: "center",
        className: "mz-area-label",
        pane: display.label_pane || "tooltipPane",
      });
    } else if (display.tooltip) {
      layer.bindTooltip(display.tooltip, { direction: "top", sticky: !(layer instanceof L.Marker) });
    }
    if (display.popup) {
      layer.bindPopup(display.popup, { maxWidth: 320, autoPanPadding: [16, 16] });
      if (display.tooltip) {
        // On touch screens a tap opens the popup; a tooltip on top of it only gets in the way.
        layer.on("popupopen", function () { layer.closeTooltip(); });
      }
    }
  };

  // Move the legend (already in the page, below the map) into a map corner.
  Mizumori.addLegend = function (map, elementId) {
    // The page's one map: layers that page scripts draw themselves (releases.js, orders.js) go onto
    // it. On the public shell the map is built lazily (static/mizumori/public.js), after those
    // scripts ran: they hear of it from the "mizumori:map" event.
    Mizumori.map = map;
    if (typeof window.CustomEvent === "function") {
      document.dispatchEvent(new window.CustomEvent("mizumori:map", { detail: { map: map } }));
    }
    var element = document.getElementById(elementId);
    if (!element) {
      return;
    }
    var LegendControl = L.Control.extend({
      options: { position: "bottomright" },
      onAdd: function () {
        element.classList.add("leaflet-control");
        L.DomEvent.disableClickPropagation(element);
        L.DomEvent.disableScrollPropagation(element);
        return element;
      },
    });
    new LegendControl().addTo(map);
    // On a phone an open legend would cover most of the map; it stays one tap away.
    if (window.matchMedia && window.matchMedia(NARROW_SCREEN).matches) {
      element.removeAttribute("open");
    }
  };
})(window, document);
