/* The station editor's map picker (templates/dashboard/town_admin/station_form.html).
 *
 * The latitude and longitude fields are the form: the map only helps fill them. Clicking the map
 * or dragging the marker writes the fields; typing in the fields moves the marker. The server checks
 * the numbers (inside Japan, near the town) whatever the map did. Without this script, or without
 * tiles, the form works the same; the map then shows the town's outline and its other stations on
 * a plain background.
 *
 * For a new station, the threshold fieldset of the chosen kind is shown and the others are hidden
 * and disabled (so only the chosen kind's values are sent).
 */
(function () {
  "use strict";

  var DECIMALS = 6; // about 0.1 m
  var TYPED_ZOOM = 13; // the zoom a station with a position opens at (below)
  var data = JSON.parse(document.getElementById("mz-picker-data").textContent);
  var latField = document.getElementById("field-lat");
  var lonField = document.getElementById("field-lon");
  var kindField = document.getElementById("field-kind");
  var mapElement = document.getElementById("mz-picker-map");

  function showKindLadder() {
    var ladders = document.querySelectorAll(".mz-ladder[data-kind]");
    if (!kindField) {
      return;
    }
    ladders.forEach(function (ladder) {
      var chosen = ladder.getAttribute("data-kind") === kindField.value;
      ladder.hidden = !chosen;
      ladder.disabled = !chosen;
    });
  }
  if (kindField) {
    kindField.addEventListener("change", showKindLadder);
    showKindLadder();
  }

  if (!window.L || !mapElement) {
    return;
  }
  var L = window.L;

  function typedNumber(field) {
    // Full-width digits and the ideographic full stop are what Japanese keyboards type.
    var text = field.value.replace(/[０-９．－]/g, function (c) {
      return String.fromCharCode(c.charCodeAt(0) - 0xfee0);
    }).trim();
    if (!/^-?\d+(\.\d+)?$/.test(text)) {
      return null;
    }
    return parseFloat(text);
  }

  var map = L.map(mapElement, { zoomControl: true, keyboard: true });
  if (data.tiles_url) {
    L.tileLayer(data.tiles_url, { attribution: data.tiles_attribution || " ", maxZoom: 18 }).addTo(map);
  }
  // Layers are built first and added once the map has a view (Leaflet needs one to draw).
  var layers = [];
  var context = null;
  function around(bounds) {
    context = context ? context.extend(bounds) : L.latLngBounds(bounds.getSouthWest(), bounds.getNorthEast());
  }
  if (data.area) {
    var area = L.geoJSON(data.area, {
      interactive: false,
      style: { color: "#1b3a57", weight: 2, fillOpacity: 0.06, dashArray: data.approximate ? "4 6" : null },
    });
    layers.push(area);
    around(area.getBounds());
  }
  // The town's other stations, as grey dots for orientation (not focusable: the list page names them).
  data.stations.forEach(function (station) {
    var at = L.latLng(station.lat, station.lon);
    layers.push(L.circleMarker(at, {
      radius: 5, color: "#4a4a4a", weight: 1, fillColor: "#9e9e9e", fillOpacity: 0.9, interactive: false,
    }));
    around(L.latLngBounds(at, at));
  });

  var marker = null;
  var label = mapElement.getAttribute("aria-label");

  // Leaflet's own marker, its images named by the page: Leaflet would guess their URLs from its
  // stylesheet's file names, which content-hashed static names (config/staticfiles.py) change.
  function markerIcon() {
    return L.icon(L.extend({}, L.Icon.Default.prototype.options, {
      iconUrl: mapElement.getAttribute("data-marker-icon"),
      iconRetinaUrl: mapElement.getAttribute("data-marker-icon-2x"),
      shadowUrl: mapElement.getAttribute("data-marker-shadow"),
    }));
  }

  function place(latlng, writeFields) {
    if (!marker) {
      marker = L.marker(latlng, { icon: markerIcon(), draggable: true, keyboard: true, title: label, alt: label }).addTo(map);
      marker.on("dragend", function () {
        place(marker.getLatLng(), true);
      });
    } else {
      marker.setLatLng(latlng);
    }
    if (writeFields) {
      latField.value = latlng.lat.toFixed(DECIMALS);
      lonField.value = L.Util.wrapNum(latlng.lng, [-180, 180], true).toFixed(DECIMALS);
      [latField, lonField].forEach(function (field) {
        field.dispatchEvent(new Event("change", { bubbles: true }));
      });
    }
  }

  function fromFields() {
    var lat = typedNumber(latField);
    var lon = typedNumber(lonField);
    if (lat === null || lon === null || Math.abs(lat) > 90 || Math.abs(lon) > 180) {
      return null;
    }
    return L.latLng(lat, lon);
  }

  map.on("click", function (event) {
    place(event.latlng, true);
  });
  [latField, lonField].forEach(function (field) {
    field.addEventListener("input", function () {
      var latlng = fromFields();
      if (latlng) {
        place(latlng, false);
        // Close enough to adjust by a click: a town without stations or boundary starts on all of
        // Japan, where a click beside the typed point lands tens of kilometres away.
        map.setView(latlng, Math.max(map.getZoom(), TYPED_ZOOM));
      }
    });
  });

  var start = fromFields();
  if (start) {
    map.setView(start, TYPED_ZOOM);
  } else if (context) {
    map.fitBounds(context.pad(0.2), { maxZoom: 13 });
  } else {
    var japan = data.bounds;
    map.fitBounds([[japan.lat[0], japan.lon[0]], [japan.lat[1], japan.lon[1]]]);
  }
  layers.forEach(function (layer) {
    layer.addTo(map);
  });
  if (start) {
    place(start, false);
  }
})();
