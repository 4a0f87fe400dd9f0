/* The runs list: keep the rows of queued and running runs up to date.
 *
 * Every 2 s, each row whose data-status is not terminal is refreshed from
 * GET /api/v1/workspaces/{ws}/runs/{id} (the session cookie authenticates it): status badge,
 * start time, duration, rounds and tokens. A row stops being polled once its run has ended;
 * polling stops altogether when no row needs it, and pauses while the tab is hidden.
 * Values are set with textContent only.
 */
(function () {
  "use strict";

  var table = document.getElementById("runs-table");
  if (!table) {
    return;
  }
  var PERIOD_MS = 2000;
  var TERMINAL = ["succeeded", "failed", "timeout", "cancelled"];
  var base = "/api/v1/workspaces/" + encodeURIComponent(table.dataset.ws) + "/runs/";

  function pending() {
    return Array.prototype.filter.call(table.querySelectorAll("tr.run-row"), function (row) {
      return TERMINAL.indexOf(row.dataset.status) < 0;
    });
  }

  function update(row, run) {
    row.dataset.status = run.status;
    var badge = row.querySelector(".run-status .badge");
    badge.textContent = run.status;
    badge.className = "badge badge-" + String(run.status).replace(/[^a-z]/g, "");
    row.querySelector(".run-started").textContent = ActanaFormat.time(run.started_at || run.created_at);
    row.querySelector(".run-duration").textContent = ActanaFormat.duration(run.duration_ms);
    row.querySelector(".run-rounds").textContent = String(run.rounds);
    row.querySelector(".run-tokens").textContent =
      run.usage.input_tokens + " / " + run.usage.output_tokens;
  }

  function refresh(row) {
    return fetch(base + encodeURIComponent(row.dataset.runId), {
      credentials: "same-origin",
      headers: { Accept: "application/json", "X-Requested-With": "fetch" },
    }).then(function (r) {
      if (r.status === 401) {
        window.location.assign("/ui/login"); // the session ended
        return null;
      }
      return r.ok ? r.json() : null;
    }).then(function (run) {
      if (run) {
        update(row, run);
      }
    }).catch(function () {
      // a missed poll is retried on the next tick
    });
  }

  function tick() {
    var rows = pending();
    if (!rows.length) {
      return; // nothing left to watch
    }
    if (document.hidden) {
      window.setTimeout(tick, PERIOD_MS);
      return;
    }
    Promise.all(rows.map(refresh)).then(function () {
      window.setTimeout(tick, PERIOD_MS);
    });
  }

  window.setTimeout(tick, PERIOD_MS);
})();
