/* live.js: what the dashboard and admin scripts share.
 *
 * - The /balance socket. It authenticates with the HttpOnly login cookie, so no script ever holds a token.
 *   socket.io-client reconnects with exponential backoff and jitter; every (re)connect sends the last
 *   `seq` this page has seen as `auth.since_seq`, so the server replays what was missed, then sends
 *   `balance_initial`. A `balance_updated` at or below that seq is a repeat and is dropped; a
 *   `balance_initial` is the truth and sets the seq, even a lower one (the server never sends one older
 *   than what the page has seen, so a lower seq means the page's was made up by a wrong publisher).
 *   Other events are dropped when seen twice.
 * - Money and time formatting that writes exactly what the server's templates write.
 * - Toasts, the connection indicator, and forms that submit once (data-once).
 * Everything that came from a user is written with textContent, never parsed as HTML.
 */
(function () {
  "use strict";

  var body = document.body;
  var SYMBOL = body.dataset.currencySymbol || "";
  var CODE = body.dataset.currency || "";
  var VIEWER = body.dataset.viewer ? Number(body.dataset.viewer) : null;  // whose page this is
  var ANOTHER_LOGIN = "another login:";                                     // the server's refusal when it is not

  function money(minor) {
    var sign = minor < 0 ? "-" : "";
    var abs = Math.abs(Math.round(minor));
    var units = Math.floor(abs / 100).toString().replace(/\B(?=(\d{3})+(?!\d))/g, ",");
    var cents = String(abs % 100).padStart(2, "0");
    return SYMBOL ? sign + SYMBOL + units + "." + cents : sign + units + "." + cents + " " + CODE;
  }

  /* Wire amounts are currency units with at most two decimals (12.5); inside the page we count cents. */
  function toMinor(units) {
    return Math.round(Number(units) * 100);
  }

  var dateFormat = new Intl.DateTimeFormat("en-GB", {
    timeZone: "UTC", day: "numeric", month: "short", year: "numeric", hour: "2-digit", minute: "2-digit",
    hourCycle: "h23"
  });

  function when(iso) {
    var d = iso ? new Date(iso) : null;
    return d && !isNaN(d) ? dateFormat.format(d) + " UTC" : "—";
  }

  function timeElement(iso) {
    var t = document.createElement("time");
    if (iso) t.dateTime = iso;
    t.textContent = when(iso);
    return t;
  }

  /* ---- toasts ---------------------------------------------------------------------------------- */

  var toastsByKey = new Map();

  function toast(text, kind, key) {
    var host = document.getElementById("toasts");
    if (!host) return null;
    var existing = key && toastsByKey.get(key);
    if (existing && existing.isConnected) {
      existing.querySelector(".toast-text").textContent = text;
      return existing;
    }
    var el = document.createElement("div");
    el.className = "toast toast-" + (kind || "info");
    var span = document.createElement("span");
    span.className = "toast-text";
    span.textContent = text;
    var close = document.createElement("button");
    close.type = "button";
    close.className = "toast-close";
    close.setAttribute("aria-label", "Dismiss");
    close.textContent = "×";
    close.addEventListener("click", function () { el.remove(); });
    el.append(span, close);
    host.append(el);
    if (key) toastsByKey.set(key, el);
    while (host.children.length > 4) host.firstElementChild.remove();
    setTimeout(function () { el.remove(); }, 8000);
    return el;
  }

  /* ---- connection indicator ---------------------------------------------------------------------- */

  var STATUS_TEXT = {
    connecting: "Connecting…", live: "Live", reconnecting: "Reconnecting…", offline: "Not live", unavailable: "Not live",
    paused: "Paused"
  };
  var leaving = false;
  window.addEventListener("beforeunload", function () { leaving = true; });
  window.addEventListener("pagehide", function () { leaving = true; });
  window.addEventListener("pageshow", function () { leaving = false; });

  function showStatus(state) {
    var pill = document.getElementById("live-status");
    if (!pill || leaving) return;
    pill.hidden = false;                 // hidden in the markup: without this script the page is not live
    pill.dataset.state = state;
    pill.querySelector(".live-text").textContent = STATUS_TEXT[state] || state;
  }

  /* ---- de-duplication of events without a seq --------------------------------------------------- */

  function Seen(limit) {
    this.limit = limit;
    this.keys = new Set();
  }
  Seen.prototype.first = function (key) {
    if (this.keys.has(key)) return false;
    this.keys.add(key);
    if (this.keys.size > this.limit) this.keys.delete(this.keys.values().next().value);
    return true;
  };

  /* ---- the socket --------------------------------------------------------------------------------- */

  // Every live connection of the page, told to stop when a read finds the login gone (logged out, expired,
  // or another person's now): the page then goes offline as a whole, instead of a socket still showing changes
  // beside reads that fail.
  var stoppers = [];
  var LOGGED_IN_AS_SOMEONE_ELSE =
    "You are now logged in as someone else in this browser. Reload this page to see that account.";
  var NO_LONGER_LOGGED_IN =
    "You are no longer logged in in this browser (logged out, or the login expired). Log in again to see changes.";

  var ONCE_EVENTS = ["transaction_completed", "transaction_failed", "balance_insufficient", "transaction_created",
                     "topup_requested", "topup_processed"];

  function connect(options) {
    var on = options.on || {};
    var onStatus = options.onStatus || function () {};
    function status(state) { showStatus(state); onStatus(state); }
    if (typeof window.io !== "function") { status("unavailable"); return null; }

    var lastSeq = typeof options.seq === "number" && isFinite(options.seq) ? options.seq : null;
    var seen = new Seen(1000);
    var connectedOnce = false;
    var refusals = 0;
    var transports = (body.dataset.transports || "polling,websocket").split(",");

    var socket = window.io("/balance", {
      transports: transports,
      reconnection: true,
      reconnectionAttempts: Infinity,
      reconnectionDelay: 500,       // first retry after 0.25-0.75 s ...
      reconnectionDelayMax: 5000,   // ... doubling up to 5 s
      randomizationFactor: 0.5,     // +-50% jitter, so a restarted server is not hit by every tab at once
      timeout: 8000,
      closeOnBeforeunload: true,    // say goodbye when the page goes, so the server drops this socket at once
      auth: function (send) {
        // The socket logs in with the browser's cookie, which may by now be another person's (logged in in
        // another tab): the page says whose it is, and the server refuses a socket for someone else.
        var auth = lastSeq === null ? {} : { since_seq: lastSeq };
        if (VIEWER !== null) auth.user_id = VIEWER;
        send(auth);
      }
    });
    var superseded = false;

    function call(name, data) {
      if (!on[name]) return;
      try { on[name](data); } catch (err) { console.error("[Balance] " + name + " handler failed", err); }
    }

    function stop(message, key) {
      if (superseded) return;
      superseded = true;
      socket.disconnect();
      status("offline");
      toast(message, "error", key);
    }
    stoppers.push(stop);

    function retryLater() {
      // The server closed or refused us (an expired login, a server shutting down, its database away): try
      // again, slowly at first, but never more than ~10 s apart, so a page catches up soon after an outage.
      if (superseded) return;
      refusals += 1;
      var delay = Math.min(10000, 1000 * Math.pow(2, refusals - 1)) * (0.5 + Math.random());
      setTimeout(function () { if (!socket.connected && !socket.active) socket.connect(); }, delay);
    }

    function showTransport() {
      // Which transport the socket is on (polling first, then the upgrade to websocket with one server
      // process): for whoever inspects the page, and for tests that must not cut the server mid-upgrade.
      var pill = document.getElementById("live-status");
      var engine = socket.io.engine;
      if (pill && engine && engine.transport) pill.dataset.transport = engine.transport.name;
    }

    socket.io.on("open", function () { socket.io.engine.on("upgrade", showTransport); });
    socket.on("connect", function () {
      refusals = 0;
      showTransport();
      status("live");
      var first = !connectedOnce;
      connectedOnce = true;
      if (options.onConnect) options.onConnect(first);
    });
    socket.on("disconnect", function (reason) {
      status("reconnecting");
      if (reason === "io server disconnect") retryLater();
    });
    socket.on("connect_error", function (err) {
      if (err && typeof err.message === "string" && err.message.indexOf(ANOTHER_LOGIN) === 0) {
        // This browser is now logged in as someone else: this page must show nothing of theirs. Stay offline.
        stop(LOGGED_IN_AS_SOMEONE_ELSE, "another-login");
        return;
      }
      if (socket.active) { status("reconnecting"); return; }
      // "unavailable: ..." is the server's own trouble (its database away): keep trying, it is not the login
      var theirs = err && typeof err.message === "string" && err.message.indexOf("unavailable") === 0;
      status(theirs ? "reconnecting" : "offline");
      retryLater();
    });

    socket.on("balance_initial", function (d) {
      if (!d || typeof d.seq !== "number") return;
      lastSeq = d.seq;                                           // the truth: see the top of this file
      call("balance_initial", d);
    });
    socket.on("balance_updated", function (d) {
      if (!d || typeof d.seq !== "number") return;
      if (lastSeq !== null && d.seq <= lastSeq) return;          // a repeat, or already shown
      lastSeq = d.seq;
      call("balance_updated", d);
    });
    ONCE_EVENTS.forEach(function (name) {
      socket.on(name, function (d) {
        if (!d) return;
        if (!seen.first(name + ":" + (d.transactionId || JSON.stringify(d)))) return;
        call(name, d);
      });
    });
    socket.on("error", function (d) { call("error", d); });
    socket.on("live_status", function (d) {
      // The server's worker lost its update service: connected, but no change will come until it is back
      // (then they all do, in order). Say so rather than "Live" over a balance that may be stale.
      if (!d || !socket.connected) return;
      status(d.live ? "live" : "paused");
    });

    function refresh() {
      return new Promise(function (resolve, reject) {
        if (!socket.connected) { reject(new Error("not connected")); return; }
        var arg = lastSeq === null ? {} : { since_seq: lastSeq };
        socket.timeout(5000).emit("get_current_balance", arg, function (err, payload) {
          if (err) { reject(err); return; }
          if (!payload || payload.error) { reject(new Error(payload ? payload.error.message : "no answer")); return; }
          // the same snapshot as the balance_initial event, but a change may have been sent between the two
          if (typeof payload.seq === "number" && (lastSeq === null || payload.seq >= lastSeq)) {
            lastSeq = payload.seq;
            call("balance_initial", payload);
          }
          resolve(payload);
        });
      });
    }

    status("connecting");
    return { socket: socket, refresh: refresh, lastSeq: function () { return lastSeq; } };
  }

  /* ---- reads through the login cookie ------------------------------------------------------------ */

  function getJSON(url) {
    // Read with the browser's cookie, which may be someone else's by now: the page says whose it is, and the
    // server answers 401 rather than that person's data.
    var headers = { Accept: "application/json" };
    if (VIEWER !== null) headers["X-Balance-Viewer"] = String(VIEWER);
    return fetch(url, { credentials: "same-origin", headers: headers }).then(function (r) {
      if (r.status === 401) {
        return r.json().catch(function () { return null; }).then(function (answer) {
          var said = answer && answer.error && typeof answer.error.message === "string" ? answer.error.message : "";
          var another = said.indexOf(ANOTHER_LOGIN) === 0;
          if (!stoppers.length) showStatus("offline");
          stoppers.forEach(function (stop) {
            stop(another ? LOGGED_IN_AS_SOMEONE_ELSE : NO_LONGER_LOGGED_IN, another ? "another-login" : "logged-out");
          });
          throw new Error(url + " answered 401");
        });
      }
      if (!r.ok) throw new Error(url + " answered " + r.status);
      return r.json();
    });
  }

  /* ---- forms that submit once (a double click sends one request; the server's key covers the rest) */

  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!form.matches || !form.matches("form[data-once]") || event.defaultPrevented) return;
    if (form.dataset.sending === "yes") { event.preventDefault(); return; }
    form.dataset.sending = "yes";
    var button = event.submitter;
    if (button) {
      button.setAttribute("aria-disabled", "true");
      if (button.dataset.busyLabel) button.textContent = button.dataset.busyLabel;
    }
  });
  window.addEventListener("pageshow", function (event) {
    if (!event.persisted) return;
    document.querySelectorAll("form[data-once]").forEach(function (f) { delete f.dataset.sending; });
  });

  window.BalanceLive = {
    connect: connect, money: money, toMinor: toMinor, when: when, timeElement: timeElement, toast: toast,
    getJSON: getJSON, showStatus: showStatus
  };
})();
