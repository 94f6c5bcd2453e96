// The on-air board, live: follows the organization's board socket, applies new numbers to their
// rows, re-fetches the rows (server-rendered, in the reader's language) when a shift moves, and
// comes back after a dropped socket with a growing pause, re-fetching the whole board so that
// nothing sent while it was away is missed. The page works without it (reload to update).
(function () {
  "use strict";
  var board = document.getElementById("board");
  var status = document.getElementById("board-status");
  if (!board || !status || !window.WebSocket) return;

  var socketPath = board.dataset.socketPath;
  var rowsUrl = board.dataset.rowsUrl;
  // "{ms} ms" in the reader's language, as the server writes the rows.
  var latencyFormat = board.dataset.latencyFormat || "{ms}";
  var FIRST_PAUSE_MS = 1000;
  var LONGEST_PAUSE_MS = 30000;
  // Closed for good: not signed in any more, not a member, or no right to see the board.
  var REFUSED = { 4403: true, 4404: true };

  var socket = null;
  var failures = 0;
  var retryTimer = null;
  var fetching = false;
  var fetchAgain = false;

  function show(state) {
    status.dataset.connection = state;
    status.className = "badge " + state;
    var label = status.dataset["label" + state.charAt(0).toUpperCase() + state.slice(1)];
    if (label) status.textContent = label;
  }

  function socketUrl() {
    var scheme = window.location.protocol === "https:" ? "wss:" : "ws:";
    return scheme + "//" + window.location.host + socketPath;
  }

  // -- the rows ---------------------------------------------------------------------------------

  function refresh() {
    if (fetching) { fetchAgain = true; return; }
    fetching = true;
    var done = function () {
      fetching = false;
      if (fetchAgain) { fetchAgain = false; refresh(); }
    };
    if (window.htmx) {
      // htmx follows a signed-out answer (HX-Redirect) to sign-in.
      window.htmx.ajax("GET", rowsUrl, { target: "#board-rows", swap: "outerHTML" }).then(done, done);
      return;
    }
    fetch(rowsUrl, { credentials: "same-origin", headers: { "HX-Request": "true" } })
      .then(function (response) { return response.ok ? response.text() : null; })
      .then(function (html) {
        var rows = document.getElementById("board-rows");
        if (html && rows) rows.outerHTML = html;
      })
      .then(done, done);
  }

  function text(value, format) {
    return value === null || value === undefined ? "—" : format(value);
  }

  var FORMATS = {
    fps: function (v) { return Number(v).toFixed(1); },
    viewers: function (v) { return String(Math.round(v)); },
    latency_ms: function (v) { return latencyFormat.replace("{ms}", String(Math.round(v))); }
  };

  function applyStats(update) {
    var row = document.getElementById("shift-" + update.shift);
    if (!row) { refresh(); return; } // a shift the page does not show yet
    Object.keys(FORMATS).forEach(function (name) {
      if (!(name in update)) return;
      var cell = row.querySelector('[data-stat="' + name + '"]');
      if (cell) cell.textContent = text(update[name], FORMATS[name]);
    });
  }

  function receive(event) {
    var update;
    try { update = JSON.parse(event.data); } catch (error) { return; }
    if (update.type === "stats") applyStats(update);
    else refresh(); // a shift moved (or anything else): the server renders the rows again
  }

  // -- the socket -------------------------------------------------------------------------------

  function connect() {
    retryTimer = null;
    show(failures ? "retrying" : "connecting");
    try {
      socket = new WebSocket(socketUrl());
    } catch (error) {
      retry();
      return;
    }
    socket.onopen = function () {
      failures = 0;
      show("live");
      refresh(); // whatever moved while there was no socket (or since the page was rendered)
    };
    socket.onmessage = receive;
    socket.onclose = function (event) {
      socket = null;
      if (REFUSED[event.code]) { show("closed"); return; }
      retry();
    };
  }

  function retry() {
    failures += 1;
    show("retrying");
    // Doubling pauses with jitter, so that consoles cut off together do not return together.
    var pause = Math.min(LONGEST_PAUSE_MS, FIRST_PAUSE_MS * Math.pow(2, failures - 1));
    retryTimer = window.setTimeout(connect, pause / 2 + Math.random() * pause / 2);
  }

  // Back online: try now instead of waiting out the pause.
  window.addEventListener("online", function () {
    if (retryTimer !== null) { window.clearTimeout(retryTimer); connect(); }
  });

  // Stopping a shift asks first. On window, capturing: before console.js marks the form sent.
  window.addEventListener("submit", function (event) {
    var form = event.target;
    if (!(form instanceof HTMLFormElement) || !board.contains(form)) return;
    var question = form.dataset.confirm;
    if (question && !window.confirm(question)) {
      event.preventDefault();
      event.stopImmediatePropagation();
    }
  }, true);

  // Hints can be lost: channel layers drop them over capacity, and in the embedded default (no
  // Redis) the moves the Celery worker makes (the duty tick) never reach the web process's
  // in-memory layer. A quiet re-fetch every half minute while the page is seen keeps the board
  // true all the same.
  var SAFETY_REFRESH_MS = 30000;
  window.setInterval(function () {
    if (document.visibilityState === "visible" && socket !== null) refresh();
  }, SAFETY_REFRESH_MS);

  connect();
})();
