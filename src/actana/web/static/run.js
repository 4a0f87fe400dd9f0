/* The run page: ONE renderer fed by the run's NDJSON lines, live or replayed.
 *
 * Live: an EventSource on GET .../events (SSE), followed to the terminal line.
 * Replay (?replay=1): GET .../stream.jsonl, played back at its recorded pace (the lines' `ts`),
 * with a speed select and a "jump to end" button.
 * Both feed the same `feed(line)`, so a run looks the same watched now or later.
 *
 * Everything in a line came from a sandbox and is hostile: it is only ever put in the page
 * with textContent / createElement, never innerHTML (and the CSP forbids inline script).
 */
(function () {
  "use strict";

  var root = document.getElementById("run");
  if (!root) {
    return;
  }
  var API = "/api/v1/workspaces/" + encodeURIComponent(root.dataset.ws) +
    "/runs/" + encodeURIComponent(root.dataset.run);
  var CSRF = (document.querySelector('meta[name="csrf-token"]') || {}).content || "";
  var TERMINAL_STATUSES = ["succeeded", "failed", "timeout", "cancelled"];
  var LINE_TYPES = ["log", "step", "delta", "result", "error"];
  // Past these a step's args or result are folded into a <details>.
  var LONG_CHARS = 400;
  var LONG_LINES = 8;

  function $(id) {
    return document.getElementById(id);
  }

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) {
      node.className = className;
    }
    if (text !== undefined && text !== null) {
      node.textContent = String(text);
    }
    return node;
  }

  function pretty(value) {
    if (typeof value === "string") {
      return value;
    }
    try {
      return JSON.stringify(value, null, 2);
    } catch (e) {
      return String(value);
    }
  }

  // A <pre> with the text, folded into a <details> when long.
  function block(value, label) {
    var text = pretty(value);
    var pre = el("pre", null, text);
    var lines = text.split("\n").length;
    if (text.length <= LONG_CHARS && lines <= LONG_LINES) {
      return pre;
    }
    var details = el("details");
    details.appendChild(el("summary", null, label + " (" + lines + " lines, " + text.length + " chars)"));
    details.appendChild(pre);
    return details;
  }

  function setBadge(node, status) {
    node.textContent = status;
    node.className = "badge badge-" + String(status).replace(/[^a-z_]/g, "");
  }

  function setStatus(status) {
    root.dataset.status = status;
    setBadge($("run-status"), status);
    var done = TERMINAL_STATUSES.indexOf(status) >= 0;
    $("cancel-button").classList.toggle("hidden", done);
    var replayLink = $("replay-link");
    if (replayLink) {
      replayLink.classList.toggle("hidden", !done);
    }
  }

  function setStreamState(text) {
    $("stream-state").textContent = text;
  }

  // ---- the renderer ---------------------------------------------------------------------
  // steps: a Map, not an object: a step id such as "__proto__" must be just a key.
  var state = { lastSeq: -1, terminal: false, steps: new Map(), onTerminal: null };

  function renderLog(line) {
    var item = el("li", "log-line level-" + String(line.level || "info").replace(/[^a-z]/g, ""));
    var prefix = line.phase ? "[" + line.phase + "] " : "";
    item.textContent = prefix + (line.message || "");
    $("log-lines").appendChild(item);
    if (line.phase) {
      var phase = document.querySelector('#phases li[data-phase="' + CSS.escape(String(line.phase)) + '"]');
      if (phase) {
        phase.classList.remove("pending");
        var failed = line.level === "error" || (line.outcome && line.outcome !== "ok");
        phase.classList.add(failed ? "failed" : "done");
        phase.querySelector(".phase-duration").textContent = ActanaFormat.duration(line.durationMs);
        phase.title = line.message || "";
      }
    }
  }

  function stepRow(id) {
    var row = state.steps.get(id);
    if (row) {
      return row;
    }
    row = el("tr", "step");
    row.dataset.stepId = id;
    ["step-status", "step-name", "step-args", "step-result", "step-duration num"].forEach(function (c) {
      row.appendChild(el("td", c));
    });
    document.querySelector("#steps tbody").appendChild(row);
    $("no-steps").classList.add("hidden");
    state.steps.set(id, row);
    return row;
  }

  function renderStep(line) {
    var row = stepRow(String(line.id));
    var cells = row.children;
    row.dataset.status = line.status;
    cells[0].replaceChildren();
    if (line.status === "running") {
      cells[0].appendChild(el("span", "spinner", null));
      cells[0].appendChild(el("span", "muted", " running"));
    } else {
      var badge = el("span");
      setBadge(badge, line.status === "succeeded" ? "succeeded" : "failed");
      cells[0].appendChild(badge);
    }
    cells[1].textContent = line.name || "";
    if (line.args !== undefined && line.args !== null) {
      cells[2].replaceChildren(block(line.args, "arguments"));
    }
    if (line.status !== "running") {
      if (line.error !== undefined && line.error !== null) {
        var err = block(line.error, "error");
        err.classList.add("step-error");
        cells[3].replaceChildren(err);
      } else {
        cells[3].replaceChildren(block(line.result === undefined ? null : line.result, "result"));
      }
      cells[4].textContent = ActanaFormat.duration(line.durationMs);
    }
  }

  function renderTerminal(line) {
    state.terminal = true;
    if (line.type === "result") {
      $("final-message").textContent = line.message || "";
      setStatus("succeeded");
    } else {
      $("final-error").textContent = (line.code ? line.code + ": " : "") + (line.message || "");
      setStatus(line.code === "timeout" || line.code === "cancelled" ? line.code : "failed");
    }
    // Steps still "running" at the end never finished: stop their spinners.
    state.steps.forEach(function (row) {
      if (row.dataset.status === "running") {
        row.dataset.status = "failed";
        row.children[0].replaceChildren(el("span", "badge badge-failed", "unfinished"));
      }
    });
    if (state.onTerminal) {
      state.onTerminal();
    }
  }

  /** Feed one NDJSON line (an object) to the page. Lines seen before (by seq) are ignored. */
  function feed(line) {
    if (!line || typeof line !== "object" || state.terminal) {
      return;
    }
    if (typeof line.seq === "number") {
      if (line.seq <= state.lastSeq) {
        return; // a reconnect replays from the start: already shown
      }
      state.lastSeq = line.seq;
    }
    if (root.dataset.status === "queued" && line.type !== "result" && line.type !== "error") {
      setStatus("running");
    }
    if (line.type === "log") {
      renderLog(line);
    } else if (line.type === "step") {
      renderStep(line);
    } else if (line.type === "delta") {
      $("model-text").appendChild(document.createTextNode(String(line.text || "")));
    } else if (line.type === "result" || line.type === "error") {
      renderTerminal(line);
    }
  }

  // ---- after the end: the run record, its files, the chain verdict -----------------------
  function getJSON(path) {
    return fetch(API + path, {
      headers: { Accept: "application/json", "X-Requested-With": "fetch" },
      credentials: "same-origin",
    }).then(function (r) {
      if (!r.ok) {
        throw new Error("HTTP " + r.status);
      }
      return r.json();
    });
  }

  function showRun(run) {
    if (TERMINAL_STATUSES.indexOf(run.status) >= 0) {
      setStatus(run.status);
    }
    $("run-backend").textContent = run.sandbox_backend || "–";
    $("run-isolation").textContent = run.isolation || "–";
    $("run-started").textContent = ActanaFormat.time(run.started_at);
    $("run-ended").textContent = ActanaFormat.time(run.ended_at);
    $("run-duration").textContent = ActanaFormat.duration(run.duration_ms);
    $("run-rounds").textContent = String(run.rounds);
    $("run-tokens").textContent = run.usage.input_tokens + " / " + run.usage.output_tokens;
  }

  function showFiles(files) {
    var list = $("output-files");
    list.replaceChildren();
    files.forEach(function (f) {
      var item = el("li", "output-file");
      var link = el("a", "download", f.name);
      link.href = API + "/files/" + encodeURIComponent(f.name);
      link.setAttribute("download", f.name);
      item.appendChild(link);
      item.appendChild(el("span", "file-size muted", " " + ActanaFormat.size(f.size)));
      list.appendChild(item);
    });
    $("no-output-files").textContent = files.length ? "" : "The run produced no files.";
    $("no-output-files").classList.toggle("hidden", files.length > 0);
  }

  function showVerdict(v) {
    var badge = $("verify-badge");
    badge.dataset.state = v.state;
    badge.title = v.message;
    if (v.state === "verified") {
      badge.textContent = "chain verified";
      badge.className = "badge badge-verified";
    } else if (v.state === "tampered") {
      badge.textContent = "chain broken: " + v.message;
      badge.className = "badge badge-bad";
    } else {
      badge.textContent = "chain: " + v.message;
      badge.className = "badge";
    }
  }

  // The terminal line is written before the database row is updated: ask again a few times
  // until the row says the run ended (it carries the final timings, files and chain hash).
  function settle(attempt) {
    getJSON("").then(function (run) {
      showRun(run);
      if (TERMINAL_STATUSES.indexOf(run.status) < 0 && attempt < 20) {
        window.setTimeout(function () { settle(attempt + 1); }, 500);
        return;
      }
      showFiles(run.output_files || []);
      getJSON("/verify").then(showVerdict, function () {
        showVerdict({ state: "pending", message: "could not be checked" });
      });
    }).catch(function () {
      if (attempt < 20) {
        window.setTimeout(function () { settle(attempt + 1); }, 1000);
      }
    });
  }
  state.onTerminal = function () {
    setStreamState(root.dataset.replay === "true" ? "replay ended" : "ended");
    settle(0);
  };

  // ---- live ---------------------------------------------------------------------------------
  function follow() {
    var source = null;
    var retries = 0;

    function open() {
      var url = API + "/events" + (state.lastSeq >= 0 ? "?after=" + state.lastSeq : "");
      source = new EventSource(url, { withCredentials: true });
      source.onopen = function () {
        retries = 0;
        setStreamState("live");
      };
      LINE_TYPES.forEach(function (type) {
        source.addEventListener(type, function (event) {
          if (typeof event.data !== "string") {
            return; // the "error" name is also the EventSource's own connection error
          }
          var line;
          try {
            line = JSON.parse(event.data);
          } catch (e) {
            return;
          }
          feed(line);
          if (state.terminal) {
            source.close();
          }
        });
      });
      source.addEventListener("error", function (event) {
        if (typeof event.data === "string" || state.terminal) {
          return;
        }
        // Closed for good (e.g. a 401 or 404): open again from where we were, a few times.
        if (source.readyState === EventSource.CLOSED) {
          retries += 1;
          if (retries > 10) {
            setStreamState("connection lost: reload the page");
            return;
          }
          setStreamState("connection lost, retrying…");
          window.setTimeout(open, 2000);
        } else {
          setStreamState("reconnecting…");
        }
      });
    }
    open();
  }

  // ---- replay -------------------------------------------------------------------------------
  function replay() {
    var lines = [];
    var next = 0;
    var timer = null;
    var speed = 1;
    // The wait for the next line, in recorded milliseconds: what is left of it when the speed
    // changes mid-wait is played at the new speed at once, not after the old wait.
    var gapLeft = 0;
    var waitStarted = 0;

    function wait(recordedMs) {
      gapLeft = recordedMs;
      waitStarted = performance.now();
      timer = window.setTimeout(step, recordedMs / speed);
    }

    function step() {
      timer = null;
      if (next >= lines.length) {
        return;
      }
      feed(lines[next]);
      next += 1;
      if (next < lines.length) {
        wait(Math.max(0, (lines[next].ts || 0) - (lines[next - 1].ts || 0)));
      }
    }

    $("jump-end").addEventListener("click", function () {
      if (timer !== null) {
        window.clearTimeout(timer);
        timer = null;
      }
      while (next < lines.length) {
        feed(lines[next]);
        next += 1;
      }
      $("jump-end").disabled = true;
    });
    $("replay-speed").addEventListener("change", function (event) {
      var played = (performance.now() - waitStarted) * speed;
      speed = Number(event.target.value) || 1;
      if (timer !== null) {
        window.clearTimeout(timer);
        wait(Math.max(0, gapLeft - played));
      }
    });

    setStreamState("loading the stored stream…");
    fetch(API + "/stream.jsonl", { credentials: "same-origin", headers: { "X-Requested-With": "fetch" } })
      .then(function (r) {
        if (!r.ok) {
          throw new Error(r.status === 404 ? "the run has no stored stream yet" : "HTTP " + r.status);
        }
        return r.text();
      })
      .then(function (text) {
        text.split("\n").forEach(function (raw) {
          if (!raw) {
            return;
          }
          try {
            lines.push(JSON.parse(raw));
          } catch (e) {
            // a broken line is reported by the chain badge; the replay skips it
          }
        });
        setStreamState("replaying " + lines.length + " lines");
        step();
      })
      .catch(function (e) {
        setStreamState("cannot replay: " + e.message);
      });
  }

  // ---- cancel -------------------------------------------------------------------------------
  $("cancel-button").addEventListener("click", function () {
    var button = $("cancel-button");
    var problem = $("cancel-error");
    button.disabled = true;
    button.textContent = "Cancelling…";
    problem.textContent = "";
    fetch(API + "/cancel", {
      method: "POST",
      credentials: "same-origin",
      headers: { "X-CSRF-Token": CSRF, "X-Requested-With": "fetch", Accept: "application/json" },
    }).then(function (r) {
      return r.json().then(function (body) {
        if (!r.ok) {
          throw new Error((body && body.error && body.error.message) || "HTTP " + r.status);
        }
        return body;
      });
    }).then(function (run) {
      if (run.status === "cancelled") {
        setStatus("cancelled"); // it never started: the stream brings its one terminal line
      }
    }).catch(function (e) {
      problem.textContent = "Could not cancel: " + e.message;
      button.disabled = false;
      button.textContent = "Cancel run";
    });
  });

  // Exposed for the browser tests and for debugging; feeding lines by hand renders them too.
  window.actanaRun = { feed: feed, state: state };

  if (root.dataset.replay === "true") {
    replay();
  } else {
    follow();
  }
})();
