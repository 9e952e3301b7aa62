/* admin.js: keeps the admin pages live.
 *
 * - Pending top-ups: a user's request appears without a reload (`topup_requested`); a top-up decided
 *   elsewhere (another admin, another tab) is marked and its buttons disabled (`topup_processed`); on every
 *   (re)connect the list is checked against the server, since admin events have no seq to replay by.
 *   That answer is only as new as the moment it was read: a request that arrives live while it is on its
 *   way is not in it and is still pending, so only rows on the page before the check was sent can be
 *   marked decided by it, and a top-up the page has heard was decided is never added back by it.
 *   Approve and reject ask for a confirmation in the row before the form is sent.
 * - Processed top-ups: a notice when new decisions exist.
 * - Users, a page of them by email: that page's balances refreshed when a top-up is decided, on reconnect, and
 *   every few seconds (payments reach only their user's sockets), never replacing a newer balance with an older
 *   one (by seq).
 */
(function () {
  "use strict";

  var L = window.BalanceLive;
  if (!L) return;

  var listeners = {};
  var onConnect = [];

  function listen(name, fn) { (listeners[name] = listeners[name] || []).push(fn); }

  function cell(tr, name) { return tr.querySelector('[data-cell="' + name + '"]'); }

  /* ---- pending top-ups ----------------------------------------------------------------------------- */

  function setupPending(root) {
    var rows = document.getElementById("pending-rows");
    var empty = document.getElementById("pending-empty");
    var count = document.getElementById("pending-count");
    var template = document.getElementById("pending-row-template");
    var decideUrl = root.dataset.decideUrl;
    var viewerId = Number(root.dataset.viewerId);

    var decided = new Set();     // top-ups this page heard were decided: a stale answer must not bring them back
    var announced = new Set();   // top-ups already shown to the admin, by the server's page or a toast

    function rowFor(id) { return rows.querySelector('tr[data-tx-id="' + CSS.escape(id) + '"]'); }
    function rowIds() {
      return Array.prototype.map.call(rows.querySelectorAll("tr.pending-row[data-tx-id]"), function (tr) {
        return tr.dataset.txId;
      });
    }
    rowIds().forEach(function (id) { announced.add(id); });

    function recount() {
      count.textContent = String(rows.querySelectorAll("tr.pending-row:not(.is-done)").length);
      empty.hidden = rows.querySelector("tr.pending-row") !== null;
    }

    function addRow(t) {
      if (!t.transactionId || decided.has(t.transactionId) || rowFor(t.transactionId)) return null;
      var tr = template.content.firstElementChild.cloneNode(true);
      var minor = L.toMinor(t.amount);
      tr.dataset.txId = t.transactionId;
      tr.dataset.amountMinor = String(minor);
      cell(tr, "when").replaceChildren(L.timeElement(t.timestamp));
      cell(tr, "user").textContent = t.userEmail || "";
      cell(tr, "amount").textContent = L.money(minor);
      cell(tr, "description").textContent = t.description || "";
      tr.querySelector("form").action = decideUrl.replace("__id__", encodeURIComponent(t.transactionId));
      if (Number(t.userId) === viewerId) {   // four eyes: the server refuses its owner, so offer no buttons
        tr.querySelector(".decide-buttons").hidden = true;
        tr.querySelectorAll("button, input:not([type=hidden])").forEach(function (el) { el.disabled = true; });
        var status = tr.querySelector("[data-row-status]");
        status.textContent = "Your own request: another admin must decide it.";
        status.hidden = false;
      }
      tr.classList.add("is-new");
      rows.insertBefore(tr, empty);
      recount();
      return tr;
    }

    /* `known`: the news came with the decision itself (an event), so it may replace a vaguer status. */
    function markDone(id, text, known) {
      var tr = rowFor(id);
      if (!tr) return;
      var form = tr.querySelector("form");
      var status = form.querySelector("[data-row-status]");
      if (tr.classList.contains("is-done")) {
        if (known) status.textContent = text;
        return;
      }
      if (form.dataset.sending === "yes") return;   // this page's own decision: the reload will tell
      tr.classList.add("is-done");
      form.querySelectorAll("button, input:not([type=hidden])").forEach(function (el) { el.disabled = true; });
      form.querySelector("[data-confirm-box]").hidden = true;
      form.querySelector(".decide-buttons").hidden = true;
      status.textContent = text;
      status.hidden = false;
      recount();
    }

    /* A request is announced once, whichever came first: its event, or the re-check below. */
    listen("topup_requested", function (d) {
      var id = d.transactionId;
      if (!id || announced.has(id)) return;
      var tr = rowFor(id) || addRow(d);
      if (!tr || tr.classList.contains("is-done")) return;
      announced.add(id);
      L.toast("New top-up request: " + L.money(L.toMinor(d.amount)) + " from " + (d.userEmail || "a user"));
    });
    listen("topup_processed", function (d) {
      if (!d.transactionId) return;
      decided.add(d.transactionId);
      markDone(d.transactionId, d.status === "success" ? "Approved just now by an admin" : "Rejected just now by an admin",
               true);
    });

    var checking = 0;           // the list is aria-busy while a check is on its way

    onConnect.push(function () {
      var before = rowIds();      // what the answer can speak for: rows added while it travels are newer than it
      checking += 1;
      root.setAttribute("aria-busy", "true");
      L.getJSON("/transactions/topup/pending").then(function (data) {
        var still = new Set();
        data.items.forEach(function (tx) {
          still.add(tx.id);
          addRow({ transactionId: tx.id, userId: tx.user && tx.user.id, userEmail: tx.user && tx.user.email,
                   amount: tx.amount, description: tx.description, timestamp: tx.created_at });
        });
        before.forEach(function (id) {
          if (!still.has(id)) markDone(id, "Already decided by an admin");
        });
      }).catch(function (err) { console.warn("[Balance] could not check the pending list", err); }).finally(function () {
        checking -= 1;
        if (!checking) root.removeAttribute("aria-busy");
      });
    });

    /* Approve / reject: the first press asks, "Yes" sends (once). Without this script the server asks. */
    rows.addEventListener("submit", function (event) {
      var form = event.target.closest("form.decide-form");
      if (!form) return;
      event.preventDefault();
      var choice = event.submitter && event.submitter.value;
      if (form.dataset.sending === "yes" || (choice !== "approve" && choice !== "reject")) return;
      askToConfirm(form, choice, event.submitter);
    });

    function askToConfirm(form, choice, origin) {
      var tr = form.closest("tr");
      var buttons = form.querySelector(".decide-buttons");
      var box = form.querySelector("[data-confirm-box]");
      var yes = box.querySelector("[data-confirm]");
      var no = box.querySelector("[data-cancel]");
      var approve = choice === "approve";
      box.querySelector("[data-confirm-text]").textContent =
        (approve ? "Approve " : "Reject ") + cell(tr, "amount").textContent + " for " + cell(tr, "user").textContent + "?";
      yes.textContent = approve ? "Yes, approve" : "Yes, reject";
      yes.className = "button " + (approve ? "button-approve" : "button-reject");
      buttons.hidden = true;
      box.hidden = false;
      yes.focus();

      function cancel() {
        box.hidden = true;
        buttons.hidden = false;
        origin.focus();
      }
      yes.onclick = function () {
        if (form.dataset.sending === "yes") return;
        form.dataset.sending = "yes";
        [["decision", choice], ["confirmed", "yes"]].forEach(function (pair) {
          var input = document.createElement("input");
          input.type = "hidden";
          input.name = pair[0];
          input.value = pair[1];
          form.append(input);
        });
        yes.textContent = approve ? "Approving…" : "Rejecting…";
        yes.setAttribute("aria-disabled", "true");
        no.disabled = true;
        HTMLFormElement.prototype.submit.call(form);
      };
      no.onclick = cancel;
      box.onkeydown = function (event) { if (event.key === "Escape") cancel(); };
    }

    recount();
  }

  /* ---- processed top-ups ----------------------------------------------------------------------------- */

  function setupProcessed() {
    var notice = document.getElementById("processed-notice");
    listen("topup_processed", function () { notice.hidden = false; });
  }

  /* ---- users and balances ----------------------------------------------------------------------------- */

  function setupUsers(root) {
    var ids = Array.prototype.map.call(root.querySelectorAll("tr[data-user-id]"), function (tr) {
      return tr.dataset.userId;
    });
    var url = root.dataset.balancesUrl + "?ids=" + ids.join(",");   // the users this page shows, no others
    var timer = null;

    function refresh() {
      if (!ids.length) return;
      L.getJSON(url).then(function (data) {
        data.items.forEach(function (b) {
          var tr = root.querySelector('tr[data-user-id="' + Number(b.user_id) + '"]');
          var shown = tr && tr.querySelector(".user-balance");
          if (!shown || Number(shown.dataset.seq) >= b.seq) return;
          shown.dataset.seq = String(b.seq);
          shown.textContent = L.money(L.toMinor(b.balance));
          var changed = tr.querySelector("[data-cell=updated]");
          if (changed) changed.replaceChildren(L.timeElement(b.updated_at));
          tr.classList.remove("is-new");
          void tr.offsetWidth;           // restart the highlight
          tr.classList.add("is-new");
        });
      }).catch(function (err) { console.warn("[Balance] could not refresh balances", err); });
    }

    listen("topup_processed", function (d) { if (d.status === "success") refresh(); });
    onConnect.push(refresh);
    timer = setInterval(function () { if (!document.hidden) refresh(); }, 5000);
    window.addEventListener("pagehide", function () { clearInterval(timer); });
  }

  var pending = document.getElementById("pending");
  var processed = document.getElementById("processed");
  var users = document.getElementById("users");
  if (pending) setupPending(pending);
  if (processed) setupProcessed();
  if (users) setupUsers(users);

  var on = {};
  Object.keys(listeners).forEach(function (name) {
    on[name] = function (d) { listeners[name].forEach(function (fn) { fn(d); }); };
  });
  L.connect({ seq: null, on: on, onConnect: function (first) { onConnect.forEach(function (fn) { fn(first); }); } });
})();
