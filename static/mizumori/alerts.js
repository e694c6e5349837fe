/*
 * The HQ alert board, live: listens on /ws/live/ to the "alerts" and "releases" layers and reloads
 * the board's server-rendered fragment when an alert or a dam release notice changes (the server
 * decides what this user may see and which notices concern the town).
 * Loaded after live.js, whose status line it shares (live.js finds no map here and stays idle).
 */
(function (window, document) {
  "use strict";

  var board = document.getElementById("mz-alert-board");
  var indicator = document.getElementById("mz-live-status");
  if (!board || !window.WebSocket) {
    return;
  }
  var attempt = 0;
  var offlineSince = null;

  function setStatus(status) {
    window.Mizumori.showLiveStatus(indicator, status, offlineSince);
  }

  function refresh() {
    window.fetch(board.getAttribute("data-fragment-url"), { credentials: "same-origin" })
      .then(function (response) { return response.ok ? response.text() : Promise.reject(response.status); })
      .then(function (html) { board.innerHTML = html; })
      .catch(function () { /* the next message or reconnect tries again */ });
  }

  function connect() {
    var scheme = window.location.protocol === "https:" ? "wss://" : "ws://";
    var socket = new window.WebSocket(scheme + window.location.host + "/ws/live/");
    socket.onopen = function () {
      socket.send(JSON.stringify({ type: "subscribe", layers: ["alerts", "releases"] }));
    };
    socket.onmessage = function (event) {
      var message = JSON.parse(event.data);
      if (message.type === "subscribed") {
        attempt = 0;
        // Anything may have changed while we were away.
        if (offlineSince) {
          refresh();
        }
        offlineSince = null;
        setStatus("live");
      } else if (message.type === "alert" || message.type === "releases") {
        refresh();
      } else if (message.type === "degraded") {
        setStatus("degraded");
      } else if (message.type === "restored") {
        setStatus("live");
        refresh();
      }
    };
    socket.onclose = function () {
      offlineSince = offlineSince || new Date();
      setStatus(attempt >= 3 ? "offline" : "reconnecting");
      var delay = Math.min(30000, 1000 * Math.pow(2, attempt));
      attempt += 1;
      window.setTimeout(connect, delay / 2 + Math.random() * delay / 2);
    };
  }

  connect();
})(window, document);
