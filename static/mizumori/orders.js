/*
 * Evacuation orders on the map pages (templates/orders/_public.html): the banner of every order in
 * force, its districts coloured by level on the map (with the level written on them: never colour
 * alone), "my district" chosen from the list or found from the browser's location (point in polygon
 * here, nothing sent), and the nearest open shelters with their distance. On /hq/ also the town's
 * board: recommendations (issue with confirmation, or dismiss with a reason) and its own orders
 * (raise, lower, lift).
 *
 * Data: #mz-orders-data (orders in force as /api/v1/orders features, districts, shelters, level
 * colours). Live: static/mizumori/live.js announces "orders", "recommendations" and "shelters"
 * messages as DOM events (mizumori:<type>); after every (re)subscription the orders are fetched
 * again from /api/v1/orders, so nothing missed while offline stays on screen. Text goes in as DOM
 * text, never as HTML.
 *
 * Replay (static/mizumori/replay.js) hands the orders in force at the moment shown (GET
 * /api/v1/orders?at=) to Mizumori.orders.showAt: the banners, the districts on the map and "my
 * district" say the past until LIVE (showAt(null)); the HQ board of the town's own orders, where
 * staff act, always shows the present.
 *
 * On /hq/ loaded before the folium map script: L.Map.addInitHook hands over the map it creates. On
 * the public shell Leaflet and the map come later (static/mizumori/public.js builds them lazily):
 * static/mizumori/map.js announces the map with a "mizumori:map" event.
 */
