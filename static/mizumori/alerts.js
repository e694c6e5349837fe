/*
 * The HQ alert board, live. Listens on /ws/live/ to the "alerts" and "releases" layers and, when an
 * alert or a dam release notice changes, fetches the board's server-rendered fragment (the server
 * decides what this user may see and which notices concern the town) and patches it in place: rows
 * are matched by `data-row-key` inside each `data-live-section` (alerts, releases), only changed
 * cells are replaced, and keyboard focus, typed notes and scroll stay where they were.
 *
 * A new row or a higher level is a cue: a short sound (mutable, remembered), a desktop notification
 * when permitted, the open count in the title, a highlight on the row, and one sentence in the
 * assertive live region. Refreshes that change nothing else say nothing.
 *
 * Resolve asks first in a dialog (Escape or Cancel closes it); without this script the server asks
 * on a page of its own. Loaded after live.js, whose status line it shares.
 */
(function (window, document) {
  "use strict";

  var board = document.getElementById("mz-alert-board");
  if (!board) {
    return;
  }
  var indicator = document.getElementById("mz-live-status");
  var announcer = document.getElementById("mz-alert-announcer");
  var cues = document.getElementById("mz-board-cues");
  var soundToggle = document.getElementById("mz-sound-toggle");
  var notifyButton = document.getElementById("mz-notify-enable");
  var dialog = document.getElementById("mz-resolve-dialog");
  var baseTitle = document.title.replace(/^\(\d+\) /, "");
  var SOUND_KEY = "mizumori.board.sound";
  var REFRESH_DELAY_MS = 250;

  // --- cues -------------------------------------------------------------------------------------

  var audio = null;
  function soundOn() {
    try {
      return window.localStorage.getItem(SOUND_KEY) !== "off";
    } catch (error) {
      return true;
    }
  }

  function showSoundState() {
    soundToggle.setAttribute("aria-pressed", soundOn() ? "true" : "false");
  }

  function beep() {
    if (!soundToggle || !soundOn()) {
      return;
    }
    audio = audio || new window.Audio(soundToggle.getAttribute("data-sound-url"));
    audio.currentTime = 0;
    // Browsers refuse sound before the first click or key on the page: the other cues still come.
    var playing = audio.play();
    if (playing && playing.catch) {
      playing.catch(function () {});
    }
  }

  function notify(lines) {
    if (!("Notification" in window) || window.Notification.permission !== "granted") {
      return;
    }
    try {
      var note = new window.Notification(gettext("Mizumori alert"), { body: lines.join("\n"), tag: "mizumori-board" });
      note.onclick = function () { window.focus(); board.focus(); note.close(); };
    } catch (error) {
      // Some browsers only allow notifications from a service worker; the page's own cues remain.
    }
  }

  function showOpenCount() {
    var table = board.querySelector("[data-open-count]");
    var count = table ? parseInt(table.getAttribute("data-open-count"), 10) || 0 : 0;
    document.title = (count ? "(" + count + ") " : "") + baseTitle;
  }

  function cue(fresh) {
    if (!fresh.length) {
      return;
    }
    var lines = fresh.map(function (item) {
      return interpolate(item.escalated ? gettext("Escalated: %s") : gettext("New alert: %s"), [item.text]);
    });
    // A fresh string each time, so screen readers speak it even when it repeats the last one.
    announcer.textContent = "";
    window.setTimeout(function () { announcer.textContent = lines.join(gettext(". ")); }, 50);
    beep();
    notify(lines);
  }

  // --- patching ---------------------------------------------------------------------------------

  function focusKeyOf(element) {
    var keyed = element && element.closest ? element.closest("[data-focus-key]") : null;
    return keyed ? keyed.getAttribute("data-focus-key") : null;
  }

  function typedNotes(container) {
    var notes = {};
    container.querySelectorAll("input[name=note][data-focus-key]").forEach(function (input) {
      if (input.value) {
        notes[input.getAttribute("data-focus-key")] = input.value;
      }
    });
    return notes;
  }

  function copyAttributes(from, to) {
    Array.prototype.slice.call(to.attributes).forEach(function (attribute) {
      if (!from.hasAttribute(attribute.name)) {
        to.removeAttribute(attribute.name);
      }
    });
    Array.prototype.slice.call(from.attributes).forEach(function (attribute) {
      if (to.getAttribute(attribute.name) !== attribute.value) {
        to.setAttribute(attribute.name, attribute.value);
      }
    });
  }

  function patchRow(current, next) {
    var wasFresh = current.classList.contains("mz-alert-fresh");
    copyAttributes(next, current);
    if (wasFresh && next.getAttribute("data-state") === "open") {
      current.classList.add("mz-alert-fresh");
    }
    var cells = {};
    current.querySelectorAll(":scope > [data-cell]").forEach(function (cell) {
      cells[cell.getAttribute("data-cell")] = cell;
    });
    var nextCells = next.querySelectorAll(":scope > [data-cell]");
    if (nextCells.length !== Object.keys(cells).length) {
      current.innerHTML = next.innerHTML;
      return;
    }
    nextCells.forEach(function (cell) {
      var old = cells[cell.getAttribute("data-cell")];
      if (!old) {
        current.innerHTML = next.innerHTML;
      } else if (old.innerHTML !== cell.innerHTML) {
        old.replaceWith(cell);
      }
    });
  }

  function patchSection(section, nextSection, fresh) {
    var rows = {};
    section.querySelectorAll(":scope > [data-row-key]").forEach(function (row) {
      rows[row.getAttribute("data-row-key")] = row;
    });
    var order = Array.prototype.slice.call(nextSection.querySelectorAll(":scope > [data-row-key]"));
    var seen = {};
    var previous = null;
    order.forEach(function (next) {
      var key = next.getAttribute("data-row-key");
      seen[key] = true;
      var row = rows[key];
      var level = parseInt(next.getAttribute("data-level"), 10) || 0;
      if (row) {
        var before = parseInt(row.getAttribute("data-level"), 10) || 0;
        if (level > before) {
          fresh.push({ row: row, text: next.getAttribute("data-announce"), escalated: true });
        }
        patchRow(row, next);
      } else {
        row = next;
        if (next.hasAttribute("data-announce")) {
          fresh.push({ row: row, text: next.getAttribute("data-announce"), escalated: false });
        }
      }
      // Moved only when out of place: moving a row takes focus out of it (put back below).
      var wanted = previous ? previous.nextElementSibling : section.firstElementChild;
      if (wanted !== row) {
        section.insertBefore(row, wanted);
      }
      previous = row;
    });
    Object.keys(rows).forEach(function (key) {
      if (!seen[key]) {
        rows[key].remove();
      }
    });
  }

  function patch(html) {
    var focusKey = focusKeyOf(document.activeElement);
    var notes = typedNotes(board);
    var scroll = [window.scrollX, window.scrollY];
    var template = document.createElement("template");
    template.innerHTML = html;
    var next = template.content;
    var fresh = [];
    var sections = board.querySelectorAll("[data-live-section]");
    var nextSections = next.querySelectorAll("[data-live-section]");
    var sameShape = sections.length === nextSections.length && Array.prototype.every.call(nextSections, function (s, i) {
      return s.getAttribute("data-live-section") === sections[i].getAttribute("data-live-section");
    });
    if (sameShape) {
      nextSections.forEach(function (nextSection, i) { patchSection(sections[i], nextSection, fresh); });
      var table = board.querySelector("[data-open-count]");
      var nextTable = next.querySelector("[data-open-count]");
      if (table && nextTable) {
        table.setAttribute("data-open-count", nextTable.getAttribute("data-open-count"));
      }
    } else {
      board.replaceChildren(next);
    }
    // Typed notes and focus come back to the same control, wherever its row went.
    Object.keys(notes).forEach(function (key) {
      var input = board.querySelector('input[data-focus-key="' + key + '"]');
      if (input && !input.value) {
        input.value = notes[key];
      }
    });
    if (focusKey && focusKeyOf(document.activeElement) !== focusKey) {
      var target = board.querySelector('[data-focus-key="' + focusKey + '"]');
      if (target) {
        target.focus({ preventScroll: true });
      }
    }
    if (window.scrollX !== scroll[0] || window.scrollY !== scroll[1]) {
      window.scrollTo(scroll[0], scroll[1]);
    }
    fresh.forEach(function (item) { item.row.classList.add("mz-alert-fresh"); });
    showOpenCount();
    cue(fresh);
    board.dispatchEvent(new window.CustomEvent("mizumori:board-patched", { detail: { fresh: fresh.length } }));
  }

  // One fetch at a time; changes during it are fetched once more after it.
  var fetching = false;
  var again = false;
  var timer = null;

  function refresh() {
    if (fetching) {
      again = true;
      return;
    }
    fetching = true;
    window.fetch(board.getAttribute("data-fragment-url"), { credentials: "same-origin" })
      .then(function (response) { return response.ok ? response.text() : Promise.reject(response.status); })
      .then(patch)
      .catch(function () { /* the next message or reconnect tries again */ })
      .then(function () {
        fetching = false;
        if (again) {
          again = false;
          refresh();
        }
      });
  }

  function refreshSoon() {
    window.clearTimeout(timer);
    timer = window.setTimeout(refresh, REFRESH_DELAY_MS);
  }

  // The operator has seen a highlighted row once they work in it.
  function seen(event) {
    var row = event.target.closest && event.target.closest("tr.mz-alert-fresh");
    if (row) {
      row.classList.remove("mz-alert-fresh");
    }
  }
  board.addEventListener("focusin", seen);
  board.addEventListener("click", seen);

  // --- resolve, confirmed ---------------------------------------------------------------------

  var pending = null;  // the focus key of the Resolve button whose form waits for the dialog

  function pendingForm() {
    var button = pending && board.querySelector('[data-focus-key="' + pending + '"]');
    return button ? button.form : null;
  }

  function closeDialog() {
    if (dialog.open) {
      dialog.close();
    }
  }

  if (dialog && dialog.showModal) {
    board.addEventListener("submit", function (event) {
      var form = event.target;
      if (!form.classList.contains("mz-resolve-form") || form.querySelector("input[name=confirm]")) {
        return;
      }
      event.preventDefault();
      pending = focusKeyOf(form.querySelector("[data-focus-key]"));
      document.getElementById("mz-resolve-text").textContent = form.getAttribute("data-confirm");
      dialog.showModal();
      document.getElementById("mz-resolve-cancel").focus();
    });
    document.getElementById("mz-resolve-cancel").addEventListener("click", closeDialog);
    document.getElementById("mz-resolve-confirm").addEventListener("click", function () {
      var form = pendingForm();
      pending = null;  // leaving the page: focus stays put
      closeDialog();
      if (!form) {
        return;  // the alert went while the dialog was open: nothing left to resolve
      }
      var confirm = document.createElement("input");
      confirm.type = "hidden";
      confirm.name = "confirm";
      confirm.value = "yes";
      form.appendChild(confirm);
      form.submit();
    });
    // Escape closes a modal dialog by itself ("cancel"); either way focus goes back to Resolve.
    dialog.addEventListener("close", function () {
      var button = pending && board.querySelector('[data-focus-key="' + pending + '"]');
      if (button) {
        button.focus();
      }
    });
  }

  // --- controls -----------------------------------------------------------------------------------

  if (cues) {
    cues.hidden = false;
    showSoundState();
    soundToggle.addEventListener("click", function () {
      try {
        window.localStorage.setItem(SOUND_KEY, soundOn() ? "off" : "on");
      } catch (error) {
        // Private mode: the choice lasts as long as the page.
      }
      showSoundState();
    });
    if ("Notification" in window && window.Notification.permission === "default") {
      notifyButton.hidden = false;
      notifyButton.addEventListener("click", function () {
        window.Notification.requestPermission().then(function () { notifyButton.hidden = true; });
      });
    }
  }
  showOpenCount();

  // --- the live connection ------------------------------------------------------------------------

  if (!window.WebSocket) {
    return;
  }
  var attempt = 0;
  var offlineSince = null;

  function setStatus(status) {
    window.Mizumori.showLiveStatus(indicator, status, offlineSince);
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
          refreshSoon();
        }
        offlineSince = null;
        setStatus("live");
      } else if (message.type === "alert" || message.type === "releases") {
        refreshSoon();
      } else if (message.type === "degraded") {
        setStatus("degraded");
      } else if (message.type === "restored") {
        setStatus("live");
        refreshSoon();
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

  window.Mizumori = window.Mizumori || {};
  window.Mizumori.alertBoard = { refresh: refresh };
  connect();
})(window, document);
