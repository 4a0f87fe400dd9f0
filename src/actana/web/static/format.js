/* How the pages' scripts write durations, times and sizes: exactly as the server renders them
 * (actana.web.templating: format_duration, format_time, format_size), so that a value reads the
 * same whether the page was rendered with it or a script updated it. Loaded before run.js and
 * runs.js, which use window.ActanaFormat. */
(function () {
  "use strict";

  // Cut, never rounded: 1250 ms is "1.2 s", 4 559 000 ms is "1 h 15 min".
  function duration(ms) {
    if (typeof ms !== "number" || !isFinite(ms)) {
      return "–";
    }
    if (ms < 1000) {
      return Math.floor(ms) + " ms";
    }
    var tenths = Math.floor(ms / 100);
    if (tenths < 600) {
      return Math.floor(tenths / 10) + "." + (tenths % 10) + " s";
    }
    var minutes = Math.floor(ms / 60000);
    if (minutes < 60) {
      return minutes + " min " + (Math.floor(ms / 1000) % 60) + " s";
    }
    return Math.floor(minutes / 60) + " h " + (minutes % 60) + " min";
  }

  // An ISO timestamp in UTC, to the second, as "2026-11-27 23:14:41".
  function time(iso) {
    if (!iso) {
      return "–";
    }
    return String(iso).replace("T", " ").replace(/\.\d+/, "").replace(/(Z|[+-]00:00)$/, "");
  }

  // Bytes in the largest unit that keeps a number >= 1.
  function size(n) {
    if (typeof n !== "number" || !isFinite(n)) {
      return "–";
    }
    var units = ["B", "KB", "MB", "GB"];
    var i = 0;
    while (n >= 1024 && i < units.length - 1) {
      n /= 1024;
      i += 1;
    }
    return i === 0 ? Math.floor(n) + " B" : n.toFixed(1) + " " + units[i];
  }

  window.ActanaFormat = { duration: duration, time: time, size: size };
})();
