/*
 * The public page offline (registered by static/mizumori/public.js with scope "/"; served with
 * `Service-Worker-Allowed: /`, config/static_headers.py).
 *
 * One cache per front-end build (config/build.py): the page registers this script as
 * `service-worker.js?build=<id>`, so a page of a new deploy installs a new worker (a script URL the
 * registration has not seen), which keeps what it is handed in a cache named after its build and,
 * when it takes over, deletes the caches of every other build. A copy kept under one deploy (its
 * shell, its content-hashed scripts, its snapshot) is therefore never served to another's page.
 *
 * Network first, always: while the server answers, the page gets exactly what it would get without
 * this worker (the browser's HTTP cache and the conditional GETs still apply), and the answer is
 * kept. Only when the network fails does the kept copy answer, for:
 *
 *   the shell (/ and /?lang=…), its static files (/static/…), its scripts' translations
 *   (/i18n/catalog/<language>.js), the base map (/public/basemap.js)
 *   and the last public snapshot (/api/v1/public/snapshot).
 *
 * Every kept copy carries `X-Mizumori-Stored-At` (when this browser last had it from the server,
 * ms since the epoch); one answered from here while the network fails (or the server answers 5xx)
 * also carries
 * `X-Mizumori-Offline: 1`, so the page shows it as the last known state with its age, never as
 * current. Nothing else is touched: staff pages, the API, the websocket and map tiles from another
 * origin pass straight through, and nothing personal is kept (the public responses are the same
 * for every reader).
 */
/* eslint-env serviceworker */
"use strict";

var CACHE_PREFIX = "mizumori-public-";
// Registered without a build (a page older than builds): the name the worker had then.
var CACHE = CACHE_PREFIX + (new URL(self.location.href).searchParams.get("build") || "v1").replace(/[^\w-]/g, "");
var STORED_AT = "X-Mizumori-Stored-At";
var OFFLINE = "X-Mizumori-Offline";
var SNAPSHOT_PATH = "/api/v1/public/snapshot";
var SHELL_PATH = "/";
// The scripts' translations (dashboard/js_catalog.py): the kept shell cannot run without its catalog.
var CATALOG_PATH = "/i18n/catalog/";
// A language code as the shell's `?lang=` spells one (settings.LANGUAGES: "ja", "en", "zh-hans" …);
// anything else is not part of the key (the server answers it in its default language).
var LANGUAGE_CODE = /^[a-z]{2,3}(-[a-z0-9]{2,8})?$/;
// What the page hands over after its first load (it loaded them before this worker took over):
// at most this many URLs, each of the kinds above.
var REMEMBER_MAX = 100;

function keptPath(url) {
  if (url.origin !== self.location.origin) {
    return false;
  }
  return url.pathname === SHELL_PATH || url.pathname === SNAPSHOT_PATH || url.pathname === "/public/basemap.js" ||
    url.pathname.indexOf("/static/") === 0 || url.pathname.indexOf(CATALOG_PATH) === 0;
}

// The shell's cache key: its language only (`?lang=`), so a kept shell is found whatever else the
// address carried.
function cacheKey(url) {
  if (url.pathname === SHELL_PATH) {
    var language = url.searchParams.get("lang");
    return self.location.origin + SHELL_PATH + (LANGUAGE_CODE.test(language || "") ? "?lang=" + language : "");
  }
  return url.origin + url.pathname + url.search;
}

function stamped(response, extra) {
  var headers = new Headers(response.headers);
  Object.keys(extra).forEach(function (name) { headers.set(name, extra[name]); });
  return response.clone().blob().then(function (body) {
    return new Response(body, { status: response.status, statusText: response.statusText, headers: headers });
  });
}

function keep(url, response) {
  if (!response || response.status !== 200 || response.type !== "basic") {
    return Promise.resolve();
  }
  return stamped(response, (function () {
    var extra = {};
    extra[STORED_AT] = String(Date.now());
    return extra;
  })()).then(function (copy) {
    return caches.open(CACHE).then(function (cache) { return cache.put(cacheKey(url), copy); });
  });
}

function fromCache(url) {
  return caches.open(CACHE).then(function (cache) {
    return cache.match(cacheKey(url)).then(function (found) {
      // A shell kept in the other language still beats the browser's error page.
      if (!found && url.pathname === SHELL_PATH) {
        return cache.match(self.location.origin + SHELL_PATH, { ignoreSearch: true });
      }
      return found;
    });
  }).then(function (found) {
    if (!found) {
      return null;
    }
    var extra = {};
    extra[OFFLINE] = "1";
    return stamped(found, extra);
  });
}

self.addEventListener("install", function () {
  self.skipWaiting();
});

self.addEventListener("activate", function (event) {
  event.waitUntil(
    caches.keys().then(function (names) {
      return Promise.all(names.filter(function (name) {
        return name.indexOf(CACHE_PREFIX) === 0 && name !== CACHE;
      }).map(function (name) { return caches.delete(name); }));
    }).then(function () { return self.clients.claim(); })
  );
});

self.addEventListener("fetch", function (event) {
  var request = event.request;
  if (request.method !== "GET") {
    return;
  }
  var url = new URL(request.url);
  if (!keptPath(url)) {
    return;
  }
  event.respondWith(
    fetch(request).then(function (response) {
      if (response.status >= 500) {
        // The server is there but cannot answer (a storm night): the last copy, marked as such.
        return fromCache(url).then(function (found) { return found || response; });
      }
      event.waitUntil(keep(url, response.clone()).catch(function () { /* quota: the page works on */ }));
      return response;
    }, function (error) {
      return fromCache(url).then(function (found) {
        if (found) {
          return found;
        }
        throw error;
      });
    })
  );
});

// The page's own first load went past this worker: it names what it loaded, and they are fetched
// again into the kept copies (through the HTTP cache: usually no request reaches the server).
self.addEventListener("message", function (event) {
  var data = event.data || {};
  if (data.type !== "remember" || !Array.isArray(data.urls)) {
    return;
  }
  var urls = data.urls.slice(0, REMEMBER_MAX).map(function (given) {
    try {
      return new URL(String(given), self.location.origin);
    } catch (error) {
      return null;
    }
  }).filter(function (url) { return url && keptPath(url); });
  event.waitUntil(Promise.all(urls.map(function (url) {
    var fresh = url.pathname === SNAPSHOT_PATH || url.pathname === SHELL_PATH;
    // With the language cookie, as the page's own request had it: the shell kept is in its language.
    return fetch(url.href, { credentials: "same-origin", cache: fresh ? "no-cache" : "default" }).then(function (response) {
      return keep(url, response);
    }).catch(function () { /* offline meanwhile: kept on the next visit */ });
  })).then(function () {
    if (event.source && event.source.postMessage) {
      event.source.postMessage({ type: "remembered", count: urls.length });
    }
  }));
});
