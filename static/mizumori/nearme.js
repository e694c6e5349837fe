/*
 * "Near me" on the public page (templates/public/shell.html, #mz-near-me): one searchable list of
 * the public stations, the districts and the shelters, with their status in words (the level words
 * of the map's vocabulary, the shelter's status chip, the district's evacuation information) and,
 * once the reader has asked to be located, their distance. Choosing an item pans the map to it and
 * opens its popup; "nearest open shelter" is one press.
 *
 * The location comes from the browser (navigator.geolocation) and stays in this page: distances
 * are computed here and nothing is sent anywhere (the page says so). The other parts of the page
 * hear of it through the "mizumori:located" event (static/mizumori/orders.js picks the district).
 *
 * Data: the public snapshot (static/mizumori/public.js hands each document over with
 * Mizumori.nearMe.update) and, on the map, the markers' current features, which the live layer
 * keeps up to date; the districts and the evacuation information from static/mizumori/orders.js.
 * Only what the public page already shows is listed: this script asks the server for nothing.
 * Text goes in as DOM text, except the shelters' status chip, escaped by the server.
 */
(function (window, document) {
  "use strict";

  var Mizumori = (window.Mizumori = window.Mizumori || {});
  var section = document.getElementById("mz-near-me");
  if (!section) {
    return;
  }
  // Items shown at once; the search narrows the rest (2,000 stations would be a wall of buttons).
  var SHOWN = 30;
  var ZOOM_TO = 14;
  var RENDER_DELAY_MS = 800;
  // The page's catalog (/i18n/catalog/<language>.js) is loaded before this file.
  var KIND_WORDS = {
    station: gettext("Station"),
    shelter: gettext("Shelter"),
    district: gettext("District"),
  };
  var WORDS = {
    locating: gettext("Finding your location…"),
    located: gettext("Sorted by distance from you. Your location stays on this device."),
    noGeolocation: gettext("Location is not available on this device: choose your district or search by name."),
    refused: gettext("Could not get your location: choose your district or search by name."),
    noOpenShelter: gettext("No shelter is open now. Check your town's announcements."),
    nearestShelter: gettext("Nearest open shelter"),
    noOrder: gettext("No evacuation information in force"),
    noMatch: gettext("Nothing matches."),
    noMap: gettext("The map is off in the simplified view."),
  };

  var state = { doc: null, point: null, query: "", timer: null, signature: "", youAreHere: null };

  // --- small helpers -----------------------------------------------------------------------------

  function el(tag, className, text, lang) {
    var node = document.createElement(tag);
    if (className) {
      node.className = className;
    }
    if (lang) {
      node.lang = lang;
    }
    if (text !== undefined && text !== null) {
      node.textContent = String(text);
    }
    return node;
  }

  function say(words, extra) {
    var status = document.getElementById("mz-near-me-status");
    status.textContent = words;
    if (extra) {
      status.appendChild(document.createTextNode(" "));
      status.appendChild(extra);
    }
  }

  function normalise(text) {
    var value = String(text || "");
    return (value.normalize ? value.normalize("NFKC") : value).toLowerCase();
  }

  // The map's vocabulary (dashboard.maps.map_vocabulary, read by static/mizumori/stations.js).
  function words() {
    return (Mizumori.mapVocabulary && Mizumori.mapVocabulary()) || {};
  }

  function lonLatOf(feature) {
    var coordinates = feature && feature.geometry && feature.geometry.type === "Point" && feature.geometry.coordinates;
    return coordinates && typeof coordinates[0] === "number" && typeof coordinates[1] === "number" ? coordinates : null;
  }

  function distanceText(km) {
    return km < 1 ? Math.round(km * 1000) + " m" : km.toFixed(1) + " km";
  }

  // --- what is listed ----------------------------------------------------------------------------

  function markerFeatures(markers) {
    return Object.keys(markers || {}).map(function (code) { return markers[code].feature; }).filter(Boolean);
  }

  // The map when the page shows one: the public page may have loaded it early (the shell's guess)
  // and then been told by its snapshot to show the minimal lists instead.
  function shownMap() {
    return Mizumori.map && !(state.doc && state.doc.mode === "minimal") ? Mizumori.map : null;
  }

  // On the map the markers hold the latest features (live patches, stale marks); in minimal mode
  // the snapshot does.
  function stationFeatures() {
    if (shownMap()) {
      return markerFeatures(Mizumori.stationMarkers);
    }
    return state.doc && Array.isArray(state.doc.features) ? state.doc.features : [];
  }

  function shelterFeatures() {
    if (shownMap()) {
      return markerFeatures(Mizumori.shelterMarkers);
    }
    return state.doc && Array.isArray(state.doc.shelters) ? state.doc.shelters : [];
  }

  function stationPlace(feature) {
    var props = feature.properties || {};
    var style = Mizumori.stationStateStyle ? Mizumori.stationStateStyle(props) : null;
    var level = typeof props.level === "number" ? props.level : 0;
    return {
      key: "station:" + feature.id,
      kind: "station",
      code: String(feature.id),
      name: Mizumori.localized(props, "name"),
      search: [props.name_ja, props.name_en, props.code, props.river].join(" "),
      lonLat: lonLatOf(feature),
      // While nobody is located: districts under an order, raised stations, open shelters, the rest.
      rank: level >= (words().notice_level || 2) ? 300 + level * 10 : 50,
      status: function () {
        if (!style) {
          return document.createDocumentFragment();
        }
        var fragment = document.createDocumentFragment();
        fragment.appendChild(el("span", "mz-chip mz-level-" + style.css, style.badge));
        fragment.appendChild(document.createTextNode(" "));
        fragment.appendChild(document.createTextNode(Mizumori.pick(style.title)));
        if (props.stale && Array.isArray(words().stale)) {
          fragment.appendChild(document.createTextNode(" · " + Mizumori.pick(words().stale)));
        }
        return fragment;
      },
      signature: (style ? style.css : "") + (props.stale ? "s" : ""),
    };
  }

  function shelterPlace(feature) {
    var props = feature.properties || {};
    return {
      key: "shelter:" + feature.id,
      kind: "shelter",
      code: String(feature.id),
      name: Mizumori.localized(props, "name"),
      search: [props.name_ja, props.name_en, props.code].join(" "),
      lonLat: lonLatOf(feature),
      open: props.status === "open",
      forFlood: props.for_flood !== false,
      rank: props.status === "open" ? 200 : props.status === "full" ? 150 : 100,
      status: function () {
        return Mizumori.shelterChip(props);
      },
      signature: String(props.status),
    };
  }

  function districtPlaces() {
    var source = Mizumori.orderDistricts;
    if (!source) {
      return [];
    }
    var districts = source.list();
    return Object.keys(districts).map(function (code) {
      var feature = districts[code];
      var props = feature.properties || {};
      var order = source.orderFor(code);
      var centre = source.centre(code);
      return {
        key: "district:" + code,
        kind: "district",
        code: code,
        name: Mizumori.localized(props, "name"),
        search: [props.name_ja, props.name_en, code].join(" "),
        lonLat: centre,
        feature: feature,
        rank: order ? 400 + order.level * 10 : 0,
        status: function () {
          var fragment = document.createDocumentFragment();
          if (order) {
            fragment.appendChild(el("span", "mz-order-badge mz-order-level-" + order.level, "L" + order.level));
            fragment.appendChild(document.createTextNode(" "));
            // The town's order itself, as its banner says it: marked so that no reader (or test)
            // takes it for a station's words, which never name an order.
            var words = el("span", "mz-order-words");
            words.setAttribute("data-order-level", String(order.level));
            words.textContent = Mizumori.localized(order, "title");
            fragment.appendChild(words);
          } else {
            fragment.appendChild(document.createTextNode(WORDS.noOrder));
          }
          return fragment;
        },
        signature: order ? order.id + ":" + order.level : "",
      };
    });
  }

  function allPlaces() {
    var places = stationFeatures().map(stationPlace)
      .concat(shelterFeatures().map(shelterPlace))
      .concat(districtPlaces());
    places.forEach(function (place) {
      place.km = state.point && place.lonLat && Mizumori.distanceKm ? Mizumori.distanceKm(state.point, place.lonLat) : null;
      place.searchText = normalise(place.search);
      place.sortName = normalise(place.name);
    });
    return places;
  }

  function byName(a, b) {
    return a.sortName < b.sortName ? -1 : a.sortName > b.sortName ? 1 : 0;
  }

  function ordered(places) {
    return places.slice().sort(function (a, b) {
      if (state.point) {
        var da = a.km === null ? Infinity : a.km;
        var db = b.km === null ? Infinity : b.km;
        if (da !== db) {
          return da - db;
        }
      }
      return (b.rank - a.rank) || byName(a, b);
    });
  }

  function matching(places) {
    var words = normalise(state.query).split(/\s+/).filter(Boolean);
    if (!words.length) {
      return places;
    }
    return places.filter(function (place) {
      return words.every(function (word) { return place.searchText.indexOf(word) !== -1; });
    });
  }

  // --- the list ----------------------------------------------------------------------------------

  function itemElement(place, interactive) {
    var item = el("li", "mz-place mz-place-" + place.kind);
    var body = el(interactive ? "button" : "div", "mz-place-body");
    if (interactive) {
      body.type = "button";
      body.setAttribute("data-place", place.key);
    }
    var title = el("span", "mz-place-name");
    title.appendChild(el("strong", null, place.name));
    body.appendChild(title);
    var meta = el("span", "mz-place-meta");
    meta.appendChild(el("span", "mz-place-kind", KIND_WORDS[place.kind]));
    meta.appendChild(document.createTextNode(" · "));
    meta.appendChild(place.status());
    if (place.km !== null) {
      meta.appendChild(document.createTextNode(" · "));
      meta.appendChild(el("span", "mz-place-distance", distanceText(place.km)));
    }
    body.appendChild(meta);
    item.appendChild(body);
    return item;
  }

  function render() {
    window.clearTimeout(state.timer);
    state.timer = null;
    var list = document.getElementById("mz-place-list");
    var count = document.getElementById("mz-place-count");
    var interactive = Boolean(shownMap());
    var found = ordered(matching(allPlaces()));
    var shown = found.slice(0, SHOWN);
    var signature = [interactive, state.doc && state.doc.mode, found.length].concat(shown.map(function (place) {
      return place.key + "|" + place.signature + "|" + (place.km === null ? "" : distanceText(place.km));
    })).join("\n");
    if (signature === state.signature) {
      return;  // nothing a reader would notice: no rewrite (focus and screen readers stay put)
    }
    state.signature = signature;
    var focused = document.activeElement && list.contains(document.activeElement)
      ? document.activeElement.getAttribute("data-place") : null;
    list.textContent = "";
    shown.forEach(function (place) { list.appendChild(itemElement(place, interactive)); });
    if (!found.length) {
      count.textContent = WORDS.noMatch;
    } else if (found.length > shown.length) {
      count.textContent = interpolate(gettext("Showing %(shown)s of %(found)s: type a name to narrow the list."),
        { shown: shown.length, found: found.length }, true);
    } else {
      count.textContent = interpolate(ngettext("%s item", "%s items", found.length), [found.length]);
    }
    if (!interactive && state.doc && state.doc.mode === "minimal") {
      count.textContent += " " + WORDS.noMap;
    }
    if (focused) {
      var again = list.querySelector('[data-place="' + focused.replace(/["\\]/g, "") + '"]');
      if (again) {
        again.focus();
      }
    }
  }

  function renderSoon() {
    if (state.timer === null) {
      state.timer = window.setTimeout(render, RENDER_DELAY_MS);
    }
  }

  // --- on the map ----------------------------------------------------------------------------------

  function placeByKey(key) {
    return allPlaces().filter(function (place) { return place.key === key; })[0] || null;
  }

  function showOnMap(place, opener) {
    var map = shownMap();
    var L = window.L;
    if (!map || !L || !place) {
      return false;
    }
    Mizumori.popupOpener = opener || null;
    // On a phone the map is below the lists: bring it into view, whole.
    map.getContainer().scrollIntoView({ block: "nearest" });
    if (place.kind === "district") {
      var bounds = L.geoJSON(place.feature).getBounds();
      if (bounds.isValid()) {
        map.fitBounds(bounds, { maxZoom: ZOOM_TO + 1, animate: false });
      }
      var content = el("div", "mz-popup");
      var heading = el("p", "mz-popup-title");
      heading.textContent = place.name;
      content.appendChild(heading);
      var line = el("p");
      line.appendChild(place.status());
      content.appendChild(line);
      L.popup().setLatLng(bounds.isValid() ? bounds.getCenter() : L.latLng(place.lonLat[1], place.lonLat[0]))
        .setContent(content).openOn(map);
      return true;
    }
    var markers = place.kind === "station" ? Mizumori.stationMarkers : Mizumori.shelterMarkers;
    var marker = markers && markers[place.code];
    if (!marker) {
      return false;
    }
    // A layer the reader switched off comes back for what they asked to see.
    var kind = marker.feature && marker.feature.properties && marker.feature.properties.kind;
    var group = place.kind === "station" ? Mizumori.stationLayers[kind] : Mizumori.shelterLayer;
    if (group && !map.hasLayer(group)) {
      map.addLayer(group);
    }
    map.setView(marker.getLatLng(), Math.max(map.getZoom(), ZOOM_TO), { animate: false });
    marker.openPopup();
    return true;
  }

  function choose(key, opener) {
    var place = placeByKey(key);
    if (place && showOnMap(place, opener) && Mizumori.focusPopup) {
      Mizumori.focusPopup();
    }
  }

  function showYouAreHere() {
    var map = shownMap();
    var L = window.L;
    if (!map || !L || !state.point) {
      return;
    }
    var latLng = L.latLng(state.point[1], state.point[0]);
    if (state.youAreHere) {
      state.youAreHere.setLatLng(latLng);
      return;
    }
    // Not interactive: a dot, never a focus stop; the list says the same in words.
    state.youAreHere = L.circleMarker(latLng, {
      radius: 8, weight: 3, color: "#ffffff", fillColor: "#0050d0", fillOpacity: 1, interactive: false,
      className: "mz-you-are-here",
    }).addTo(map);
  }

  // --- locating --------------------------------------------------------------------------------------

  function locate() {
    return new Promise(function (resolve, reject) {
      if (!window.navigator.geolocation) {
        reject(WORDS.noGeolocation);
        return;
      }
      say(WORDS.locating);
      window.navigator.geolocation.getCurrentPosition(function (position) {
        state.point = [position.coords.longitude, position.coords.latitude];
        showYouAreHere();
        if (typeof window.CustomEvent === "function") {
          document.dispatchEvent(new window.CustomEvent("mizumori:located", { detail: { point: state.point.slice() } }));
        }
        state.signature = "";
        render();
        resolve(state.point);
      }, function () {
        reject(WORDS.refused);
      }, { enableHighAccuracy: false, maximumAge: 60000, timeout: 15000 });
    });
  }

  function nearestOpenShelter() {
    var open = allPlaces().filter(function (place) {
      return place.kind === "shelter" && place.open && place.forFlood && place.km !== null;
    });
    open.sort(function (a, b) { return a.km - b.km; });
    return open[0] || null;
  }

  function goToNearestShelter(button) {
    var located = state.point ? Promise.resolve(state.point) : locate();
    return located.then(function () {
      var shelter = nearestOpenShelter();
      if (!shelter) {
        say(WORDS.noOpenShelter);
        return;
      }
      say(WORDS.nearestShelter, el("strong", null, shelter.name + " (" + distanceText(shelter.km) + ")"));
      var list = document.getElementById("mz-place-list");
      var item = list.querySelector('[data-place="' + shelter.key.replace(/["\\]/g, "") + '"]');
      if (shownMap()) {
        showOnMap(shelter, item || button);
        if (Mizumori.focusPopup) {
          Mizumori.focusPopup();
        }
      }
    }, function (words) {
      say(words);
    });
  }

  // --- wiring ----------------------------------------------------------------------------------------

  section.hidden = false;
  var locateButton = document.getElementById("mz-near-me-locate");
  var shelterButton = document.getElementById("mz-near-me-shelter");
  var search = document.getElementById("mz-place-search");
  var list = document.getElementById("mz-place-list");

  locateButton.addEventListener("click", function () {
    locate().then(function () { say(WORDS.located); }, function (words) { say(words); });
  });
  shelterButton.addEventListener("click", function () { goToNearestShelter(shelterButton); });
  search.addEventListener("input", function () {
    state.query = search.value.slice(0, 100);
    render();
  });
  list.addEventListener("click", function (event) {
    var button = event.target.closest ? event.target.closest("[data-place]") : null;
    if (button) {
      choose(button.getAttribute("data-place"), button);
    }
  });
  ["stations", "withdrawn", "shelters", "orders", "map"].forEach(function (type) {
    document.addEventListener("mizumori:" + type, function () {
      if (type === "map") {
        showYouAreHere();
      }
      renderSoon();
    });
  });

  Mizumori.nearMe = {
    // Each snapshot document the public page applies (the source in minimal mode).
    update: function (doc) {
      state.doc = doc;
      renderSoon();
    },
    render: render,
    nearestOpenShelter: nearestOpenShelter,
  };
  render();
})(window, document);
