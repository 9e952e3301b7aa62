/* dashboard.js: keeps the wallet page live after the server's first paint.
 *
 * The balance, the rooms' Book buttons ("You need $X more" when short, as the seed's BookingPage) and the
 * transactions list follow the /balance socket; every change gets a toast. The page starts from the
 * balance and seq the server rendered, so no balance change between render and connect is lost (see
 * live.js). Changes without a seq (a rejected top-up, a refused payment) cannot be replayed, so on every
 * connect, the first included, the rows on screen are read again.
 */
(function () {
  "use strict";

  var L = window.BalanceLive;
  var root = document.getElementById("dashboard");
  if (!root || !L) return;

  var balanceEl = document.getElementById("balance");
  var noteEl = document.getElementById("balance-note");
  var refreshButton = document.getElementById("refresh-balance");
  var history = document.getElementById("history");
  var rowsEl = history.querySelector("[data-rows]");
  var emptyRow = rowsEl.querySelector("[data-empty]");
  var rowTemplate = history.querySelector("template[data-row-template]");
  var firstPage = root.dataset.firstPage === "true";
  var pageSize = Number(root.dataset.pageSize) || 10;
  var balance = Number(root.dataset.balanceMinor);

  var TYPES = { topup: "Top-up", payment: "Payment" };
  var STATUSES = {
    "topup:pending": "Pending", "topup:success": "Approved", "topup:failed": "Rejected",
    "payment:pending": "Processing", "payment:success": "Paid", "payment:failed": "Failed"
  };
  var REASONS = { insufficient_balance: "insufficient balance", rejected: "rejected" };
  var NOTES = {
    live: "Live: changes appear here at once.",
    connecting: "Connecting for live updates…",
    reconnecting: "Reconnecting… may be out of date.",
    paused: "Live updates paused (the update service is away): may be out of date. Refresh checks it now.",
    offline: "Not live: reload or log in again.",
    unavailable: "Not live: reload to see changes."
  };

  /* ---- balance and rooms ------------------------------------------------------------------------- */

  var flashTimer = null;

  function showBalance(minor, change) {
    balance = minor;
    balanceEl.textContent = L.money(minor);
    balanceEl.classList.remove("is-up", "is-down");
    if (change) {
      balanceEl.classList.add(change > 0 ? "is-up" : "is-down");
      clearTimeout(flashTimer);
      flashTimer = setTimeout(function () { balanceEl.classList.remove("is-up", "is-down"); }, 1500);
    }
    updateRooms();
  }

  function updateRooms() {
    root.querySelectorAll(".room[data-total-minor]").forEach(function (room) {
      var form = room.querySelector("form");
      if (form.dataset.sending === "yes") return;
      var short = Number(room.dataset.totalMinor) - balance;
      var button = room.querySelector(".book-button");
      var name = room.querySelector(".room-name").textContent;
      var note = room.querySelector("[data-room-status]");
      note.textContent = short > 0 ? "You need " + L.money(short) + " more." : "Within your balance.";
      note.classList.toggle("is-short", short > 0);
      button.disabled = short > 0;
      button.textContent = short > 0 ? "Insufficient balance" : "Book now";
      button.setAttribute("aria-label", (short > 0 ? "Cannot book " : "Book ") + name);
    });
  }

  /* ---- transactions ------------------------------------------------------------------------------ */

  function cell(tr, name) { return tr.querySelector('[data-cell="' + name + '"]'); }

  function fillRow(tr, tx) {
    tr.dataset.txId = tx.id;
    tr.classList.remove("is-pending", "is-success", "is-failed");
    tr.classList.add("is-" + tx.status);
    cell(tr, "when").replaceChildren(L.timeElement(tx.created_at));
    cell(tr, "title").textContent = TYPES[tx.type] || tx.type;
    cell(tr, "description").textContent = tx.description || "";
    var note = "";
    if (tx.admin_notes) note = "Note: " + tx.admin_notes;
    else if (tx.status === "failed" && tx.failure_reason) note = "Reason: " + (REASONS[tx.failure_reason] || tx.failure_reason);
    cell(tr, "note").textContent = note;
    cell(tr, "amount").textContent = (tx.type === "topup" ? "+" : "-") + L.money(L.toMinor(tx.amount));
    var badge = document.createElement("span");
    badge.className = "badge badge-" + tx.status;
    badge.textContent = STATUSES[tx.type + ":" + tx.status] || tx.status;
    cell(tr, "status").replaceChildren(badge);
    cell(tr, "after").textContent = tx.balance_snapshot == null ? "—" : L.money(L.toMinor(tx.balance_snapshot));
  }

  function visibleRow(id) {
    return rowsEl.querySelector('tr[data-tx-id="' + CSS.escape(id) + '"]');
  }

  function showOlderLink(cursor) {
    var link = history.querySelector("[data-older]");
    if (!cursor) return;
    if (!link) {
      var nav = history.querySelector(".pager") || document.createElement("nav");
      if (!nav.isConnected) {
        nav.className = "pager";
        nav.setAttribute("aria-label", "Pages");
        history.append(nav);
      }
      link = document.createElement("a");
      link.className = "button button-quiet";
      link.dataset.older = "";
      link.textContent = "Older →";
      nav.append(link);
    }
    link.href = "?cursor=" + encodeURIComponent(cursor);
  }

  /* The rows on screen are read again after a change and on every (re)connect: the first page as a whole (new
   * rows, changed statuses), an older page only its own rows. Answers can come back out of order, so one
   * older than an answer already shown is dropped. */
  var reloadTimer = null;
  var reads = 0;
  var shownRead = 0;
  var cursor = new URLSearchParams(window.location.search).get("cursor") || "";

  function showFirstPage(page) {
    var known = new Map();
    rowsEl.querySelectorAll("tr[data-tx-id]").forEach(function (tr) { known.set(tr.dataset.txId, tr); });
    var rows = page.items.map(function (tx) {
      var tr = known.get(tx.id);
      var fresh = !tr;
      if (fresh) tr = rowTemplate.content.firstElementChild.cloneNode(true);
      fillRow(tr, tx);
      if (fresh && known.size) tr.classList.add("is-new");
      return tr;
    });
    rowsEl.replaceChildren.apply(rowsEl, rows.concat([emptyRow]));
    emptyRow.hidden = rows.length > 0;
    showOlderLink(page.next_cursor);
  }

  function showOlderPage(page) {
    page.items.forEach(function (tx) {
      var tr = visibleRow(tx.id);
      if (tr) fillRow(tr, tx);
    });
  }

  function reloadRows() {
    clearTimeout(reloadTimer);
    reloadTimer = setTimeout(function () {
      var read = ++reads;
      var url = "/transactions?limit=" + pageSize + (firstPage ? "" : "&cursor=" + encodeURIComponent(cursor));
      L.getJSON(url).then(function (page) {
        if (read < shownRead) return;          // a later read already answered: this one is older
        shownRead = read;
        (firstPage ? showFirstPage : showOlderPage)(page);
      }).catch(function (err) { console.warn("[Balance] could not refresh transactions", err); });
    }, 80);
  }

  function transactionChanged(id) {
    if (firstPage || (id && visibleRow(id))) reloadRows();
  }

  /* ---- the socket -------------------------------------------------------------------------------- */

  function failureToast(id, text) { L.toast(text, "error", "failed:" + id); }

  var live = L.connect({
    seq: Number(root.dataset.seq),
    onConnect: reloadRows,
    onStatus: function (state) {
      balanceEl.classList.toggle("is-stale", state !== "live");
      refreshButton.disabled = state !== "live" && state !== "paused";  // paused: the socket still answers
      noteEl.textContent = NOTES[state] || "";
    },
    on: {
      balance_initial: function (d) { showBalance(L.toMinor(d.balance)); },
      balance_updated: function (d) {
        var now = L.toMinor(d.newBalance);
        var change = now - L.toMinor(d.previousBalance);
        showBalance(now, change);
        L.toast((change >= 0 ? "+" : "-") + L.money(Math.abs(change)) + " · Balance: " + L.money(now),
                change >= 0 ? "success" : "info");
        transactionChanged(d.transactionId);
      },
      transaction_created: function (d) { transactionChanged(d.transactionId); },  // e.g. a top-up asked in another tab
      transaction_completed: function (d) { transactionChanged(d.transactionId); },
      transaction_failed: function (d) {
        var amount = L.money(L.toMinor(d.amount));
        var reason = REASONS[d.reason] || d.reason || "";
        if (d.transactionType === "topup") {
          failureToast(d.transactionId, "Top-up of " + amount + " rejected" +
                       (reason && reason !== "rejected" ? ": " + reason : ""));
        } else {
          failureToast(d.transactionId, "Payment of " + amount + " failed" + (reason ? ": " + reason : ""));
        }
        transactionChanged(d.transactionId);
      },
      balance_insufficient: function (d) {
        failureToast(d.transactionId, "Payment of " + L.money(L.toMinor(d.requiredAmount)) + " failed: you need " +
                     L.money(L.toMinor(d.shortfall)) + " more");
      },
      error: function (d) { L.toast("Live updates: " + ((d && d.message) || "something went wrong"), "error"); }
    }
  });

  if (live) {
    refreshButton.hidden = false;
    refreshButton.addEventListener("click", function () {
      refreshButton.disabled = true;
      live.refresh().catch(function () { L.toast("Could not refresh the balance; retrying in the background.", "error"); })
        .finally(function () { refreshButton.disabled = !live.socket.connected; });
    });
  }
})();