(function (window, document) {
  "use strict";

  var L = window.L;
  var Mizumori = (window.Mizumori = window.Mizumori || {});
  var STORAGE_KEY = "mizumori.myDistrict";
  var NEAREST = 3;

  function readJson(id) {
    var element = document.getElementById(id);
    if (!element) { return null; }
    try { return JSON.parse(element.textContent); } catch (error) { return null; }
  }

  var data = readJson("mz-orders-data");
  if (!data) { return; }
  var section = document.getElementById("mz-orders");
  var hq = section && section.getAttribute("data-orders-view") === "hq";
  var orders = {};  // by id: features in force
  var past = null;  // while replaying: the orders in force at the moment shown, by id
  var shelters = {};
  var districts = {};
  var map = null;
  var layer = null;
  var mine = null;  // the chosen district code
  var myPoint = null;  // [lon, lat] from the browser, never sent

  (data.orders || []).forEach(function (feature) { orders[feature.id] = feature; });
  (data.shelters || []).forEach(function (shelter) { shelters[shelter.code] = shelter; });
  (data.districts || []).forEach(function (feature) { districts[feature.properties.code] = feature; });

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) { node.className = className; }
    if (text !== undefined && text !== null) { node.textContent = String(text); }
    return node;
  }

  // UI words come from the page's catalog (gettext); names and the orders' own words (legal words,
  // kept per language as data) in the page's language by static/mizumori/i18n.js.
  var localized = function (source, field) { return Mizumori.localized(source, field); };

  function statusWords(status) {
    var statuses = data.shelter_statuses || {};
    return Object.prototype.hasOwnProperty.call(statuses, status) ? Mizumori.pick(statuses[status]) : String(status);
  }

  function words(text) {
    return el("span", null, text);
  }

  // The orders the banners and the map show: the past moment's while replaying.
  function shownOrders() {
    return past || orders;
  }

  function sortedOrders(from) {
    var source = from || shownOrders();
    return Object.keys(source).map(function (id) { return source[id]; }).sort(function (a, b) {
      return b.properties.level - a.properties.level || (a.properties.issued_at < b.properties.issued_at ? 1 : -1);
    });
  }

  // --- the banners ------------------------------------------------------------------------------

  function banner(feature) {
    var p = feature.properties;
    var article = el("article", "mz-order mz-order-level-" + p.level);
    article.setAttribute("data-order-id", String(p.id));
    var title = el("p", "mz-order-title");
    title.appendChild(el("span", "mz-order-badge", "L" + p.level));
    title.appendChild(document.createTextNode(" "));
    title.appendChild(el("strong", null, localized(p, "title")));
    article.appendChild(title);
    var action = el("p", "mz-order-action");
    action.appendChild(words(localized(p, "action")));
    article.appendChild(action);
    var where = el("p", "mz-order-where");
    where.appendChild(words(localized(p, "municipality_name") + ": " +
      p.districts.map(function (d) { return localized(d, "name"); }).join(gettext(", "))));
    article.appendChild(where);
    if (p.shelters.length) {
      var list = el("p", "mz-order-shelters");
      list.appendChild(words(gettext("Shelters")));
      list.appendChild(document.createTextNode(": " + p.shelters.map(function (s) {
        var current = past ? s : shelters[s.code] || s;  // the past's own shelter statuses
        return localized(s, "name") + " (" + statusWords(current.status) + ")";
      }).join(gettext(", "))));
      article.appendChild(list);
    }
    if (p.gauges.length) {
      var gauges = el("p", "mz-order-gauges");
      gauges.appendChild(words(gettext("Gauges behind it")));
      gauges.appendChild(document.createTextNode(": "));
      p.gauges.forEach(function (g, index) {
        var link = el("a", null, localized(g, "name"));
        link.href = g.url;
        if (index) { gauges.appendChild(document.createTextNode(", ")); }
        gauges.appendChild(link);
      });
      article.appendChild(gauges);
    }
    var time = el("time", null, String(p.updated_at).slice(0, 16).replace("T", " "));
    time.dateTime = p.updated_at;
    var line = el("p", "mz-order-time mz-muted");
    line.appendChild(time);
    article.appendChild(line);
    return article;
  }

  function renderBanners() {
    var box = document.getElementById("mz-order-banners");
    if (!box) { return; }
    var list = sortedOrders();
    section.setAttribute("data-orders-of", past ? "replay" : "live");
    // The banners are an assertive live region: rewritten only when what they say changes, not
    // on every message that brings the same orders again (a screen reader repeats a rewrite).
    var said = JSON.stringify(list.map(function (feature) {
      var p = feature.properties;
      return [p.id, p.level, p.updated_at, p.shelters.map(function (s) { return (shelters[s.code] || s).status; })];
    }));
    if (box.getAttribute("data-said") === said) { return; }
    box.setAttribute("data-said", said);
    box.textContent = "";
    list.forEach(function (feature) { box.appendChild(banner(feature)); });
    if (!list.length) {
      var none = el("p", "mz-order-none mz-muted");
      none.appendChild(words(gettext("No evacuation information is in force.")));
      box.appendChild(none);
    }
    section.setAttribute("data-orders-in-force", String(list.length));
  }

  // --- the districts on the map -----------------------------------------------------------------

  function levelOf(code) {
    var level = 0;
    var source = shownOrders();
    Object.keys(source).forEach(function (id) {
      var p = source[id].properties;
      if (p.districts.some(function (d) { return d.code === code; })) { level = Math.max(level, p.level); }
    });
    return level;
  }

  function drawDistricts() {
    L = L || window.L;
    if (!map || !L) { return; }
    if (layer) { map.removeLayer(layer); }
    var shown = Object.keys(districts).filter(function (code) { return levelOf(code) > 0 || code === mine; });
    layer = L.geoJSON(shown.map(function (code) { return districts[code]; }), {
      style: function (feature) {
        var level = levelOf(feature.properties.code);
        var style = data.styles[String(level)] || { fill: "#1b3a57", stroke: "#1b3a57" };
        return {
          color: feature.properties.code === mine ? "#0050d0" : style.stroke,
          weight: feature.properties.code === mine ? 4 : 2,
          fillColor: style.fill,
          fillOpacity: level ? 0.35 : 0.05,
          dashArray: level >= 4 ? null : "6 4",
          className: "mz-district mz-district-level-" + level,
        };
      },
      onEachFeature: function (feature, polygon) {
        var level = levelOf(feature.properties.code);
        var label = localized(feature.properties, "name") + (level ? " — L" + level : "");
        // In the area labels' pane (under the markers) where the map has one: a name never hides a gauge.
        var pane = map.getPane("mz-area-labels") ? "mz-area-labels" : "tooltipPane";
        polygon.bindTooltip(label, { permanent: level > 0, direction: "center", className: "mz-district-label", pane: pane });
      },
    });
    layer.addTo(map);
    layer.bringToBack();
  }

  function useMap(given) {
    if (given && !map) {
      map = given;
      drawDistricts();
    }
  }

  if (L && L.Map && L.Map.addInitHook) {
    L.Map.addInitHook(function () { useMap(this); });
  }
  document.addEventListener("mizumori:map", function (event) { useMap(event.detail && event.detail.map); });
  useMap(Mizumori.map);

  // --- my district and the nearest open shelters ------------------------------------------------

  function inRing(point, ring) {
    var inside = false;
    for (var i = 0, j = ring.length - 1; i < ring.length; j = i++) {
      var xi = ring[i][0], yi = ring[i][1], xj = ring[j][0], yj = ring[j][1];
      if ((yi > point[1]) !== (yj > point[1]) && point[0] < (xj - xi) * (point[1] - yi) / (yj - yi) + xi) {
        inside = !inside;
      }
    }
    return inside;
  }

  function inPolygon(point, rings) {
    return inRing(point, rings[0]) && !rings.slice(1).some(function (hole) { return inRing(point, hole); });
  }

  function districtAt(point) {
    return Object.keys(districts).filter(function (code) {
      var g = districts[code].geometry;
      var polygons = g.type === "Polygon" ? [g.coordinates] : g.type === "MultiPolygon" ? g.coordinates : [];
      return polygons.some(function (rings) { return inPolygon(point, rings); });
    })[0] || null;
  }

  function centre(code) {
    var g = districts[code].geometry;
    var ring = g.type === "Polygon" ? g.coordinates[0] : g.coordinates[0][0];
    var lon = 0, lat = 0;
    ring.forEach(function (pair) { lon += pair[0]; lat += pair[1]; });
    return [lon / ring.length, lat / ring.length];
  }

  // Orders are flood orders: a shelter the national dataset marks as not designated for floods
  // (for_flood false) is never suggested; unknown (null) is, as the town has not said otherwise.
  function floodSuitable(shelter) {
    return shelter.for_flood !== false;
  }

  function distanceKm(a, b) {
    var rad = Math.PI / 180;
    var dLat = (b[1] - a[1]) * rad, dLon = (b[0] - a[0]) * rad;
    var h = Math.pow(Math.sin(dLat / 2), 2) + Math.cos(a[1] * rad) * Math.cos(b[1] * rad) * Math.pow(Math.sin(dLon / 2), 2);
    return 2 * 6371 * Math.asin(Math.sqrt(h));
  }

  function renderMine() {
    var status = document.getElementById("mz-my-district-status");
    var list = document.getElementById("mz-nearest-shelters");
    if (!status || !list) { return; }
    status.textContent = "";
    list.textContent = "";
    if (!mine || !districts[mine]) { return; }
    var props = districts[mine].properties;
    var level = levelOf(mine);
    var order = sortedOrders().filter(function (f) {
      return f.properties.districts.some(function (d) { return d.code === mine; });
    })[0];
    var line = el("p", "mz-my-district-line" + (level ? " mz-order-level-" + level : ""));
    if (order) {
      var p = order.properties;
      line.appendChild(words(interpolate(gettext("%(order)s is in force for %(district)s. %(action)s"), {
        order: localized(p, "title"), district: localized(props, "name"), action: localized(p, "action"),
      }, true)));
    } else {
      line.appendChild(words(interpolate(gettext("No evacuation information is in force for %(district)s."), {
        district: localized(props, "name"),
      }, true)));
    }
    status.appendChild(line);
    var from = myPoint || centre(mine);
    Object.keys(shelters).map(function (code) { return shelters[code]; })
      .filter(function (s) { return s.status === "open" && floodSuitable(s); })
      .map(function (s) { return { shelter: s, km: distanceKm(from, [s.lon, s.lat]) }; })
      .sort(function (a, b) { return a.km - b.km; })
      .slice(0, NEAREST)
      .forEach(function (item) {
        var li = el("li", "mz-nearest-shelter");
        li.appendChild(words(localized(item.shelter, "name")));
        li.appendChild(document.createTextNode(" — " + item.km.toFixed(1) + " km"));
        li.setAttribute("data-shelter-code", item.shelter.code);
        list.appendChild(li);
      });
  }

  function choose(code) {
    mine = code && districts[code] ? code : null;
    try {
      if (mine) { window.localStorage.setItem(STORAGE_KEY, mine); } else { window.localStorage.removeItem(STORAGE_KEY); }
    } catch (error) { /* private mode: the choice lasts for this page only */ }
    var select = document.getElementById("mz-my-district");
    if (select) { select.value = mine || ""; }
    renderMine();
    drawDistricts();
  }

  var select = document.getElementById("mz-my-district");
  if (select) {
    select.addEventListener("change", function () { myPoint = null; choose(select.value); });
  }
  // A position from the browser ([lon, lat], never sent): its district and the shelters near it.
  function useLocation(point) {
    myPoint = point;
    var code = districtAt(myPoint);
    if (code) {
      choose(code);
    } else {
      mine = null;
      renderMine();
      var status = document.getElementById("mz-my-district-status");
      status.appendChild(words(gettext("Your location is outside every district.")));
    }
  }

  var locate = document.getElementById("mz-locate");
  if (locate && window.navigator.geolocation) {
    locate.hidden = false;
    locate.addEventListener("click", function () {
      window.navigator.geolocation.getCurrentPosition(function (position) {
        useLocation([position.coords.longitude, position.coords.latitude]);
      }, function () { /* refused or unavailable: the list still works */ }, { maximumAge: 60000, timeout: 15000 });
    });
  }
  // Located by the public page's "near me" list (static/mizumori/nearme.js).
  document.addEventListener("mizumori:located", function (event) {
    if (event.detail && Array.isArray(event.detail.point)) { useLocation(event.detail.point); }
  });

  // For the public page's "near me" list: the districts, the order in force for one now (the most
  // severe; also while the map replays the past: the list is what to do now), a district's centre,
  // and the one distance rule.
  Mizumori.distanceKm = distanceKm;
  Mizumori.orderDistricts = {
    list: function () { return districts; },
    centre: centre,
    orderFor: function (code) {
      var order = sortedOrders(orders).filter(function (f) {
        return f.properties.districts.some(function (d) { return d.code === code; });
      })[0];
      return order ? order.properties : null;
    },
  };

  // --- live -------------------------------------------------------------------------------------

  // The write endpoints answer with the order flat (properties and geometry): as a feature again.
  function asFeature(order) {
    return { type: "Feature", id: order.id, geometry: order.geometry, properties: order };
  }

  function applyOrders(features) {
    (features || []).forEach(function (feature) {
      if (feature.properties.in_force) { orders[feature.id] = feature; } else { delete orders[feature.id]; }
      (feature.properties.shelters || []).forEach(function (s) {
        if (shelters[s.code]) { shelters[s.code].status = s.status; }
      });
    });
    refresh();
  }

  function refresh() {
    renderBanners();
    drawDistricts();
    renderMine();
    if (hq) { renderBoard(); }
  }

  function resync() {
    window.fetch("/api/v1/orders", { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) { return response.ok ? response.json() : null; })
      .then(function (body) {
        if (!body) { return; }
        orders = {};
        applyOrders(body.features);
      })
      .catch(function () { /* kept; the next message or reconnect tries again */ });
  }

  document.addEventListener("mizumori:orders", function (event) { applyOrders(event.detail.features); });
  document.addEventListener("mizumori:subscribed", resync);
  document.addEventListener("mizumori:shelters", function (event) {
    (event.detail.features || []).forEach(function (feature) {
      var p = feature.properties;
      var known = shelters[p.code] || {};
      shelters[p.code] = { code: p.code, name_ja: p.name_ja, name_en: p.name_en, lon: feature.geometry.coordinates[0],
        lat: feature.geometry.coordinates[1], status: p.status, municipality: p.municipality,
        for_flood: known.for_flood === undefined ? null : known.for_flood };
    });
    renderBanners();
    renderMine();
  });

  // --- the HQ board -----------------------------------------------------------------------------

  var board = hq ? readJson("mz-order-board-data") : null;
  var boardRoot = document.getElementById("mz-order-board");
  var recommendations = {};
  var drafts = {};  // orders waiting for a second operator (the town's second-person rule)
  if (board) {
    (board.recommendations || []).forEach(function (r) { recommendations[r.id] = r; });
    (board.drafts || []).forEach(function (d) { drafts[d.id] = d; });
  }

  // An issue answers 201 with the order, or 202 with {"draft"} when a second operator must confirm.
  function issued(reply) {
    if (reply && reply.draft) {
      drafts[reply.draft.id] = reply.draft;
      renderBoard();
      return;
    }
    if (reply) { applyOrders([asFeature(reply)]); }
  }

  function showError(text) {
    var box = document.getElementById("mz-order-board-error");
    if (!box) { return; }
    box.textContent = text || "";
    box.hidden = !text;
  }

  function send(url, body) {
    showError("");
    return window.fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", Accept: "application/json", "X-CSRFToken": boardRoot.getAttribute("data-csrf") },
      body: JSON.stringify(body),
    }).then(function (response) {
      return response.json().catch(function () { return {}; }).then(function (reply) {
        if (!response.ok) {
          showError(Object.keys(reply).map(function (key) { return key + ": " + reply[key]; }).join("; ") || String(response.status));
          return null;
        }
        return reply;
      });
    }).catch(function () { showError(gettext("Cannot reach the server")); return null; });
  }

  function levelSelect(current) {
    var selectLevel = el("select", "mz-level-select");
    [3, 4, 5].forEach(function (level) {
      var option = el("option", null, "L" + level);
      option.value = String(level);
      option.selected = level === current;
      selectLevel.appendChild(option);
    });
    return selectLevel;
  }

  function ownShelters() {
    return Object.keys(shelters).map(function (code) { return shelters[code]; }).filter(function (s) {
      return board && s.municipality === board.municipality && floodSuitable(s);
    });
  }

  // Issuing is never one accidental click: the operator ticks this first.
  function confirmCheckbox(parent) {
    var label = el("label", "mz-confirm");
    var box = el("input");
    box.type = "checkbox";
    box.name = "confirm";
    label.appendChild(box);
    label.appendChild(words(gettext("I have checked this")));
    parent.appendChild(label);
    return box;
  }

  function recommendationItem(r) {
    var li = el("li", "mz-recommendation mz-order-level-" + r.level);
    li.setAttribute("data-recommendation-id", String(r.id));
    li.appendChild(el("p", "mz-recommendation-title", "L" + r.level + " " + localized(r, "title")));
    li.appendChild(el("p", null, r.districts.map(function (d) { return localized(d, "name"); }).join(gettext(", "))));
    var e = r.evidence || {};
    var evidence = e.fired_by === "manual"
      ? gettext("manual") + ": " + (e.actor || "") + " " + (e.note || "")
      : e.fired_by === "jma"
      ? (e.jma_warning || "") + " (" + (e.jma_status || "") + ") — " + (e.jma_report_title || "") + " " + (e.reported_at || "") +
        " — " + localized(e, "attribution")
      : localized(e, "station_name") + " (" + (e.station || "") + ", " + (e.station_municipality || "") + "): " + e.value + " " + (e.unit || "") +
        " ≥ " + localized(e, "threshold_label") + " " + e.threshold_value + " — " + (e.observed_at || "") +
        (e.trend ? " — " + e.trend : "") + (e.forecast ? " — " + interpolate(gettext("forecast L%(level)s in %(minutes)s min"),
          { level: e.forecast.level, minutes: e.forecast.eta_minutes }, true) : "");
    li.appendChild(el("p", "mz-recommendation-evidence", evidence));
    if (r.draft) {
      li.appendChild(el("p", "mz-recommendation-drafted", interpolate(gettext("waiting for a second operator: %s"), [r.draft.drafted_by])));
      return li;
    }
    if (boardRoot.getAttribute("data-may-issue") !== "true") { return li; }

    var form = el("form", "mz-recommendation-issue");
    var level = levelSelect(r.level);
    form.appendChild(level);
    var checks = el("span", "mz-district-checks");
    Object.keys(districts).filter(function (code) { return districts[code].properties.municipality === r.municipality; })
      .forEach(function (code) {
        var label = el("label");
        var box = el("input");
        box.type = "checkbox";
        box.value = code;
        box.name = "districts";
        box.checked = r.districts.some(function (d) { return d.code === code; });
        label.appendChild(box);
        label.appendChild(document.createTextNode(localized(districts[code].properties, "name")));
        checks.appendChild(label);
      });
    form.appendChild(checks);
    var shelterSelect = el("select", "mz-shelter-select");
    shelterSelect.multiple = true;
    ownShelters().forEach(function (s) {
      var option = el("option", null, localized(s, "name") + " (" + statusWords(s.status) + ")");
      option.value = s.code;
      shelterSelect.appendChild(option);
    });
    form.appendChild(shelterSelect);
    var openLabel = el("label");
    var open = el("input");
    open.type = "checkbox";
    open.name = "open_shelters";
    open.checked = true;
    openLabel.appendChild(open);
    openLabel.appendChild(words(gettext("Open the chosen shelters")));
    form.appendChild(openLabel);
    var confirmBox = confirmCheckbox(form);
    var issue = el("button", "mz-button mz-issue");
    issue.type = "submit";
    issue.appendChild(words(gettext("Issue")));
    form.appendChild(issue);
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      send("/api/v1/recommendations/" + r.id + "/issue", {
        confirm: confirmBox.checked,
        level: Number(level.value),
        districts: Array.prototype.filter.call(checks.querySelectorAll("input"), function (b) { return b.checked; }).map(function (b) { return b.value; }),
        shelters: Array.prototype.filter.call(shelterSelect.options, function (o) { return o.selected; }).map(function (o) { return o.value; }),
        open_shelters: open.checked,
      }).then(function (reply) {
        if (reply && !reply.draft) { delete recommendations[r.id]; }
        issued(reply);
      });
    });
    li.appendChild(form);

    var dismiss = el("form", "mz-recommendation-dismiss");
    var reason = el("input");
    reason.name = "reason";
    reason.required = true;
    reason.maxLength = 300;
    reason.placeholder = gettext("Reason");
    dismiss.appendChild(reason);
    var no = el("button", "mz-button");
    no.type = "submit";
    no.appendChild(words(gettext("Dismiss")));
    dismiss.appendChild(no);
    dismiss.addEventListener("submit", function (event) {
      event.preventDefault();
      send("/api/v1/recommendations/" + r.id + "/dismiss", { reason: reason.value }).then(function (reply) {
        if (reply) { delete recommendations[r.id]; renderBoard(); }
      });
    });
    li.appendChild(dismiss);
    return li;
  }

  function draftItem(d) {
    var li = el("li", "mz-order-draft mz-order-level-" + d.level);
    li.setAttribute("data-draft-id", String(d.id));
    li.appendChild(el("p", "mz-recommendation-title", "L" + d.level + " " + localized(d, "title")));
    li.appendChild(el("p", null, d.districts.map(function (x) { return localized(x, "name"); }).join(gettext(", "))));
    li.appendChild(el("p", "mz-muted", interpolate(gettext("drafted by %(who)s — %(when)s"), { who: d.drafted_by, when: d.drafted_at }, true)));
    if (boardRoot.getAttribute("data-may-issue") !== "true") { return li; }
    if (d.drafted_by === board.username) {
      li.appendChild(el("p", "mz-muted mz-draft-own", gettext("Another operator must confirm")));
    } else {
      var confirmBox = confirmCheckbox(li);
      var confirm = el("button", "mz-button mz-issue mz-draft-confirm");
      confirm.type = "button";
      confirm.appendChild(words(gettext("Confirm and issue")));
      confirm.addEventListener("click", function () {
        send("/api/v1/order-drafts/" + d.id + "/confirm", { confirm: confirmBox.checked }).then(function (reply) {
          if (reply) {
            delete drafts[d.id];
            if (d.recommendation) { delete recommendations[d.recommendation]; }
            issued(reply);
          }
        });
      });
      li.appendChild(confirm);
    }
    var withdraw = el("button", "mz-button mz-draft-withdraw");
    withdraw.type = "button";
    withdraw.appendChild(words(gettext("Withdraw")));
    withdraw.addEventListener("click", function () {
      send("/api/v1/order-drafts/" + d.id + "/withdraw", {}).then(function (reply) {
        if (reply) { delete drafts[d.id]; renderBoard(); }
      });
    });
    li.appendChild(withdraw);
    return li;
  }

  function ownOrderItem(feature) {
    var p = feature.properties;
    var li = el("li", "mz-own-order mz-order-level-" + p.level);
    li.setAttribute("data-order-id", String(p.id));
    li.appendChild(el("p", null, "L" + p.level + " " + localized(p, "title") + " — " + p.districts.map(function (d) { return localized(d, "name"); }).join(gettext(", "))));
    if (boardRoot.getAttribute("data-may-issue") !== "true") { return li; }
    var level = levelSelect(p.level);
    li.appendChild(level);
    var change = el("button", "mz-button mz-change");
    change.type = "button";
    change.appendChild(words(gettext("Change level")));
    change.addEventListener("click", function () {
      send("/api/v1/orders/" + p.id + "/change", { level: Number(level.value) }).then(function (reply) {
        if (reply) { applyOrders([asFeature(reply.order)]); }
      });
    });
    li.appendChild(change);
    var lift = el("button", "mz-button mz-lift");
    lift.type = "button";
    lift.appendChild(words(gettext("Lift")));
    lift.addEventListener("click", function () {
      if (!window.confirm(gettext("Lift this order?"))) { return; }
      send("/api/v1/orders/" + p.id + "/lift", {}).then(function (reply) {
        if (reply) { applyOrders([asFeature(reply.order)]); }
      });
    });
    li.appendChild(lift);
    return li;
  }

  // Live messages redraw the board many times a minute in a storm, and every (re)subscription
  // fetches the orders again. An item whose data did not change keeps its node, so what an operator
  // has ticked, chosen or typed in it survives them; a changed item is drawn anew.
  function reconcile(list, entries, build) {
    var wanted = {};
    entries.forEach(function (entry) { wanted[entry.key] = entry; });
    var kept = {};
    Array.prototype.slice.call(list.children).forEach(function (node) {
      var entry = wanted[node.getAttribute("data-board-key")];
      if (entry && node.getAttribute("data-board-said") === entry.said) {
        kept[entry.key] = node;
      } else {
        list.removeChild(node);
      }
    });
    entries.forEach(function (entry, index) {
      var node = kept[entry.key];
      if (!node) {
        node = build(entry.item);
        node.setAttribute("data-board-key", entry.key);
        node.setAttribute("data-board-said", entry.said);
      }
      if (list.children[index] !== node) { list.insertBefore(node, list.children[index] || null); }
    });
  }

  // The board's lists, newest first, or one "—" line for an empty list.
  function boardEntries(items, key, said) {
    var entries = items.map(function (item) { return { key: String(key(item)), said: said(item), item: item }; });
    return entries.length ? entries : [{ key: "none", said: "", item: null }];
  }

  function itemOrNone(build) {
    return function (item) { return item === null ? el("li", "mz-muted", "— ") : build(item); };
  }

  function newestFirst(byId) {
    return Object.keys(byId).sort(function (a, b) { return b - a; }).map(function (id) { return byId[id]; });
  }

  function renderBoard() {
    if (!board || !boardRoot) { return; }
    // A recommendation's form offers the town's shelters with their status: a status change redraws it.
    var shelterStates = JSON.stringify(ownShelters().map(function (s) { return [s.code, s.status]; }));
    reconcile(document.getElementById("mz-recommendations"),
      boardEntries(newestFirst(recommendations), function (r) { return r.id; },
        function (r) { return JSON.stringify(r) + shelterStates; }),
      itemOrNone(recommendationItem));
    var waiting = document.getElementById("mz-order-drafts");
    if (waiting) {
      reconcile(waiting, boardEntries(newestFirst(drafts), function (d) { return d.id; }, JSON.stringify),
        itemOrNone(draftItem));
    }
    var own = sortedOrders(orders).filter(function (f) {
      return board.municipality && f.properties.municipality === board.municipality;
    });
    // An order's own item says its level, title and districts, all changed only with updated_at (the
    // write endpoints' reply and GET /api/v1/orders carry the order in different shapes).
    reconcile(document.getElementById("mz-own-orders"), own.map(function (f) {
      var p = f.properties;
      return { key: String(p.id), said: JSON.stringify([p.level, p.updated_at]), item: f };
    }), ownOrderItem);
  }

  document.addEventListener("mizumori:order_drafts", function (event) {
    (event.detail.drafts || []).forEach(function (d) {
      if (d.state === "pending") { drafts[d.id] = d; } else { delete drafts[d.id]; }
    });
    renderBoard();
  });

  document.addEventListener("mizumori:recommendations", function (event) {
    (event.detail.recommendations || []).forEach(function (r) {
      if (r.state === "open") { recommendations[r.id] = r; } else { delete recommendations[r.id]; }
    });
    renderBoard();
  });

  try {
    choose(window.localStorage.getItem(STORAGE_KEY));
  } catch (error) {
    choose(null);
  }
  refresh();
  // Replay: the orders in force at the moment shown (features of GET /api/v1/orders?at=), or null: now.
  function showAt(features) {
    if (features) {
      past = {};
      features.forEach(function (feature) { past[feature.id] = feature; });
    } else {
      past = null;
    }
    renderBanners();
    drawDistricts();
    renderMine();
  }

  Mizumori.orders = { choose: choose, districtAt: districtAt, refresh: resync, showAt: showAt };
})(window, document);
